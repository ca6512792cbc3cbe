"""Hardware profiles: every shipped TOML loads and validates, numbers are normalised to SI, bad files fail clearly."""
from __future__ import annotations

import dataclasses
import json
import math
import textwrap
from importlib import resources

import pytest

from ffneuro.errors import FFNeuroError
from ffneuro.profiler import (
    BASES,
    HardwareProfileError,
    Quantity,
    UnknownProfileError,
    load_profile,
    profile_from_dict,
    shipped_profiles,
    validate_file,
)
from ffneuro.profiler.hardware import parse_toml
from ffneuro.registry import UnknownNameError

REQUIRED_PROFILES = {"horowitz45", "loihi", "loihi2", "truenorth", "spinnaker2", "h100", "cortex-m7"}


def approx(x):
    return pytest.approx(x, rel=1e-9)


# ---- shipped profiles


def test_the_required_profiles_ship():
    assert REQUIRED_PROFILES <= set(shipped_profiles())


@pytest.mark.parametrize("name", shipped_profiles())
def test_every_shipped_profile_loads_and_is_sourced(name):
    p = load_profile(name)
    assert p.name == name
    assert p.description and p.origin.endswith(f"{name}.toml")
    assert p.on_chip_learning <= p.supports_training
    keys = [key for key, _ in p.quantities()]
    assert keys and len(keys) == len(set(keys))
    for key, q in p.quantities():
        assert q.source.strip(), key
        assert q.basis in BASES, key
        if q.basis in ("modelled", "scaled", "assumed"):
            assert q.note.strip(), f"{key}: basis {q.basis} without a note"
    # each native precision has a MAC energy
    for prec in p.precisions:
        assert p.mac_energy(prec) > 0


@pytest.mark.parametrize("name", shipped_profiles())
def test_to_dict_is_json_and_round_trips(name):
    p = load_profile(name)
    d = p.to_dict()
    text = json.dumps(d)
    again = profile_from_dict(json.loads(text))
    assert again == p
    # units and sources travel with the numbers
    mac = d["compute"][p.precisions[0]]["mac"]
    assert {"value", "unit", "value_si", "unit_si", "source", "basis"} <= set(mac)
    assert mac["unit_si"] == "J"


def test_validate_file_accepts_every_shipped_file():
    root = resources.files("ffneuro.hw_profiles")
    for name in shipped_profiles():
        assert validate_file(str(root / f"{name}.toml")).name == name


def test_horowitz_numbers():
    p = load_profile("horowitz45")
    fp32, fp16 = p.compute_for("fp32"), p.compute_for("fp16")
    int32, int8 = p.compute_for("int32"), p.compute_for("int8")
    assert fp32.mult.value_si == approx(3.7e-12) and fp32.add.value_si == approx(0.9e-12)
    assert fp16.mult.value_si == approx(1.1e-12) and fp16.add.value_si == approx(0.4e-12)
    assert int32.mult.value_si == approx(3.1e-12) and int32.add.value_si == approx(0.1e-12)
    assert int8.mult.value_si == approx(0.2e-12) and int8.add.value_si == approx(0.03e-12)
    for c in (fp32, fp16, int32, int8):
        assert c.mac.value_si == approx(c.add.value_si + c.mult.value_si)
    sram, dram = p.memory_level("on_core"), p.memory_level("off_chip")
    assert sram.read.value_si == approx(5e-12) and sram.word.value_si == 4
    assert dram.read.value_si == approx(640e-12)
    assert sram.read_per_byte == approx(1.25e-12) and dram.read_per_byte == approx(160e-12)
    assert p.cores is None and p.n_cores == 1
    assert fp32.mult.given_value == 3.7 and fp32.mult.given_unit == "pJ" and str(fp32.mult) == "3.7 pJ"


def test_loihi_numbers():
    p = load_profile("loihi")
    assert p.kind == "neuromorphic" and p.supports_training and p.on_chip_learning
    assert p.cores.n == 128 and p.cores.neurons_per_core.value_si == 1024
    assert p.cores.synapse_bytes_per_core.value_si == 131072
    assert p.cores.sram_bytes_per_core.value_si == 2 * 2 ** 20 / 8
    assert p.neuro.synaptic_op.value_si == approx(23.6e-12)
    assert p.neuro.neuron_update.value_si == approx(81e-12)
    assert p.neuro.neuron_update_idle.value_si == approx(52e-12)
    assert p.neuro.synaptic_op_time.value_si == approx(3.5e-9)
    # SANA-FE's calibrated message energy (its own Loihi runs are its fit set), not Table 2's 1.7 pJ tile hop
    assert p.interconnect.packet.value_si == approx(111e-12) and p.interconnect.packet_size.value_si == 4
    assert p.interconnect.packet.basis == "fitted" and "SANA-FE" in p.interconnect.packet.source
    assert p.mac_energy("fp32") == approx(23.6e-12)          # fp32 maps onto the only native format
    assert p.compute_for("int8").peak_macs_per_s == pytest.approx(128 / 3.5e-9, rel=1e-3)  # rounded in the file
    assert p.cores.limits() == {"neurons": 1024, "axons": 4096, "synapse_bytes": 131072,
                                "sram_bytes": 262144}
    assert p.clock is None   # asynchronous: no clock is claimed


