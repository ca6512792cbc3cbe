"""The per-layer roofline (ffneuro.profiler.roofline), operating points (NAME@CLOCK) and their refusals."""
from __future__ import annotations

import pytest
from cli_runner import invoke

from ffneuro.errors import FFNeuroError
from ffneuro.profiler import load_profile, profile_graph
from ffneuro.profiler.hardware import (
    HardwareProfileError,
    OperatingPointError,
    at_clock,
    parse_toml,
    split_operating_point,
    split_stack,
    with_stack,
)
from ffneuro.profiler.roofline import (
    KernelCeiling,
    LayerWork,
    MemoryCeiling,
    Roofline,
    RooflineError,
    kernel_kind,
    latency_s,
    layer_time,
    roofline_for,
    supply_power_w,
)
from ffneuro.spec import Activation, Linear, NetSpec, Unit

# ---- roofline math, by hand -------------------------------------------------------------------------

FLASH = MemoryCeiling(access_bytes=16, access_time_s=1 / 42e6)   # one wait state per 42 MHz


def roof(clock_hz: float = 280e6) -> Roofline:
    return Roofline(clock_hz, (KernelCeiling("conv", 2.0, 100), KernelCeiling("linear", 0.5, 10),
                               KernelCeiling("pool", 1.0)), FLASH, MemoryCeiling(bytes_per_cycle=8))


def test_flash_wait_states_follow_the_clock():
    assert FLASH.cycles_per_access(280e6) == 7          # 6 wait states + 1
    assert FLASH.cycles_per_access(42e6) == 1           # exactly one step: no wait state
    assert FLASH.cycles_per_access(140e6) == 4          # ceil(3.33)
    assert FLASH.bytes_per_cycle_at(280e6) == pytest.approx(16 / 7)
    assert MemoryCeiling(bandwidth=3.35e12).bytes_per_cycle_at(1.98e9) == pytest.approx(3.35e12 / 1.98e9)
    assert MemoryCeiling(bytes_per_cycle=8).bytes_per_cycle_at(1e6) == 8


def test_compute_bound_layer():
    # 1000 MACs at 2/cycle = 500, 200 elementwise ops at 1/cycle = 200 -> 700 compute cycles;
    # memory: 16 weight bytes / (16/7) = 7, 80 activation bytes / 8 = 10 -> 17; + 100 overhead
    t = layer_time(LayerWork("conv", 1000, 200, 16, 80), roof())
    assert (t.compute_cycles, t.memory_cycles, t.overhead_cycles) == (pytest.approx(700), pytest.approx(17), 100)
    assert t.cycles == pytest.approx(800) and t.bound == "compute"


def test_memory_bound_layer_and_the_sum():
    # linear: 100 MACs at 0.5 = 200 cycles; 1600 weight bytes from flash at 16 B per 7 cycles = 700 cycles
    t = layer_time(LayerWork("linear", 100, 0, 1600, 0), roof())
    assert t.memory_cycles == pytest.approx(700) and t.bound == "memory" and t.cycles == pytest.approx(710)
    works = [LayerWork("conv", 1000, 200, 16, 80), LayerWork("linear", 100, 0, 1600, 0)]
    assert latency_s(works, roof()) == pytest.approx((800 + 710) / 280e6)
    # at 140 MHz the flash needs 4 cycles per access: 1600 / 4 = 400 cycles of memory, still memory-bound
    assert layer_time(works[1], roof(140e6)).cycles == pytest.approx(410)


def test_overhead_is_paid_per_call():
    assert layer_time(LayerWork("conv", 0, 0, 0, 0, calls=3), roof()).cycles == pytest.approx(300)


