"""Block types: the layer inside a learning unit, one file each (``--arch NAME`` is ``blocks/NAME.py``).

A block file holds everything about its layer (:class:`~ffneuro.spec.block.BlockSpec`): its spec and
nodes, its options, its cost rule, its memory replay and its torch module. Registering one is a line in
:data:`BLOCK_FILES`; ``tests/test_block_contract.py`` then checks it like every other block (MACs against
``FlopCounterMode``, memory against the CPU allocator, NIR round trip, every hardware target, and that
it learns). Naming a block type imports nothing: its file (and torch) loads on first use.
"""
from __future__ import annotations

import importlib
from collections.abc import Iterator, Sequence

from ..catalog import network_input_shape
from ..registry import UnknownNameError
from ..spec.block import BlockSpec, StackPlan

#: --arch name -> the module of this package that defines it (one registration line per block type)
BLOCK_FILES: dict[str, str] = {
    "conv": "conv",
    "fc": "fc",
    "cfse": "cfse",
    "trifecta": "trifecta",
    "dwsep": "dwsep",
    "residual": "residual",
}

_LOADED: dict[str, type[BlockSpec]] = {}


def register_block(cls: type[BlockSpec]) -> type[BlockSpec]:
    """Class decorator of a block type: ``cls.kind`` must be a name in :data:`BLOCK_FILES`."""
    if not (isinstance(cls, type) and issubclass(cls, BlockSpec)):
        raise TypeError(f"a block type subclasses BlockSpec, got {cls!r}")
    if cls.kind not in BLOCK_FILES:
        raise ValueError(f"block type {cls.kind!r} is not listed in ffneuro.blocks.BLOCK_FILES")
    if cls.kind in _LOADED and _LOADED[cls.kind] is not cls:
        raise ValueError(f"block type {cls.kind!r} is already registered")
    _LOADED[cls.kind] = cls
    return cls


class BlockRegistry:
    """The block types by name; an unknown name lists the valid ones."""

    kind = "block type (--arch)"

    def names(self) -> list[str]:
        return sorted(BLOCK_FILES)

    def __contains__(self, name: object) -> bool:
        return name in BLOCK_FILES

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def get(self, name: str) -> type[BlockSpec]:
        if name not in BLOCK_FILES:
            raise UnknownNameError(f"unknown {self.kind} {name!r}; valid: {', '.join(self.names())}")
        if name not in _LOADED:
            module = BLOCK_FILES[name]
            importlib.import_module(module if "." in module else f"{__name__}.{module}")
            if name not in _LOADED:
                raise ImportError(f"{module} does not register a block type named {name!r}")
        return _LOADED[name]


BLOCKS = BlockRegistry()


def layer_pools(layers: int, pool: str = "none", pool_every: int = 1, pool_at=None) -> list[str]:
    """Per-layer pool: unit i (1-based) downsamples with ``pool`` iff i is in ``pool_at`` (when given),
    else iff i % ``pool_every`` == 0; the others get "none"."""
    if pool_every < 1:
        raise ValueError(f"pool_every must be >= 1, got {pool_every}")
    if pool_at is not None:
        return [pool if i + 1 in set(pool_at) else "none" for i in range(layers)]
    return [pool if (i + 1) % pool_every == 0 else "none" for i in range(layers)]


def layer_widths(config) -> tuple[int, ...]:
    """Each layer's width (filters or neurons): ``config.widths`` when given, else ``filters`` for all."""
    widths = getattr(config, "widths", None)
    return tuple(widths) if widths else (config.filters,) * config.layers


def block_options(config) -> dict:
    """The block type's own options of a config (its ``block_options``)."""
    return dict(getattr(config, "block_options", None) or {})


def layer_specs(config, image_shape: Sequence[int], *, algo: str | None = None,
                num_classes: int | None = None) -> list[BlockSpec]:
    """The block stack a :class:`~ffneuro.config.RunConfig` builds, named and flagged as the model does:
    FF units ``unit1..`` (unit 1 frozen unless ``train_first_layer``), BP layers ``layer1..`` (all trained).
    ``num_classes`` is needed by block types whose shape depends on it (cfse's class-owned channel groups).
    An FF network whose label scheme adds input channels (``--labels channel``) takes them in its first unit."""
    algo = algo or config.algo
    if algo not in ("ff", "bp"):
        raise ValueError(f"unknown algo {algo!r}; valid: ff, bp")
    cls = BLOCKS.get(getattr(config, "arch", "conv"))
    options = block_options(config)
    cls.check_options(options)
    pool_every = getattr(config, "pool_every", 1)  # configs from before pool_every downsampled every unit
    plan = StackPlan(kernel=config.kernel,
                     pools=tuple(layer_pools(config.layers, config.pool, pool_every, getattr(config, "pool_at", None))),
                     prefix="unit" if algo == "ff" else "layer",
                     trainable=tuple(algo == "bp" or config.train_first_layer or i > 0 for i in range(config.layers)),
                     num_classes=num_classes, options=options)
    shape = network_input_shape(getattr(config, "labels", "none"), image_shape, algo)
    return cls.stack(shape, layer_widths(config), plan)


__all__ = ["BLOCKS", "BLOCK_FILES", "BlockSpec", "StackPlan", "block_options", "layer_pools", "layer_specs",
           "layer_widths", "register_block"]
