"""benchmarks/fidelity.py beyond MNIST (issue 19): ``cwcomp-fashion-mnist`` trains on Fashion-MNIST on both sides.
The preset side loads the preset's own dataset; the CwComp runner hands the code the same uint8 images through
the torchvision class its configure.py calls for the code's dataset string ("FMNIST": ``FashionMNIST``), so the
code picks its own standardisation and layer schedule. A stand-in ``src/`` with the code's interface (its
configure.py's dataset switch and X_MNIST, a main_train.py printing the two test errors per epoch) takes the
place of the authors' checkout."""
from __future__ import annotations

import json
import sys

import numpy as np
import pytest
import torch
from benchmark_scripts import load_benchmark
from torch import nn

from ffneuro.data.dataset import Dataset

FAKE_CONFIGURE = '''
import argparse
import numpy as np
import torch

SEEN = {}


def MNIST(path, train, download):
    raise RuntimeError("MNIST would download")


def FashionMNIST(path, train, download):
    raise RuntimeError("FashionMNIST would download")


def CIFAR10(path, train, download):
    raise RuntimeError("CIFAR10 would download")


class X_MNIST(torch.utils.data.Dataset):
    """As the code's: every image through np.array, "MNIST" standardised (0.1307, 0.3081), others (0.5, 0.5)."""

    def __init__(self, data_samples, size=(28, 28), number_samples=60000, dataset="MNIST"):
        self.dataset = dataset
        self.imgs = [np.array(data_samples[i][0]) for i in range(number_samples)]
        self.ys = [data_samples[i][1] for i in range(number_samples)]

    def __getitem__(self, i):
        mean, std = (0.1307, 0.3081) if self.dataset == "MNIST" else (0.5, 0.5)
        x = (torch.from_numpy(self.imgs[i]).float() / 255 - mean) / std
        return x.reshape(1, 28, 28), torch.tensor(self.ys[i]).long()

    def __len__(self):
        return len(self.imgs)


class X_CIFAR(torch.utils.data.Dataset):
    """As the code's: np.array of each sample's image (HxWx3), ToTensor, ImageNet's channel statistics."""

    def __init__(self, data_samples, size=(32, 32), dataset="CIFAR", number_samples=60000):
        self.imgs = [np.array(data_samples[i][0]) for i in range(number_samples)]
        self.ys = [data_samples[i][1] for i in range(number_samples)]

    def __getitem__(self, i):
        mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
        x = torch.from_numpy(self.imgs[i]).float().permute(2, 0, 1) / 255
        return (x - mean[:, None, None]) / std[:, None, None], torch.tensor(self.ys[i]).long()

    def __len__(self):
        return len(self.imgs)


def parse_args():
    p = argparse.ArgumentParser()
    p.add_argument("--dataset", default="CIFAR")
    p.add_argument("--seed", type=int, default=2)
    p.add_argument("--n_epochs", type=int, default=20)
    p.add_argument("--save", default="True")
    return p.parse_args()


def configure(args):
    if args.dataset == "MNIST":
        train, test = MNIST("path", train=True, download=True), MNIST("path", train=False, download=True)
    elif args.dataset == "FMNIST":
        train = FashionMNIST("path", train=True, download=True)
        test = FashionMNIST("path", train=False, download=True)
    elif args.dataset == "CIFAR":
        train, test = CIFAR10("path", train=True, download=True), CIFAR10("path", train=False, download=True)
        return args, "CFSE", "AvgSf", X_CIFAR(train, number_samples=50000), X_CIFAR(test, number_samples=10000)
    else:
        raise ValueError(args.dataset)
    return (args, "CFSE", "AvgSf", X_MNIST(train, number_samples=60000, dataset=args.dataset),
            X_MNIST(test, number_samples=10000, dataset=args.dataset))
'''

FAKE_MAIN = '''
from configure import *

if __name__ == "__main__":
    args = parse_args()
    args, architecture, preds, train_dataset, test_dataset = configure(args)
    SEEN.update(dataset=args.dataset, seed=args.seed, epochs=args.n_epochs, save=args.save,
                sizes=(len(train_dataset), len(test_dataset)), first=train_dataset[0][0],
                test_labels=[int(test_dataset[i][1]) for i in range(len(test_dataset))])
    ys = torch.tensor(SEEN["test_labels"])
    for epoch in range(args.n_epochs):
        # the goodness predictor "says" class epoch + 1, the softmax one class 3: errors from the test labels
        print("Avg Pred - Test Error = {}".format(float((ys != epoch + 1).float().mean())))
        print("Sf Pred -- Test Error = {}".format(float((ys != 3).float().mean())))
    with open("./TrRes/predictor_losses.csv", "w") as f:   # as its save_traininglog, after the last epoch
        f.write("done")
'''

Y_TEST = [3, 3, 1, 3, 0, 2, 3, 3, 9, 2]   # one 1, two 2s, five 3s


def _data(name: str) -> Dataset:
    rng = np.random.default_rng(0)
    shape = (40, 3, 32, 32) if name == "cifar10" else (40, 1, 28, 28)
    x = rng.integers(0, 256, size=shape, dtype=np.uint8)
    return Dataset(name, x[:30], np.arange(30, dtype=np.int64) % 10, x[30:], np.array(Y_TEST, dtype=np.int64), 10)


