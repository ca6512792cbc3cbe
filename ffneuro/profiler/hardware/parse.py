"""Parsing: TOML text or a dict shaped like the file into a :class:`~.profile.HardwareProfile`.

Every error names the origin (usually the file) and the dotted key: ``<file>: <key>: <message>``.
"""
from __future__ import annotations

import math
import tomllib
from typing import Any

from .errors import HardwareProfileError, _a
from .profile import (
    _NAME_RE,
    _STACK_NAME_RE,
    CLOCK_FIELDS,
    COMPUTE_FIELDS,
    CORE_FIELDS,
    EXECUTED_OPS,
    INTERCONNECT_FIELDS,
    KINDS,
    LEARNING_FACTS,
    LEARNING_FIELDS,
    MAPPING_FACTS,
    MAPPING_FIELDS,
    MEMORY_FIELDS,
    MEMORY_LEVELS,
    NEURO_FIELDS,
    PARTITIONER_FACTS,
    PARTITIONER_FIELDS,
    POWER_FIELDS,
    PRECISION_BITS,
    ROOFLINE_KERNEL_FIELDS,
    ROOFLINE_KERNELS,
    ROOFLINE_MEMORIES,
    ROOFLINE_MEMORY_FIELDS,
    SCHEMA,
    SCHEMA_VERSION,
    SCOPES,
    STACK_FIELDS,
    VOLTAGE_LEVEL_FIELDS,
    ClockSpec,
    ComputeSpec,
    CoreSpec,
    ExecutedAs,
    HardwareProfile,
    InterconnectSpec,
    LearningSpec,
    MappingSpec,
    MemorySpec,
    NeuroSpec,
    PartitionerSpec,
    PowerSpec,
    RooflineKernel,
    RooflineMemory,
    RooflineSpec,
    StackSpec,
    VoltageLevel,
    VoltageSpec,
)
from .quantities import (
    _UNIT_DIMENSION,
    BASES,
    BASES_NEEDING_NOTE,
    UNITS,
    Fact,
    Quantity,
    _to_si,
    range_problem,
)

TOP_KEYS_REQUIRED = ("schema", "schema_version", "name", "description", "kind", "on_chip_learning",
                     "supports_training", "precisions", "compute")
TOP_KEYS_OPTIONAL = ("process", "training_note", "notes", "cores", "memory", "interconnect", "neuro",
                     "power", "clock", "mapping", "learning", "executed_as", "voltage", "roofline", "partitioner",
                     "stacks")
FACT_KEYS_REQUIRED = ("value", "source", "basis")
QUANTITY_KEYS_REQUIRED = ("value", "unit", "source", "basis")
QUANTITY_KEYS_OPTIONAL = ("note", "fit_set")
FACT_KEYS_OPTIONAL = ("note",)


