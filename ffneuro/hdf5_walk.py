"""An HDF5 file's structure walked before any of its data is read, for the readers of run files and NIR
files alike: every link a hostile file could use to read or write other files or never end (soft,
external and user-defined links, link loops, deep nesting, virtual datasets, external storage) is
refused by name, and every dataset is handed to the caller, which checks its type
(:func:`supported_dtype`) and what reading it would take (:func:`data_bytes`)."""
from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

#: numpy kinds the readers accept: bool, integers, floats, fixed-length bytes (and HDF5 strings)
KINDS = "biufS"


def supported_dtype(dtype) -> bool:
    """A numeric or fixed-length bytes dtype, or an HDF5 variable-length string."""
    import h5py

    return dtype.kind in KINDS or (dtype.kind == "O" and h5py.check_string_dtype(dtype) is not None)


def data_bytes(dsid, dtype) -> tuple[int, tuple]:
    """What reading a dataset whole takes in memory, and its shape, from its header alone (no data read)."""
    import h5py

    space = dsid.get_space()
    kind = space.get_simple_extent_type()
    shape = tuple(space.shape) if kind == h5py.h5s.SIMPLE else ()
    count = 0 if kind == h5py.h5s.NULL else math.prod(shape)
    if dtype.kind == "O":  # a variable-length string: its fill value is repeated for every unwritten element
        try:
            fill = h5py.Dataset(dsid).fillvalue
        except (OSError, ValueError, TypeError):
            fill = b""
        return count * (16 + (len(fill) if isinstance(fill, (bytes, str)) else 0)), shape
    return count * dtype.itemsize, shape


def checked_datasets(f, fail: Callable[[str], Exception], *, files: str, max_links: int,
                     max_depth: int) -> Iterator[tuple[str, Any]]:
    """``(name, object id)`` of every dataset of the open h5py file ``f``, in link order, after the checks
    above; ``fail(what)`` makes the exception raised, and ``files`` names what such files hold (e.g.
    "run files") in the messages."""
    import h5py

    links: list[tuple[bytes, str, int]] = []

    def visit(name: bytes, info) -> bool | None:
        text = name.decode("utf-8", "replace")
        links.append((name, text, info.type))
        return True if len(links) > max_links or text.count("/") >= max_depth else None  # True stops the walk

    f.id.links.visit(visit, info=True)
    if len(links) > max_links:
        raise fail(f"more than {max_links} links; {files} hold far fewer")
    if h5py.h5o.get_info(f.id).rc > 1:
        raise fail("the root group is linked more than once (a link loop)")
    for raw, name, kind in links:
        where = "/" + name
        if name.count("/") >= max_depth:
            raise fail(f"groups nested deeper than {max_depth} levels ({where[:80]}...)")
        if kind == h5py.h5l.TYPE_SOFT:
            raise fail(f"{where} is a soft link; {files} hold no links")
        if kind == h5py.h5l.TYPE_EXTERNAL:
            raise fail(f"{where} is an external link (to another file); {files} hold no links")
        if kind != h5py.h5l.TYPE_HARD:
            raise fail(f"{where} is a user-defined link; {files} hold no links")
        oid = h5py.h5o.open(f.id, raw)
        info = h5py.h5o.get_info(oid)
        if info.type == h5py.h5o.TYPE_GROUP:
            if info.rc > 1:
                raise fail(f"group {where} is linked more than once (a link loop)")
            continue
        if info.type != h5py.h5o.TYPE_DATASET:
            raise fail(f"{where} is an unsupported HDF5 object (not a group or a dataset)")
        dcpl = oid.get_create_plist()
        if dcpl.get_layout() == h5py.h5d.VIRTUAL:
            raise fail(f"{where} is a virtual dataset (its data would be read from other files)")
        if dcpl.get_external_count():
            target = dcpl.get_external(0)[0].decode("utf-8", "replace")
            raise fail(f"{where} uses external storage (its data would be read from or written to "
                       f"{target[:80]}); refused")
        yield name, oid
