"""``ffneuro eval``: rebuild a stored run's network and measure its accuracy again."""
from __future__ import annotations

import click

from ffneuro.config import stored_config
from ffneuro.errors import ConfigError
from ffneuro.store import read_run
from ffneuro.train.runfile import restore_run

from .options import data_dir_option, json_option
from .util import echo_json


@click.command("eval")
@click.argument("run_file", type=click.Path(dir_okay=False))
@click.option("--readout", type=click.Choice(["goodness", "linear", "both"]), default="both", show_default=True,
              help="goodness costs one forward pass per class per image; both: every readout the run has")
@click.option("--weights", type=click.Choice(["final", "best"]), default="final", show_default=True,
              help="final: last epoch; best: the epoch with the best validation accuracy")
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@click.option("--eval-batch-size", type=click.IntRange(min=1), default=None,
              help="rows per evaluation batch (default: the run's); smaller needs less memory")
@data_dir_option
@json_option
def eval_cmd(run_file, readout, weights, split, device, eval_batch_size, data_dir, as_json):
    """Evaluate RUN_FILE's stored weights on the test (or validation) split."""
    record = read_run(run_file)
    given = {} if eval_batch_size is None else {"eval_batch_size": eval_batch_size}
    trainer = restore_run(record, stored_config(record, device=device, **given), weights, data_dir)
    available = trainer.model.readouts()
    wanted = available if readout == "both" else [readout]
    missing = [r for r in wanted if r not in available]
    if missing:
        raise ConfigError(f"{run_file} has no {missing[0]} readout; it has: {', '.join(available)}")
    acc = trainer.evaluate(trainer.test if split == "test" else trainer.val, wanted)
    if as_json:
        echo_json({"run": str(run_file), "weights": weights, "split": split, "accuracy": acc})
    else:
        click.echo(f"{run_file} ({weights} weights, {split}): " + ", ".join(f"{r} {a:.4f}" for r, a in acc.items()))
