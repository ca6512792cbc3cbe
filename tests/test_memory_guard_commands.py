"""The memory guard and the stored-network check cover eval, cam and profile of a stored run (issue 18 item 8):
a crafted config (``filters=10**9``: 196 GB) is one ``Error:`` line, quickly, before anything is allocated."""
from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import h5py
import numpy as np
import pytest
import torch
from click.testing import CliRunner
from ffneuro.cli.main import main

from ffneuro.config import stored_config
from ffneuro.data import dataset_shape
from ffneuro.errors import ConfigError, NotModelled, RunFileError
from ffneuro.models import build_model
from ffneuro.presets import resolve_config
from ffneuro.profiler.network import network_from_run
from ffneuro.store import read_run
from ffneuro.store.sizes import check_stored_network, stored_weight_elements
from ffneuro.train import memory_guard
from ffneuro.train.memory_guard import check_restore_memory
from ffneuro.train.runfile import check_restore

sys.path.insert(0, str(Path(__file__).parent))
from hostile_files import good_run  # noqa: E402

MB = 2**20


def _with_config(path: Path, **changes) -> Path:
    """The run at ``path`` with its stored config's keys changed (as a hostile neighbour would edit it)."""
    with h5py.File(path, "a") as f:
        config = json.loads(f["config"].attrs["json"])
        config.update(changes)
        f["config"].attrs["json"] = json.dumps(config)
    return path


def _sized_run(folder: Path, name: str, config_changes: dict, *, weights: bool = True) -> Path:
    """A run of the smoke preset whose final weights are the real network's (so only the config lies)."""
    path = good_run(folder, name, status="complete" if weights else "running", epochs=1 if weights else 0)
    if weights:
        config = resolve_config("smoke", {})
        state = build_model(config, *dataset_shape(config.dataset)).state_dict()
        with h5py.File(path, "a") as f:
            del f["weights/final"]
            for k, v in state.items():
                f[f"weights/final/{k}"] = v.numpy()
    return _with_config(path, **config_changes)


def test_a_config_claiming_more_parameters_than_the_file_stores_is_refused(tmp_path):
    sound = _sized_run(tmp_path, "sound.h5", {})
    rec = read_run(sound)
    specs = check_stored_network(rec, stored_config(rec), *dataset_shape("synthetic"))
    assert sum(s.params for s in specs) <= stored_weight_elements(sound)[1]
    big = _sized_run(tmp_path, "big.h5", {"filters": 10**9})
    rec = read_run(big)
    with pytest.raises(RunFileError, match=r"big\.h5: its config describes a network of [\d,]+ parameters but its "
                                           r"final weights hold [\d,]+ values"):
        check_stored_network(rec, stored_config(rec), *dataset_shape("synthetic"))


def test_eval_of_a_sound_run_passes_the_checks_and_any_eval_batch_size_gives_the_same_accuracy(tmp_path):
    sound = _sized_run(tmp_path, "sound.h5", {})
    runner = CliRunner()
    default = runner.invoke(main, ["eval", str(sound), "--json", "--device", "cpu"])
    small = runner.invoke(main, ["eval", str(sound), "--json", "--device", "cpu", "--eval-batch-size", "20"])
    assert default.exit_code == 0 and small.exit_code == 0, default.output + small.output
    assert json.loads(default.stdout)["accuracy"] == json.loads(small.stdout)["accuracy"]


@pytest.mark.parametrize("changes", [
    {"preset": None, "algo": "ff", "layers": 3, "filters": 6, "kernel": 3, "pool": "max"},
    {"preset": None, "algo": "bp", "layers": 2, "filters": 5, "kernel": 3, "readout": "linear"},
    {"preset": None, "arch": "fc", "layers": 2, "filters": 20},
    {"preset": None, "arch": "cfse", "layers": 2, "filters": 20, "kernel": 3},
    {"preset": None, "arch": "dwsep", "layers": 2, "filters": 8, "kernel": 3},
    {"preset": None, "arch": "residual", "layers": 2, "filters": 8, "kernel": 3},
    {"preset": None, "arch": "trifecta", "layers": 2, "filters": 8, "kernel": 3},
])
def test_every_block_stores_at_least_the_parameters_its_spec_counts(changes):
    """The check can never refuse a genuine run: each block's spec counts no more parameters than the
    network it builds stores (its state dict holds them all, and readouts and buffers besides)."""
    config = resolve_config("smoke", {k: v for k, v in changes.items() if k != "preset"})
    specs = config.check_shapes((1, 28, 28), 10)
    stored = sum(v.numel() for v in build_model(config, (1, 28, 28), 10).state_dict().values())
    assert 0 < sum(s.params for s in specs) <= stored