def test_kernel_kinds():
    assert kernel_kind("linear") == "linear"
    assert kernel_kind("conv", groups=8, in_channels=8, kernel=(3, 3)) == "depthwise"
    assert kernel_kind("conv", groups=1, in_channels=8, kernel=(1, 1)) == "pointwise"
    assert kernel_kind("conv", groups=1, in_channels=8, kernel=(3, 3)) == "conv"
    assert kernel_kind("conv", groups=2, in_channels=8, kernel=(3, 3)) == "conv"   # grouped, not depthwise
    with pytest.raises(RooflineError, match="valid: conv, linear, pool"):
        kernel_kind("attention")


def test_roofline_refusals():
    with pytest.raises(RooflineError, match="no ceiling for 'depthwise'"):
        roof().ceiling("depthwise")
    with pytest.raises(RooflineError, match="exactly one"):
        MemoryCeiling(bytes_per_cycle=1, bandwidth=1)
    with pytest.raises(RooflineError, match="access_bytes and access_time"):
        MemoryCeiling(access_bytes=16)
    with pytest.raises(RooflineError, match="unknown kernel kind"):
        KernelCeiling("fft", 1.0)
    with pytest.raises(RooflineError, match="> 0"):
        KernelCeiling("conv", 0.0)
    assert isinstance(RooflineError("x"), FFNeuroError)


def test_supply_power_scales_dynamic_with_f_v2_and_static_with_v():
    # 20 mW static, 100 mW dynamic; half the clock at 0.8x the voltage: 16 + 100 * 0.5 * 0.64 = 48 mW
    assert supply_power_w(0.020, 0.100, clock_ratio=0.5, voltage_ratio=0.8) == pytest.approx(0.048)
    assert supply_power_w(0.020, 0.100, clock_ratio=1, voltage_ratio=1) == pytest.approx(0.120)


# ---- NAME@CLOCK -------------------------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("cortex-m7@280MHz", ("cortex-m7", 280e6)), ("cortex-m7@1.5GHz", ("cortex-m7", 1.5e9)),
    ("h100@ 990 MHz", ("h100", 990e6)), ("loihi", ("loihi", None)), ("my@dir/chip.toml", ("my@dir/chip.toml", None)),
    ("chips/m7.toml@100kHz", ("chips/m7.toml", 100e3)),
])
def test_split_operating_point(text, expected):
    assert split_operating_point(text) == expected


@pytest.mark.parametrize("text", ["cortex-m7@", "cortex-m7@280", "cortex-m7@fast", "@280MHz", "cortex-m7@280mhz",
                                  "cortex-m7@-5MHz", "cortex-m7@0MHz"])
def test_bad_operating_points_name_the_valid_form(text):
    with pytest.raises(OperatingPointError, match="NAME@CLOCK"):
        load_profile(text)


def test_at_clock_rederives_what_depends_on_the_clock():
    base, half = load_profile("cortex-m7"), load_profile("cortex-m7@140MHz")
    assert half.clock.core.value_si == 140e6 and half.clock.core.basis == "scaled"
    assert half.voltage.core.value_si == pytest.approx(1.1)        # VOS2 runs 140 MHz
    vr = 1.1 / 1.35
    assert half.compute_for("int8").peak_rate.value_si == pytest.approx(base.compute_for("int8").peak_rate.value_si / 2)
    assert half.power.dynamic.value_si == pytest.approx(base.power.dynamic.value_si * 0.5 * vr ** 2)
    assert half.power.static.value_si == pytest.approx(base.power.static.value_si * vr)
    assert half.power.typical.value_si == pytest.approx(half.power.running_w)
    for c0, c1 in zip(base.compute, half.compute, strict=True):   # all-in: power / rate at the new point
        assert c1.mac.value_si == pytest.approx(c0.mac.value_si * (half.power.running_w / base.power.running_w) / 0.5)
    # roofline constants are per cycle: unchanged
    assert [k.macs_per_cycle for k in half.roofline.kernels] == [k.macs_per_cycle for k in base.roofline.kernels]
    assert "operating point cortex-m7@140 MHz" in half.notes[-1]
    assert half.name == "cortex-m7" and half.label == "cortex-m7@140MHz" and base.label == "cortex-m7"
    assert profile_graph(_mlp(), half, precision="int8").target == "cortex-m7@140MHz"   # reports tell them apart
    # the same clock is the same profile, number for number
    same = load_profile("cortex-m7@280MHz")
    assert [q.value_si for _, q in same.quantities()] == pytest.approx([q.value_si for _, q in base.quantities()])


