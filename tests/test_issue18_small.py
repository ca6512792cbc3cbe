"""Issue 18's smaller items: an npz with an empty split is refused in one line; a run records the
threads each process computed with (the pipeline's bit-identity holds against a one-thread run)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from cli_runner import invoke as cli

from ffneuro.data.loading import load_dataset
from ffneuro.errors import DataError
from ffneuro.store import read_run

TINY = ["--preset", "smoke", "--epochs", "1", "--train-limit", "200", "--val-size", "100"]




def _npz(path, n_train: int, n_test: int):
    rng = np.random.default_rng(0)
    np.savez(path, x_train=rng.integers(0, 256, (n_train, 16, 16), dtype=np.uint8), y_train=np.arange(n_train) % 3,
             x_test=rng.integers(0, 256, (n_test, 16, 16), dtype=np.uint8), y_test=np.arange(n_test) % 3)
    return path


@pytest.mark.parametrize("n_train,n_test,split", [(300, 0, "test"), (0, 50, "train")])
def test_an_npz_with_an_empty_split_is_refused(tmp_path, n_train, n_test, split):
    path = _npz(tmp_path / "d.npz", n_train, n_test)
    with pytest.raises(DataError, match=f"d.npz.*{split} split is empty"):
        load_dataset(f"npz:{path}")
    result = cli("train", *TINY, "--dataset", f"npz:{path}", "--out", tmp_path / "run.h5")
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and f"{split} split is empty" in errors[0], result.stderr
    assert "Traceback" not in result.output and not (tmp_path / "run.h5").exists()


def test_a_run_records_its_threads_per_process(tmp_path):
    out = tmp_path / "run.h5"
    result = cli("-q", "train", *TINY, "--out", out)
    assert result.exit_code == 0, result.output
    env = read_run(out).environment
    assert env["torch_threads"] == torch.get_num_threads() == 1  # conftest runs tests on one thread
    assert env["processes"] == 1
    show = cli("runs", "show", out)
    assert "1 process × 1 thread" in show.stdout, show.stdout
