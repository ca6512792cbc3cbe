"""Operating points: a profile at another core clock (``--hw NAME@CLOCK``, e.g. ``cortex-m7@140MHz``),
and with another of its software stacks (``--hw NAME:STACK``, e.g. ``cortex-m7:bosch-v1.2@140MHz``).

Everything the profile derives from the clock is rederived, nothing else: peak rates and on-chip
bandwidths scale with the clock, event times with its inverse; the core voltage is the lowest
``[[voltage.levels]]`` entry that runs the clock (unchanged where the profile gives no levels); supply
power follows ``dynamic ∝ f·V²`` and ``static ∝ V``; all-in MAC energies are that power over the new
rate. Roofline constants are per cycle and stay; a flash's wait states follow from its access time.
"""
from __future__ import annotations

import re
from dataclasses import replace

from .errors import HardwareProfileError
from .parse import profile_from_dict
from .profile import _STACK_NAME_RE, STACK_FIELDS, STACK_KERNEL_SPEEDS, HardwareProfile

_CLOCK_UNITS = {"Hz": 1.0, "kHz": 1e3, "MHz": 1e6, "GHz": 1e9}
_CLOCK_RE = re.compile(r"^([0-9]+(?:\.[0-9]+)?)\s*(Hz|kHz|MHz|GHz)$")
FORM = "NAME@CLOCK, CLOCK a positive number and a unit (Hz, kHz, MHz, GHz), e.g. cortex-m7@140MHz"


class OperatingPointError(HardwareProfileError):
    """A ``NAME@CLOCK`` that is malformed or names a clock the profile cannot run at."""


def split_operating_point(text: str) -> tuple[str, float | None]:
    """``"cortex-m7@140MHz"`` → ``("cortex-m7", 140e6)``; text without ``@`` → ``(text, None)``.
    The clock is the part after the last ``@`` (a path may hold an ``@`` in a folder name)."""
    if "@" not in text:
        return text, None
    name, _, clock = text.rpartition("@")
    if "/" in clock:   # the @ belongs to a folder of a path, not to an operating point
        return text, None
    m = _CLOCK_RE.match(clock.strip())
    if not name or m is None:
        raise OperatingPointError(f"bad hardware operating point {text!r}; valid form: {FORM}")
    hz = float(m.group(1)) * _CLOCK_UNITS[m.group(2)]
    if hz <= 0:
        raise OperatingPointError(f"bad hardware operating point {text!r}: the clock must be > 0; valid form: {FORM}")
    return name, hz


def split_stack(text: str) -> tuple[str, str | None]:
    """``"cortex-m7:bosch-v1.2"`` → ``("cortex-m7", "bosch-v1.2")``; text without a stack → ``(text, None)``.
    The stack is the part after the last ``:`` where that part is a stack name (a path's ``C:\\`` is not)."""
    name, sep, stack = text.rpartition(":")
    if not sep or not name or "/" in stack or "\\" in stack:
        return text, None
    if not _STACK_NAME_RE.match(stack):
        raise OperatingPointError(f"bad software stack in {text!r}: {stack!r}; valid form: NAME:STACK, STACK of "
                                  "lower-case letters, digits, '.', '-' or '_' (ffneuro hw show NAME lists them)")
    return name, stack


def _merge_fit(q: dict, other: dict, factor: float, note: str) -> None:
    """``q`` × ``factor`` (``other``'s value), fitted where either was, on the union of their fit sets."""
    q["value"] = q["value"] * factor
    q["note"] = (q.get("note", "") + f"; {note}").lstrip("; ")
    fit_set = sorted({*q.get("fit_set", []), *other.get("fit_set", [])})
    if fit_set:
        q["basis"], q["fit_set"] = "fitted", fit_set
    elif q["basis"] in ("measured", "specified"):
        q["basis"] = "modelled"


