"""A small generator of hostile and malformed run files (issue 18), for tests/test_hostile.py.

Every maker takes a folder, writes one file there and returns its path; ``good_run`` is the sound run the
others are derived from. Victims are files outside any run that a hostile file tries to read or overwrite;
``checksums`` tells whether any of them changed.
"""
from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from pathlib import Path

import h5py
import numpy as np

from ffneuro.presets import resolve_config
from ffneuro.store import RunWriter

UNITS = ["unit0", "unit1"]


def good_run(folder: Path, name: str = "good.h5", *, status: str = "complete", epochs: int = 1) -> Path:
    """A small sound run of the smoke preset's config (so ``--resume`` would accept it), finished as ``status``."""
    path = folder / name
    config = resolve_config("smoke", {}).to_dict()
    with RunWriter(path, config=config, environment={"torch": "x"}, unit_names=UNITS,
                   accounting={"params": [1, 2]}) as w:
        for e in range(1, epochs + 1):
            w.commit_epoch(e, {"loss": 1.0 / e, "val_acc_linear": 0.5}, {"goodness": [1.0, 2.0]},
                           {"units.0.w": np.zeros((2, 2), np.float32)}, best=True,
                           state={"rng": {"x": np.arange(4, dtype=np.uint8)}}, state_meta={"epoch": e})
        if status == "running":
            w.close()
        else:
            w.finish(status, groups={"test": ({"acc_linear": 0.75}, {}), "summary": ({"best_epoch": 1}, {})})
    return path


def victim(folder: Path, name: str, text: bytes = b"do not touch\n", mode: int = 0o600) -> Path:
    """A file outside every run (0600, like a private key or a thesis) that nothing may read or change."""
    path = folder / name
    path.write_bytes(text)
    path.chmod(mode)
    return path


def checksums(*paths: Path) -> dict[str, tuple[str, int] | None]:
    """Contents hash and mode of each path (None where it does not exist), without following symlinks."""
    out: dict[str, tuple[str, int] | None] = {}
    for p in paths:
        if not os.path.lexists(p):
            out[str(p)] = None
        else:
            st = os.stat(p, follow_symlinks=False)
            data = p.read_bytes() if p.is_file() and not p.is_symlink() else os.readlink(p).encode()
            out[str(p)] = (hashlib.sha256(data).hexdigest(), st.st_mode)
    return out


def _derived(folder: Path, name: str, change: Callable[[h5py.File], None], **kw) -> Path:
    path = good_run(folder, name, **kw)
    with h5py.File(path, "a") as f:
        change(f)
    return path


# ------------------------------------------------------------------------------------------- HDF5 tricks


def external_storage(folder: Path, secret: Path, where: str = "summary/leak", name: str = "leak.h5") -> Path:
    """A dataset whose bytes live in ``secret`` (HDF5 external storage): reading it reads the secret,
    writing it (a resume's weights) writes the secret."""
    size = secret.stat().st_size

    def change(f):
        if where in f:
            del f[where]
        f.create_dataset(where, shape=(size,), dtype="u1", external=[(str(secret), 0, size)])
    return _derived(folder, name, change)


def virtual_dataset(folder: Path, source: Path, name: str = "virtual.h5") -> Path:
    """A virtual dataset mapping another file's data into the run."""
    with h5py.File(source, "w") as s:
        s["x"] = np.arange(4.0)

    def change(f):
        layout = h5py.VirtualLayout(shape=(4,), dtype="f8")
        layout[:] = h5py.VirtualSource(str(source), "x", shape=(4,))
        f["summary"].create_virtual_dataset("mapped", layout, fillvalue=0)
    return _derived(folder, name, change)


def external_link(folder: Path, other: Path, name: str = "extlink.h5") -> Path:
    with h5py.File(other, "w") as s:
        s["x"] = np.arange(4.0)
    return _derived(folder, name, lambda f: f["summary"].__setitem__("away", h5py.ExternalLink(str(other), "/x")))


def soft_link(folder: Path, name: str = "softlink.h5") -> Path:
    return _derived(folder, name, lambda f: f["summary"].__setitem__("alias", h5py.SoftLink("/metrics/loss")))


def soft_link_loop(folder: Path, name: str = "softloop.h5") -> Path:
    def change(f):
        f["summary"]["a"] = h5py.SoftLink("/summary/b")
        f["summary"]["b"] = h5py.SoftLink("/summary/a")
    return _derived(folder, name, change)


def hard_link_loop(folder: Path, name: str = "hardloop.h5") -> Path:
    """A group that contains itself: a naive recursive reader never ends (RecursionError)."""
    def change(f):
        f["summary"]["again"] = f["summary"]
    return _derived(folder, name, change)


