"""``RunConfig.normalise``: input standardisation stored in the run, applied in ``Split.batch`` for every
consumer (training, evaluation, ``ffneuro eval``, ``cam``), refused in one line by export and simulate."""
from __future__ import annotations

import json

import pytest
import torch
from cli_runner import invoke

from ffneuro.config import RunConfig
from ffneuro.data import load_dataset
from ffneuro.data.normalise import NORMALISATIONS, check_normalisation, standardise
from ffneuro.errors import ConfigError, RunFileError
from ffneuro.presets import resolve_config
from ffneuro.store import read_run
from ffneuro.train.runfile import restore_run
from ffneuro.train.trainer import Split, Trainer

SMOKE = ["--preset", "smoke", "--epochs", "1", "--train-limit", "100", "--val-size", "50", "--filters", "4"]


def _raw(split: Split, n: int) -> torch.Tensor:
    return split.x[:n].float() / 255.0


def test_standardise_per_channel_and_none_is_the_identity():
    x = torch.rand(4, 3, 5, 5)
    got = standardise(x.clone(), "imagenet")
    mean, std = (torch.tensor(v).view(1, 3, 1, 1) for v in NORMALISATIONS["imagenet"])
    assert torch.allclose(got, (x - mean) / std)
    one = torch.rand(2, 1, 4, 4)
    assert torch.allclose(standardise(one.clone(), "mnist"), (one - 0.1307) / 0.3081)
    assert torch.allclose(standardise(one.clone(), "half"), 2 * one - 1)
    assert standardise(one, "none") is one


def test_bad_settings_are_config_errors():
    with pytest.raises(ConfigError, match="unknown normalise 'zscore'; valid: none, mnist"):
        RunConfig(normalise="zscore")
    with pytest.raises(ConfigError, match="3-channel statistics but the images have 1 channel"):
        check_normalisation("imagenet", 1)
    check_normalisation("mnist", 1)


def test_a_run_file_written_before_the_field_reads_as_none():
    stored = RunConfig(normalise="mnist").to_dict()
    assert RunConfig.from_dict(json.loads(json.dumps(stored))).normalise == "mnist"
    del stored["normalise"]
    assert RunConfig.from_dict(stored).normalise == "none"


def test_every_split_is_standardised_and_augmentation_sees_the_0_1_images():
    cfg = resolve_config("smoke", {"normalise": "mnist", "train_limit": 50, "val_size": 20, "device": "cpu"})
    tr = Trainer(cfg, load_dataset("synthetic"))
    for split in (tr.train, tr.val, tr.test):
        x, _ = split.batch(slice(0, 8))
        assert torch.allclose(x, (_raw(split, 8) - 0.1307) / 0.3081)
    seen = []
    x, _ = tr.train.batch(slice(0, 8), lambda b: seen.append(b.clone()) or b.flip(-1))
    assert 0.0 <= seen[0].min() and seen[0].max() <= 1.0          # before standardisation
    assert torch.allclose(x, (_raw(tr.train, 8).flip(-1) - 0.1307) / 0.3081)
    with pytest.raises(ConfigError, match="3-channel statistics"):
        Trainer(resolve_config("smoke", {"normalise": "imagenet"}), load_dataset("synthetic"))


@pytest.fixture(scope="module")
def run_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("norm") / "run.h5"
    invoke("train", *SMOKE, "--normalise", "mnist", "--out", path, "-q", ok=True)
    return path


def test_the_option_is_stored_and_a_restored_run_reads_standardised_images(run_file):
    record = read_run(run_file)
    assert record.config["normalise"] == "mnist"
    from ffneuro.config import stored_config
    trainer = restore_run(record, stored_config(record, device="cpu"), "final", None)
    x, _ = trainer.test.batch(slice(0, 16))
    assert torch.allclose(x, (_raw(trainer.test, 16) - 0.1307) / 0.3081)


@pytest.mark.parametrize("command", [["eval", "--device", "cpu"], ["cam", "--samples", "2", "--no-store", "--out", "{tmp}"]])
def test_eval_and_cam_read_the_run_through_its_normalisation(run_file, tmp_path, monkeypatch, command):
    """Every image ``ffneuro eval`` and ``cam`` feed the network passed the run's standardisation."""
    from ffneuro.train import trainer as trainer_module
    seen: list[tuple[str, float]] = []

    def recording(x, name):
        seen.append((name, float(x.min())))
        return standardise(x, name)
    monkeypatch.setattr(trainer_module, "standardise", recording)
    invoke(command[0], run_file, *[a.replace("{tmp}", str(tmp_path / "cam")) for a in command[1:]], ok=True)
    assert seen and all(name == "mnist" for name, _ in seen)
    assert min(low for _, low in seen) >= 0.0          # handed the [0, 1] images, standardised inside


@pytest.mark.parametrize("command", [["export", "--out", "{tmp}/x.nir"], ["simulate", "--hw", "loihi"]])
def test_export_and_simulate_refuse_in_one_line(run_file, tmp_path, command):
    pytest.importorskip("nir")
    args = [a.replace("{tmp}", str(tmp_path)) for a in command]
    result = invoke(args[0], run_file, *args[1:])
    lines = result.output.strip().splitlines()
    assert result.exit_code != 0 and len(lines) == 1, result.output
    assert lines[0].startswith("Error:") and "standardised inputs (normalise 'mnist': (x - 0.1307) / 0.3081)" in lines[0]
    assert not (tmp_path / "x.nir").exists()


def test_cwcomp_presets_standardise_as_the_reference_code():
    """CwComp's Datasets.py: MNIST (0.1307, 0.3081), F-MNIST (0.5, 0.5), CIFAR-10 ImageNet's statistics."""
    got = {p: resolve_config(p, {}).normalise for p in ("cwcomp-mnist", "cwcomp-fashion-mnist", "cwcomp-cifar10")}
    assert got == {"cwcomp-mnist": "mnist", "cwcomp-fashion-mnist": "half", "cwcomp-cifar10": "imagenet"}
    assert resolve_config("mnist-fast", {}).normalise == "none"


def test_stored_bad_normalisation_is_a_run_file_error(run_file):
    from ffneuro.config import stored_config
    record = read_run(run_file)
    record.config["normalise"] = "nope"
    with pytest.raises(RunFileError, match="unknown normalise 'nope'"):
        stored_config(record)