def test_a_profile_without_voltage_levels_holds_its_voltage():
    h = load_profile("h100")
    low = at_clock(h, 0.99e9)
    assert low.compute_for("int8").peak_rate.value_si == pytest.approx(h.compute_for("int8").peak_rate.value_si / 2)
    assert low.compute_for("int8").mac.value_si == pytest.approx(h.compute_for("int8").mac.value_si)   # P ∝ f, rate ∝ f
    assert low.memory_level("off_chip").bandwidth.value_si == h.memory_level("off_chip").bandwidth.value_si   # HBM


@pytest.mark.parametrize("text, fragment", [
    ("cortex-m7@300MHz", "above the highest voltage level (280 MHz)"),
    ("h100@3GHz", "no operating point above its clock (1.98 GHz)"),
    ("loihi@100MHz", "gives no clock.core"),
])
def test_operating_points_the_profile_cannot_run_are_refused(text, fragment):
    with pytest.raises(OperatingPointError, match=fragment.replace("(", r"\(").replace(")", r"\)")):
        load_profile(text)


# ---- the profiler uses the roofline -----------------------------------------------------------------

def _mlp() -> NetSpec:
    return NetSpec((640,), (Unit("fc1", (Linear((640,), 128, True), Activation((128,), "relu"))),
                            Unit("fc2", (Linear((128,), 8, True),))), "mlp")


def test_profile_latency_is_the_roofline_sum_and_energy_is_power_times_time():
    hw = load_profile("cortex-m7")
    est = profile_graph(_mlp(), hw, precision="int8")["infer"]
    roof_ = roofline_for(hw, "int8")
    expected = 0.0
    for ue, (fin, fout) in zip(est.per_unit, ((640, 128), (128, 8)), strict=True):
        work = LayerWork("linear", ue.macs, ue.elementwise_ops, fin * fout, fin + fout)
        t = layer_time(work, roof_).cycles / 280e6
        assert ue.latency_s == pytest.approx(t)
        expected += t
    assert est.latency_s == pytest.approx(expected)
    assert est.energy_j == pytest.approx(hw.power.running_w * expected)
    # at 140 MHz this compute-bound MLP takes the same cycles, so twice the time, at the power of VOS2
    half = load_profile("cortex-m7@140MHz")
    slow = profile_graph(_mlp(), half, precision="int8")["infer"]
    assert slow.latency_s == pytest.approx(2 * est.latency_s)
    assert slow.energy_j == pytest.approx(est.energy_j * 2 * half.power.running_w / hw.power.running_w)


def test_fp32_without_a_roofline_keeps_the_peak_rate_model():
    hw = load_profile("cortex-m7")
    assert roofline_for(hw, "fp32") is None
    est = profile_graph(_mlp(), hw, precision="fp32")["infer"]
    assert est.latency_s == pytest.approx((2 * est.macs + sum(u.elementwise_ops for u in est.per_unit))
                                          / hw.compute_for("fp32").peak_rate.value_si)


# ---- the schema: fitted numbers, roofline and voltage tables ---------------------------------------