def deep_groups(folder: Path, depth: int = 1200, name: str = "deep.h5") -> Path:
    """Groups nested deeper than Python's recursion limit."""
    def change(f):
        f.create_group("/nest/" + "/".join(["g"] * depth))
    return _derived(folder, name, change)


def fill_value_bomb(folder: Path, nbytes: int = 3 * 10**9, name: str = "bomb.h5") -> Path:
    """A few KB on disk, ``nbytes`` when read: a chunked dataset never written, all fill value."""
    def change(f):
        f["summary"].create_dataset("zeros", shape=(nbytes // 8,), dtype="f8", chunks=(2**16,), fillvalue=1.0)
    return _derived(folder, name, change)


def string_fill_bomb(folder: Path, name: str = "strbomb.h5") -> Path:
    """Variable-length strings whose fill value is 100 KB each: 100 GB when read."""
    def change(f):
        f["summary"].create_dataset("names", shape=(10**6,), dtype=h5py.string_dtype(), fillvalue=b"x" * 10**5)
    return _derived(folder, name, change)


def reference_attribute(folder: Path, name: str = "refattr.h5") -> Path:
    """An object reference as a group attribute (no JSON form)."""
    def change(f):
        f["summary"].attrs["ref"] = f["metrics"].ref
    return _derived(folder, name, change)


def compound_dataset(folder: Path, name: str = "compound.h5") -> Path:
    def change(f):
        f["summary"]["pairs"] = np.zeros(3, dtype=[("a", "i4"), ("b", "f8")])
    return _derived(folder, name, change)


# ----------------------------------------------------------------------------------------- bad attributes


def root_attr(folder: Path, key: str, value, name: str) -> Path:
    """The good run with root attribute ``key`` set to ``value`` (of whatever type)."""
    return _derived(folder, name, lambda f: f.attrs.__setitem__(key, value))


def json_attr(folder: Path, group: str, text: str, name: str) -> Path:
    """The good run with ``/group``'s JSON attribute replaced by ``text``."""
    return _derived(folder, name, lambda f: f[group].attrs.__setitem__("json", text))


def replace_dataset(folder: Path, where: str, value, name: str) -> Path:
    def change(f):
        del f[where]
        f[where] = value
    return _derived(folder, name, change)


BAD_ATTRIBUTES: dict[str, Callable[[Path], Path]] = {
    "schema_version_text": lambda d: root_attr(d, "schema_version", "abc", "sv_text.h5"),
    "schema_version_nan": lambda d: root_attr(d, "schema_version", float("nan"), "sv_nan.h5"),
    "schema_version_array": lambda d: root_attr(d, "schema_version", np.array([1, 2]), "sv_array.h5"),
    "schema_array": lambda d: root_attr(d, "schema", np.array([b"ffneuro.run", b"x"]), "schema_array.h5"),
    "status_int": lambda d: root_attr(d, "status", 3, "status_int.h5"),
    "epochs_done_text": lambda d: root_attr(d, "epochs_done", "many", "epochs_text.h5"),
    "created_array": lambda d: root_attr(d, "created", np.arange(3), "created_array.h5"),
    "replaces_int": lambda d: root_attr(d, "replaces", 7, "replaces_int.h5"),
    "config_list": lambda d: json_attr(d, "config", json.dumps([1, 2]), "config_list.h5"),
    "config_null": lambda d: json_attr(d, "config", "null", "config_null.h5"),
    "config_deep": lambda d: json_attr(d, "config", "[" * 100_000 + "]" * 100_000, "config_deep.h5"),
    "environment_text": lambda d: json_attr(d, "environment", "{not json", "env_text.h5"),
    "metric_scalar": lambda d: replace_dataset(d, "metrics/loss", 1.0, "metric_scalar.h5"),
    "unit_names_numbers": lambda d: replace_dataset(d, "accounting/unit", np.arange(2), "unit_numbers.h5"),
    "test_acc_text": lambda d: replace_dataset(d, "test/acc_linear", "high", "test_text.h5"),
}

STRUCTURES: dict[str, Callable[[Path], Path]] = {
    "soft_link": soft_link,
    "soft_link_loop": soft_link_loop,
    "hard_link_loop": hard_link_loop,
    "deep_groups": deep_groups,
    "fill_value_bomb": fill_value_bomb,
    "string_fill_bomb": string_fill_bomb,
    "reference_attribute": reference_attribute,
    "compound_dataset": compound_dataset,
}
