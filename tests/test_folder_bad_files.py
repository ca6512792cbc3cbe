"""Folder commands degrade per file (issue 18, item 7): ``runs list``, ``runs table``, ``plot``,
``sweep`` and ``study table`` list every good run and one line per bad file, never aborting the folder.

The good runs come from one smoke ``study run`` (two runs, trained once for the module); the bad files
are copies of a good run made malformed in one way each, plus files that are not runs at all.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest
from cli_runner import invoke as cli

from ffneuro.errors import RunFileError

GOOD = ("labels=fourier2_seed=0.h5", "seed=0.h5")




def _attr(name, value, group="/"):
    def change(f):
        f[group].attrs[name] = value
    return change


def _soft_loop(f):
    f["loop"] = h5py.SoftLink("/loop")


def _hard_loop(f):
    g = f.create_group("custom")
    g["self"] = g


# file name -> how a copy of a good run is broken
MALFORMED = {
    "schema-abc.h5": _attr("schema_version", "abc"),
    "schema-nan.h5": _attr("schema_version", float("nan")),
    "schema-array.h5": _attr("schema_version", np.array([1, 2])),
    "config-list.h5": _attr("json", "[1,2]", "config"),
    "config-null.h5": _attr("json", "null", "config"),
    "status-int.h5": _attr("status", 3),
    "soft-loop.h5": _soft_loop,
    "hard-loop.h5": _hard_loop,
}
NOT_RUNS = ("not-hdf5.h5", "link-loop-a.h5", "link-loop-b.h5")
BAD = (*MALFORMED, *NOT_RUNS)


@pytest.fixture(scope="module")
def study_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("study") / "runs"
    result = cli("-q", "study", "run", "labelset", "--budget", "smoke", "--seeds", "0", "--out-dir", out)
    assert result.exit_code == 0, result.output
    assert sorted(p.name for p in out.glob("*.h5")) == sorted(GOOD)
    return out


def add_bad_files(folder: Path, good: Path) -> None:
    for name, breaker in MALFORMED.items():
        shutil.copy(good, folder / name)
        with h5py.File(folder / name, "a") as f:
            breaker(f)
    (folder / "not-hdf5.h5").write_text("plain text, not HDF5")
    os.symlink("link-loop-b.h5", folder / "link-loop-a.h5")
    os.symlink("link-loop-a.h5", folder / "link-loop-b.h5")


@pytest.fixture
def mixed(study_dir, tmp_path) -> Path:
    """The good runs plus every malformed file, in one folder."""
    folder = tmp_path / "mixed"
    shutil.copytree(study_dir, folder)
    add_bad_files(folder, folder / "seed=0.h5")
    return folder


def assert_no_crash(result) -> None:
    assert "internal error" not in result.output and "Traceback" not in result.output, result.output
    assert not result.exception or isinstance(result.exception, SystemExit), repr(result.exception)


def bad_lines(stderr: str, name: str) -> list[str]:
    return [line for line in stderr.splitlines() if f"/{name}" in line]


def test_runs_list_lists_every_good_run_and_one_line_per_bad_file(mixed):
    result = cli("runs", "list", mixed)
    assert_no_crash(result)
    assert result.exit_code == 0, result.output
    for name in GOOD:
        assert any(f"/{name}" in line and "complete" in line for line in result.stdout.splitlines()), result.stdout
    for name in BAD:
        if name == "status-int.h5" and f"/{name}" in result.stdout:  # readable enough to list, with status 3
            continue
        assert len(bad_lines(result.stderr, name)) == 1, (name, result.stderr)
        assert name not in result.stdout


def test_runs_list_json_names_each_bad_file_and_why(mixed):
    result = cli("runs", "list", mixed, "--json")
    assert_no_crash(result)
    assert result.exit_code == 0, result.output
    listing = json.loads(result.stdout)
    assert set(GOOD) <= {Path(r["run"]).name for r in listing["runs"]}
    bad = {Path(b["file"]).name: b["error"] for b in listing["bad_files"]}
    assert {Path(p).name for p in listing["skipped"]} == set(bad)
    assert set(BAD) - {"status-int.h5"} <= set(bad)
    assert all(why and "\n" not in why for why in bad.values()), bad
    assert "loop" in bad["link-loop-a.h5"] or "link" in bad["link-loop-a.h5"]


def test_runs_table_and_plot_use_every_good_run(mixed, tmp_path):
    result = cli("runs", "table", mixed, "--format", "json")
    assert_no_crash(result)
    assert result.exit_code == 0, result.output
    groups = json.loads(result.stdout)["groups"]
    assert sum(g["n"] for g in groups) == len(GOOD)
    for name in BAD:
        assert len(bad_lines(result.stderr, name)) == 1, (name, result.stderr)
    result = cli("plot", "curves", mixed, "--out", tmp_path / "fig.png")
    assert_no_crash(result)
    assert result.exit_code == 0, result.output
    assert (tmp_path / "fig.png").stat().st_size > 0


def test_runs_table_of_one_bad_file_is_one_error_line_naming_it(mixed):
    for name in ("schema-abc.h5", "config-list.h5", "hard-loop.h5"):
        result = cli("runs", "table", mixed / name)
        assert_no_crash(result)
        assert result.exit_code != 0
        errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
        assert len(errors) == 1 and name in errors[0], result.stderr


def test_study_table_counts_the_good_runs_and_names_a_bad_point_file(study_dir, tmp_path):
    folder = tmp_path / "study"
    shutil.copytree(study_dir, folder)
    add_bad_files(folder, folder / "seed=0.h5")
    shutil.copy(folder / "schema-abc.h5", folder / "seed=1.h5")  # a point of the study, malformed
    result = cli("study", "table", "labelset", folder, "--budget", "smoke", "--format", "json")
    assert_no_crash(result)
    assert result.exit_code == 0, result.output
    table = json.loads(result.stdout)
    assert sum(g["n"] for g in table["groups"]) == len(GOOD)
    assert "seed=1" in table["skipped"]
    assert len(bad_lines(result.stderr, "seed=1.h5")) == 1, result.stderr


def test_sweep_retrains_a_malformed_point_file_and_says_so(tmp_path):
    out = tmp_path / "sweep"
    out.mkdir()
    with h5py.File(out / "seed=0.h5", "w") as f:  # the point's file: an ffneuro header with a bad version
        f.attrs["schema"] = "ffneuro.run"
        f.attrs["schema_version"] = "abc"
    result = cli("-q", "sweep", "--preset", "smoke", "--epochs", "1", "--train-limit", "200", "--val-size", "100",
                 "--out-dir", out, "--json")
    assert_no_crash(result)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["trained"] == 1
    named = bad_lines(result.stderr, "seed=0.h5")
    assert len(named) == 1 and "not a readable run" in named[0] and "abc" in named[0], result.stderr


# --------------------------------------------------------------------------------------- the library


def test_runs_in_catches_any_error_of_one_file(tmp_path):
    from ffneuro.store.folder import runs_in

    for name in ("a.h5", "b.h5", "c.h5"):
        (tmp_path / name).write_text(name)
    (tmp_path / "sub.h5").mkdir()  # a folder named like a run is not a run file, and not a bad file

    def read(path: Path) -> str:
        if path.name == "b.h5":
            raise RecursionError("maximum recursion depth exceeded")
        if path.name == "c.h5":
            raise RunFileError(f"{path}: malformed run file: 'status'")
        return path.name

    good, bad = runs_in(tmp_path, read)
    assert good == ["a.h5"]
    assert [b.path.name for b in bad] == ["b.h5", "c.h5"]
    assert bad[0].reason == "malformed run file (RecursionError: maximum recursion depth exceeded)"
    assert bad[1].reason == "malformed run file: 'status'"  # the path is not repeated
    assert bad[1].line() == f"{tmp_path / 'c.h5'}: malformed run file: 'status'"
    with pytest.raises(RunFileError, match="not a directory"):
        runs_in(tmp_path / "a.h5", read)


def test_read_each_never_swallows_an_interrupt(tmp_path):
    from ffneuro.store.folder import BadFile, read_each

    def read(path: Path):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        read_each([tmp_path / "x.h5"], read)
    assert isinstance(read_each([tmp_path / "x.h5"], lambda p: 1 / 0)[1][0], BadFile)
