"""Honest calibration (issue 17): fits recover known constants, held-out rows never include a fit-set
row, leave-one-out leaves the point out, and the summary statistics are what they say."""
from __future__ import annotations

import math

import pytest

from ffneuro.profiler.calibration import (
    CalibrationError,
    Constant,
    FittedConstant,
    Observation,
    Row,
    determined,
    fit,
    in_fit_set,
    leave_one_out,
    split,
    summarize,
    validate,
)
from ffneuro.profiler.hardware import HardwareProfileError, load_profile, parse_toml

# a toy model: energy = e_op x ops + p_static x time, for made-up workloads keyed by measurement id
WORK = {"a": (1e6, 1e-3), "b": (4e6, 2e-3), "c": (2e7, 5e-3), "d": (5e5, 1e-2), "e": (8e6, 1e-4)}
TRUE = {"neuro.synaptic_op": 3.3e-11, "power.static": 0.05}


def energy(values, obs):
    ops, t = WORK[obs.id]
    return values.get("neuro.synaptic_op", 1e-11) * ops + values.get("power.static", 0.01) * t


def synthetic(noise=None):
    noise = noise or {}
    return [Observation(i, "chip", "energy", energy(TRUE, Observation(i, "chip", "energy", 1.0)) * noise.get(i, 1.0))
            for i in WORK]


def start():
    return [Constant("chip", "neuro.synaptic_op", 1e-11, 1e-13, 1e-9),
            Constant("chip", "power.static", 0.01, 1e-4, 10.0)]


def test_fit_recovers_known_constants():
    res = fit(start(), synthetic(), energy)
    assert res.success
    assert res.values["neuro.synaptic_op"] == pytest.approx(TRUE["neuro.synaptic_op"], rel=1e-6)
    assert res.values["power.static"] == pytest.approx(TRUE["power.static"], rel=1e-6)
    assert all(abs(r.log2_ratio) < 1e-6 for r in res.rows)
    assert all(c.fit_set == tuple(sorted(WORK)) for c in res.constants)
    assert all(r.kind == "fit" for r in res.rows)


def test_fit_respects_bounds_and_reports_residuals():
    tight = [Constant("chip", "neuro.synaptic_op", 1e-11, 1e-11, 2e-11), Constant("chip", "power.static", 0.05, 0.05, 0.05)]
    res = fit(tight, synthetic(), energy)
    assert res.values["neuro.synaptic_op"] == pytest.approx(2e-11, rel=1e-6)   # the truth (3.3e-11) is out of bounds
    assert res.constants[0].at_bound
    assert any(abs(r.log2_ratio) > 0.1 for r in res.rows)   # the misfit shows in the residuals


def test_validate_refuses_a_row_in_a_fit_set():
    fitted = [FittedConstant("chip", "neuro.synaptic_op", 3.3e-11, ("a", "b"))]
    obs = synthetic()
    with pytest.raises(CalibrationError, match="fit set"):
        validate(obs, fitted, energy)
    # another target's fit set does not make a row "seen": the constant is not used by it
    other = [FittedConstant("other-chip", "neuro.synaptic_op", 1e-12, ("a",))]
    assert len(validate(obs, other, energy)) == len(obs)


def test_held_out_rows_never_include_fit_set_rows():
    fitted = [FittedConstant("chip", "neuro.synaptic_op", 3.3e-11, ("a", "c")),
              FittedConstant("chip", "power.static", 0.05, ("d",))]
    obs = synthetic()
    seen, held = split(obs, fitted)
    assert {o.id for o in seen} == {"a", "c", "d"}
    assert {o.id for o in held} == {"b", "e"}
    rows = validate(held, fitted, energy)
    assert not any(in_fit_set(r.obs, fitted) for r in rows)
    assert all(r.kind == "held-out" for r in rows)


def test_leave_one_out_excludes_the_point():
    # one point is off by 4x: a fit on all points is pulled by it, its leave-one-out prediction is not
    noisy = synthetic({"c": 4.0})
    calls = []

    def watched(values, obs):
        calls.append((obs.id, tuple(sorted(values.items()))))
        return energy(values, obs)

    rows = leave_one_out(start(), noisy, watched)
    assert [r.kind for r in rows] == ["leave-one-out"] * len(noisy)
    by_id = {r.obs.id: r for r in rows}
    # the prediction for c comes from a refit on the others, which recovers the truth exactly
    assert by_id["c"].predicted == pytest.approx(energy(TRUE, noisy[2]), rel=1e-5)
    assert by_id["c"].log2_ratio == pytest.approx(-2.0, abs=1e-4)
    for r in rows:   # every refit used for a row has a fit set without that row
        assert all(r.obs.id not in c.fit_set for c in r.constants)
        assert set().union(*(c.fit_set for c in r.constants)) == set(WORK) - {r.obs.id}


