"""The label-scheme registry; a new scheme is one file with ``@LABELS.register("name")``."""
from ..registry import Registry

LABELS = Registry("label scheme")