def with_stack(hw: HardwareProfile, name: str) -> HardwareProfile:
    """``hw`` with its software stack ``name`` selected: it becomes the profile's default stack (the one a
    neuromorphic estimate adds per timestep), and on an MCU its kernel speeds multiply the [roofline]
    ceilings (dense: conv, linear; separable: depthwise, pointwise), its ``layer_overhead`` replaces every
    kernel's call overhead and its ``supply_power`` the running power (dynamic = supply - static; all-in
    MAC energies follow). Numbers the stack leaves out keep the profile's."""
    st = hw.stack(name)
    if hw.selected_stack:
        if hw.selected_stack == name:
            return hw
        raise OperatingPointError(f"{hw.label}: a software stack is already selected; load {hw.name}:{name} instead")
    d = hw.to_dict()
    sd = st.to_dict()
    d["stacks"] = {name: sd, **{k: v for k, v in d["stacks"].items() if k != name}}
    why = f"software stack {name}"
    if "roofline" in d:
        for field, kinds in STACK_KERNEL_SPEEDS.items():
            if field not in sd:
                continue
            for prec, table in d["roofline"].items():
                if prec in ("weights", "activations"):
                    continue
                for kind in kinds:
                    if kind in table:
                        _merge_fit(table[kind]["macs_per_cycle"], sd[field], sd[field]["value_si"],
                                   f"× {sd[field]['value_si']:.4g} ({why}'s stacks.{name}.{field})")
        if "layer_overhead" in sd:
            for prec, table in d["roofline"].items():
                if prec in ("weights", "activations"):
                    continue
                for kind in table.values():
                    kind["overhead"] = dict(sd["layer_overhead"])
    if "supply_power" in sd and hw.power is not None:
        old = hw.power.running_w or (hw.power.typical.value_si if hw.power.typical else None)
        new = sd["supply_power"]["value_si"]
        supply = {k: v for k, v in sd["supply_power"].items() if k not in ("value_si", "unit_si")}
        supply["note"] = (supply.get("note", "") + f"; {why}'s supply power").lstrip("; ")
        d["power"]["typical"] = dict(supply)
        static = hw.power.static.value_si if hw.power.static else 0.0
        if hw.power.dynamic is not None:
            if new <= static:
                raise OperatingPointError(f"{hw.name}:{name}: supply_power {new:g} W is not above power.static "
                                          f"{static:g} W")
            dyn = dict(supply)
            dyn.update(value=new - static, unit="W",
                       note=f"{why}: supply_power {new:g} W - power.static {static:g} W")
            if dyn["basis"] in ("measured", "specified"):
                dyn["basis"] = "modelled"
            d["power"]["dynamic"] = dyn
        if old:
            for c in d["compute"].values():
                if c["scope"] == "all_in":
                    for k in ("mac", "add", "mult"):
                        if k in c:
                            c[k]["value"] = c[k]["value"] * new / old
                            c[k]["note"] = (c[k].get("note", "") + f"; × {new / old:.4g} ({why}'s supply power "
                                            f"over the profile's)").lstrip("; ")
    d["notes"] = [*d.get("notes", []), f"{why} selected (--hw {hw.name}:{name})"]
    out = profile_from_dict(d, origin=f"{hw.origin or hw.name} with {why}")
    return replace(out, operating_point=hw.operating_point, selected_stack=name)


def _fmt_hz(hz: float) -> str:
    for unit, f in (("GHz", 1e9), ("MHz", 1e6), ("kHz", 1e3)):
        if hz >= f:
            return f"{hz / f:g} {unit}"
    return f"{hz:g} Hz"


def voltage_at(hw: HardwareProfile, clock_hz: float) -> tuple[float | None, float | None]:
    """(reference core voltage, core voltage at ``clock_hz``) in V; (None, None) without ``[voltage]``.
    Refused above the highest level; without levels the voltage is held."""
    if hw.voltage is None:
        return None, None
    ref = hw.voltage.core.value_si
    if not hw.voltage.levels:
        return ref, ref
    level = hw.voltage.level_for(clock_hz)
    if level is None:
        top = hw.voltage.levels[-1].max_clock.value_si
        raise OperatingPointError(f"{hw.name}@{_fmt_hz(clock_hz)}: above the highest voltage level "
                                  f"({_fmt_hz(top)}); valid: a clock up to {_fmt_hz(top)}")
    return ref, level.core.value_si


