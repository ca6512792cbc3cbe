"""``ffneuro export``: a stored run as a deployable NIR graph, with what differs from the trained network."""
from __future__ import annotations

import click

from .options import data_dir_option, json_option
from .util import echo_json


@click.command("export")
@click.argument("run_file", type=click.Path(dir_okay=False))
@click.option("--format", "fmt", type=click.Choice(["nir"]), default="nir", show_default=True)
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="the NIR file to write")
@click.option("--precision", type=click.Choice(["fp32", "int8"]), default="fp32", show_default=True,
              help="int8: per-output-channel symmetric int8 weights (float values on the int8 grid, scales in metadata)")
@click.option("--weights", type=click.Choice(["final", "best"]), default="final", show_default=True)
@click.option("--images", type=click.IntRange(min=1), default=1000, show_default=True,
              help="test images the accuracy change is measured on")
@click.option("--calibration", type=click.IntRange(min=1), default=1000, show_default=True,
              help="training images the fixed scales replacing RMS normalisation are calibrated on")
@click.option("--force", is_flag=True, help="replace an existing --out")
@data_dir_option
@json_option
def export(run_file, fmt, out, precision, weights, images, calibration, force, data_dir, as_json):
    """Export RUN_FILE as a deployable NIR graph and print what differs from the trained network."""
    from ffneuro.deploy.run import export_run

    report = export_run(run_file, out, fmt=fmt, precision=precision, weights=weights, images=images,
                        calibration=calibration, data_dir=data_dir, force=force)
    if as_json:
        echo_json({"out": report.out, "precision": report.precision, "changes": report.changes,
                   "images": report.images, "accuracy": report.accuracy})
    else:
        click.echo("\n".join(report.lines()))