def test_loihi2_marks_its_unpublished_numbers_assumed_and_its_fitted_times_with_their_fit_set():
    p = load_profile("loihi2")
    assert p.cores.n == 128 and p.on_chip_learning
    assert p.compute_for("int8").mac.basis == "assumed"
    assert all(q.basis == "assumed" for _, q in p.quantities() if q.dimension == "energy")
    times = {k: q for k, q in p.quantities() if q.dimension == "time" and k.startswith("neuro.")
             and k.endswith(("synaptic_op_time", "neuron_update_time"))}
    assert set(times) == {"neuro.synaptic_op_time", "neuro.neuron_update_time"}
    assert all(q.basis == "fitted" and "fit set: loihi2-pilotnet-lif" in q.note for q in times.values())
    # one factor scales both of Loihi 1's times: 3.5 ns -> 1.62 ns, 8.4 ns -> 3.89 ns
    assert times["neuro.synaptic_op_time"].value_si / 3.5e-9 == pytest.approx(
        times["neuro.neuron_update_time"].value_si / 8.4e-9, rel=2e-3)


def test_truenorth_cannot_train_but_estimates_inference():
    p = load_profile("truenorth")
    assert p.supports_training is False and p.on_chip_learning is False
    assert "cannot" in p.training_note and "nference" in p.training_note
    assert p.cores.n == 4096 and p.cores.neurons_per_core.value_si == 256 and p.cores.axons_per_core.value_si == 256
    assert p.cores.synapse_bytes_per_core.value_si == 256 * 256 / 8
    c = p.compute_for("fp32")                                   # any run precision maps onto "binary"
    assert c.precision == "binary" and c.scope == "all_in"
    assert c.mac.value_si == approx(26e-12) and c.mac.basis == "measured"
    assert p.power.typical.value_si == approx(0.065) and p.clock.tick.value_si == 1000
    assert p.power.static is None and p.interconnect is None   # inside the all-in figure


def test_spinnaker2_numbers():
    p = load_profile("spinnaker2")
    assert p.cores.n == 152 and p.cores.sram_bytes_per_core.value_si == 128 * 1024
    assert p.supports_training and not p.on_chip_learning
    assert p.nearest_precision("bf16") == "fp32" and p.nearest_precision("int4") == "int8"
    assert 200e6 <= p.clock.core.value_si <= 300e6
    assert p.compute_for("fp32").peak_macs_per_s == pytest.approx(152 * 250e6 / 3, rel=1e-3)


def test_h100_numbers_and_derivations():
    p = load_profile("h100")
    assert p.kind == "gpu" and p.cores.n == 132
    assert p.compute_for("bf16").peak_rate.value_si == approx(989.4e12)
    assert p.compute_for("fp32").peak_rate.value_si == approx(66.9e12)
    assert p.power.tdp.value_si == 700
    assert p.memory_level("off_chip").bandwidth.value_si == approx(3.35e12)
    assert p.memory_level("off_chip").capacity.value_si == approx(80e9)
    assert p.memory_level("on_chip").capacity.value_si == approx(50e6)
    for c in p.compute:   # each MAC energy is TDP / peak MAC rate, as its note says
        assert c.scope == "all_in" and c.mac.basis == "modelled"
        assert c.mac.value_si == pytest.approx(700 / c.peak_macs_per_s, rel=1e-3), c.precision
    assert p.nearest_precision("bf16") == "bf16" and p.nearest_precision("fp32") == "fp32"