def at_clock(hw: HardwareProfile, clock_hz: float) -> HardwareProfile:
    """``hw`` at core clock ``clock_hz``, with what it derives from the clock and voltage rederived."""
    if hw.clock is None or hw.clock.core is None:
        raise OperatingPointError(f"{hw.name} gives no clock.core, so it has no operating point to change; "
                                  f"use --hw {hw.name}")
    ref_hz = hw.clock.core.value_si
    v_ref, v_new = voltage_at(hw, clock_hz)
    if (hw.voltage is None or not hw.voltage.levels) and clock_hz > ref_hz * (1 + 1e-12):
        raise OperatingPointError(f"{hw.name}@{_fmt_hz(clock_hz)}: the profile states no operating point above its "
                                  f"clock ({_fmt_hz(ref_hz)}); valid: a clock up to {_fmt_hz(ref_hz)}")
    r = clock_hz / ref_hz
    vr = 1.0 if v_ref is None else v_new / v_ref
    d = hw.to_dict()
    where = f"{hw.name}@{_fmt_hz(clock_hz)}"
    why = f"scaled for {where} from {_fmt_hz(ref_hz)}"

    def scale(q: dict, factor: float, note: str) -> None:
        q["value"] = q["value"] * factor
        q["note"] = (q.get("note", "") + f"; {note}").lstrip("; ")
        if q["basis"] in ("measured", "specified"):   # a number no longer read off the source as it stands
            q["basis"] = "scaled"

    d["clock"]["core"].update(value=clock_hz / 1e6, unit="MHz")
    d["clock"]["core"]["note"] = (d["clock"]["core"].get("note", "") + f"; operating point {where} (profile: "
                                  f"{_fmt_hz(ref_hz)})").lstrip("; ")
    if d["clock"]["core"]["basis"] in ("measured", "specified"):
        d["clock"]["core"]["basis"] = "scaled"
    if hw.voltage is not None and vr != 1.0:
        scale(d["voltage"]["core"], vr, f"{why}: the voltage level that runs {_fmt_hz(clock_hz)}")
    for c in d["compute"].values():
        if "peak_rate" in c:
            scale(c["peak_rate"], r, f"{why} (rate ∝ clock)")
    # powers: dynamic ∝ f·V², static ∝ V; with no split, an all-in power is taken as all dynamic
    p = hw.power
    power_ratio = r * vr ** 2
    if p is not None:
        if p.dynamic is not None:
            scale(d["power"]["dynamic"], r * vr ** 2, f"{why} (dynamic ∝ f·V²)")
            if p.static is not None:
                scale(d["power"]["static"], vr, f"{why} (static ∝ V)")
            old = p.running_w
            new = p.dynamic.value_si * r * vr ** 2 + (0.0 if p.static is None else p.static.value_si * vr)
            power_ratio = new / old
            if p.typical is not None:
                scale(d["power"]["typical"], power_ratio, f"{why} (static + dynamic at the new point)")
        elif p.static is not None and vr != 1.0:
            scale(d["power"]["static"], vr, f"{why} (static ∝ V)")
    for c in d["compute"].values():
        if c["scope"] == "all_in":   # power / rate: the power's change over the rate's
            scale(c["mac"], power_ratio / r, f"{why} (all-in: power ratio {power_ratio:.3g} / rate ratio {r:.3g})")
            for k in ("add", "mult"):
                if k in c:
                    scale(c[k], power_ratio / r, f"{why} (all-in)")
        elif vr != 1.0:                # an op's switching energy ∝ V²
            for k in ("mac", "add", "mult"):
                if k in c:
                    scale(c[k], vr ** 2, f"{why} (energy per op ∝ V²)")
    for level in ("on_core", "on_chip"):   # memories on the core clock; off-chip DRAM/HBM has its own
        m = d.get("memory", {}).get(level)
        if m and "bandwidth" in m:
            scale(m["bandwidth"], r, f"{why} (on the core clock)")
    for sec, keys in (("neuro", ("synaptic_op_time", "neuron_update_time", "synaptic_update_time")),
                      ("interconnect", ("hop_time",))):
        for k in keys:
            if k in d.get(sec, {}):
                scale(d[sec][k], 1 / r, f"{why} (time ∝ 1/clock)")
    if "bandwidth" in d.get("interconnect", {}):
        scale(d["interconnect"]["bandwidth"], r, f"{why} (on the core clock)")
    # roofline constants are per cycle (or a flash access time whose wait states follow the clock): unchanged
    d["notes"] = [*d.get("notes", []), f"operating point {where}: {why}; voltage "
                  + (f"{v_new:g} V (profile: {v_ref:g} V)" if v_ref is not None else "not given (held)")]
    out = profile_from_dict(d, origin=f"{hw.origin or hw.name} at {_fmt_hz(clock_hz)}")
    return replace(out, operating_point=_fmt_hz(clock_hz).replace(" ", ""), selected_stack=hw.selected_stack)


