"""Tests for ffneuro.data: tiny files in the real formats, built in tmp_path; never the network."""
from __future__ import annotations

import dataclasses
import gzip
import hashlib
import io
import os
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest

from ffneuro.data import (
    DATASETS,
    SOURCES,
    Dataset,
    dataset_names,
    load_dataset,
    resolve_data_dir,
    same_split,
    split_sizes,
    split_train_val,
    train_images,
    verify_dataset,
)
from ffneuro.errors import ConfigError, DataError
from ffneuro.registry import UnknownNameError

IDX_STEMS = ("train-images-idx3-ubyte", "train-labels-idx1-ubyte", "t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")
REAL_DATA = Path("/work/shared/datasets")


def idx_bytes(a: np.ndarray) -> bytes:
    return struct.pack(">BBBB", 0, 0, 8, a.ndim) + struct.pack(f">{a.ndim}I", *a.shape) + a.astype(np.uint8).tobytes()


def idx_arrays(n: int = 5) -> dict[str, np.ndarray]:
    images = np.arange(n * 28 * 28, dtype=np.uint32).reshape(n, 28, 28) % 251
    labels = np.arange(n) % 10
    return {IDX_STEMS[0]: images, IDX_STEMS[1]: labels, IDX_STEMS[2]: images[:3], IDX_STEMS[3]: labels[:3]}


def write_idx(folder: Path, compress: bool = True) -> dict[str, np.ndarray]:
    folder.mkdir(parents=True, exist_ok=True)
    arrays = idx_arrays()
    for stem, a in arrays.items():
        if compress:
            (folder / f"{stem}.gz").write_bytes(gzip.compress(idx_bytes(a)))
        else:
            (folder / stem).write_bytes(idx_bytes(a))
    return arrays


def cifar_batch(n: int, seed: int, label_key: str = "labels", bytes_keys: bool = False, **extra) -> dict:
    rng = np.random.default_rng(seed)
    d = {"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), label_key: [int(v) for v in rng.integers(0, 10, n)],
         **extra}
    return {k.encode(): v for k, v in d.items()} if bytes_keys else d


def write_cifar10(folder: Path) -> dict[str, dict]:
    folder.mkdir(parents=True, exist_ok=True)
    batches = {f"data_batch_{i}": cifar_batch(10, i, bytes_keys=i % 2 == 0) for i in range(1, 6)}
    batches["test_batch"] = cifar_batch(10, 9)
    for name, d in batches.items():
        (folder / name).write_bytes(pickle.dumps(d, protocol=4))
    return batches


def md5(path: Path) -> str:
    return hashlib.md5(path.read_bytes()).hexdigest()


# --- Dataset and split -------------------------------------------------------------------------

def tiny_dataset(**changes) -> Dataset:
    fields = dict(name="t", x_train=np.zeros((4, 1, 2, 2), np.uint8), y_train=np.array([0, 1, 2, 1]),
                  x_test=np.zeros((2, 1, 2, 2), np.uint8), y_test=np.array([0, 2]), num_classes=3)
    return Dataset(**{**fields, **changes})


def test_dataset_validates():
    assert tiny_dataset().image_shape == (1, 2, 2)
    with pytest.raises(DataError, match="uint8"):
        tiny_dataset(x_train=np.zeros((4, 1, 2, 2), np.float32))
    with pytest.raises(DataError, match="int64"):
        tiny_dataset(y_train=np.zeros(4, np.int32))
    with pytest.raises(DataError, match="labels"):
        tiny_dataset(y_test=np.array([0, 3]))
    with pytest.raises(DataError, match="4 train images but 3 labels"):
        tiny_dataset(y_train=np.array([0, 1, 2]))
    with pytest.raises(DataError, match="uint8"):
        tiny_dataset(x_test=np.zeros((2, 2, 2), np.uint8))


def test_split_train_val_takes_the_last_images():
    x, y = np.arange(10)[:, None], np.arange(10) * 2
    xt, yt, xv, yv = split_train_val(x, y, 3)
    assert xt.ravel().tolist() == list(range(7)) and xv.ravel().tolist() == [7, 8, 9]
    assert yv.tolist() == [14, 16, 18] and len(yt) == 7
    xt, yt, xv, yv = split_train_val(x, y, 0)
    assert len(xt) == 10 and xv.shape == (0, 1) and yv.shape == (0,)
    for bad in (10, 11, -1):
        with pytest.raises(ConfigError):
            split_train_val(x, y, bad)