TOY = """\
schema = "ffneuro.hw"
schema_version = 1
name = "toy-mcu"
description = "a toy MCU"
kind = "mcu"
on_chip_learning = false
supports_training = true
precisions = ["int8"]

[compute.int8]
scope = "all_in"
mac = { value = 100, unit = "pJ", source = "made up", basis = "measured" }
peak_rate = { value = 200, unit = "MMAC/s", source = "made up", basis = "specified" }

[clock]
core = { value = 100, unit = "MHz", source = "made up", basis = "specified" }

[roofline.weights]
access_bytes = { value = 8, unit = "B", source = "made up", basis = "specified" }
access_time = { value = 20, unit = "ns", source = "made up", basis = "specified" }

[roofline.activations]
bytes_per_cycle = { value = 4, unit = "B/cycle", source = "made up", basis = "specified" }

[roofline.int8.conv]
macs_per_cycle = { value = 1.5, unit = "MAC/cycle", source = "made up", basis = "fitted", fit_set = ["toy-run"], note = "solved on toy-run" }
overhead = { value = 50, unit = "cycle", source = "made up", basis = "assumed", note = "a guess" }

[roofline.int8.pool]
macs_per_cycle = { value = 2, unit = "op/cycle", source = "made up", basis = "specified" }
"""


def test_a_toy_roofline_parses():
    p = parse_toml(TOY, "toy.toml")
    r = roofline_for(p, "int8")
    assert r.clock_hz == 100e6 and r.ceiling("conv").macs_per_cycle == 1.5 and r.ceiling("pool").macs_per_cycle == 1.0
    assert r.weights.cycles_per_access(100e6) == 2
    assert dict(p.fitted())["roofline.int8.conv.macs_per_cycle"].fit_set == ("toy-run",)
    assert p.to_dict()["roofline"]["int8"]["conv"]["macs_per_cycle"]["fit_set"] == ["toy-run"]


@pytest.mark.parametrize("old, new, fragment", [
    ('fit_set = ["toy-run"], ', "", "roofline.int8.conv.macs_per_cycle.fit_set: basis 'fitted' needs fit_set"),
    ('basis = "fitted", fit_set = ["toy-run"]', 'basis = "measured", fit_set = ["toy-run"]', "only a number with basis 'fitted' has a fit set"),
    ('fit_set = ["toy-run"]', "fit_set = []", "non-empty array"),
    ('[roofline.int8.pool]\nmacs_per_cycle = { value = 2, unit = "op/cycle", source = "made up", basis = "specified" }\n',
     "", "pool"),
    ("[roofline.int8.conv]", "[roofline.int8.fft]", "roofline.int8.fft: unknown kernel kind"),
    ('bytes_per_cycle = { value = 4, unit = "B/cycle", source = "made up", basis = "specified" }',
     'bytes_per_cycle = { value = 4, unit = "B/cycle", source = "made up", basis = "specified" }\n'
     'bandwidth = { value = 1, unit = "GB/s", source = "made up", basis = "specified" }', "exactly one"),
    ('unit = "MAC/cycle"', 'unit = "MAC/s"', "MAC/s"),
    ("[roofline.activations]", "[roofline.scratch]", "roofline.scratch: unknown key"),
])
def test_bad_roofline_tables_name_file_and_key(old, new, fragment):
    assert old in TOY
    with pytest.raises(HardwareProfileError, match="toy.toml") as e:
        parse_toml(TOY.replace(old, new), "toy.toml")
    assert fragment in str(e.value)


def test_voltage_levels_parse_and_refuse_duplicates():
    levels = """
[voltage]
core = { value = 1.2, unit = "V", source = "made up", basis = "specified" }
[[voltage.levels]]
max_clock = { value = 50, unit = "MHz", source = "made up", basis = "specified" }
core = { value = 1.0, unit = "V", source = "made up", basis = "specified" }
[[voltage.levels]]
max_clock = { value = 100, unit = "MHz", source = "made up", basis = "specified" }
core = { value = 1.2, unit = "V", source = "made up", basis = "specified" }
"""
    p = parse_toml(TOY + levels, "toy.toml")
    low = at_clock(p, 40e6)
    assert low.voltage.core.value_si == pytest.approx(1.0)
    assert low.compute_for("int8").mac.value_si == pytest.approx(100e-12 * (1.0 / 1.2) ** 2)   # P ∝ f·V², rate ∝ f
    with pytest.raises(HardwareProfileError, match="max_clock is given twice"):
        parse_toml(TOY + levels.replace("value = 50, unit", "value = 100, unit"), "toy.toml")