def describe(hw: HardwareProfile) -> list[str]:
    """Lines for ``ffneuro hw show``: the operating point, how to choose another, what scales with it,
    the roofline's ceilings, and which numbers were fitted on which measurements."""
    out = []
    clock = hw.clock.core.value_si if (hw.clock and hw.clock.core) else None
    if clock is None:
        out.append("operating point: no clock.core, so --hw NAME@CLOCK is refused for this target")
    else:
        volts = f", core {hw.voltage.core.value_si:g} V" if hw.voltage else ""
        if hw.voltage and hw.voltage.levels:
            top = hw.voltage.levels[-1].max_clock.value_si
            levels = ", ".join(f"<= {_fmt_hz(lv.max_clock.value_si)}: {lv.core.value_si:g} V" for lv in hw.voltage.levels)
            choose = f"a clock up to {_fmt_hz(top)}; voltage levels {levels}"
        else:
            choose = f"a clock up to {_fmt_hz(clock)} (no voltage levels given: voltage held)"
        out.append(f"operating point: {_fmt_hz(clock)}{volts}. Another: --hw {hw.name}@CLOCK (e.g. {hw.name}@"
                   f"{_fmt_hz(clock / 2).replace(' ', '')}), {choose}")
        out.append("  scales with the clock: peak rates and on-chip bandwidths (∝ f), event times (∝ 1/f), power "
                   "(dynamic ∝ f·V², static ∝ V; an unsplit all-in power counts as dynamic), all-in MAC energies "
                   "(power / rate); roofline ceilings are per cycle and a flash's wait states follow its access time")
    if hw.roofline is not None:
        for p in hw.roofline.precisions:
            ks = ", ".join(f"{k.kind} {k.macs_per_cycle.value_si:g}" + (f" (+{k.overhead.value_si:g} cycles/call)"
                                                                          if k.overhead else "")
                           for k in hw.roofline.for_precision(p))
            out.append(f"roofline {p} (MAC/cycle): {ks}; latency = Σ max(compute, memory) + overhead per layer")
        if hw.power is not None and hw.power.running_w is not None:
            out.append(f"  energy with the roofline = supply power ({hw.power.running_w * 1e3:.4g} mW = static + dynamic) "
                       "× latency")
    out.extend(_describe_stacks(hw))
    for key, q in hw.fitted():
        out.append(f"fitted: {key} = {q} on {', '.join(q.fit_set)} (validate on other measurements only)")
    return out


def _describe_stacks(hw: HardwareProfile) -> list[str]:
    """The software stacks, the selected (or default) one first, and how to choose another."""
    if not hw.stacks:
        return []
    chosen = hw.stacks[0].name
    how = "selected" if hw.selected_stack else "default"
    out = [f"software stack: {chosen} ({how}). Another: --hw {hw.name}:STACK (e.g. {hw.name}:{hw.stacks[-1].name}); "
           f"stacks: {', '.join(st.name for st in hw.stacks)}"]
    for i, st in enumerate(hw.stacks):
        parts = [f"{k} {getattr(st, k)}" + (" (fitted)" if getattr(st, k).basis == "fitted" else "")
                 for k in STACK_FIELDS if getattr(st, k) is not None]
        if not parts and st.note:
            parts = [f"no numbers: {st.note}"]
        own = i == 0 and not hw.selected_stack and hw.roofline is not None
        out.append(f"  {st.name}: {', '.join(parts) or '-'}" + ("; the roofline and power above are its numbers" if own else ""))
    return out
