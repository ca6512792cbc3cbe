"""``ffneuro eval``: rebuild a stored run's network and measure its accuracy again."""
from __future__ import annotations

import click

from ffneuro.config import RunConfig
from ffneuro.errors import ConfigError, RunFileError
from ffneuro.store import read_run
from ffneuro.train import Trainer

from .options import data_dir_option, json_option
from .util import echo_json, load_data


@click.command("eval")
@click.argument("run_file", type=click.Path(dir_okay=False))
@click.option("--readout", type=click.Choice(["goodness", "linear", "both"]), default="both", show_default=True,
              help="goodness costs one forward pass per class per image; both: every readout the run has")
@click.option("--weights", type=click.Choice(["final", "best"]), default="final", show_default=True,
              help="final: last epoch; best: the epoch with the best validation accuracy")
@click.option("--split", type=click.Choice(["test", "val"]), default="test", show_default=True)
@click.option("--device", type=click.Choice(["auto", "cpu", "cuda"]), default="auto", show_default=True)
@data_dir_option
@json_option
def eval_cmd(run_file, readout, weights, split, device, data_dir, as_json):
    """Evaluate RUN_FILE's stored weights on the test (or validation) split."""
    record = read_run(run_file)
    try:
        config = RunConfig.from_dict({**record.config, "device": device})
    except (ConfigError, TypeError) as exc:
        raise RunFileError(f"{run_file}: stored config is not valid for this ffneuro: {exc}") from exc
    state = record.weights(weights)
    trainer = Trainer(config, load_data(config.dataset, data_dir))
    available = trainer.model.readouts()
    wanted = available if readout == "both" else [readout]
    missing = [r for r in wanted if r not in available]
    if missing:
        raise ConfigError(f"{run_file} has no {missing[0]} readout; it has: {', '.join(available)}")
    try:
        trainer.load_state_dict(state)
    except (RuntimeError, KeyError, ValueError, TypeError) as exc:
        reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        raise RunFileError(f"{run_file}: the stored {weights} weights do not fit the network of its config: {reason}") from exc
    acc = trainer.evaluate(trainer.test if split == "test" else trainer.val, wanted)
    if as_json:
        echo_json({"run": str(run_file), "weights": weights, "split": split, "accuracy": acc})
    else:
        click.echo(f"{run_file} ({weights} weights, {split}): " + ", ".join(f"{r} {a:.4f}" for r, a in acc.items()))