# ---- the CLI --------------------------------------------------------------------------------------

def test_hw_show_documents_the_operating_point_and_the_fits():
    out = invoke("hw", "show", "cortex-m7@140MHz", ok=True).output
    assert "operating point: 140 MHz, core 1.1 V" in out and "--hw cortex-m7@CLOCK" in out
    assert "roofline int8 (MAC/cycle)" in out and "fitted: roofline.int8.linear.macs_per_cycle" in out
    assert "cortexm7-mlperftiny-ad" in out


@pytest.mark.parametrize("args", [("hw", "show", "cortex-m7@fast"), ("hw", "show", "cortex-m7@900MHz"),
                                  ("profile", "--preset", "paper-mnist", "--hw", "cortex-m7@1", "--no-store"),
                                  ("simulate", "x.nir", "--hw", "h100@3GHz")])
def test_bad_operating_points_are_one_error_line(args):
    r = invoke(*args)
    assert r.exit_code != 0
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("Error:") and "Traceback" not in r.output
    assert "valid" in lines[0]


# ---- the shipped fits are reproducible and their rows are marked -----------------------------------

BENCH = __import__("pathlib").Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.mark.skipif(not (BENCH / "silicon.py").exists(), reason="benchmarks/ is not in this checkout")
def test_the_shipped_fits_reproduce_their_fit_sets(monkeypatch):
    # what benchmarks/fit_roofline.py solves for: the roofline gives each fit-set run's measured time
    monkeypatch.syspath_prepend(str(BENCH))
    import tomllib

    import silicon

    data = tomllib.loads(silicon.DATA.read_text())
    records = {m["id"]: m for m in data["measurement"]}
    for target, batch, metric in (("cortex-m7", 1, "latency"), ("h100", 2048, "time_per_inference_at_throughput")):
        hw = load_profile(target)
        roof_fit = {m for key, q in hw.fitted() if key.startswith("roofline.") for m in q.fit_set}
        assert roof_fit
        for rid in sorted(roof_fit):
            spec = silicon.spec_from_layers(data["networks"][records[rid]["network"]["key"]])
            est = profile_graph(spec, hw, precision="int8", batch=batch)["infer"]
            assert est.latency_s == pytest.approx(silicon._metric(records[rid], metric), rel=3e-3), rid


@pytest.mark.skipif(not (BENCH / "silicon.py").exists(), reason="benchmarks/ is not in this checkout")
def test_silicon_marks_fit_set_rows_and_keeps_kws_held_out(monkeypatch):
    monkeypatch.syspath_prepend(str(BENCH))
    import silicon

    m7 = load_profile("cortex-m7")
    roof_fit = {m for key, q in m7.fitted() if key.startswith("roofline.") for m in q.fit_set}
    assert roof_fit == {"cortexm7-mlperftiny-ic", "cortexm7-mlperftiny-vww", "cortexm7-mlperftiny-ad"}
    assert "cortexm7-mlperftiny-kws" not in silicon.fit_set(m7)           # ST's own KWS: held out
    # every other stack's row runs its own stack, and is in the fit set of that stack's numbers only
    import tomllib

    records = {m["id"]: m for m in tomllib.loads(silicon.DATA.read_text())["measurement"]}
    stacks = {st.name for st in m7.stacks}
    others = [c for c in silicon.CASES if c.target == "cortex-m7" and c.stack is not None]
    assert len(others) >= 30
    for c in others:
        assert c.stack in stacks and records[c.record]["stack"] == c.stack, c.record
        keys = {key for key, q in m7.fitted() if c.record in q.fit_set}
        assert keys and all(k.startswith(f"stacks.{c.stack}.") for k in keys), c.record
    assert silicon.fit_set(load_profile("h100")) == {"h100-resnet50-mlperf-x1"}
    ids = [c.record for c in silicon.CASES]
    assert "h100-resnet50-mlperf-dgx-maxq-power" not in ids            # dropped: a server at the wall
    assert sum(i.startswith("cortexm7-mlperftiny-") for i in ids) >= 30   # the other stacks and rounds