def test_cortex_m7_numbers():
    p = load_profile("cortex-m7")   # the STM32H7A3 of the MLPerf Tiny measurements
    assert p.kind == "mcu" and p.n_cores == 1 and p.clock.core.value_si == 280e6
    assert p.power.typical.basis == "measured"
    assert p.power.running_w == pytest.approx(p.power.typical.value_si, rel=1e-9)   # static + dynamic = measured
    for c in p.compute:
        assert c.scope == "all_in"
        assert c.mac.value_si == pytest.approx(p.power.typical.value_si / c.peak_macs_per_s, rel=1e-3)
    fitted = dict(p.fitted())   # every fitted number names the measurements it was fitted on
    roof = {k for k in fitted if not k.startswith("stacks.")}   # the rest: the other software stacks' numbers
    assert roof == {f"roofline.int8.{k}.macs_per_cycle" for k in ("conv", "pointwise", "depthwise", "linear")}
    assert all(q.fit_set for q in fitted.values())
    assert not any(m == "cortexm7-mlperftiny-kws" for q in fitted.values() for m in q.fit_set)   # ST's KWS held out
    for key in set(fitted) - roof:   # a stack's numbers are fitted on that stack's runs only
        stack = next(st.name for st in p.stacks if key.startswith(f"stacks.{st.name}."))
        assert all(m.endswith(f"-{stack}") for m in fitted[key].fit_set), key


def test_nearest_precision_prefers_family_then_width():
    p = load_profile("h100")
    assert p.nearest_precision("fp64") == "fp32"
    assert p.nearest_precision("int4") == "int8"
    assert load_profile("horowitz45").nearest_precision("bf16") == "fp16"
    with pytest.raises(HardwareProfileError, match="fp7"):
        p.nearest_precision("fp7")


def test_unknown_fields_name_what_an_estimate_leaves_out():
    assert load_profile("loihi2").unknown_fields() == ["memory.on_core.read"]
    assert load_profile("spinnaker2").unknown_fields() == ["interconnect.packet", "neuro.neuron_update",
                                                           "neuro.synaptic_op_time"]
    assert load_profile("h100").unknown_fields() == []


# ---- loading by path and by name


GOOD = """\
schema = "ffneuro.hw"
schema_version = 1
name = "toy"
description = "a toy chip"
kind = "neuromorphic"
on_chip_learning = false
supports_training = true
precisions = ["int8"]

[cores]
count = { value = 4, unit = "1", source = "made up, 2024", basis = "specified" }
neurons_per_core = { value = 256, unit = "count", source = "made up, 2024", basis = "specified" }
sram_bytes_per_core = { value = 64, unit = "KiB", source = "made up, 2024", basis = "specified" }

[compute.int8]
scope = "op"
mac = { value = 2, unit = "pJ", source = "made up, 2024", basis = "measured" }
peak_rate = { value = 1, unit = "GMAC/s", source = "made up, 2024", basis = "modelled", note = "4 cores x 250 M" }

[memory.on_core]
read = { value = 1, unit = "pJ", source = "made up, 2024", basis = "measured" }
word = { value = 32, unit = "bit", source = "made up, 2024", basis = "specified" }

[neuro]
neuron_update = { value = 50, unit = "pJ", source = "made up, 2024", basis = "measured" }

[mapping]
conv_weights = { value = "shared", source = "made up, 2024", basis = "specified" }

[power]
static = { value = 5, unit = "mW", source = "made up, 2024", basis = "measured" }

[clock]
core = { value = 250, unit = "MHz", source = "made up, 2024", basis = "specified" }
"""


def write(tmp_path, text, name="toy.toml"):
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return path


def test_load_by_path(tmp_path):
    path = write(tmp_path, GOOD)
    for arg in (path, str(path)):
        p = load_profile(arg)
        assert p.name == "toy" and p.origin == str(path)
        assert p.cores.n == 4 and p.cores.sram_bytes_per_core.value_si == 65536
        assert p.compute_for("int8").peak_rate.value_si == 2e9          # 1 GMAC/s = 2 G op/s
        assert p.compute_for("int8").peak_macs_per_s == 1e9
        assert p.power.static.value_si == approx(5e-3) and p.clock.core.value_si == 250e6
        assert p.memory_level("on_core").read_per_byte == approx(0.25e-12)
    assert validate_file(path) == load_profile(path)


def test_unknown_name_lists_the_shipped_profiles():
    with pytest.raises(UnknownProfileError) as info:
        load_profile("loihi3")
    msg = str(info.value)
    assert "loihi3" in msg and all(n in msg for n in REQUIRED_PROFILES)
    assert isinstance(info.value, FFNeuroError) and isinstance(info.value, UnknownNameError)


def test_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(HardwareProfileError, match="no such file"):
        load_profile(tmp_path / "nope.toml")


# ---- invalid files: the message names the file and the key


def edit(old: str, new: str) -> str:
    assert old in GOOD, old
    return GOOD.replace(old, new, 1)


