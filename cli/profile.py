"""``ffneuro profile``: energy, latency, memory and locality of a network on one or more hardware targets."""
from __future__ import annotations

import click

from ffneuro.profiler import ProfileReport, format_si, load_profile
from ffneuro.profiler.network import with_bp_run
from ffneuro.profiler.stored import profile_group

from .network import describe, resolve_network
from .options import estimate_options, json_option, model_options
from .util import echo_json, no_store_option, store_in_run


@click.command()
@click.argument("run_file", required=False, type=click.Path(dir_okay=False))
@click.option("--hw", "hw_names", required=True, multiple=True,
              help="a shipped profile name (ffneuro hw list) or a .toml path, optionally with a software stack and "
                   "at a clock: NAME[:STACK][@CLOCK] (e.g. cortex-m7@140MHz); repeat for several targets")
@click.option("--bp-run", type=click.Path(dir_okay=False), default=None,
              help="a BP run of the same network: its measured activity feeds the BP training estimate")
@click.option("--profile-batch", type=click.IntRange(min=1), default=None,
              help="batch size to cost (default: the run's or preset's)")
@estimate_options
@model_options(skip=("precision",))
@no_store_option
@json_option
@click.pass_context
def profile(ctx, run_file, hw_names, bp_run, profile_batch, est_precision, timesteps, activity, input_activity, activity_from, overrides, preset,
            store, as_json):
    """Estimate FF training, BP training and both inference readouts on hardware targets (--hw, repeatable).

    With RUN_FILE, the stored network and its measured activation sparsity are used and each estimate
    is also written into the run file (group profile-<target>, the full target string: two clocks or stacks
    of one chip are two groups; not with --no-store, nor when the file is read-only or being trained: then a
    warning says so). Without it, --preset and the model
    flags describe the network (dense activity assumed). A BP RUN_FILE, or --bp-run beside an FF one,
    gives the BP estimate its measured activity. A NIR file (NET.nir, needs ffneuro[nir]) is profiled
    for inference at --timesteps and --activity.

    A run that holds a simulation (ffneuro simulate) is costed for inference with its measured activity
    per layer: the profiled target's, or --activity-from TARGET's. --activity (one rate, or
    NAME=RATE,... by unit name) and --input-activity override it; the network input is dense analog
    by default. Every unit's activity and its source are in the report.
    """
    net = with_bp_run(resolve_network(ctx, run_file, preset, overrides, timesteps=timesteps, activity=activity,
                                           input_activity=input_activity, activity_from=activity_from), bp_run)
    # every name checked before any estimate; a target named twice is profiled once
    profiles = list({hw.label: hw for hw in map(load_profile, hw_names)}.values())
    reports = [(hw, net.profile(hw, precision=est_precision, batch=profile_batch)) for hw in profiles]
    if as_json:
        if len(reports) == 1:
            echo_json({"network": net.label, **reports[0][1].to_dict()})
        else:   # one report per target, by its full target string
            echo_json({"network": net.label, "targets": [hw.label for hw, _ in reports],
                       "reports": {hw.label: report.to_dict() for hw, report in reports}})
    else:
        click.echo(describe(net))
        click.echo("\n\n".join(format_report(report) for _, report in reports))
    if net.run is not None:  # after printing: a run that cannot take the result still shows it
        for hw, report in reports:
            if not store_in_run(net.run, profile_group(hw.label), report.to_columns(),
                                {"hw_origin": hw.origin, "hw_target": hw.label}, store):
                break


def _yes_no(v: bool | None, unknown: str = "unknown (capacity not in the profile)") -> str:
    return unknown if v is None else ("yes" if v else "no")


def _peak(peak_bytes: int | None) -> str:
    """A workload's peak memory, or "not modelled" where its blocks do not model it."""
    return "not modelled" if peak_bytes is None else format_si(peak_bytes, "B")