# ---- software stacks (NAME:STACK) ---------------------------------------------------------------------

@pytest.mark.parametrize("text, expected", [
    ("cortex-m7:bosch-v1.2", ("cortex-m7", "bosch-v1.2")), ("cortex-m7", ("cortex-m7", None)),
    ("chips/m7.toml:st-v0.7", ("chips/m7.toml", "st-v0.7")), ("C:\\chips\\m7.toml", ("C:\\chips\\m7.toml", None)),
    ("a:b/m7.toml", ("a:b/m7.toml", None)),
])
def test_split_stack(text, expected):
    assert split_stack(text) == expected


def test_a_stack_scales_the_kernel_ceilings_and_sets_the_supply_power():
    base, old = load_profile("cortex-m7"), load_profile("cortex-m7:st-v0.7")
    st = base.stack("st-v0.7")
    dense, sep = st.dense_kernel_speed.value_si, st.separable_kernel_speed.value_si
    assert dense < 1 and sep < 1 and base.stack().name == "st-v1.2"      # the default: ST's v1.2
    r0, r1 = roofline_for(base, "int8"), roofline_for(old, "int8")
    for kind, f in (("conv", dense), ("linear", dense), ("depthwise", sep), ("pointwise", sep), ("pool", 1.0)):
        assert r1.ceiling(kind).macs_per_cycle == pytest.approx(r0.ceiling(kind).macs_per_cycle * f), kind
    # supply power: the stack's (its own runs'); the static share held, the rest dynamic; all-in MACs follow
    assert old.power.running_w == pytest.approx(st.supply_power.value_si)
    assert old.power.static.value_si == base.power.static.value_si
    ratio = st.supply_power.value_si / base.power.running_w
    assert old.compute_for("int8").mac.value_si == pytest.approx(base.compute_for("int8").mac.value_si * ratio)
    # a derived ceiling is fitted on both fit sets: the default's runs and the stack's
    q = next(k for k in old.roofline.kernels if k.kind == "conv").macs_per_cycle
    assert q.basis == "fitted" and {"cortexm7-mlperftiny-ic", "cortexm7-mlperftiny-ic-st-v0.7"} <= set(q.fit_set)
    assert old.label == "cortex-m7:st-v0.7" and old.stack().name == "st-v0.7"
    # the estimate: slower kernels, the same network -> a longer latency and energy = supply power x latency
    net = NetSpec((64,), (Unit("fc", (Linear((64,), 32, True), Activation((32,), "relu"))),), "tiny")
    e0, e1 = profile_graph(net, base, precision="int8")["infer"], profile_graph(net, old, precision="int8")["infer"]
    assert e1.latency_s > e0.latency_s
    assert e1.energy_j == pytest.approx(old.power.running_w * e1.latency_s, rel=1e-9)


def test_the_default_stack_changes_nothing_and_stacks_compose_with_the_clock():
    base = load_profile("cortex-m7")
    same = load_profile("cortex-m7:st-v1.2")
    assert roofline_for(same, "int8") == roofline_for(base, "int8")
    assert same.power.running_w == base.power.running_w and same.label == "cortex-m7:st-v1.2"
    # a stack without a stated supply (no energy submitted) keeps the profile's power
    bosch = load_profile("cortex-m7:bosch-v1.2@140MHz")
    assert bosch.label == "cortex-m7:bosch-v1.2@140MHz"
    assert bosch.power.running_w == pytest.approx(load_profile("cortex-m7@140MHz").power.running_w)
    assert roofline_for(bosch, "int8").clock_hz == 140e6
    # selecting is idempotent for the same stack, refused for another on top
    assert with_stack(same, "st-v1.2") is same
    with pytest.raises(OperatingPointError, match="already selected"):
        with_stack(same, "bosch-v1.2")