BAD_CASES = [
    # (id, file text, key the message must name, another fragment it must contain)
    ("unknown top-level key", 'colour = "blue"\n' + GOOD, "colour", "unknown key"),
    ("key after a table lands in it", GOOD + 'colour = "blue"\n', "clock.colour", "unknown key"),
    ("unknown key in a section", edit("[power]\n", '[power]\nleakage = { value = 1, unit = "mW", source = "x", basis = "measured" }\n'),
     "power.leakage", "static"),
    ("unknown key in a quantity", edit('basis = "measured" }\npeak', 'basis = "measured", year = 2024 }\npeak'),
     "compute.int8.mac.year", "unknown key"),
    ("unknown memory level", edit("[memory.on_core]", "[memory.l3]"), "memory.l3", "on_chip"),
    ("missing top-level field", edit('description = "a toy chip"\n', ""), "description", "missing"),
    ("missing required quantity", edit('mac = { value = 2, unit = "pJ", source = "made up, 2024", basis = "measured" }\n', ""),
     "compute.int8.mac", "missing"),
    ("missing source", edit('mac = { value = 2, unit = "pJ", source = "made up, 2024", basis = "measured" }',
                            'mac = { value = 2, unit = "pJ", basis = "measured" }'), "compute.int8.mac.source", "missing"),
    ("missing scope", edit('scope = "op"\n', ""), "compute.int8.scope", "all_in"),
    ("wrong unit dimension", edit('mac = { value = 2, unit = "pJ"', 'mac = { value = 2, unit = "W"'),
     "compute.int8.mac.unit", "'W' is a power unit, but compute.int8.mac needs an energy unit"),
    ("unknown unit", edit('static = { value = 5, unit = "mW"', 'static = { value = 5, unit = "horsepower"'),
     "power.static.unit", "mW"),
    ("case matters in units", edit('static = { value = 5, unit = "mW"', 'static = { value = 5, unit = "MW"'),
     "power.static.unit", "did you mean 'mW'"),
    ("unknown basis", edit('basis = "measured" }\npeak', 'basis = "guessed" }\npeak'), "compute.int8.mac.basis", "assumed"),
    ("basis without a note", edit(', basis = "modelled", note = "4 cores x 250 M"', ', basis = "modelled"'),
     "compute.int8.peak_rate.note", "modelled"),
    ("negative value", edit('mac = { value = 2,', 'mac = { value = -2,'), "compute.int8.mac.value", "> 0"),
    ("zero value", edit('static = { value = 5,', 'static = { value = 0,'), "power.static.value", "> 0"),
    ("string value", edit('mac = { value = 2,', 'mac = { value = "2",'), "compute.int8.mac.value", "number"),
    ("bare number instead of a table", edit('mac = { value = 2, unit = "pJ", source = "made up, 2024", basis = "measured" }', "mac = 2"),
     "compute.int8.mac", "inline table"),
    ("fractional count", edit('count = { value = 4,', 'count = { value = 4.5,'), "cores.count.value", "whole"),
    ("wrong schema_version", edit("schema_version = 1", "schema_version = 2"), "schema_version", "unsupported"),
    ("wrong schema", edit('schema = "ffneuro.hw"', 'schema = "accelergy"'), "schema", "ffneuro.hw"),
    ("unknown kind", edit('kind = "neuromorphic"', 'kind = "fpga"'), "kind", "mcu"),
    ("unknown precision", edit('precisions = ["int8"]', 'precisions = ["int8", "fp7"]'), "precisions[1]", "fp7"),
    ("precision without compute table", edit('precisions = ["int8"]', 'precisions = ["int8", "fp32"]'),
     "compute.fp32", "missing"),
    ("compute table not in precisions", GOOD + '[compute.fp32]\nscope = "op"\nmac = { value = 2, unit = "pJ", source = "x", basis = "measured" }\n',
     "compute.fp32", "not listed"),
    ("bool as a string", edit("supports_training = true", 'supports_training = "yes"'), "supports_training", "true or false"),
    ("learning without training", edit("on_chip_learning = false\nsupports_training = true",
                                       "on_chip_learning = true\nsupports_training = false\ntraining_note = \"x\""),
     "on_chip_learning", "supports_training"),
    ("no training without a reason", edit("supports_training = true", "supports_training = false"), "training_note", "required"),
    ("read without word", edit('word = { value = 32, unit = "bit", source = "made up, 2024", basis = "specified" }\n', ""),
     "memory.on_core.word", "per word"),
    ("neuromorphic without cores", edit("[cores]\ncount", "[nocores]\ncount"), "nocores", "unknown key"),
    ("bad name", edit('name = "toy"', 'name = "Toy Chip"'), "name", "lower-case"),
    ("empty section", GOOD + "[interconnect]\n", "interconnect", "empty"),
    ("unknown mapping rule", edit('conv_weights = { value = "shared"', 'conv_weights = { value = "folded"'),
     "mapping.conv_weights.value", "shared, unrolled"),
    ("mapping choice without source", edit('conv_weights = { value = "shared", source = "made up, 2024", ',
                                           'conv_weights = { value = "shared", '), "mapping.conv_weights.source", "missing"),
    ("learning chip without [learning]", edit("on_chip_learning = false", "on_chip_learning = true"), "learning",
     "on_chip_learning"),
    ("executed_as outside precisions", GOOD + '[executed_as.int8]\nconv = { value = "fp8", source = "x", basis = "specified" }\n',
     "executed_as.int8.conv.value", "int8"),
]