def _range(r, unit: str) -> str:
    return "" if r is None else f" [{format_si(r[0], unit)} – {format_si(r[1], unit)}]"


def format_report(report: ProfileReport) -> str:
    """A plain-text table per workload: energy by term, latency, cores and on/off-core bytes per unit."""
    lines = [(f"{report.target} ({report.kind}), {report.precision} → {report.native_precision} (MACs execute as "
              f"{report.executed_precision}), batch {report.batch}; per sample")]
    for note in report.notes:
        lines.append(f"  note: {note}")
    if report.unknown:
        lines.append(f"  not in the profile (counted as 0): {', '.join(report.unknown)}")
    head = f"    {'unit':10s} {'energy':>10s} {'compute':>10s} {'on-core':>10s} {'off-core':>10s} {'intercon.':>10s} " \
           f"{'static':>10s} {'latency':>10s} {'cores':>6s} {'binding limit':>22s} {'off-core B':>11s}"
    for w, est in report.workloads.items():
        lines.append(f"  {w}:")
        if not est.supported:
            lines.append(f"    not estimated: {est.reason}")
            continue
        lines.append(head)
        for u in [*est.per_unit, None]:
            name, e, lat, cores, lim, off = ("total", est.energy, est.latency_s, est.cores_used or est.cores_needed, "",
                                             est.bytes_off_core) if u is None \
                else (u.unit, u.energy, u.latency_s, u.cores, u.limited_by, u.bytes_off_core)
            lines.append(f"    {name:10s} {format_si(e.total_j, 'J'):>10s} {format_si(e.compute_j, 'J'):>10s} {format_si(e.on_core_j, 'J'):>10s} "
                         f"{format_si(e.off_core_j, 'J'):>10s} {format_si(e.interconnect_j, 'J'):>10s} {format_si(e.static_j, 'J'):>10s} "
                         f"{format_si(lat, 's'):>10s} {cores:>6d} {lim:>22s} {format_si(off, 'B'):>11s}")
        share = est.off_core_share
        lines.append(f"    energy {format_si(est.energy_j, 'J')}{_range(est.energy_range, 'J')}, latency "
                     f"{format_si(est.latency_s, 's') if est.latency_s is not None else 'not estimated (no rate in the profile)'}"
                     f"{_range(est.latency_range, 's')} (ranges from each number's basis)")
        lines.append(f"    MACs {est.macs:,.0f} (dense, padding counted); synaptic ops {est.synops:,.0f} (dense, no padding), "
                     f"{est.effective_synops:,.0f} effective (zero inputs skipped); charged: "
                     f"{'effective synaptic ops' if report.actions.event_driven else 'dense MACs'}; MACs execute as {est.precision}")
        cores = "" if est.cores_needed is None else (
            f"cores needed {est.cores_needed}" + (f", used {est.cores_used} (idle cores spread over the units)"
                                                  if est.cores_used and est.cores_used != est.cores_needed else "")
            + f", chips {est.chips_needed}; ")
        many_core = report.mapping_style != "monolithic"
        fits = _yes_no(est.fits_on_chip, "not applicable (many-core mapping)" if many_core else
                       "not modelled" if est.peak_memory_bytes is None else "unknown (no on-chip capacity in the profile)")
        lines.append(f"    {cores}peak memory {_peak(est.peak_memory_bytes)}, fits on chip: {fits}, "
                     f"weights on chip: {_yes_no(est.weights_on_chip)}, off-core share of bytes: "
                     f"{'not applicable (no bytes moved)' if share is None else f'{share:.1%}'}")
        lines.append("    activity (events per input element per " + ("timestep" if est.timesteps > 1 else "pass")
                     + "; source): " + ", ".join(f"{u.unit} {u.activity:.3g} ({u.activity_source})"
                                                 for u in est.per_unit))
        for note in est.notes:
            lines.append(f"    note: {note}")
    return "\n".join(lines)
