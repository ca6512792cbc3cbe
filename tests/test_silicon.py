"""The silicon-validation benchmark's inputs: every published network rebuilt as a spec has the op
counts the measurement file derived independently (its own padding-aware tap counter)."""
from __future__ import annotations

import importlib.util
import sys
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "silicon.py"
DATA = ROOT / "benchmarks" / "data" / "silicon_measurements.toml"

pytestmark = pytest.mark.skipif(not SCRIPT.exists(), reason="benchmarks/ is not in this checkout")


def load():
    spec = importlib.util.spec_from_file_location("silicon_bench", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    sys.modules["silicon_bench"] = mod   # dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def test_every_network_matches_the_files_derived_counts():
    silicon = load()
    data = tomllib.loads(DATA.read_text())
    for key, net in data["networks"].items():
        spec = silicon.spec_from_layers(net)
        assert spec.macs == net["totals"]["macs_dense_padded"], key
        assert spec.synops == net["totals"]["synops_dense_unpadded"], key


def test_the_benchmark_runs_and_reports_ratios(capsys):
    silicon = load()
    assert silicon.main(["--json"]) == 0
    import json

    results = json.loads(capsys.readouterr().out)["cases"]   # beside the fit and held-out tables
    assert len(results) >= 6 and len({r["target"].split()[0] for r in results}) >= 4
    for r in results:
        for row in r["rows"]:
            assert row["ratio"] == pytest.approx(row["predicted"] / row["measured"])