def test_split_train_val_with_a_limit_takes_the_first_images_and_the_last_for_validation():
    x, y = np.arange(10)[:, None], np.arange(10)
    xt, _, xv, _ = split_train_val(x, y, 3, train_limit=4)
    assert xt.ravel().tolist() == [0, 1, 2, 3] and xv.ravel().tolist() == [7, 8, 9]
    xt, _, xv, _ = split_train_val(x, y, None, train_limit=8)  # automatic: 8 // 4 = 2, and 2 images are left
    assert xt.ravel().tolist() == list(range(8)) and xv.ravel().tolist() == [8, 9]


@pytest.mark.parametrize("n,val_size,limit,expected", [
    (60000, None, None, (50000, 10000)),   # MNIST: as with the old fixed default
    (50000, None, None, (40000, 10000)),   # CIFAR: likewise
    (1000, None, None, (800, 200)),        # synthetic: a fifth
    (60000, None, 500, (500, 125)),        # a small limit shrinks the automatic split with it
    (60000, None, 50000, (50000, 10000)),
    (60000, None, 55000, (55000, 5000)),   # ... and to what the limit leaves
    (60000, None, 60000, (60000, 0)),
    (60000, 5000, 15000, (15000, 5000)),   # an explicit size stays as given (the cpu study budget)
    (60000, 10000, None, (50000, 10000)),
    (60000, 0, None, (60000, 0)),
    (4, None, None, (4, 0)),
])
def test_split_sizes(n, val_size, limit, expected):
    assert split_sizes(n, val_size, limit) == expected


def test_automatic_split_with_the_default_training_count_as_limit_is_the_same_split():
    for n in (1, 2, 5, 9, 999, 1000, 1001, 12345, 49999, 50000, 60000, 60001, 10**6):
        assert split_sizes(n, None, split_sizes(n)[0]) == split_sizes(n), n


@pytest.mark.parametrize("val_size,limit,fragments", [
    (None, 70000, ("70000", "60000 training images of mnist")),
    (10000, 55000, ("55000", "50000 images of mnist left for training", "--val-size")),
    (60000, None, ("validation size", "[0, 60000)")),
])
def test_split_sizes_refuses_what_the_data_cannot_hold(val_size, limit, fragments):
    with pytest.raises(ConfigError) as err:
        split_sizes(60000, val_size, limit, name="mnist")
    assert "\n" not in str(err.value)
    for fragment in fragments:
        assert fragment in str(err.value)


def test_train_images_table_matches_the_loaded_data():
    assert train_images("synthetic") == len(load_dataset("synthetic").y_train)
    if (REAL_DATA / "mnist").is_dir():
        assert train_images("mnist") == len(load_dataset("mnist", REAL_DATA, download=False).y_train)
    with pytest.raises(UnknownNameError, match="mnist"):
        train_images("nope")


def test_same_split_compares_resolved_counts():
    old = {"dataset": "mnist", "val_size": 10000, "train_limit": None}  # stored under the old fixed default
    assert same_split(old, {**old, "val_size": None})
    assert not same_split({**old, "train_limit": 500}, {**old, "train_limit": 500, "val_size": None})  # 125 now
    assert not same_split(old, {**old, "val_size": 5000})
    assert same_split({"dataset": "synthetic", "val_size": 200}, {"dataset": "synthetic", "val_size": None})
    assert not same_split(old, {**old, "dataset": "synthetic", "val_size": None})


# --- data directory ----------------------------------------------------------------------------