def test_leave_one_out_skips_a_point_the_others_do_not_determine():
    # "e" alone carries the static power (the others do no waiting): without it, power.static is free, and a
    # refit would keep its start value, so e's row would be no prediction at all
    work = {**{k: (v[0], 0.0) for k, v in WORK.items()}, "e": (8e6, 1e-2)}

    def model(values, obs):
        ops, t = work[obs.id]
        return values.get("neuro.synaptic_op", 1e-11) * ops + values.get("power.static", 0.01) * t

    obs = [Observation(i, "chip", "energy", model(TRUE, Observation(i, "chip", "energy", 1.0))) for i in work]
    loose: list = []
    rows = leave_one_out(start(), obs, model, undetermined=loose)
    assert [o.id for o in loose] == ["e"] and "e" not in {r.obs.id for r in rows}
    assert {r.obs.id for r in rows} == set(work) - {"e"}
    for r in rows:   # the determined rows are predicted from the truth the others recover
        assert r.ratio == pytest.approx(1.0, rel=1e-4)


def test_determined_by_the_row_space_of_the_jacobian():
    # one measurement of a product k1*k2 fixes only the product: a row of the product is determined, a row of
    # k1 alone is not (any k1/k2 trade leaves the fit's residual unchanged)
    consts = [Constant("chip", "k1", 1.0, 0.01, 100.0), Constant("chip", "k2", 1.0, 0.01, 100.0)]

    def model(values, obs):
        k1, k2 = values.get("k1", 1.0), values.get("k2", 1.0)
        return {"prod": k1 * k2, "prod2": 3 * k1 * k2, "k1": k1}[obs.id]

    res = fit(consts, [Observation("prod", "chip", "latency", 6.0)], model)
    assert res.constants[0].value * res.constants[1].value == pytest.approx(6.0, rel=1e-6)
    assert determined(res, Observation("prod2", "chip", "latency", 1.0), model)
    assert not determined(res, Observation("k1", "chip", "latency", 1.0), model)


def test_leave_one_out_needs_two_points():
    with pytest.raises(CalibrationError):
        leave_one_out(start(), synthetic()[:1], energy)


def test_summary_statistics_by_hand():
    obs = [Observation("x", "t1", "energy", 1.0), Observation("y", "t1", "energy", 1.0),
           Observation("z", "t2", "energy", 1.0, spread=(0.5, 2.0)), Observation("w", "t2", "latency", 1.0)]
    preds = {"x": 2.0, "y": 0.25, "z": 1.0, "w": 3.0}
    rows = [Row(o, preds[o.id], "held-out") for o in obs]
    s = {(x.target, x.metric): x for x in summarize(rows)}
    t1 = s[("t1", "energy")]
    assert (t1.n, t1.mean_abs_log2, t1.max_abs_log2, t1.within_2x) == (2, 1.5, 2.0, 1)   # |log2|: 1 and 2
    assert t1.typical_factor == pytest.approx(2 ** 1.5)
    alle = s[("all", "energy")]
    assert (alle.n, alle.mean_abs_log2, alle.max_abs_log2, alle.within_2x) == (3, 1.0, 2.0, 2)   # 1, 2, 0
    lat = s[("all", "latency")]
    assert lat.mean_abs_log2 == pytest.approx(math.log2(3)) and lat.within_2x == 0
    z = next(r for r in rows if r.obs.id == "z")
    assert z.error_bar_log2 == (-1.0, 1.0) and z.within_spread is True
    # rows without a prediction are left out of the statistics
    assert summarize([Row(obs[0], None, "held-out")]) == []


def test_observation_and_constant_checks():
    with pytest.raises(CalibrationError):
        Observation("x", "t", "power", 1.0)
    with pytest.raises(CalibrationError):
        Observation("x", "t", "energy", 0.0)
    with pytest.raises(CalibrationError):
        Observation("x", "t", "energy", 1.0, spread=(2.0, 1.0))
    with pytest.raises(CalibrationError):
        Constant("t", "p", 5.0, 1.0, 2.0)
    with pytest.raises(CalibrationError):
        FittedConstant("t", "p", 1.0, ())
    with pytest.raises(CalibrationError, match="twice"):
        validate(synthetic() + synthetic()[:1], [], energy)


# --- the profile schema: basis = "fitted" with its fit set ---------------------------------------------------

BASE = """
schema = "ffneuro.hw"
schema_version = 1
name = "toy"
description = "toy"
kind = "cpu"
on_chip_learning = false
supports_training = true
precisions = ["int8"]
[compute.int8]
scope = "op"
mac = {mac}
"""


def toy(mac: str):
    return parse_toml(BASE.format(mac=mac), "toy.toml")