@pytest.fixture()
def fake_cwcomp(tmp_path, monkeypatch):
    """(the fidelity module, the stand-in checkout, the datasets it was asked to load); what the runner changes
    process-wide (``.cuda`` no-ops, sys.path, torch's thread count, the imported ``configure``) put back."""
    ref = tmp_path / "cwcomp"
    (ref / "src").mkdir(parents=True)
    (ref / "src" / "configure.py").write_text(FAKE_CONFIGURE)
    (ref / "src" / "main_train.py").write_text(FAKE_MAIN)
    fid = load_benchmark("fidelity")
    loaded: list[str] = []

    def load_dataset(name, data_dir, download=True):
        loaded.append(name)
        return _data(name)
    monkeypatch.setattr("ffneuro.data.load_dataset", load_dataset)
    monkeypatch.setattr(fid, "_torchvision_without_ops", lambda: None)   # the stand-in imports no torchvision
    monkeypatch.setattr(torch.Tensor, "cuda", torch.Tensor.cuda)
    monkeypatch.setattr(nn.Module, "cuda", nn.Module.cuda)
    monkeypatch.setattr(torch.cuda, "current_device", torch.cuda.current_device)
    monkeypatch.setattr(sys, "path", list(sys.path))
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    monkeypatch.delitem(sys.modules, "configure", raising=False)
    threads = torch.get_num_threads()
    yield fid, ref, loaded
    sys.modules.pop("configure", None)
    torch.set_num_threads(threads)


@pytest.mark.parametrize(("dataset", "flag", "mean", "std"), [("fashion-mnist", "FMNIST", 0.5, 0.5),
                                                             ("mnist", "MNIST", 0.1307, 0.3081)])
def test_cwcomp_runner_hands_the_code_the_preset_s_images_under_its_own_dataset_string(fake_cwcomp, dataset, flag,
                                                                                        mean, std):
    fid, ref, loaded = fake_cwcomp
    seen_epochs: list[int] = []
    out = fid.run_cwcomp(ref, seed=1, epochs=2, train_limit=20, data_dir=None, overrides={},
                         on_epoch=lambda e: seen_epochs.append(len(e)), dataset=dataset)
    code = sys.modules["configure"].SEEN
    assert loaded == [dataset]
    # the code's own dataset switch took the images (its torchvision classes would have downloaded)
    assert (code["dataset"], code["seed"], code["epochs"], code["save"]) == (flag, 1, 2, "False")
    assert code["sizes"] == (20, 10)   # the training set cut to train_limit, the whole test set
    data = _data(dataset)
    # the same uint8 image, standardised by the code's rule for its dataset string
    assert torch.allclose(code["first"][0], torch.from_numpy((data.x_train[0, 0] / 255.0 - mean) / std).float(),
                          atol=1e-6)
    assert code["test_labels"] == Y_TEST
    assert [e["epoch"] for e in out] == [1, 2] and seen_epochs == [1, 2]
    assert [e["test"]["goodness"] for e in out] == pytest.approx([0.1, 0.2])
    assert [e["test"]["linear"] for e in out] == pytest.approx([0.5, 0.5])


def test_cwcomp_runner_hands_the_code_cifar10_as_its_torchvision_class_does(fake_cwcomp):
    """CIFAR10's samples are PIL images the code turns into HxWx3 arrays: the runner's must be the same
    pixels in that layout, or the code's channels would be rows."""
    fid, ref, loaded = fake_cwcomp
    out = fid.run_cwcomp(ref, seed=0, epochs=1, train_limit=12, data_dir=None, overrides={}, on_epoch=lambda e: None,
                         dataset="cifar10")
    code = sys.modules["configure"].SEEN
    assert loaded == ["cifar10"] and code["dataset"] == "CIFAR" and code["sizes"] == (12, 10)
    image = torch.from_numpy(_data("cifar10").x_train[0] / 255.0).float()
    mean, std = torch.tensor([0.485, 0.456, 0.406]), torch.tensor([0.229, 0.224, 0.225])
    assert torch.allclose(code["first"], (image - mean[:, None, None]) / std[:, None, None], atol=1e-5)
    assert code["test_labels"] == Y_TEST and [e["epoch"] for e in out] == [1]


def test_runners_refuse_a_dataset_they_cannot_hand_their_code(fake_cwcomp):
    fid, ref, loaded = fake_cwcomp
    for runner in (fid.run_cwcomp, fid.run_trifecta):
        with pytest.raises(ValueError, match="not 'cifar100'"):
            runner(ref, 0, 1, 8, None, {}, lambda e: None, dataset="cifar100")
    with pytest.raises(ValueError, match="MNIST only"):
        fid.run_loewe(ref, 0, 1, 8, None, {}, lambda e: None, dataset="fashion-mnist")
    assert loaded == []


@pytest.mark.parametrize(("preset", "dataset", "normalise"), [("cwcomp-fashion-mnist", "fashion-mnist", "half"),
                                                              ("cwcomp-mnist", "mnist", "mnist")])