def test_the_memory_guard_refuses_an_evaluation_that_does_not_fit_and_names_a_batch_that_does():
    config = resolve_config("smoke", {"eval_batch_size": 100_000})
    with pytest.raises(ConfigError) as exc:
        check_restore_memory(config, (1, 16, 16), 10, eval_images=200_000, where="r.h5", available=300 * MB)
    message = str(exc.value)
    assert message.startswith("r.h5: its network needs about") and "\n" not in message
    best = int(message.split("the largest --eval-batch-size that fits is ")[1].split()[0])
    assert 0 < best < 100_000 and best % 10 == 0   # FF evaluates eval_batch_size // classes images
    fitting = resolve_config("smoke", {"eval_batch_size": best})
    assert check_restore_memory(fitting, (1, 16, 16), 10, eval_images=200_000, where="r.h5", available=300 * MB)
    with pytest.raises(ConfigError, match="the largest --samples that fits is"):
        check_restore_memory(resolve_config("smoke", {}), (1, 16, 16), 10, eval_images=200, where="r.h5",
                             samples=100, available=260 * MB)


def test_absurd_sizes_are_refused_by_the_guard_without_weights_to_compare(tmp_path, monkeypatch):
    """A run with no committed weights cannot be checked against them: the memory estimate refuses it."""
    run = _sized_run(tmp_path, "noweights.h5", {"filters": 10**9}, weights=False)
    rec = read_run(run)
    with pytest.raises(ConfigError, match=r"noweights\.h5: its network needs about .* even --eval-batch-size 10 needs"):
        check_restore(rec, stored_config(rec, device="cpu"))
    monkeypatch.setenv("FFNEURO_MEMORY_GUARD", "off")   # the switch turns the refusal into a warning
    check_restore(rec, stored_config(rec, device="cpu"))


def test_a_block_whose_memory_is_not_modelled_is_not_checked(monkeypatch, caplog):
    def not_modelled(*args, **kwargs):
        raise NotModelled("block 'x' does not model its memory")

    monkeypatch.setattr(memory_guard, "_Model", not_modelled)
    with caplog.at_level("WARNING"):
        assert check_restore_memory(resolve_config("smoke", {}), (1, 16, 16), 10, eval_images=10, where="r.h5") is None
    assert [r.getMessage() for r in caplog.records] == ["memory guard: not checked: block 'x' does not model its memory"]


_PROBE = textwrap.dedent("""
    import json, resource, sys
    from click.testing import CliRunner
    from ffneuro.cli.main import main
    out = []
    for args in json.loads(sys.argv[1]):
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        result = CliRunner().invoke(main, args)
        grew = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        out.append({"code": result.exit_code, "stderr": result.stderr, "grew_kb": grew})
    print(json.dumps(out))
""")


def test_eval_cam_and_profile_of_a_crafted_run_are_one_line_quickly_in_bounded_memory(tmp_path):
    """filters=10**9 asked eval for 196 GB; now each command refuses in one line, its memory growing by
    less than 500 MB (one process, each command measured from the peak before it)."""
    torch.set_num_threads(1)
    big = _sized_run(tmp_path, "big.h5", {"filters": 10**9})
    bare = _sized_run(tmp_path, "bare.h5", {"filters": 10**9}, weights=False)
    commands = [["eval", str(big)], ["cam", str(big), "--out", str(tmp_path / "cam"), "--no-store"],
                ["profile", str(big), "--hw", "loihi", "--no-store"],
                ["eval", str(bare), "--device", "cpu"], ["cam", str(bare), "--out", str(tmp_path / "cam"), "--no-store"]]
    # -P: the working directory (the repo root in CI) must not shadow the installed package (ffneuro.cli is cli/)
    done = subprocess.run([sys.executable, "-P", "-c", _PROBE, json.dumps(commands)], capture_output=True, text=True,
                          timeout=120, env={"OMP_NUM_THREADS": "1", "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    results = json.loads(done.stdout.strip().splitlines()[-1])
    for args, r in zip(commands, results):
        lines = r["stderr"].strip().splitlines()
        assert r["code"] == 1 and len(lines) == 1 and lines[0].startswith("Error: "), (args, r)
        assert Path(args[1]).name in lines[0] and "internal error" not in lines[0], (args, r)
        assert r["grew_kb"] < 500 * 1024, (args, r)
    assert "parameters but its final weights hold" in results[0]["stderr"]
    assert "its network needs about" in results[3]["stderr"]
    assert not (tmp_path / "cam").exists()


@pytest.mark.parametrize("image_shape, num_classes", [
    ("abc", 10), (np.array([1.0, np.nan, 28.0]), 10), (np.array([1, -5, 28]), 10), (np.array([1, 28, 28]), 0),
    (np.array([1, 28, 28]), np.array([10, 10])),
])
def test_a_crafted_data_group_is_one_line_naming_the_file_for_every_command(tmp_path, image_shape, num_classes):
    """/data's image_shape and num_classes describe the network's input to eval, cam and profile alike."""
    path = good_run(tmp_path, "data.h5")
    with h5py.File(path, "a") as f:
        f["data/image_shape"], f["data/num_classes"] = image_shape, num_classes
    rec = read_run(path)
    with pytest.raises(RunFileError, match=r"data\.h5: /data "):
        check_restore(rec, stored_config(rec, device="cpu"))
    with pytest.raises(RunFileError, match=r"data\.h5: /data "):
        network_from_run(path)