class _Ctx:
    """Formats errors as '<origin>: <key>: <message>'."""

    def __init__(self, origin: str):
        self.origin = origin

    def fail(self, key: str, msg: str) -> HardwareProfileError:
        return HardwareProfileError(f"{self.origin}: {key}: {msg}" if key else f"{self.origin}: {msg}")

    def check_keys(self, key: str, table: dict, required: tuple[str, ...], optional: tuple[str, ...]) -> None:
        where = f"{key}." if key else ""
        valid = ", ".join((*required, *optional))
        for k in table:
            if k not in required and k not in optional:
                raise self.fail(f"{where}{k}", f"unknown key; valid keys{' in [' + key + ']' if key else ''}: {valid}")
        for k in required:
            if k not in table:
                raise self.fail(f"{where}{k}", "missing required field")

    def table(self, key: str, value: Any) -> dict:
        if not isinstance(value, dict):
            raise self.fail(key, f"expected a table, got {_type_name(value)}")
        return value

    def string(self, key: str, value: Any, *, empty_ok: bool = False) -> str:
        if not isinstance(value, str):
            raise self.fail(key, f"expected a string, got {_type_name(value)}")
        if not empty_ok and not value.strip():
            raise self.fail(key, "must not be empty")
        return value

    def boolean(self, key: str, value: Any) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"expected true or false, got {_type_name(value)}")
        return value

    def choice(self, key: str, value: Any, valid: tuple[str, ...]) -> str:
        self.string(key, value)
        if value not in valid:
            raise self.fail(key, f"unknown value {value!r}; valid: {', '.join(valid)}")
        return value

    def quantity(self, key: str, value: Any, dimension: str) -> Quantity:
        si, table = UNITS[dimension]
        if not isinstance(value, dict):
            raise self.fail(key, f"expected an inline table {{ value, unit, source, basis }} with {_a(dimension)} "
                                 f"unit, got {_type_name(value)}")
        self.check_keys(key, value, QUANTITY_KEYS_REQUIRED, QUANTITY_KEYS_OPTIONAL)
        number = value["value"]
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            raise self.fail(f"{key}.value", f"expected a number, got {_type_name(number)}")
        if not math.isfinite(number) or number <= 0:
            raise self.fail(f"{key}.value", f"must be finite and > 0, got {number}")
        unit = self.string(f"{key}.unit", value["unit"])
        if unit not in table:
            other = _UNIT_DIMENSION.get(unit)
            what = f"{unit!r} is {_a(other)} unit" if other else f"unknown unit {unit!r}"
            same_letters = [u for u in table if u.lower() == unit.lower()]
            hint = f" (units are case-sensitive: did you mean {same_letters[0]!r}?)" if same_letters else ""
            raise self.fail(f"{key}.unit", f"{what}, but {key} needs {_a(dimension)} unit{hint}; "
                                           f"accepted: {', '.join(table)}")
        if dimension == "count" and not float(number).is_integer():
            raise self.fail(f"{key}.value", f"a count must be a whole number, got {number}")
        value_si = _to_si(number, table[unit])
        problem = range_problem(value_si)
        if problem is not None:
            as_si = "" if unit == si else f" ({value_si:g} {si})"
            raise self.fail(f"{key}.value", f"{number:g} {unit}{as_si} is {problem}")
        source, basis, note = self.provenance(key, value, "number")
        fit_set = self.fit_set(key, value, basis)
        try:
            return Quantity(value_si, si, source, basis, note, given_value=number, given_unit=unit, fit_set=fit_set)
        except HardwareProfileError as e:  # every rejection names the file and the key
            raise self.fail(key, str(e)) from None

    def fact(self, key: str, value: Any, choices: tuple[str, ...]) -> Fact:
        """A stated choice: ``{ value = "<one of choices>", source, basis[, note] }``."""
        if not isinstance(value, dict):
            raise self.fail(key, f"expected an inline table {{ value, source, basis }} with value one of "
                                 f"{', '.join(choices)}, got {_type_name(value)}")
        self.check_keys(key, value, FACT_KEYS_REQUIRED, FACT_KEYS_OPTIONAL)
        choice = self.choice(f"{key}.value", value["value"], choices)
        if value["basis"] == "fitted":
            raise self.fail(f"{key}.basis", "a choice is not fitted; only numbers can have basis 'fitted'")
        return Fact(choice, *self.provenance(key, value, "choice"))

    def fit_set(self, key: str, value: dict, basis: str) -> tuple[str, ...]:
        """A fitted number's fit set: the ids of the measurements it was fitted to (required for
        basis 'fitted', refused for any other basis)."""
        ids = value.get("fit_set")
        if basis != "fitted":
            if ids is not None:
                raise self.fail(f"{key}.fit_set", f"only a number with basis 'fitted' has a fit set (basis is {basis!r})")
            return ()
        if not isinstance(ids, list) or not ids:
            raise self.fail(f"{key}.fit_set", "basis 'fitted' needs fit_set: a non-empty array of the measurement "
                                              "ids it was fitted to")
        for i, m in enumerate(ids):
            self.string(f"{key}.fit_set[{i}]", m)
        if len(set(ids)) != len(ids):
            raise self.fail(f"{key}.fit_set", "names a measurement twice")
        return tuple(ids)

    def provenance(self, key: str, value: dict, what: str) -> tuple[str, str, str]:
        """A number's or choice's ``source``, ``basis`` and ``note`` (required for the bases that need one)."""
        source = self.string(f"{key}.source", value["source"])
        basis = self.choice(f"{key}.basis", value["basis"], BASES)
        note = self.string(f"{key}.note", value.get("note", ""), empty_ok=True)
        if basis in BASES_NEEDING_NOTE and not note.strip():
            raise self.fail(f"{key}.note", f"basis {basis!r} needs a note saying how the {what} was derived "
                                           "or why it was assumed")
        return source, basis, note

    def mixed_section(self, key: str, value: Any, numbers: dict[str, tuple[str, bool]],
                      facts: dict[str, tuple[tuple[str, ...], bool]]) -> dict[str, Any]:
        """A table of numbers and facts (``[mapping]``, ``[learning]``)."""
        tbl = self.table(key, value)
        required = tuple(n for n, (_, req) in {**numbers, **facts}.items() if req)
        optional = tuple(n for n, (_, req) in {**numbers, **facts}.items() if not req)
        self.check_keys(key, tbl, required, optional)
        out: dict[str, Any] = {n: self.quantity(f"{key}.{n}", tbl[n], dim) for n, (dim, _) in numbers.items() if n in tbl}
        out.update({n: self.fact(f"{key}.{n}", tbl[n], ch) for n, (ch, _) in facts.items() if n in tbl})
        return out

    def section(self, key: str, value: Any, spec: dict[str, tuple[str, bool]],
                extra: tuple[str, ...] = ()) -> dict[str, Any]:
        tbl = self.table(key, value)
        required = tuple(n for n, (_, req) in spec.items() if req)
        optional = tuple(n for n, (_, req) in spec.items() if not req) + extra
        self.check_keys(key, tbl, required, optional)
        if not any(n in tbl for n in spec):
            raise self.fail(key, f"empty section; give at least one of: {', '.join(spec)}")
        return {n: self.quantity(f"{key}.{n}", tbl[n], dim) for n, (dim, _) in spec.items() if n in tbl}