@pytest.mark.parametrize("text, fragment", [
    ("cortex-m7:nonesuch", "valid: st-v1.2, st-v0.7"), ("cortex-m7:Bosch!", "NAME:STACK"),
    ("horowitz45:x", "valid: none"),
])
def test_unknown_or_bad_stacks_are_refused_with_the_valid_ones(text, fragment):
    with pytest.raises(HardwareProfileError) as e:
        load_profile(text)
    assert fragment in str(e.value)


def test_stack_tables_are_checked():
    ok = TOY + """
[stacks."lib-v1.0"]
dense_kernel_speed = { value = 0.5, unit = "factor", source = "made up", basis = "fitted", fit_set = ["toy-run-2"], note = "solved" }
supply_power = { value = 90, unit = "mW", source = "made up", basis = "measured" }
"""
    p = parse_toml(ok, "toy.toml")
    assert p.stacks[0].dense_kernel_speed.value_si == 0.5
    assert dict(p.fitted())["stacks.lib-v1.0.dense_kernel_speed"].fit_set == ("toy-run-2",)
    with pytest.raises(HardwareProfileError, match="factor"):
        parse_toml(ok.replace('value = 0.5, unit = "factor"', 'value = 0.5, unit = "mW"'), "toy.toml")
    with pytest.raises(HardwareProfileError, match="stack name"):
        parse_toml(ok.replace('[stacks."lib-v1.0"]', '[stacks."Lib v1"]'), "toy.toml")


def test_hw_show_lists_the_stacks_and_how_to_choose_one():
    out = invoke("hw", "show", "cortex-m7", ok=True).output
    assert "software stack: st-v1.2 (default)" in out and "--hw cortex-m7:STACK" in out
    assert "bosch-v1.2: dense_kernel_speed" in out and "(fitted)" in out
    out = invoke("hw", "show", "cortex-m7:st-v0.7@140MHz", ok=True).output
    assert "software stack: st-v0.7 (selected)" in out and "operating point: 140 MHz" in out
    r = invoke("hw", "show", "cortex-m7:nonesuch")
    lines = [ln for ln in r.output.splitlines() if ln.strip()]
    assert r.exit_code != 0 and len(lines) == 1 and lines[0].startswith("Error:") and "valid:" in lines[0]


@pytest.mark.skipif(not (BENCH / "silicon.py").exists(), reason="benchmarks/ is not in this checkout")
def test_a_shipped_stack_is_what_a_fit_on_its_runs_gives(monkeypatch):
    # refit bosch-v1.2's two kernel speeds on its four runs from a start 30% off: the file's values come back
    monkeypatch.syspath_prepend(str(BENCH))
    import tomllib

    import silicon

    from ffneuro.profiler.calibration import Constant, fit

    data = tomllib.loads(silicon.DATA.read_text())
    records = {m["id"]: m for m in data["measurement"]}
    ids = [f"cortexm7-mlperftiny-{b}-bosch-v1.2" for b in ("ic", "kws", "vww", "ad")]
    model = silicon.Model([c for c in silicon.CASES if c.record in ids], records, data["networks"])
    obs = silicon.observations([model.result(r) for r in ids])
    st = load_profile("cortex-m7").stack("bosch-v1.2")
    paths = ("dense_kernel_speed", "separable_kernel_speed")
    start = [Constant("cortex-m7", f"stacks.bosch-v1.2.{p}", getattr(st, p).value_si * 1.3, 0.05, 5.0) for p in paths]
    res = fit(start, obs, model)
    for p, c in zip(paths, res.constants, strict=True):
        assert c.value == pytest.approx(getattr(st, p).value_si, rel=5e-3), p
        assert set(c.fit_set) == set(ids) == set(getattr(st, p).fit_set)