def test_fitted_number_names_its_fit_set():
    p = toy('{ value = 1, unit = "pJ", source = "fit", basis = "fitted", note = "least squares", fit_set = ["m1", "m2"] }')
    q = dict(p.quantities())["compute.int8.mac"]
    assert q.basis == "fitted" and q.fit_set == ("m1", "m2")
    assert q.to_dict()["fit_set"] == ["m1", "m2"]
    again = parse_toml(BASE.format(mac='{ value = 1, unit = "pJ", source = "s", basis = "specified" }'), "x")
    assert dict(again.quantities())["compute.int8.mac"].fit_set == ()


@pytest.mark.parametrize("mac, message", [
    ('{ value = 1, unit = "pJ", source = "fit", basis = "fitted", note = "n" }', "fit_set"),
    ('{ value = 1, unit = "pJ", source = "fit", basis = "fitted", note = "n", fit_set = [] }', "fit_set"),
    ('{ value = 1, unit = "pJ", source = "fit", basis = "fitted", fit_set = ["m1"] }', "note"),
    ('{ value = 1, unit = "pJ", source = "s", basis = "specified", fit_set = ["m1"] }', "only a number with basis"),
    ('{ value = 1, unit = "pJ", source = "fit", basis = "fitted", note = "n", fit_set = ["m1", "m1"] }', "twice"),
])
def test_fitted_number_errors(mac, message):
    with pytest.raises(HardwareProfileError, match=message):
        toy(mac)


def test_xylo_audio2_profile_loads():
    p = load_profile("xylo-audio2")
    assert p.name == "xylo-audio2" and p.kind == "neuromorphic"
    assert p.cores.neurons_per_core.value_si == 1000
    assert all(q.source.strip() for _, q in p.quantities())


# --- benchmarks/silicon.py: the tables and the recorded predictions ------------------------------------------

def _silicon():
    from benchmark_scripts import load_benchmark

    return load_benchmark("silicon")


MCU = ["cortexm7-mlperftiny-ic", "cortexm7-mlperftiny-kws", "cortexm7-mlperftiny-vww", "cortexm7-mlperftiny-ad"]


def _mcu_model(silicon, ids=MCU):
    import tomllib

    data = tomllib.loads(silicon.DATA.read_text())
    records = {m["id"]: m for m in data["measurement"]}
    cases = [c for c in silicon.CASES if c.record in ids]
    return silicon.Model(cases, records, data["networks"]), data


def test_silicon_tables_keep_fit_set_rows_out_of_the_held_out_table(monkeypatch):
    silicon = _silicon()
    real = silicon.load_profile
    bosch = [f"cortexm7-mlperftiny-{b}-bosch-v1.2" for b in ("ic", "kws", "vww", "ad")]
    rows = MCU + bosch
    shipped = silicon.fit_set(real("cortex-m7")) & set(rows)      # the shipped ceilings' and bosch's fit rows
    fit_set = [MCU[0]]                                            # the supply power, marked fitted here

    def fitted(name):
        hw = real(name)
        if name != "cortex-m7":
            return hw
        d = hw.to_dict()
        d["power"]["typical"].update(basis="fitted", note="test", fit_set=fit_set)
        return silicon.profile_from_dict(d)

    monkeypatch.setattr(silicon, "load_profile", fitted)
    model, _ = _mcu_model(silicon, rows)
    obs = silicon.observations([model.result(r) for r in rows])
    cal = silicon.calibrate(model, obs)
    seen = set(fit_set) | shipped
    assert set(bosch) <= seen and seen != set(rows)              # the check below has a held-out row to see
    assert {r.obs.id for r in cal["fit_rows"]} == seen
    plain = [r for r in cal["held_rows"] if r.kind == "held-out"]
    assert {r.obs.id for r in plain} == set(rows) - seen
    loo = [r for r in cal["held_rows"] if r.kind == "leave-one-out"]
    assert {r.obs.id for r in loo} == set(bosch)                 # each predicted by a refit of bosch's numbers without it
    for r in loo:
        assert all(r.obs.id not in c.fit_set for c in r.constants)
        assert {c.path for c in r.constants} == {"stacks.bosch-v1.2.dense_kernel_speed",
                                                 "stacks.bosch-v1.2.separable_kernel_speed"}
    # ST's IC and VWW fit two ceilings between them, the supply power is fitted on IC alone: with one of
    # the two left out, the other cannot determine its prediction, so neither is counted as held out
    groups = {tuple(sorted(c["path"] for c in ref.get("constants", []))): ref for ref in cal["refits"]}
    st = next(ref for paths, ref in groups.items() if "power.typical" in paths)
    assert {k.split(":")[0] for k in st["undetermined"]} == {"cortexm7-mlperftiny-ic", "cortexm7-mlperftiny-vww"}
    linear = next(ref for paths, ref in groups.items() if paths == ("roofline.int8.linear.macs_per_cycle",))
    assert "cannot be validated" in linear["note"]               # AD alone fits the linear ceiling
    power = [c for ref in cal["refits"] for c in ref.get("constants", []) if c["path"] == "power.typical"]
    assert len(power) == 1 and power[0]["fit_set"] == fit_set