@pytest.mark.parametrize("section", ["neuro", "mapping"])
def test_a_neuromorphic_profile_must_give_neuro_and_mapping(tmp_path, section):
    """A profile without them used to validate and silently change energies (issue 8)."""
    start = GOOD.index(f"[{section}]")
    end = GOOD.index("\n\n", start) + 2
    with pytest.raises(HardwareProfileError, match=rf"toy\.toml: {section}: missing required table"):
        load_profile(write(tmp_path, GOOD[:start] + GOOD[end:]))


@pytest.mark.parametrize("text,key,fragment", [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES])
def test_invalid_profiles_name_file_and_key(tmp_path, text, key, fragment):
    path = write(tmp_path, text, name="broken_chip.toml")
    with pytest.raises(HardwareProfileError) as info:
        load_profile(path)
    msg = str(info.value)
    assert "broken_chip.toml" in msg, msg
    assert f": {key}:" in msg, msg
    assert fragment in msg, msg


def test_neuromorphic_without_cores_is_rejected(tmp_path):
    text = GOOD.split("[cores]")[0] + "[compute" + GOOD.split("[compute", 1)[1]
    with pytest.raises(HardwareProfileError, match=r"broken\.toml: cores: missing"):
        load_profile(write(tmp_path, text, name="broken.toml"))


def test_toml_syntax_error_names_file_and_line(tmp_path):
    text = GOOD.replace('kind = "neuromorphic"', 'kind = = "neuromorphic"')
    with pytest.raises(HardwareProfileError) as info:
        load_profile(write(tmp_path, text, name="typo.toml"))
    msg = str(info.value)
    assert "typo.toml" in msg and "TOML syntax error" in msg and "line 5" in msg, msg


def test_errors_are_ffneuro_errors(tmp_path):
    with pytest.raises(FFNeuroError):
        parse_toml("schema = 1", "inline")


# ---- the dataclasses validate themselves too


def test_quantity_validation():
    q = Quantity.of(23.6, "pJ", source="Davies 2018", basis="modelled", note="simulation")
    assert q.value_si == 2.36e-11 and q.unit == "J" and float(q) == q.value_si
    assert Quantity(1.0, "W", "x", "measured").given_unit == "W"
    with pytest.raises(HardwareProfileError, match="basis"):
        Quantity(1.0, "J", "x", "guessed")
    with pytest.raises(HardwareProfileError, match="note"):
        Quantity(1.0, "J", "x", "assumed")
    with pytest.raises(HardwareProfileError, match="> 0"):
        Quantity(-1.0, "J", "x", "measured")
    with pytest.raises(HardwareProfileError, match="SI unit"):
        Quantity(1.0, "pJ", "x", "measured")
    with pytest.raises(HardwareProfileError, match="source"):
        Quantity(1.0, "J", " ", "measured")
    with pytest.raises(HardwareProfileError, match="whole"):
        Quantity(1.5, "1", "x", "measured")


def test_profile_dataclass_checks_cross_fields():
    p = load_profile("loihi")
    with pytest.raises(HardwareProfileError, match="energy"):
        dataclasses.replace(p.cores, count=p.neuro.synaptic_op)      # count must be a count, not an energy
    with pytest.raises(HardwareProfileError, match="training_note"):
        dataclasses.replace(p, supports_training=False, on_chip_learning=False, training_note="")
    with pytest.raises(HardwareProfileError, match="match precisions"):
        dataclasses.replace(p, precisions=("int8", "fp32"))
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.name = "other"  # type: ignore[misc]
    assert math.isclose(p.on_chip_sram_bytes, 128 * 262144)