def test_resolve_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("FFNEURO_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    assert resolve_data_dir() == tmp_path / "cache" / "ffneuro" / "datasets"
    monkeypatch.setenv("FFNEURO_DATA", str(tmp_path / "env"))
    assert resolve_data_dir() == tmp_path / "env"
    assert resolve_data_dir(tmp_path / "arg") == tmp_path / "arg"
    assert resolve_data_dir(str(tmp_path / "arg")) == tmp_path / "arg"
    monkeypatch.delenv("XDG_CACHE_HOME")
    monkeypatch.delenv("FFNEURO_DATA")
    assert resolve_data_dir() == Path.home() / ".cache" / "ffneuro" / "datasets"


def test_load_uses_ffneuro_data(tmp_path, monkeypatch):
    write_idx(tmp_path / "mnist")
    monkeypatch.setenv("FFNEURO_DATA", str(tmp_path))
    assert load_dataset("mnist", download=False).x_train.shape == (5, 1, 28, 28)


# --- IDX (MNIST, Fashion-MNIST) ---------------------------------------------------------------

@pytest.mark.parametrize("name", ["mnist", "fashion-mnist"])
@pytest.mark.parametrize("compress", [True, False])
def test_load_idx(tmp_path, name, compress):
    arrays = write_idx(tmp_path / name, compress)
    ds = load_dataset(name, tmp_path, download=False)
    assert ds.name == name and ds.num_classes == 10 and ds.image_shape == (1, 28, 28)
    assert ds.x_train.shape == (5, 1, 28, 28) and ds.x_test.shape == (3, 1, 28, 28)
    assert ds.x_train.dtype == np.uint8 and ds.y_train.dtype == np.int64
    np.testing.assert_array_equal(ds.x_train[:, 0], arrays[IDX_STEMS[0]])
    assert ds.x_train[2, 0, 3, 7] == arrays[IDX_STEMS[0]][2, 3, 7]
    assert ds.y_train.tolist() == [0, 1, 2, 3, 4] and ds.y_test.tolist() == [0, 1, 2]


def test_idx_truncated_corrupt_and_bad_magic(tmp_path):
    folder = tmp_path / "mnist"
    write_idx(folder)
    target = folder / "train-images-idx3-ubyte.gz"
    good = target.read_bytes()
    raw = gzip.decompress(good)
    cases = {
        "truncated gzip": good[: len(good) // 2],
        "not gzip": b"garbage",
        "truncated data": gzip.compress(raw[:-100]),
        "bad magic": gzip.compress(b"\x00\x00\x08\x01" + raw[4:]),
        "empty": gzip.compress(b""),
    }
    for case, content in cases.items():
        target.write_bytes(content)
        with pytest.raises(DataError, match="train-images-idx3-ubyte.gz") as err:
            load_dataset("mnist", tmp_path, download=False)
        if case == "bad magic":
            assert "magic" in str(err.value)


def test_missing_files_without_download(tmp_path):
    write_idx(tmp_path / "mnist")
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError) as err:
        load_dataset("mnist", tmp_path, download=False)
    msg = str(err.value)
    assert "t10k-labels-idx1-ubyte.gz" in msg and str(tmp_path / "mnist") in msg
    assert "train-images" not in msg and "FFNEURO_DATA" in msg and "--data-dir" in msg


# --- CIFAR --------------------------------------------------------------------------------------

def test_load_cifar10_channel_order(tmp_path):
    batches = write_cifar10(tmp_path / "cifar-10-batches-py")
    ds = load_dataset("cifar10", tmp_path, download=False)
    assert ds.x_train.shape == (50, 3, 32, 32) and ds.x_test.shape == (10, 3, 32, 32) and ds.num_classes == 10
    first = batches["data_batch_1"]["data"][0]
    # row-major R plane, then G, then B: pixel (row 1, col 2) of each channel
    assert ds.x_train[0, :, 1, 2].tolist() == [first[34], first[1024 + 34], first[2048 + 34]]
    second = batches["data_batch_2"][b"data"]  # bytes keys are accepted
    np.testing.assert_array_equal(ds.x_train[10].ravel(), second[0])
    assert ds.y_train[10:20].tolist() == batches["data_batch_2"][b"labels"]
    assert ds.y_test.tolist() == batches["test_batch"]["labels"] and ds.y_test.dtype == np.int64


def test_load_cifar100_uses_fine_labels(tmp_path):
    folder = tmp_path / "cifar-100-python"
    folder.mkdir()
    for name, n in (("train", 12), ("test", 4)):
        d = cifar_batch(n, n, label_key="fine_labels", coarse_labels=[19] * n, filenames=[b"x.png"] * n)
        d["fine_labels"] = [99 - i for i in range(n)]
        # protocol 2 as numpy 1.x names it, like the official (Python 2) files
        (folder / name).write_bytes(pickle.dumps(d, protocol=2).replace(b"numpy._core.", b"numpy.core."))
    ds = load_dataset("cifar100", tmp_path, download=False)
    assert ds.num_classes == 100 and ds.x_train.shape == (12, 3, 32, 32) and ds.x_test.shape == (4, 3, 32, 32)
    assert ds.y_train.tolist() == list(range(99, 87, -1)) and ds.y_test.tolist() == [99, 98, 97, 96]


def test_cifar_bad_batches(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    (folder / "test_batch").write_bytes(pickle.dumps({"data": np.zeros((2, 3072), np.uint8)}))
    with pytest.raises(DataError, match="test_batch: missing key.*labels"):
        load_dataset("cifar10", tmp_path, download=False)
    (folder / "test_batch").write_bytes(b"\x80\x04not a pickle")
    with pytest.raises(DataError, match="test_batch"):
        load_dataset("cifar10", tmp_path, download=False)


class _Evil:
    def __init__(self, marker: Path):
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_restricted_unpickler_refuses_code(tmp_path):
    folder = tmp_path / "cifar-10-batches-py"
    write_cifar10(folder)
    marker = tmp_path / "pwned"
    (folder / "data_batch_3").write_bytes(pickle.dumps({"data": _Evil(marker), "labels": [0]}))
    with pytest.raises(DataError, match=r"data_batch_3.*refusing to unpickle .*system"):
        load_dataset("cifar10", tmp_path, download=False)
    assert not marker.exists()


# --- npz ---------------------------------------------------------------------------------------

@pytest.mark.parametrize("layout", ["NHW", "NHWC", "NHWC1", "NCHW"])
def test_load_npz_layouts(tmp_path, layout):
    nchw = np.random.default_rng(0).integers(0, 256, (6, 3 if layout in ("NHWC", "NCHW") else 1, 5, 4), dtype=np.uint8)
    stored = {"NHW": nchw[:, 0], "NHWC": nchw.transpose(0, 2, 3, 1), "NHWC1": nchw.transpose(0, 2, 3, 1),
              "NCHW": nchw}[layout]
    path = tmp_path / "d.npz"
    np.savez(path, x_train=stored, y_train=np.array([0, 1, 2, 3, 4, 6]), x_test=stored[:2], y_test=np.array([1, 0]))
    ds = load_dataset(f"npz:{path}")
    np.testing.assert_array_equal(ds.x_train, nchw)
    np.testing.assert_array_equal(ds.x_test, nchw[:2])
    assert ds.num_classes == 7 and ds.y_train.dtype == np.int64 and ds.name == f"npz:{path}"


def test_npz_errors(tmp_path):
    path = tmp_path / "d.npz"
    np.savez(path, x_train=np.zeros((2, 4, 4), np.uint8), y_train=np.zeros(2, int))
    with pytest.raises(DataError, match="missing array.*x_test, y_test"):
        load_dataset(f"npz:{path}")
    with pytest.raises(DataError, match="nope.npz"):
        load_dataset(f"npz:{tmp_path / 'nope.npz'}")


# --- synthetic ---------------------------------------------------------------------------------

def test_synthetic_is_deterministic_and_learnable():
    a, b = load_dataset("synthetic"), load_dataset("synthetic")
    assert a.x_train.shape == (1000, 1, 16, 16) and a.x_test.shape == (200, 1, 16, 16) and a.num_classes == 10
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert np.bincount(a.y_train).tolist() == [100] * 10
    means = np.stack([a.x_train[a.y_train == c].reshape(-1, 256).mean(0) for c in range(10)])
    dist = ((a.x_test.reshape(-1, 1, 256).astype(float) - means) ** 2).sum(-1)
    assert (dist.argmin(1) == a.y_test).mean() > 0.9


# --- names -------------------------------------------------------------------------------------

def test_names_and_unknown_name(tmp_path):
    assert set(dataset_names()) == {"mnist", "fashion-mnist", "cifar10", "cifar100", "synthetic", "npz:PATH"}
    assert DATASETS.names() == sorted(DATASETS.names())
    with pytest.raises(UnknownNameError, match="valid: cifar10, cifar100, fashion-mnist, mnist, synthetic"):
        load_dataset("imagenet", tmp_path)
    with pytest.raises(UnknownNameError):
        verify_dataset("imagenet", tmp_path)
    assert verify_dataset("synthetic", tmp_path) == {}


# --- downloads through file:// mirrors ----------------------------------------------------------

@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local mirror holding good MNIST-format files; the table's mnist entry points at it."""
    folder = tmp_path / "mirror"
    write_idx(folder)
    files = tuple(dataclasses.replace(f, md5=md5(folder / f.name)) for f in SOURCES["mnist"].files)
    monkeypatch.setitem(SOURCES, "mnist", dataclasses.replace(
        SOURCES["mnist"], files=files, mirrors=((tmp_path / "nowhere").as_uri() + "/", folder.as_uri() + "/")))
    return folder


def test_download_from_mirror(tmp_path, mirror):
    root = tmp_path / "data"
    ds = load_dataset("mnist", root)
    assert ds.x_train.shape == (5, 1, 28, 28)
    assert sorted(p.name for p in (root / "mnist").iterdir()) == sorted(f"{s}.gz" for s in IDX_STEMS)
    assert verify_dataset("mnist", root) == {f"{s}.gz": True for s in IDX_STEMS}
    (root / "mnist" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"changed")
    assert verify_dataset("mnist", root)["t10k-labels-idx1-ubyte.gz"] is False


def test_download_bad_checksum_leaves_nothing(tmp_path, mirror):
    (mirror / "train-labels-idx1-ubyte.gz").write_bytes(b"tampered")
    root = tmp_path / "data"
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.gz: MD5"):
        load_dataset("mnist", root)
    assert "train-labels-idx1-ubyte.gz" not in [p.name for p in (root / "mnist").iterdir()]
    assert not list((root / "mnist").glob(".*part"))


def test_download_offline(tmp_path, monkeypatch):
    monkeypatch.setitem(SOURCES, "mnist", dataclasses.replace(
        SOURCES["mnist"], mirrors=((tmp_path / "nowhere").as_uri() + "/",)))
    with pytest.raises(DataError) as err:
        load_dataset("mnist", tmp_path / "data")
    msg = str(err.value)
    assert all(f"{s}.gz" in msg for s in IDX_STEMS) and str(tmp_path / "data" / "mnist") in msg
    assert "no mirror reachable" in msg and "FFNEURO_DATA" in msg and msg.count("\n") <= 1
    assert not list((tmp_path / "data" / "mnist").iterdir())


def _tar(path: Path, members: dict[str, bytes]) -> None:
    with tarfile.open(path, "w:gz") as tar:
        for name, content in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(content)
            tar.addfile(info, io.BytesIO(content))


def test_download_and_extract_cifar_archive(tmp_path, monkeypatch):
    src = tmp_path / "src" / "cifar-10-batches-py"
    write_cifar10(src)
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    archive = mirror / "cifar-10-python.tar.gz"
    _tar(archive, {f"cifar-10-batches-py/{p.name}": p.read_bytes() for p in src.iterdir()})
    remote = dataclasses.replace(SOURCES["cifar10"].files[0], md5=md5(archive))
    monkeypatch.setitem(SOURCES, "cifar10", dataclasses.replace(
        SOURCES["cifar10"], files=(remote,), mirrors=(mirror.as_uri() + "/",)))
    root = tmp_path / "data"
    assert load_dataset("cifar10", root).x_train.shape == (50, 3, 32, 32)
    assert verify_dataset("cifar10", root) == {"cifar-10-python.tar.gz": True}

    _tar(archive, {"../escape": b"x"})
    monkeypatch.setitem(SOURCES, "cifar10", dataclasses.replace(
        SOURCES["cifar10"], files=(dataclasses.replace(remote, md5=md5(archive)),)))
    with pytest.raises(DataError, match="unsafe archive member '../escape'"):
        load_dataset("cifar10", tmp_path / "other")
    assert not (tmp_path / "escape").exists()


# --- the real MNIST, when this machine has it --------------------------------------------------

@pytest.mark.skipif(not (REAL_DATA / "mnist").is_dir(), reason="no local MNIST copy")
def test_real_mnist():
    ds = load_dataset("mnist", REAL_DATA, download=False)
    assert ds.x_train.shape == (60000, 1, 28, 28) and ds.x_test.shape == (10000, 1, 28, 28)
    assert ds.y_train.shape == (60000,) and ds.y_test.shape == (10000,)
    assert set(np.unique(ds.y_train)) == set(range(10)) and set(np.unique(ds.y_test)) == set(range(10))


def test_dataset_shape_table_matches_the_loaders():
    from ffneuro.data import DATASETS, dataset_shape
    from ffneuro.data.loading import SHAPES

    synthetic = load_dataset("synthetic")
    assert dataset_shape("synthetic") == (synthetic.image_shape, synthetic.num_classes)
    assert dataset_shape("cifar100") == ((3, 32, 32), 100)
    assert set(DATASETS.names()) == set(SHAPES)  # every registered dataset has a known shape
    with pytest.raises(UnknownNameError):
        dataset_shape("imagenet")
