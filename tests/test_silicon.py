"""The silicon-validation benchmark's inputs: every published network rebuilt as a spec has the op
counts the measurement file derived independently (its own padding-aware tap counter)."""
from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from benchmark_scripts import load_benchmark

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "silicon.py"
DATA = ROOT / "benchmarks" / "data" / "silicon_measurements.toml"

pytestmark = pytest.mark.skipif(not SCRIPT.exists(), reason="benchmarks/ is not in this checkout")


def load():
    return load_benchmark("silicon")


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

    out = json.loads(capsys.readouterr().out)
    results = out["cases"]   # beside the fit and held-out tables
    assert len(results) >= 6 and len({r["target"].split()[0] for r in results}) >= 4
    held_targets = {s["target"] for s in out["held_out_summary"]} - {"all"}
    assert len(held_targets) >= 5 and "loihi2" in held_targets   # issue 17: held-out rows on five targets
    fit_ids = {r["id"] for r in out["fit_rows"]}
    assert not fit_ids & {r["id"] for r in out["held_out_rows"] if r["kind"] == "held-out"}
    for r in results:
        for row in r["rows"]:
            assert row["ratio"] == pytest.approx(row["predicted"] / row["measured"])


def test_record_only_the_named_measurements(tmp_path):
    """``--record ID ...`` appends predictions for those measurements only (a helper adding one
    measurement must not freeze everyone else's predictions), and says which were not yet measured."""
    silicon = load()
    rows = [{"kind": "cores", "predicted": 3.0, "unit": "", "measured": None},
            {"kind": "energy", "predicted": 1e-3, "unit": "J", "measured": 2e-3}]
    results = [{"record": "a", "rows": rows}, {"record": "b", "rows": rows}]
    path = tmp_path / "pred.json"
    assert silicon.record_predictions(results, path, {"a"}) == ["a:cores", "a:energy"]
    recorded = silicon.load_predictions(path)
    assert set(recorded) == {"a:cores", "a:energy"}
    assert recorded["a:cores"]["measured_in_file"] is False and recorded["a:energy"]["measured_in_file"] is True
    assert silicon.record_predictions(results, path) == ["b:cores", "b:energy"]   # all, never replacing a


def test_record_refuses_an_unknown_id(capsys):
    silicon = load()
    with pytest.raises(SystemExit, match="Error: --record: no measurement with id no-such-id"):
        silicon.main(["--record", "no-such-id"])


def test_a_case_table_may_set_the_encoder_and_input_cores():
    """A measurement's own ``[measurement.case]`` may say its input is encoded on chip (as the Loihi 2
    LIF-pair runs' bias-driven source neuron is), and unknown keys are still refused."""
    silicon = load()
    m = {"id": "x", "case": {"profile": "loihi2", "input_encoder": True, "input_cores": 2, "compartments": 2}}
    (case,) = [c for c in silicon.cases_from_data({"measurement": [m]}) if c.record == "x"]
    assert case.input_encoder is True and case.input_cores == 2 and case.compartments == 2
    m["case"]["no_such_key"] = 1
    with pytest.raises(SystemExit, match="unknown keys"):
        silicon.cases_from_data({"measurement": [m]})


def test_loihi2_steps_pay_lavas_per_timestep_floor():
    """Loihi 2's default stack charges Lava's measured per-step floor: a two-neuron network steps in
    about 1.16 us (not the few ns its events take), and those runs are fit rows, not held out."""
    silicon = load()
    data = tomllib.loads(DATA.read_text())
    cases = {c.record: c for c in silicon.cases_from_data(data)}
    records = {m["id"]: m for m in data["measurement"]}
    rid = "loihi2-necotis-lifpair-25hz"
    res = silicon.evaluate(cases[rid], records[rid], data["networks"])
    lat = next(r for r in res["rows"] if r["kind"] == "latency")
    assert lat["predicted"] == pytest.approx(1.16e-6, rel=0.01)
    assert 0.5 <= next(r for r in res["rows"] if r["kind"] == "energy")["ratio"] <= 2
    assert res["in_fit_set"]   # fitted on these runs: leave-one-out rows only
    pilot = silicon.evaluate(cases["loihi2-pilotnet-lif"], records["loihi2-pilotnet-lif"], data["networks"])
    assert next(r for r in pilot["rows"] if r["kind"] == "latency")["ratio"] == pytest.approx(1.0, abs=0.01)


