"""``ffneuro cam``: class activation maps of a stored FF run, as PNGs and as a ``cam`` group in the run file."""
from __future__ import annotations

from pathlib import Path

import click
import numpy as np
import torch

from ffneuro.config import stored_config
from ffneuro.errors import ConfigError, FFNeuroError
from ffneuro.models.cam import goodness_maps, linear_cams
from ffneuro.store import read_run
from ffneuro.train.runfile import restore_run

from .options import data_dir_option
from .util import no_store_option, one_line_errors, pyplot, store_in_run

MAX_SAMPLES = 100  # the maps go into the run file: (N, classes, H, W) per unit and map kind


@click.command("cam")
@click.argument("run_file", type=click.Path(dir_okay=False))
@click.option("--samples", type=click.IntRange(1, MAX_SAMPLES), default=8, show_default=True,
              help="the first N images of the split")
@click.option("--out", "out_dir", type=click.Path(), required=True,
              help="folder for the PNGs (one per sample; created if missing)")
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True)
@click.option("--weights", type=click.Choice(["final", "best"]), default="final", show_default=True,
              help="final: last epoch; best: the epoch with the best validation accuracy")
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@data_dir_option
@no_store_option
@one_line_errors
def cam(run_file, samples, out_dir, split, weights, device, data_dir, store):
    """Class activation maps of RUN_FILE's FF network on the first N images of a split.

    Per readout unit: the linear-readout CAM (each position's contribution to a class's logit, for the
    neutral-labelled image) and the goodness map (each neuron position's goodness with a label embedded).
    Writes one PNG per sample into OUT and stores the maps in the run file's ``cam`` group (not with
    --no-store, nor when the file is read-only or being trained: then a warning says so).
    """
    _cam(run_file, samples, Path(out_dir), split, weights, device, data_dir, store)


def _cam(run_file, samples, out_dir: Path, split, weights, device, data_dir, store: bool = True) -> None:
    record = read_run(run_file)
    if record.config.get("algo", "ff") != "ff":
        raise ConfigError(f"{run_file} is a {record.config.get('algo')} run; CAM needs FF units (--algo ff)")
    config = stored_config(record, device=device)
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"--out {out_dir} exists and is not a folder")
    trainer = restore_run(record, config, weights, data_dir, samples=samples)
    data = trainer.test if split == "test" else trainer.val
    if len(data) == 0:
        raise ConfigError(f"the {split} split of {run_file} is empty")
    n = min(samples, len(data))
    index = torch.arange(n, device=data.y.device)
    x, y = data.batch(index)
    model = trainer.model
    model.eval()
    with torch.no_grad():
        try:
            lin = linear_cams(model, x) if model.linear is not None else {}
            good = goodness_maps(model, x)
        except ValueError as exc:   # e.g. fully connected units: no spatial map to draw
            raise ConfigError(f"{run_file}: {exc}") from None
        preds = {r: p.cpu().numpy() for r, p in model.predict_all(x, model.readouts()).items()}
    lin = {k: v.cpu().numpy() for k, v in lin.items()}
    good = {k: v.cpu().numpy() for k, v in good.items()}
    labels = y.cpu().numpy()

    values = {"sample": np.arange(n), "label": labels}
    values.update({f"pred_{r}": p for r, p in preds.items()})
    values.update({f"linear_{u}": m for u, m in lin.items()})
    values.update({f"goodness_{u}": m for u, m in good.items()})
    attrs = {"split": split, "weights": weights, "samples": n, "classes": model.num_classes,
             "units": ",".join(good), "maps": ",".join(["linear", "goodness"] if lin else ["goodness"]),
             "linear": "sum_c W_u[k,c,h,w]*A_u[n,c,h,w], neutral label, hand-on resolution",
             "goodness": "goodness of position (h,w) with label k embedded, neuron resolution"}
    stored = store_in_run(run_file, "cam", values, attrs, store)
    where = f"maps stored in {run_file} (group 'cam')" if stored else "maps not stored"

    try:
        pyplot()
    except FFNeuroError as exc:
        raise FFNeuroError(f"{where}, but no PNGs: {exc}") from None
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"cannot create --out folder {out_dir}: {exc}") from exc
    images = x.cpu().numpy()
    for i in range(n):
        _plot_sample(out_dir / f"cam_{split}_{i:04d}.png", images[i], int(labels[i]),
                     {r: int(p[i]) for r, p in preds.items()},
                     {u: m[i, labels[i]] for u, m in lin.items()},
                     {u: m[i, labels[i]] for u, m in good.items()})
    click.echo(f"{n} CAM figure(s) in {out_dir}; {where}")


def _plot_sample(path: Path, image: np.ndarray, label: int, preds: dict[str, int],
                 lin: dict[str, np.ndarray], good: dict[str, np.ndarray]) -> None:
    """Input image, then per readout unit (rows) the true class's CAM and goodness map, centred at 0."""
    plt = pyplot()
    units = list(good)
    kinds = (["linear"] if lin else []) + ["goodness"]
    fig, axes = plt.subplots(len(units), 1 + len(kinds), figsize=(3 * (1 + len(kinds)), 2.8 * len(units)),
                             squeeze=False)
    img = image[0] if image.shape[0] == 1 else np.transpose(image, (1, 2, 0))
    axes[0, 0].imshow(img, cmap="gray" if image.shape[0] == 1 else None, vmin=0, vmax=1)
    axes[0, 0].set_title(f"input (label {label})", fontsize=9)
    for r, unit in enumerate(units):
        for c, kind in enumerate(kinds, start=1):
            m = (lin if kind == "linear" else good)[unit]
            lim = float(np.abs(m).max()) or 1.0
            im = axes[r, c].imshow(m, cmap="RdBu_r", vmin=-lim, vmax=lim)
            axes[r, c].set_title(f"{unit} {'linear CAM' if kind == 'linear' else 'goodness'} (class {label})", fontsize=9)
            fig.colorbar(im, ax=axes[r, c], fraction=0.046, pad=0.04)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    for r in range(1, len(units)):
        axes[r, 0].axis("off")
    fig.suptitle(f"true {label}; predicted " + ", ".join(f"{r} {p}" for r, p in preds.items()), fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