def test_fit_groups_link_constants_through_shared_measurements():
    silicon = _silicon()
    fc = [FittedConstant("m", "a", 1.0, ("r1", "r2")), FittedConstant("m", "b", 1.0, ("r3",)),
          FittedConstant("m", "c", 1.0, ("r2", "r3")), FittedConstant("m", "d", 1.0, ("r9",)),
          FittedConstant("n", "e", 1.0, ("r1",))]
    groups = sorted(sorted(c.path for c in g) for g in silicon.fit_groups(fc))
    assert groups == [["a", "b", "c"], ["d"], ["e"]]            # a-c through r2, b-c through r3; n is apart


def test_record_keeps_the_first_prediction_and_knows_what_was_measured(tmp_path):
    silicon = _silicon()
    model, _ = _mcu_model(silicon)
    res = model.result(MCU[0])
    blind = {**res, "record": "new-chip-row", "rows": [{**r, "measured": None} for r in res["rows"]]}
    path = tmp_path / "pred.json"
    added = silicon.record_predictions([res, blind], path)
    assert set(added) == {f"{MCU[0]}:energy", f"{MCU[0]}:latency", "new-chip-row:energy", "new-chip-row:latency"}
    rec = silicon.load_predictions(path)
    assert rec[f"{MCU[0]}:energy"]["measured_in_file"] is True
    assert rec["new-chip-row:energy"]["measured_in_file"] is False
    # a second recording, after the measurement is entered and the model changed, replaces nothing
    later = {**blind, "rows": [{**r, "measured": 1.0, "predicted": 123.0} for r in blind["rows"]]}
    assert silicon.record_predictions([later], path) == []
    assert silicon.load_predictions(path)["new-chip-row:energy"]["predicted"] == res["rows"][0]["predicted"]
    row = Row(Observation("new-chip-row", "cortex-m7", "energy", 1.0), 2.0, "held-out")
    assert silicon.preregistered(row, silicon.load_predictions(path)).startswith("yes")
    seen = Row(Observation(MCU[0], "cortex-m7", "energy", 1.0), 2.0, "held-out")
    assert silicon.preregistered(seen, silicon.load_predictions(path)).startswith("no")
    assert silicon.preregistered(Row(Observation("x", "t", "energy", 1.0), 1.0, "held-out"), {}) == "not recorded"


def test_explored_fit_leaves_each_row_out_and_refuses_unknown_paths():
    silicon = _silicon()
    model, _ = _mcu_model(silicon)
    obs = silicon.observations([model.result(r) for r in MCU])
    e = silicon.explore_fit(model, obs, "cortex-m7:power.typical")
    (c,) = e["result"].constants
    assert c.fit_set == tuple(sorted(MCU)) and 0.03 <= c.value <= 3.0    # within the bounds it was given
    assert {r.obs.id for r in e["loo"]} == set(MCU)
    for r in e["loo"]:
        assert all(r.obs.id not in k.fit_set for k in r.constants)
    with pytest.raises(SystemExit, match="unknown: power.nonsense"):
        silicon.explore_fit(model, obs, "cortex-m7:power.nonsense")
    with pytest.raises(SystemExit, match="no measured row"):
        silicon.explore_fit(model, obs, "loihi:power.static")
    with pytest.raises(SystemExit, match="is a count"):
        silicon.explore_fit(model, obs, "cortex-m7:cores.count")


def test_a_measurement_can_carry_its_own_case():
    silicon = _silicon()
    base = {"id": "new-row", "network": {"key": "abr_kws"}}
    data = {"measurement": [{**base, "case": {"profile": "xylo-audio2", "timesteps": 10, "energy": "energy_per_inference"}}]}
    case = next(c for c in silicon.cases_from_data(data) if c.record == "new-row")
    assert (case.target, case.timesteps, case.energy) == ("xylo-audio2", 10, "energy_per_inference")
    with pytest.raises(SystemExit, match="unknown keys"):
        silicon.cases_from_data({"measurement": [{**base, "case": {"profile": "loihi", "timestep": 3}}]})
    with pytest.raises(SystemExit, match="has no id"):
        silicon.cases_from_data({"measurement": [{"title": "t"}]})
    with pytest.raises(SystemExit, match="twice"):
        silicon.cases_from_data({"measurement": [base, base]})