def test_loihi_activity_comes_from_the_sources():
    """Issue 17, 15f: NxTF CIFAR runs at the per-layer rates of its converted network (not the flat
    default), SLAYER NTIDIGITS at the input rate its stream's packet count implies."""
    silicon = load()
    data = tomllib.loads(DATA.read_text())
    cases = {c.record: c for c in silicon.cases_from_data(data)}
    cifar = cases["loihi-nxtf-cifar"]
    spiking = [la["name"] for la in data["networks"]["nxtf_cifar_pseudo_mobilenet"]["layers"]
               if la.get("activation") == "if"]
    assert isinstance(cifar.activity, dict) and set(cifar.activity) == set(spiking)
    assert cifar.input_activity == pytest.approx(0.4946) and cifar.stack == "nxtf" and cifar.compartments == 2
    assert all(0.0 < v < 0.2 for v in cifar.activity.values())
    nt = cases["loihi-slayer-ntidigits"]
    act = load_benchmark("loihi_activity")
    rate = act.slayer_stream_input_rate(4578, samples=2486, sample_length=3000, lmts=3, channels=64)
    assert nt.input_activity == pytest.approx(rate, rel=1e-3) and nt.stack == "slayer" and nt.input_encoder
    records = {m["id"]: m for m in data["measurement"]}
    res = silicon.evaluate(cifar, records["loihi-nxtf-cifar"], data["networks"])
    assert "per layer" in silicon.activity_text(res["activity"])
    assert next(r for r in res["rows"] if r["kind"] == "cores")["predicted"] == 157


def test_nxtf_cifar_maps_as_nxtf_compiles():
    """NxTF builds the 2x2 average pool channel-wise (isDepthwise) and the input layer as soft-reset
    compartments: the 157 cores are every layer at 1,024 compartments a core plus the input's 6."""
    from ffneuro.profiler import load_profile, profile_graph
    from ffneuro.profiler.hardware import with_stack

    silicon = load()
    data = tomllib.loads(DATA.read_text())
    net = data["networks"]["nxtf_cifar_pseudo_mobilenet"]
    pool = next(la for la in net["layers"] if la["name"] == "avgpool")
    assert pool["groups"] == pool["out_channels"] == 256 and pool["synops_dense_unpadded"] == 4096
    case = {c.record: c for c in silicon.cases_from_data(data)}["loihi-nxtf-cifar"]
    assert case.input_encoder
    est = profile_graph(silicon.spec_from_layers(net), with_stack(load_profile("loihi"), "nxtf"), timesteps=512,
                        activity=case.activity, input_activity=case.input_activity, stack="nxtf",
                        compartments_per_neuron=2, input_encoder=True)["infer"]
    cores = {u.unit: u.cores for u in est.per_unit}
    assert cores["avgpool"] == 2 and cores["pw5"] == 8 and sum(cores.values()) == 157
    assert cores["input encoder"] == 6   # 3,072 input neurons x 2 compartments


def test_slayer_stream_rate_inverts_the_stream_layout():
    """A stream of T ticks and S spikes per CPU fills ceil(1 + (S + T) / P) packets: the rate comes back."""
    act = load_benchmark("loihi_activity")
    samples, length, lmts, channels, per_packet = 10, 1000, 3, 8, 64
    spikes_per_cpu = 2_000
    words = spikes_per_cpu + samples * length + 2000
    packets = -(-words // per_packet) + 1
    rate = act.slayer_stream_input_rate(packets, samples=samples, sample_length=length, lmts=lmts,
                                        channels=channels, spikes_per_packet=per_packet)
    assert rate == pytest.approx(lmts * spikes_per_cpu / (samples * length) / channels, rel=0.01)
    with pytest.raises(ValueError):
        act.slayer_stream_input_rate(3, samples=samples, sample_length=length, lmts=lmts, channels=channels)


def test_rate_coded_layers_clip_at_one_spike_a_step():
    act = load_benchmark("loihi_activity")
    import numpy as np

    r = act.rates({"a": np.array([0.0, 3.0, 12.0]), "b": np.array([1.0])}, {"a": 1 / 6})
    assert r["a"] == pytest.approx((0 + 0.5 + 1.0) / 3) and r["b"] == 1.0
    x = np.arange(2 * 4 * 4 * 1, dtype=float).reshape(2, 4, 4, 1)
    y = act.conv_same(x, np.ones((3, 3, 1, 1)), 2)          # TF 'same' at stride 2: pad bottom/right only
    assert y.shape == (2, 2, 2, 1) and y[0, 0, 0, 0] == x[0, :3, :3, 0].sum()


def test_slayer_rates_runs_loihis_cuba_compartment(tmp_path):
    """One dense layer whose weight alone crosses the threshold: every input spike fires the neuron
    (refractory 1 tick), and the axonal delay shifts the train without changing its rate."""
    import h5py
    import numpy as np

    act = load_benchmark("loihi_activity")
    path = tmp_path / "tiny.net"
    with h5py.File(path, "w") as f:
        lay = f.create_group("layer/2")
        lay["type"] = np.array([b"dense"])
        lay["weight"] = np.array([[200], [10]])          # 200 * 64 > 80 * 64; 10 * 64 never reaches it alone
        lay["delay"] = np.array([5, 0])                   # the spike at tick 36 arrives after the 40 ticks
        for k, v in {"iDecay": 4096, "vDecay": 4096, "vThMant": 80, "refDelay": 1, "wgtExp": 0}.items():
            lay[f"neuron/{k}"] = v
    spikes = np.zeros((40, 1), int)
    spikes[::4] = 1                                       # 10 input spikes, 4 ticks apart
    (rate,) = act.slayer_rates(path, spikes)
    assert rate == pytest.approx((10 - 1) / 40 / 2)       # neuron 0 fires 10 times, 9 inside the window; neuron 1 never