def test_preset_side_trains_on_the_preset_s_own_dataset(fake_cwcomp, monkeypatch, preset, dataset, normalise):
    fid, _, loaded = fake_cwcomp
    built = {}

    class Trainer:   # records what run_ffneuro builds; trains nothing
        def __init__(self, cfg, data) -> None:
            built["cfg"], built["data"] = cfg, data
            self.parallel = None

        def run(self, recorder, final_test=True) -> None:
            built["final_test"] = final_test
    monkeypatch.setattr("ffneuro.train.trainer.Trainer", Trainer)
    from ffneuro.train import trainer as trainer_mod
    monkeypatch.setattr(trainer_mod, "TRAIN_EVAL_SIZE", trainer_mod.TRAIN_EVAL_SIZE)   # run_ffneuro sets it
    assert fid.run_ffneuro(preset, 3, 2, 20, None, {}, lambda e: None) == []
    cfg = built["cfg"]
    assert loaded == [dataset] and built["data"].name == dataset
    assert (cfg.dataset, cfg.normalise, cfg.epochs, cfg.train_limit, cfg.seed, cfg.val_size) == (
        dataset, normalise, 2, 20, 3, 0)
    assert built["final_test"] is False
    assert fid.preset_dataset(preset) == dataset


def test_cli_runs_the_fashion_preset_s_reference_into_its_own_results_file(fake_cwcomp, tmp_path, monkeypatch):
    fid, ref, loaded = fake_cwcomp
    results = tmp_path / "results"
    monkeypatch.setenv("FIDELITY_RESULTS", str(results))
    monkeypatch.setattr(sys, "argv", ["fidelity.py", "run", "cwcomp-fashion-mnist", "--side", "reference",
                                      "--reference", str(ref), "--train-limit", "20", "--seeds", "0",
                                      "--epochs", "2"])
    fid.main()
    assert loaded == ["fashion-mnist"] and sys.modules["configure"].SEEN["dataset"] == "FMNIST"
    assert [p.name for p in results.iterdir()] == ["fidelity-cwcomp-fashion-mnist.json"]
    doc = json.loads((results / "fidelity-cwcomp-fashion-mnist.json").read_text())
    (run,) = doc["runs"]
    assert (doc["preset"], run["side"], run["seed"], run["train_images"]) == ("cwcomp-fashion-mnist", "reference", 0,
                                                                              20)
    assert "run cwcomp-fashion-mnist --side reference" in run["command"]
    assert "| reference | as published | goodness | 10.00% | 20.00% | 1 |" in fid.table("cwcomp-fashion-mnist")


def test_softmax_readout_patch_takes_the_cross_entropy_of_the_softmax_outputs(monkeypatch):
    from ffneuro.models import readouts
    monkeypatch.setattr(readouts.LinearReadout, "train_step", readouts.LinearReadout.train_step)
    fid = load_benchmark("fidelity")
    torch.manual_seed(0)
    features, labels = torch.randn(6, 5), torch.tensor([0, 1, 2, 0, 1, 2])
    readout = readouts.LinearReadout(5, 3, lr=0.01, optimizer="sgd", momentum=0.0)
    logits = readout(features).detach()
    weight = readout.linear.weight.detach().clone()
    fid.PATCHES["softmax-readout"]()
    loss = readout.train_step(features, labels)
    # the loss of the code's Softmax_CF: CrossEntropyLoss on softmax outputs, not on the logits
    assert float(loss) == pytest.approx(float(nn.functional.cross_entropy(logits.softmax(1), labels)), rel=1e-6)
    assert float(loss) != pytest.approx(float(nn.functional.cross_entropy(logits, labels)), rel=1e-3)
    w = weight.requires_grad_()
    expected = nn.functional.cross_entropy((features @ w.T + readout.linear.bias.detach()).softmax(1), labels)
    expected.backward()
    assert torch.allclose(readout.linear.weight, weight.detach() - 0.01 * w.grad, atol=1e-7)   # one plain SGD step


@pytest.mark.parametrize(("preset", "patch", "ok"), [("cwcomp-fashion-mnist", "softmax-readout", True),
                                                     ("hinton-fc-mnist", "softmax-readout", False),
                                                     ("cwcomp-mnist", "st-relu", False),
                                                     ("trifecta-mnist", "label-seed", True),
                                                     ("cwcomp-mnist", "label-seed", False)])
def test_patches_apply_only_to_their_presets(monkeypatch, preset, patch, ok):
    fid = load_benchmark("fidelity")
    applied = []
    monkeypatch.setitem(fid.PATCHES, patch, lambda: applied.append(patch))
    monkeypatch.setattr(fid, "run_ffneuro", lambda *a, **k: [])
    monkeypatch.setattr(fid, "save", lambda preset, entry: None)
    monkeypatch.setattr(sys, "argv", ["fidelity.py", "run", preset, "--side", "ffneuro", "--patch", patch])
    if ok:
        fid.main()
        assert applied == [patch]
    else:
        with pytest.raises(SystemExit):
            fid.main()
        assert applied == []
