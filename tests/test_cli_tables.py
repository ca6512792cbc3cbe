"""``runs table`` shows the threads each group's runs computed with and never counts a cut-short ``--force``
replacement beside the run it replaces; ``runs list`` names a cut-short run as such (issue 18)."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import h5py
from click.testing import CliRunner
from ffneuro.cli.main import main

from ffneuro.store import read_run

sys.path.insert(0, str(Path(__file__).parent))
from hostile_files import good_run  # noqa: E402


def _environment(path: Path, env: dict) -> Path:
    with h5py.File(path, "a") as f:
        f["environment"].attrs["json"] = json.dumps(env)
    return path


def _cli(*args: str):
    return CliRunner().invoke(main, list(args))


def test_the_table_shows_processes_and_threads_per_group(tmp_path):
    _environment(good_run(tmp_path, "a.h5"), {"torch_threads": 2, "processes": 1})
    _environment(good_run(tmp_path, "b.h5"), {"torch_threads": 1, "processes": 2, "parallel": {"world_size": 2}})
    _environment(good_run(tmp_path, "c.h5"), {"torch": "x"})   # an older run: not recorded
    result = _cli("runs", "table", str(tmp_path))
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()[:2]
    assert header.split()[-1] == "threads" and row.split()[-1] == "1×2,2×1,?"
    as_json = json.loads(_cli("runs", "table", str(tmp_path), "--format", "json").stdout)
    assert as_json["groups"][0]["extra"]["threads"] == "1×2,2×1,?"
    csv_lines = _cli("runs", "table", str(tmp_path), "--format", "csv").stdout.splitlines()
    assert csv_lines[0].endswith(",threads") and csv_lines[1].endswith(",\"1×2,2×1,?\"")


def test_threads_of_hostile_environments_are_unknown_not_errors(tmp_path):
    _environment(good_run(tmp_path, "a.h5"), {"torch_threads": "many", "processes": [1]})
    _environment(good_run(tmp_path, "b.h5"), {"torch_threads": True, "processes": 0})
    result = _cli("runs", "table", str(tmp_path))
    assert result.exit_code == 0 and result.stdout.splitlines()[1].split()[-1] == "?"


def _cut_short(folder: Path) -> tuple[Path, Path]:
    """x.h5 (the old run) beside x.new.h5: a complete --force replacement killed before its rename."""
    old = good_run(folder, "x.h5")
    new = good_run(folder, "x.new.h5")
    with h5py.File(new, "a") as f:
        f.attrs["replaces"] = "x.h5"
    assert read_run(new).cut_short
    return old, new


def test_the_table_skips_a_cut_short_replacement_and_counts_its_target_once(tmp_path):
    old, new = _cut_short(tmp_path)
    result = _cli("runs", "table", str(tmp_path), "--format", "json")
    assert result.exit_code == 0, result.output
    (group,) = json.loads(result.stdout)["groups"]
    assert group["n"] == 1 and group["runs"] == [str(old)]
    assert f"skipped {new}: complete replacement of x.h5 whose rename was cut short" in result.stderr
    assert f"ffneuro train --resume {new} finishes it" in result.stderr


def test_runs_list_names_a_cut_short_run(tmp_path):
    _, new = _cut_short(tmp_path)
    result = _cli("runs", "list", str(tmp_path), "--json")
    status = {r["run"]: r["status"] for r in json.loads(result.stdout)["runs"]}
    assert status[str(new)] == "complete, replaces x.h5 (rename cut short; --resume finishes it)"
    assert status[str(tmp_path / "x.h5")] == "complete"
    # a renamed copy keeps the stored replaces but is neither pending nor cut short: plain complete
    new.rename(tmp_path / "archived.h5")
    status = {r["run"]: r["status"] for r in json.loads(_cli("runs", "list", str(tmp_path), "--json").stdout)["runs"]}
    assert status[str(tmp_path / "archived.h5")] == "complete"
