"""NIR files into the profiler (``ffneuro profile NET.nir``) and a spec out to NIR and back."""
from __future__ import annotations

import json

import numpy as np
import pytest
from click.testing import CliRunner
from ffneuro.cli.main import main

from ffneuro.errors import ConfigError
from ffneuro.spec import sequential

nir = pytest.importorskip("nir")

from ffneuro.spec.nir_io import read_nir, write_nir  # noqa: E402  (after the skip when nir is missing)


def run(*args):
    return CliRunner().invoke(main, [str(a) for a in args])


def tiny_snn(path, *, lif=True):
    """Input 1×4×4 → conv 2 filters 3×3 padding 1 → LIF → flatten → affine 32 → 3 → LI → output."""
    n = {"input": nir.Input(input_type={"input": np.array([1, 4, 4])}),
         "conv": nir.Conv2d(input_shape=(4, 4), weight=np.ones((2, 1, 3, 3)), stride=1, padding=1, dilation=1,
                            groups=1, bias=np.zeros(2)),
         "lif": nir.LIF(tau=np.ones((2, 4, 4)), r=np.ones((2, 4, 4)), v_leak=np.zeros((2, 4, 4)),
                        v_threshold=np.ones((2, 4, 4))) if lif else
         nir.IF(r=np.ones((2, 4, 4)), v_threshold=np.ones((2, 4, 4))),
         "flat": nir.Flatten(input_type={"input": np.array([2, 4, 4])}, start_dim=0),
         "fc": nir.Affine(weight=np.ones((3, 32)), bias=np.ones(3)),
         "li": nir.LI(tau=np.ones(3), r=np.ones(3), v_leak=np.zeros(3)),
         "output": nir.Output(output_type={"output": np.array([3])})}
    edges = [("input", "conv"), ("conv", "lif"), ("lif", "flat"), ("flat", "fc"), ("fc", "li"), ("li", "output")]
    nir.write(str(path), nir.NIRGraph(nodes=n, edges=edges, type_check=False))
    return path


def test_read_a_sequential_snn(tmp_path):
    spec = read_nir(tiny_snn(tmp_path / "net.nir"))
    assert [u.name for u in spec.units] == ["conv", "fc"]
    conv, fc = spec.units
    assert (conv.synapses[0].out_shape, conv.synapses[0].bias, conv.spiking) == ((2, 4, 4), False, True)
    assert (fc.synapses[0].in_features, fc.synapses[0].out_features, fc.synapses[0].bias, fc.spiking) == (32, 3, True, False)
    assert spec.synops == 2 * 10 ** 2 + 32 * 3 and spec.macs == 2 * 16 * 9 + 32 * 3


def test_profile_nir_json_has_the_preset_fields_and_hand_counts(tmp_path):
    """4 timesteps at 0.25: the input given as spikes at 0.25 (--input-activity; by default it is dense
    analog), so 200 real synapses × 4 steps × 0.25 = 200 events; the affine layer follows the LIF layer:
    96 × 4 × 0.25 = 96."""
    path = tiny_snn(tmp_path / "net.nir")
    result = run("profile", path, "--hw", "loihi", "--timesteps", 4, "--activity", 0.25, "--input-activity", 0.25,
                 "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    w = data["workloads"]["infer"]
    for key in ("energy_j", "latency_s", "cores_needed", "chips_needed", "macs", "synops", "effective_synops",
                "energy_range", "latency_range"):
        assert key in w, key
    assert (w["macs"], w["synops"], w["effective_synops"]) == (4 * 384, 4 * 296, 200 + 96)
    units = {u["unit"]: u for u in w["per_unit"]}
    assert units["conv"]["neuron_updates"] == 4 * 32 and units["fc"]["neuron_updates"] == 4 * 3
    # Loihi: events × 23.6 pJ + neuron updates × 81 pJ; the bias adds are inside the neuron update
    compute = (296 * 23.6 + (128 + 12) * 81) * 1e-12
    assert w["energy"]["compute_j"] == pytest.approx(compute)
    assert w["cores_needed"] == 2 and w["chips_needed"] == 1


def test_compare_accepts_a_nir_file_and_refuses_model_flags(tmp_path):
    path = tiny_snn(tmp_path / "net.nir")
    result = run("compare", path, "--hw", "loihi,h100,truenorth")
    assert result.exit_code == 0, result.output
    assert "infer" in result.stdout and "ranking" in result.stdout
    bad = run("profile", path, "--hw", "loihi", "--filters", 4)
    assert bad.exit_code == 1 and "NIR file fixes the network" in bad.stderr
    bad = run("profile", "--preset", "smoke", "--hw", "loihi", "--timesteps", 4)
    assert bad.exit_code == 1 and "NIR graph" in bad.stderr


def test_unsupported_and_broken_files_are_one_line_errors(tmp_path):
    junk = tmp_path / "junk.nir"
    junk.write_text("not hdf5")
    result = run("profile", junk, "--hw", "loihi")
    assert result.exit_code == 1 and result.stderr.startswith("Error:") and "Traceback" not in result.output
    n = {"input": nir.Input(input_type={"input": np.array([3])}),
         "a": nir.Affine(weight=np.ones((3, 3)), bias=np.ones(3)),
         "b": nir.Affine(weight=np.ones((3, 3)), bias=np.ones(3)),
         "output": nir.Output(output_type={"output": np.array([3])})}
    nir.write(str(tmp_path / "branch.nir"), nir.NIRGraph(nodes=n, edges=[("input", "a"), ("input", "b"), ("a", "output"),
                                                                           ("b", "output")], type_check=False))
    # a branch that merges again is one unit: both weighted nodes, their sum an add node (NIR sums inputs)
    (unit,) = read_nir(tmp_path / "branch.nir").units
    assert [n.kind for n in unit.nodes] == ["linear", "linear", "add"] and unit.inputs == ((-1,), (-1,), (0, 1))
    assert unit.macs == 2 * 9
    n["a"] = nir.Affine(weight=np.ones((3, 3)), bias=np.ones(3))
    nir.write(str(tmp_path / "loop.nir"), nir.NIRGraph(nodes=n, edges=[("input", "a"), ("a", "b"), ("b", "a"),
                                                                         ("b", "output")], type_check=False))
    with pytest.raises(ConfigError, match="recurrent"):
        read_nir(tmp_path / "loop.nir")


def test_a_spec_round_trips_through_nir(tmp_path):
    spec = sequential((2, 8, 8), [("conv2d", {"out_channels": 4, "kernel": 3, "padding": 1}), ("neuron", {"model": "lif"}),
                                  ("pool2d", {"pool": "sum"}), ("flatten", {}), ("linear", {"out_features": 3}),
                                  ("neuron", {"model": "cubali", "state_vars": 2})])
    write_nir(spec, tmp_path / "out.nir")
    back = read_nir(tmp_path / "out.nir")
    assert back.nodes == spec.nodes and [u.synapses[0] for u in back.units] == [u.synapses[0] for u in spec.units]


def test_without_the_nir_package_the_error_says_how_to_install_it(tmp_path, monkeypatch):
    path = tiny_snn(tmp_path / "net.nir")
    monkeypatch.setitem(__import__("sys").modules, "nir", None)
    result = run("profile", path, "--hw", "loihi")
    assert result.exit_code == 1 and 'pip install "ffneuro[nir]"' in result.stderr
