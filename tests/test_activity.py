"""Which activity the profiler charges each layer, and where it came from: a run's simulation, the given
--activity/--input-activity, the measured sparsity, or the default (dense analog input)."""
from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
from click.testing import CliRunner
from ffneuro.cli.main import main

from ffneuro.errors import ConfigError
from ffneuro.profiler import profile_graph
from ffneuro.profiler.activity import (
    ActivitySources,
    Wiring,
    parse_activity,
    resolve,
    simulation_from_group,
)
from ffneuro.spec import sequential
from ffneuro.store import read_run

SIM = {"input": 0.3, "unit1": 0.05, "unit2": 0.02}
T = 8


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    path = tmp_path_factory.mktemp("runs") / "smoke.h5"
    result = run("-q", "train", "--preset", "smoke", "--epochs", "1", "--out", path)
    assert result.exit_code == 0, result.output
    return path


@pytest.fixture(scope="module")
def simulated(trained, tmp_path_factory):
    """A copy of the trained run holding /simulation/loihi2 as ``ffneuro simulate`` stores it."""
    path = tmp_path_factory.mktemp("runs") / "simulated.h5"
    shutil.copy(trained, path)
    with h5py.File(path, "a") as f:
        g = f.create_group("simulation/loihi2")
        g.create_dataset("layer_names", data=list(SIM), dtype=h5py.string_dtype("utf-8"))
        g.create_dataset("activity", data=np.array(list(SIM.values()), dtype=np.float64))
        g.attrs["timesteps"] = T
    return path


def profile_json(*args):
    result = run("profile", *args, "--no-store", "--json")
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def units(report, workload):
    return {u["unit"]: u for u in report["workloads"][workload]["per_unit"]}


def test_a_run_now_stores_the_per_position_synops(trained):
    act = read_run(trained).groups["activity"]
    assert act["synops_layers"] == ["unit1", "unit2", "readout"]
    assert all(0 < e <= d for e, d in zip(act["effective_synops"], act["dense_synops"]))


def test_a_bp_run_is_costed_with_its_per_layer_synops_head_included(tmp_path):
    path = tmp_path / "bp.h5"
    result = run("-q", "train", "--preset", "smoke", "--algo", "bp", "--readout", "linear", "--epochs", "1",
                 "--out", path)
    assert result.exit_code == 0, result.output
    act = read_run(path).groups["activity"]
    measured = dict(zip(act["synops_layers"], act["effective_synops"]))
    rep = profile_json(path, "--hw", "loihi")
    u = units(rep, "bp_infer")
    assert set(u) == set(measured) == {"layer1", "layer2", "head"}
    for name, eff in measured.items():
        assert u[name]["effective_synops"] == pytest.approx(eff)
        assert u[name]["activity_source"] == "measured sparsity"
    assert u["head"]["effective_synops"] < u["head"]["synops"]   # the head's zero inputs skipped
    assert rep["workloads"]["bp_infer"]["static_source"] == "stored weights"
    assert rep["workloads"]["infer_linear"]["static_source"].startswith("specs")   # the FF twin was not trained


def test_the_simulation_of_the_profiled_target_costs_inference(trained, simulated):
    plain = profile_json(trained, "--hw", "loihi2")
    sim = profile_json(simulated, "--hw", "loihi2")
    u = units(sim, "infer_linear")
    # the input's and each unit's events, by hand: no pooling in smoke, so unit2 receives unit1's rate; the
    # readout reads both units (equal sizes): (0.05 + 0.02) / 2
    expect = {"unit1": 0.3, "unit2": 0.05, "readout": 0.035}
    for name, share in expect.items():
        assert u[name]["activity"] == pytest.approx(share)
        assert u[name]["activity_source"] == "measured: simulation loihi2"
        assert u[name]["effective_synops"] == pytest.approx(share * u[name]["synops"])
    w, w0 = sim["workloads"]["infer_linear"], plain["workloads"]["infer_linear"]
    assert w["timesteps"] == T and w["synops"] == pytest.approx(T * w0["synops"])
    assert w["energy_j"] != pytest.approx(w0["energy_j"])
    assert units(plain, "infer_linear")["unit2"]["activity_source"] == "measured sparsity"
    # training keeps the measured sparsity of the trained network, one pass per step
    assert {v["activity_source"] for v in units(sim, "ff_train").values()} == {"measured sparsity"}
    assert sim["workloads"]["ff_train"] == plain["workloads"]["ff_train"]


def test_activity_from_picks_a_simulation_and_given_values_win(simulated):
    other = profile_json(simulated, "--hw", "loihi")
    assert units(other, "infer_linear")["unit2"]["activity_source"] == "measured sparsity"
    picked = profile_json(simulated, "--hw", "loihi", "--activity-from", "loihi2")
    assert units(picked, "infer_linear")["unit2"]["activity_source"] == "measured: simulation loihi2"
    given = units(profile_json(simulated, "--hw", "loihi2", "--activity", "unit1=0.5", "--input-activity", 0.2),
                  "infer_linear")
    assert (given["unit1"]["activity"], given["unit1"]["activity_source"]) == (pytest.approx(0.2), "given")
    assert (given["unit2"]["activity"], given["unit2"]["activity_source"]) == (pytest.approx(0.5), "given")
    # the readout reads a given and a simulated unit: both sources named
    assert given["readout"]["activity"] == pytest.approx((0.5 + 0.02) / 2)
    assert given["readout"]["activity_source"] == "given; measured: simulation loihi2"
    bad = run("profile", simulated, "--hw", "loihi", "--activity-from", "truenorth", "--no-store")
    assert bad.exit_code == 1 and bad.stderr.strip().splitlines() == [
        "Error: --activity-from truenorth: the run holds no simulation of it; held: loihi2"]