def _type_name(value: Any) -> str:
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return f"a number ({value!r})"
    if isinstance(value, str):
        return f"a string ({value!r})"
    if isinstance(value, dict):
        return "a table"
    if isinstance(value, list):
        return "an array"
    return type(value).__name__


def profile_from_dict(data: dict, origin: str = "<dict>") -> HardwareProfile:
    """Validate a dict shaped like the TOML file, or like :meth:`HardwareProfile.to_dict`'s output (its
    value_si/unit_si keys are dropped), into a :class:`HardwareProfile`."""
    return parse_profile(_strip_si(data), origin)


def _strip_si(value: Any) -> Any:
    """Drop the value_si/unit_si keys that to_dict adds, so its output parses like a file."""
    if isinstance(value, dict):
        return {k: _strip_si(v) for k, v in value.items() if k not in ("value_si", "unit_si")}
    if isinstance(value, list):   # arrays of tables ([[voltage.levels]])
        return [_strip_si(v) for v in value]
    return value


def _stack(ctx, name: str, value: Any) -> StackSpec:
    """One ``[stacks.NAME]`` table: its numbers, and ``source``/``note`` text; a stack that gives no
    number (it adds nothing) must give both texts, saying why."""
    tbl = ctx.table(f"stacks.{name}", value)
    text = {}
    for k in ("source", "note"):
        if k in tbl:
            if not isinstance(tbl[k], str):
                raise ctx.fail(f"stacks.{name}.{k}", f"expected text, got {_type_name(tbl[k])}")
            text[k] = tbl[k]
    numbers = {k: v for k, v in tbl.items() if k not in text}
    if not numbers:
        if not all(text.get(k, "").strip() for k in ("source", "note")):
            raise ctx.fail(f"stacks.{name}", f"empty section; give at least one of: {', '.join(STACK_FIELDS)} "
                           "(or, for a stack that adds nothing, a source and a note saying why)")
        return StackSpec(name, **text)
    return StackSpec(name, **ctx.section(f"stacks.{name}", numbers, STACK_FIELDS), **text)


