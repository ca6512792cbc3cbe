"""Read a NIR file for its shapes: every weight as a stand-in of its stored shape, nothing read that is not needed.

The profiler costs a NIR graph from shapes, so a 46 KB file whose weights claim gigabytes (HDF5 fills an
unwritten dataset with its fill value) must not cost gigabytes to profile. :func:`read_nir_shapes` walks
the file's structure with h5py first, as the run-file reader does (:mod:`ffneuro.store.reader`): links
(soft, external, user-defined), external storage and virtual datasets, which would read other files, are
refused, and so are loops, deep nesting and types a NIR file does not hold. Then it reads everything but
the weights, whose total must stay within :func:`read_budget` of the file's size, and builds nir's own
nodes (``nir.dict2NIRNode``: the same defaults and fields as ``nir.read``) with each node's ``weight`` a
zero-strided ``numpy`` stand-in (``.shape`` and ``.dtype`` of the dataset, no values, no memory), which
:func:`ffneuro.spec.nir_io.graph_to_spec` reads like any array. Every problem is one ConfigError naming
the file.
"""
from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError, FFNeuroError
from ..hdf5_walk import checked_datasets, data_bytes, supported_dtype

#: Groups nested deeper than this are refused (a NIR file nests a few levels per nested graph).
MAX_DEPTH = 64
#: Links in a file beyond this are refused.
MAX_LINKS = 200_000
#: What is read besides the weights (biases, neuron parameters, shapes, edges) is at most
#: max(READ_FLOOR, INFLATION × the file's size): nir writes gzip, so a uniform parameter array may be
#: far larger than its share of the file, but not a fill value claiming gigabytes.
READ_FLOOR = 256 * 2**20
INFLATION = 64


def _nir():
    try:
        import nir
    except ImportError:
        raise FFNeuroError('NIR files need the nir package: pip install "ffneuro[nir]" (or pip install nir)') from None
    if not hasattr(nir, "dict2NIRNode"):
        raise FFNeuroError(f"nir {getattr(nir, '__version__', '?')} cannot build a graph from its parts (no "
                           "dict2NIRNode): pip install -U nir")
    return nir


def read_budget(size: int) -> int:
    """Bytes that reading a NIR file of ``size`` bytes for its shapes may read (everything but weights)."""
    return max(READ_FLOOR, INFLATION * size)


def _fail(path: Path, what: str) -> ConfigError:
    return ConfigError(f"{path}: not a readable NIR file: {what}")


def _is_weight(name: str, parents_with_type: set[str]) -> bool:
    """``…/NODE/weight`` of a node group (one that has a ``type``): the data the shapes read never reads."""
    parent, _, leaf = name.rpartition("/")
    return leaf == "weight" and parent in parents_with_type


def _check_structure(f, path: Path, size: int) -> None:
    """Refuse, before any data is read, what would read another file, never end, or read more than
    :func:`read_budget` allows (weights excepted: they are never read)."""
    datasets = list(checked_datasets(f, lambda what: _fail(path, what), files="NIR files", max_links=MAX_LINKS,
                                     max_depth=MAX_DEPTH))
    names = [name for name, _ in datasets]
    typed = {n.rpartition("/")[0] for n in names if n.rpartition("/")[2] == "type"}
    budget, total = read_budget(size), 0
    for name, oid in datasets:
        where, dtype = "/" + name, oid.dtype
        if not supported_dtype(dtype):
            raise _fail(path, f"dataset {where} has an unsupported type ({dtype})")
        if _is_weight(name, typed):
            continue   # never read: only its shape is used
        nbytes, shape = data_bytes(oid, dtype)
        if nbytes > budget:
            raise _fail(path, f"dataset {where} is too large: {nbytes:,} bytes (shape {shape}) in a "
                              f"file of {size:,} bytes; at most {budget:,} bytes besides the weights are read")
        total += nbytes
    if total > budget:
        raise _fail(path, f"its datasets besides the weights are too large together: {total:,} bytes in a file of "
                          f"{size:,} bytes; at most {budget:,} are read")


def _as_dict(group) -> dict[str, Any]:
    """An HDF5 group of a NIR file as the nested dict nir builds nodes from (as ``nir.read`` does), with
    a node's ``weight`` a zero-strided stand-in of its shape: its values are never read."""
    import h5py

    out: dict[str, Any] = {}
    for key, item in group.items():
        if isinstance(item, h5py.Group):
            out[key] = _as_dict(item)
        elif key == "weight" and "type" in group:
            out[key] = np.broadcast_to(np.zeros((), dtype=item.dtype), item.shape)
        else:
            v = item[()]
            out[key] = v.decode("utf8") if isinstance(v, bytes) else v
    return out


def read_nir_shapes(path: str | os.PathLike):
    """The NIR graph in ``path`` for its shapes (nir's node classes, read without NIR's type check, which
    ignores groups): weights as zero-strided stand-ins, the file's structure checked before anything is
    read. One ConfigError for a missing, unreadable, hostile or malformed file."""
    path = Path(path)
    nir = _nir()
    import h5py

    if not path.exists():
        raise ConfigError(f"{path}: no such NIR file")
    if not path.is_file() or not h5py.is_hdf5(path):
        raise _fail(path, "not an HDF5 file")
    try:
        with warnings.catch_warnings():  # nir's divide-by-zero warning would be a second line
            warnings.simplefilter("ignore", RuntimeWarning)
            with h5py.File(path, "r", locking=False) as f:
                _check_structure(f, path, path.stat().st_size)
                if not isinstance(f.get("node"), h5py.Group):
                    raise _fail(path, "no /node group")
                d = _as_dict(f["node"])
            d["type_check"] = False
            return nir.dict2NIRNode(d)
    except FFNeuroError:
        raise
    except (OSError, RuntimeError, KeyError, ValueError, TypeError, AssertionError, RecursionError) as e:
        raise _fail(path, f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}") from None
    except ArithmeticError as e:  # nir infers shapes on reading: a stride of 0 divides by zero
        raise ConfigError(f"{path}: not a readable NIR file: a shape cannot be computed (a stride, kernel "
                          f"or dilation of 0?) ({type(e).__name__}: {e})") from None
