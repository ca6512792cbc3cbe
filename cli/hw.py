"""``ffneuro hw``: the hardware targets the profiler knows, and a validator for your own."""
from __future__ import annotations

import click

from ffneuro.profiler import load_profile, shipped_profiles, validate_file
from ffneuro.profiler.hardware import describe

from .options import json_option
from .util import echo_json, table


def _row(p) -> list[str]:
    cores = "-" if p.cores is None else str(p.n_cores)
    return [p.name, p.kind, cores, ",".join(p.precisions), "yes" if p.supports_training else "no", p.description]


@click.group()
def hw():
    """Hardware profiles (hw_profiles/*.toml) for `ffneuro profile` and `ffneuro compare`."""


@hw.command("list")
@json_option
def list_cmd(as_json):
    """List the shipped hardware profiles."""
    profiles = [load_profile(n) for n in shipped_profiles()]
    if as_json:
        echo_json([{"name": p.name, "kind": p.kind, "cores": p.n_cores, "precisions": list(p.precisions),
                    "supports_training": p.supports_training, "description": p.description} for p in profiles])
        return
    click.echo(table([["name", "kind", "cores", "precisions", "training", "description"], *map(_row, profiles)]))


@hw.command("show")
@click.argument("name_or_path")
@json_option
def show_cmd(name_or_path, as_json):
    """Show every number of a profile with its unit, source and basis.

    NAME_OR_PATH may carry an operating point, NAME@CLOCK (e.g. cortex-m7@140MHz): the profile at that
    core clock, with what it derives from the clock rederived (rates ∝ f, power: dynamic ∝ f·V² and
    static ∝ V at the voltage level that runs the clock). The same form works wherever --hw is taken."""
    p = load_profile(name_or_path)
    if as_json:
        echo_json(p.to_dict())
        return
    click.echo(f"{p.name}: {p.description}  [{p.kind}]  ({p.origin})")
    click.echo(f"  training: {'supported' if p.supports_training else 'not supported'}"
               + (f" — {p.training_note}" if p.training_note else ""))
    rows = [["key", "value", "basis", "source"]]
    rows += [[key, str(q), q.basis, q.source] for key, q in p.quantities()]
    rows += [[key, str(f), f.basis, f.source] for key, f in p.facts()]
    click.echo("\n".join("  " + line for line in table(rows).splitlines()))
    for line in describe(p):
        click.echo(f"  {line}")
    for note in p.notes:
        click.echo(f"  note: {note}")
    missing = p.unknown_fields()
    if missing:
        click.echo("  not given (left out of estimates): " + ", ".join(missing))


@hw.command("validate")
@click.argument("path", type=click.Path(dir_okay=False))
def validate_cmd(path):
    """Check a profile TOML against the schema; exit 1 with the file and key on the first problem."""
    p = validate_file(path)
    missing = p.unknown_fields()
    click.echo(f"{path}: ok ({p.name}, {p.kind}, {sum(1 for _ in p.quantities())} numbers, "
               f"{sum(1 for _ in p.facts())} stated choices)"
               + (f"; not given, so left out of estimates: {', '.join(missing)}" if missing else ""))