def test_the_table_names_each_units_activity_and_source(simulated):
    result = run("profile", simulated, "--hw", "loihi2", "--no-store")
    assert result.exit_code == 0, result.output
    assert "unit2 0.05 (measured: simulation loihi2)" in result.stdout
    assert "unit2 0.05 (measured: simulation loihi2)" not in run("profile", simulated, "--hw", "h100", "--no-store").stdout


@pytest.mark.parametrize("value, message", [
    ("unit1=fast", "--activity unit1: 'fast' is not a number"),
    ("=0.2", "--activity: '=0.2' is not NAME=VALUE (e.g. conv1=0.2,conv2=0.1)"),
    ("unit1=0.1,unit1=0.2", "--activity: unit1 is given twice"),
    ("-0.5", "--activity: '-0.5' must be a finite number >= 0 (events per neuron per timestep)"),
    ("nan", "--activity: 'nan' must be a finite number >= 0 (events per neuron per timestep)"),
    ("conv9=0.1", "--activity: no layer conv9; layers: unit1, unit2"),
    ("input=0.1", "--activity: the network input's activity is --input-activity, not --activity input="),
])
def test_bad_activity_is_one_line(trained, value, message):
    result = run("profile", trained, "--hw", "loihi", "--activity", value, "--no-store")
    assert result.exit_code == 1
    assert result.stderr.strip().splitlines() == [f"Error: {message}"]


def test_bad_input_activity_presets_and_broken_simulations_are_one_line(trained, tmp_path):
    result = run("profile", trained, "--hw", "loihi", "--input-activity", -1, "--no-store")
    assert result.exit_code == 1 and result.stderr.strip().splitlines() == [
        "Error: --input-activity: '-1.0' must be a finite number >= 0 (events per neuron per timestep)"]
    result = run("profile", "--preset", "smoke", "--hw", "loihi", "--activity", 0.1)
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1
    broken = tmp_path / "broken.h5"
    shutil.copy(trained, broken)
    with h5py.File(broken, "a") as f:
        g = f.create_group("simulation/loihi2")
        g.create_dataset("layer_names", data=["input", "unit1"], dtype=h5py.string_dtype("utf-8"))
        g.create_dataset("activity", data=np.array([0.1, 0.2, 0.3]))
    result = run("profile", broken, "--hw", "loihi2", "--no-store")
    assert result.exit_code == 1 and result.stderr.strip().splitlines() == [
        "Error: /simulation/loihi2: 2 layer_names but 3 activity values"]


def test_parse_and_simulation_group():
    assert parse_activity(None) is None and parse_activity(" 0.25 ") == 0.25
    assert parse_activity("conv1=0.2, conv2=0.1") == {"conv1": 0.2, "conv2": 0.1}
    sim = simulation_from_group("loihi2", {"layer_names": ["input", "unit1"], "activity": np.array([0.2, 0.1])},
                                {"timesteps": np.int64(16)})
    assert sim.timesteps == 16 and sim.input == (0.2, "measured: simulation loihi2")
    with pytest.raises(ConfigError, match="timesteps"):
        simulation_from_group("x", {"layer_names": ["input"], "activity": [0.1]}, {"timesteps": 0})


def test_pooled_spikes_reach_the_next_unit_per_element():
    """A 2×2 sum pool hands each pooled element four neurons' events: 0.1 per neuron is 0.4 per element."""
    wiring = [Wiring("a", 16, ("input",), 64), Wiring("b", 16, ("a",), 16)]
    got = resolve(wiring, ActivitySources(neurons={"a": (0.1, "given")}), deployed=True)
    assert got["b"].share == pytest.approx(0.4) and got["a"].share == 1.0
    assert got["a"].source == "default: dense analog input"
    assert resolve(wiring, ActivitySources(neurons={"a": (0.1, "given")}), deployed=False)["b"].source == "default: dense"


def snn():
    """conv 2 filters 3×3 on 1×4×4 → LIF → flatten → linear 32 → 3 → LI (the NIR tests' tiny SNN)."""
    return sequential((1, 4, 4), [("conv2d", {"out_channels": 2, "kernel": 3, "padding": 1, "bias": False}),
                                  ("neuron", {"model": "lif"}), ("flatten", {}), ("linear", {"out_features": 3}),
                                  ("neuron", {"model": "li"})])


def test_a_graphs_first_layer_input_is_dense_analog_unless_given():
    """The bug: a spiking first unit made the (analog) input count as 10% spikes. Now the input is dense
    by default; --input-activity makes it spikes; the layer after the LIF gets the default 0.1."""
    spec = snn()
    u = {x.unit: x for x in profile_graph(spec, "loihi", timesteps=4)["infer"].per_unit}
    first, second = spec.units[0].name, spec.units[1].name
    assert (u[first].activity, u[first].activity_source) == (1.0, "default: dense analog input")
    assert u[first].effective_synops == u[first].synops
    assert (u[second].activity, u[second].activity_source) == (pytest.approx(0.1), "default")
    given = profile_graph(spec, "loihi", timesteps=4, input_activity=0.25, activity={first: 0.5})["infer"]
    g = {x.unit: x for x in given.per_unit}
    assert (g[first].activity, g[first].activity_source) == (0.25, "given")
    assert (g[second].activity, g[second].activity_source) == (0.5, "given")
    assert given.parameter_count == spec.units[0].params + spec.units[1].params
    with pytest.raises(ConfigError, match="no layer"):
        profile_graph(spec, "loihi", activity={"nope": 0.1})
