"""The label-scheme registry; a new scheme is one file with ``@LABELS.register("name")``.

What a scheme's name may be and how many input channels it adds are declared once, torch-free, in
:mod:`ffneuro.catalog` (``LABEL_SCHEMES``, ``LABEL_CHANNELS``), so the config and the shape rule need no
torch; registering a scheme sets its ``extra_channels`` from there instead of the class stating it again.
"""
from __future__ import annotations

from collections.abc import Callable

from ..catalog import LABEL_SCHEMES, label_channels
from ..registry import Registry


class LabelRegistry(Registry[type]):
    """A :class:`~ffneuro.registry.Registry` of label-scheme classes that takes each one's input-channel
    count from the catalog; a name the catalog does not list is refused, so the two cannot drift."""

    def register(self, name: str) -> Callable[[type], type]:
        if name not in LABEL_SCHEMES:
            raise ValueError(f"label scheme {name!r} is not declared in ffneuro.catalog.LABEL_SCHEMES")
        add = super().register(name)

        def decorate(cls: type) -> type:
            cls.extra_channels = label_channels(name)
            return add(cls)

        return decorate


LABELS = LabelRegistry("label scheme")
