"""A built wheel puts the CLI inside the package (ffneuro/cli/, no top-level cli/) and works when not editable."""
from __future__ import annotations

import importlib
import importlib.util
import os
import shutil
import subprocess
import sys
import tomllib
import zipfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.egg-info", "build", "dist", "*.h5")


def _pyproject() -> dict:
    return tomllib.loads((REPO / "pyproject.toml").read_text())


def _source_copy(dest: Path) -> Path:
    """pyproject, README and the package folders, so the build leaves no build/ or egg-info in the shared tree."""
    dest.mkdir()
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        if (REPO / name).is_file():
            shutil.copy2(REPO / name, dest / name)
    for folder in set(_pyproject()["tool"]["setuptools"]["package-dir"].values()):
        top = folder.split("/")[0]
        if (REPO / top).is_dir() and not (dest / top).exists():
            shutil.copytree(REPO / top, dest / top, ignore=IGNORE)
    return dest


@pytest.mark.slow
def test_wheel_layout_and_non_editable_install(tmp_path):
    if importlib.util.find_spec("setuptools") is None:
        pytest.skip("setuptools is not installed (needed to build offline without build isolation)")
    src = _source_copy(tmp_path / "src")
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "--no-index", "-q",
         "-w", str(wheels), str(src)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    if build.returncode != 0 and "No module named" in build.stderr and ("setuptools" in build.stderr or "wheel" in build.stderr):
        pytest.skip(f"cannot build offline: {build.stderr.strip().splitlines()[-1]}")
    assert build.returncode == 0, build.stdout + build.stderr
    (wheel,) = wheels.glob("ffneuro-*.whl")

    names = zipfile.ZipFile(wheel).namelist()
    assert "ffneuro/cli/main.py" in names and "ffneuro/cli/__init__.py" in names
    assert "ffneuro/__init__.py" in names and "ffneuro/store/reader.py" in names
    assert not [n for n in names if n.startswith(("cli/", "hw_profiles/"))], "a generic top-level package leaked"
    tops = {n.split("/")[0] for n in names}
    assert tops == {"ffneuro", wheel.name.split("-py")[0] + ".dist-info"}, tops
    entry_points = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "ffneuro = ffneuro.cli.main:main" in entry_points

    # Install into a throwaway plain venv. It sees the dependencies of the environment running this test
    # (torch, numpy, ...) through a .pth file naming their folders: those come after the venv's own
    # site-packages on sys.path, and .pth files inside them are not run (so an editable ffneuro there
    # stays inactive), so `import ffneuro` can only find the wheel installed here.
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True, timeout=60)
    bindir = venv / ("Scripts" if os.name == "nt" else "bin")
    python = bindir / ("python.exe" if os.name == "nt" else "python")
    site = subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_path('purelib'))"],
                          capture_output=True, text=True, timeout=60, check=True).stdout.strip()
    deps = {str(Path(importlib.import_module(name).__file__).resolve().parents[1])
            for name in ("torch", "numpy", "scipy", "h5py", "click")}
    (Path(site) / "ffneuro_test_dependencies.pth").write_text("".join(f"{d}\n" for d in sorted(deps)))
    install = subprocess.run(
        [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--no-index", "--ignore-installed",
         "-q", str(wheel)],
        cwd=tmp_path, capture_output=True, text=True, timeout=120, check=False,
    )
    assert install.returncode == 0, install.stdout + install.stderr

    run_dir = tmp_path / "elsewhere"
    run_dir.mkdir()
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME")}
    env["OMP_NUM_THREADS"] = "1"
    code = ("import importlib.util, ffneuro, ffneuro.cli.main as m; "
            "print(ffneuro.__file__); print(m.__file__); print(importlib.util.find_spec('cli'))")
    probe = subprocess.run([str(python), "-c", code], cwd=run_dir, env=env, capture_output=True, text=True,
                           timeout=120, check=False)
    assert probe.returncode == 0, probe.stderr
    pkg_file, cli_file, top_cli = probe.stdout.splitlines()
    installed = Path(site).resolve()
    assert Path(pkg_file).resolve().is_relative_to(installed), pkg_file  # the wheel, not the source or another install
    assert Path(cli_file).resolve().is_relative_to(installed), cli_file
    assert top_cli == "None"  # no importable top-level `cli`
    version = subprocess.run([str(bindir / "ffneuro"), "--version"], cwd=run_dir, env=env,
                             capture_output=True, text=True, timeout=120, check=False)
    assert version.returncode == 0 and version.stdout.startswith("ffneuro, version "), version.stderr


def test_package_dirs_exist_in_a_clean_checkout():
    """Every folder named in package-dir must hold a file git tracks: git drops empty folders, and setuptools
    refuses to build when a mapped folder is missing ("package directory 'hw_profiles' does not exist")."""
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    untracked = []
    for folder in sorted(set(_pyproject()["tool"]["setuptools"]["package-dir"].values())):
        listed = subprocess.run(["git", "ls-files", "--", folder], cwd=REPO, capture_output=True, text=True, timeout=30,
                                check=False)
        if listed.returncode != 0:
            pytest.skip(f"git ls-files failed: {listed.stderr.strip()}")
        if not listed.stdout.strip():
            untracked.append(folder)
    assert not untracked, (f"no tracked file in {', '.join(untracked)}/: a fresh clone cannot build the wheel "
                           "(add e.g. an __init__.py or .gitkeep there)")


def test_every_subpackage_is_listed_for_installation():
    """pyproject lists packages by hand (cli/ and hw_profiles/ install inside ffneuro): a new subpackage
    that is not listed would be missing from every non-editable install."""
    import tomllib

    listed = set(tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"])
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "ffneuro").rglob("__init__.py")}
    assert found <= listed, sorted(found - listed)