def parse_profile(data: dict, origin: str) -> HardwareProfile:
    """Validate parsed TOML (a dict) into a :class:`HardwareProfile`; errors name ``origin`` and the key."""
    ctx = _Ctx(origin)
    if not isinstance(data, dict):
        raise ctx.fail("", "a profile must be a table")
    # schema and version first, so a future file fails on its version, not on a new key
    for k in ("schema", "schema_version"):
        if k not in data:
            raise ctx.fail(k, "missing required field")
    if data["schema"] != SCHEMA:
        raise ctx.fail("schema", f"expected {SCHEMA!r}, got {data['schema']!r}")
    version = data["schema_version"]
    if isinstance(version, bool) or not isinstance(version, int) or version != SCHEMA_VERSION:
        raise ctx.fail("schema_version", f"unsupported version {version!r}; this ffneuro reads {SCHEMA_VERSION}")
    ctx.check_keys("", data, TOP_KEYS_REQUIRED, TOP_KEYS_OPTIONAL)

    name = ctx.string("name", data["name"])
    if not _NAME_RE.match(name):
        raise ctx.fail("name", f"must be lower-case letters, digits, '-' or '_', got {name!r}")
    description = ctx.string("description", data["description"])
    kind = ctx.choice("kind", data["kind"], KINDS)
    on_chip_learning = ctx.boolean("on_chip_learning", data["on_chip_learning"])
    supports_training = ctx.boolean("supports_training", data["supports_training"])
    process = ctx.string("process", data.get("process", ""), empty_ok=True)
    training_note = ctx.string("training_note", data.get("training_note", ""), empty_ok=True)
    if on_chip_learning and not supports_training:
        raise ctx.fail("on_chip_learning", "is true but supports_training is false")
    if not supports_training and not training_note.strip():
        raise ctx.fail("training_note", "required when supports_training = false (say why training cannot run)")
    notes = data.get("notes", [])
    if not isinstance(notes, list):
        raise ctx.fail("notes", f"expected an array of strings, got {_type_name(notes)}")
    notes = tuple(ctx.string(f"notes[{i}]", n) for i, n in enumerate(notes))

    precisions = data["precisions"]
    if not isinstance(precisions, list) or not precisions:
        raise ctx.fail("precisions", "expected a non-empty array of formats, e.g. [\"int8\"]")
    for i, p in enumerate(precisions):
        ctx.choice(f"precisions[{i}]", p, tuple(PRECISION_BITS))
    if len(set(precisions)) != len(precisions):
        raise ctx.fail("precisions", "lists a format twice")

    compute_tbl = ctx.table("compute", data["compute"])
    compute = []
    for p, tbl in compute_tbl.items():
        key = f"compute.{p}"
        if p not in PRECISION_BITS:
            raise ctx.fail(key, f"unknown precision; valid: {', '.join(PRECISION_BITS)}")
        if p not in precisions:
            raise ctx.fail(key, f"precision {p!r} is not listed in precisions")
        tbl = ctx.table(key, tbl)
        if "scope" not in tbl:
            raise ctx.fail(f"{key}.scope", f"missing required field ({' or '.join(repr(s) for s in SCOPES)})")
        scope = ctx.choice(f"{key}.scope", tbl["scope"], SCOPES)
        fields_ = ctx.section(key, tbl, COMPUTE_FIELDS, extra=("scope",))
        compute.append(ComputeSpec(p, scope, **fields_))
    for p in precisions:
        if p not in compute_tbl:
            raise ctx.fail(f"compute.{p}", "missing required table (every format in precisions needs one)")

    cores = None
    if "cores" in data:
        cores = CoreSpec(**ctx.section("cores", data["cores"], CORE_FIELDS))
        if cores.count.value_si < 1:
            raise ctx.fail("cores.count", "must be >= 1")
    if kind == "neuromorphic" and cores is None:
        raise ctx.fail("cores", "missing required table for a neuromorphic target (needed for locality)")
    if kind == "reference" and cores is not None:
        raise ctx.fail("cores", "a reference target has no cores")

    memory = []
    if "memory" in data:
        mem_tbl = ctx.table("memory", data["memory"])
        for level, tbl in mem_tbl.items():
            key = f"memory.{level}"
            if level not in MEMORY_LEVELS:
                raise ctx.fail(key, f"unknown memory level; valid: {', '.join(MEMORY_LEVELS)}")
            spec = {k: v for k, v in MEMORY_FIELDS.items() if not (level == "on_core" and k == "capacity")}
            values = ctx.section(key, tbl, spec)
            if ("read" in values or "write" in values) and "word" not in values:
                raise ctx.fail(f"{key}.word", "missing: needed when read or write is given (energies are per word)")
            memory.append(MemorySpec(level, **values))

    interconnect = None
    if "interconnect" in data:
        values = ctx.section("interconnect", data["interconnect"], INTERCONNECT_FIELDS)
        if "packet" in values and "packet_size" not in values:
            raise ctx.fail("interconnect.packet_size", "missing: needed when interconnect.packet is given")
        interconnect = InterconnectSpec(**values)
    neuro = NeuroSpec(**ctx.section("neuro", data["neuro"], NEURO_FIELDS)) if "neuro" in data else None
    power = PowerSpec(**ctx.section("power", data["power"], POWER_FIELDS)) if "power" in data else None
    clock = ClockSpec(**ctx.section("clock", data["clock"], CLOCK_FIELDS)) if "clock" in data else None
    mapping = MappingSpec(**ctx.mixed_section("mapping", data["mapping"], MAPPING_FIELDS, MAPPING_FACTS)) \
        if "mapping" in data else None
    learning = LearningSpec(**ctx.mixed_section("learning", data["learning"], LEARNING_FIELDS, LEARNING_FACTS)) \
        if "learning" in data else None
    partitioner = PartitionerSpec(**ctx.mixed_section("partitioner", data["partitioner"], PARTITIONER_FIELDS,
                                                      PARTITIONER_FACTS)) if "partitioner" in data else None
    stacks = []
    if "stacks" in data:
        for stack, tbl in ctx.table("stacks", data["stacks"]).items():
            if not _STACK_NAME_RE.match(stack):
                raise ctx.fail(f"stacks.{stack}", "a stack name must be lower-case letters, digits, '.', '-' or '_'")
            stacks.append(_stack(ctx, stack, tbl))
    executed = []
    if "executed_as" in data:
        for p, tbl in ctx.table("executed_as", data["executed_as"]).items():
            key = f"executed_as.{p}"
            if p not in precisions:
                raise ctx.fail(key, f"precision {p!r} is not listed in precisions")
            tbl = ctx.table(key, tbl)
            ctx.check_keys(key, tbl, (), EXECUTED_OPS)
            executed.append(ExecutedAs(p, tuple((op, ctx.fact(f"{key}.{op}", f, tuple(precisions)))
                                                for op, f in tbl.items())))
    if kind == "neuromorphic":
        for section in ("neuro", "mapping"):
            if section not in data:
                raise ctx.fail(section, f"missing required table for a neuromorphic target (docs/hw-profiles.md: "
                                        f"{'its event costs' if section == 'neuro' else 'how conv weights are laid out'})")
    voltage = _voltage(ctx, data["voltage"]) if "voltage" in data else None
    roofline = _roofline(ctx, data["roofline"], precisions) if "roofline" in data else None
    if on_chip_learning and "learning" not in data:
        raise ctx.fail("learning", "missing required table when on_chip_learning = true (what the learning rule stores)")

    try:
        return HardwareProfile(
            name=name, description=description, kind=kind, supports_training=supports_training,
            on_chip_learning=on_chip_learning, precisions=tuple(precisions), compute=tuple(compute),
            cores=cores, memory=tuple(memory), interconnect=interconnect, neuro=neuro, power=power,
            clock=clock, mapping=mapping, learning=learning, executed_as=tuple(executed), process=process,
            voltage=voltage, roofline=roofline, partitioner=partitioner, stacks=tuple(stacks),
            training_note=training_note, notes=notes, origin=origin,
        )
    except HardwareProfileError as e:  # cross-field checks not caught above
        raise ctx.fail("", str(e)) from None


def _voltage(ctx: _Ctx, value: Any) -> VoltageSpec:
    """``[voltage]``: ``core`` (V at clock.core) and optional ``[[voltage.levels]]`` of max_clock and core."""
    tbl = ctx.table("voltage", value)
    ctx.check_keys("voltage", tbl, ("core",), ("levels",))
    core = ctx.quantity("voltage.core", tbl["core"], "voltage")
    raw = tbl.get("levels", [])
    if not isinstance(raw, list):
        raise ctx.fail("voltage.levels", f"expected an array of tables ([[voltage.levels]]), got {_type_name(raw)}")
    levels = []
    for i, lv in enumerate(raw):
        key = f"voltage.levels[{i}]"
        lv = ctx.table(key, lv)
        ctx.check_keys(key, lv, tuple(VOLTAGE_LEVEL_FIELDS), ())
        levels.append(VoltageLevel(**{n: ctx.quantity(f"{key}.{n}", lv[n], dim)
                                      for n, (dim, _) in VOLTAGE_LEVEL_FIELDS.items()}))
    try:
        return VoltageSpec(core=core, levels=tuple(levels))
    except HardwareProfileError as e:
        raise ctx.fail("voltage", str(e)) from None


def _roofline(ctx: _Ctx, value: Any, precisions: list) -> RooflineSpec:
    """``[roofline]``: ``[roofline.weights]``, ``[roofline.activations]`` and ``[roofline.<precision>.<kind>]``."""
    tbl = ctx.table("roofline", value)
    for k in tbl:
        if k not in ROOFLINE_MEMORIES and k not in PRECISION_BITS:
            raise ctx.fail(f"roofline.{k}", f"unknown key; valid: {', '.join(ROOFLINE_MEMORIES)} or a precision")
    memories = {}
    for role in ROOFLINE_MEMORIES:
        if role not in tbl:
            raise ctx.fail(f"roofline.{role}", "missing required table")
        values = ctx.section(f"roofline.{role}", tbl[role], ROOFLINE_MEMORY_FIELDS)
        try:
            memories[role] = RooflineMemory(role, **values)
        except HardwareProfileError as e:
            raise ctx.fail(f"roofline.{role}", str(e)) from None
    kernels = []
    for p, kinds in tbl.items():
        if p in ROOFLINE_MEMORIES:
            continue
        if p not in precisions:
            raise ctx.fail(f"roofline.{p}", f"precision {p!r} is not listed in precisions")
        for kind, k in ctx.table(f"roofline.{p}", kinds).items():
            key = f"roofline.{p}.{kind}"
            if kind not in ROOFLINE_KERNELS:
                raise ctx.fail(key, f"unknown kernel kind; valid: {', '.join(ROOFLINE_KERNELS)}")
            kernels.append(RooflineKernel(p, kind, **ctx.section(key, k, ROOFLINE_KERNEL_FIELDS)))
    try:
        return RooflineSpec(weights=memories["weights"], activations=memories["activations"], kernels=tuple(kernels))
    except HardwareProfileError as e:
        raise ctx.fail("roofline", str(e)) from None


def parse_toml(text: str | bytes, origin: str) -> HardwareProfile:
    """Parse TOML text; a syntax error names ``origin`` and the line."""
    if isinstance(text, bytes):
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError as e:
            raise HardwareProfileError(f"{origin}: not UTF-8 text ({e})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise HardwareProfileError(f"{origin}: TOML syntax error: {e}") from None
    except RecursionError:  # tomllib parses nested arrays and inline tables recursively
        raise HardwareProfileError(f"{origin}: TOML nested too deeply (arrays or inline tables inside each "
                                   "other; a profile needs at most a few levels)") from None
    return parse_profile(data, origin)
