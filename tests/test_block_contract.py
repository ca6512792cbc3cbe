"""The block contract: every registered block type (``ffneuro.blocks.BLOCKS``) is checked alike, as timm tests
every model. A new block type is a file and a line in ``BLOCK_FILES``; it is done when this module passes:

* its spec matches its torch module (parameters, goodness and hand-on shapes);
* the MACs of an FF step, of both readouts and of the BP twin's step and readout equal ``FlopCounterMode``;
* its PyTorch memory replay is within 10 % of the CPU allocator for an FF and a BP step;
* its layer-spec graph round-trips through JSON and through NIR (or NIR refuses, by name, a node it has
  no counterpart for: batch norm, max pooling);
* the profiler estimates it on every shipped hardware target with a number, or an explicit "not
  modelled", for every figure;
* one epoch on synthetic data learns above chance.

And a block without memory replays is reported as such, never costed by another block's replay.

Each block type is built from one small config: :data:`DEFAULT`, changed only where a block type cannot take it
(:data:`NEEDS`); a new block type needs no entry when the default suits it. Block types with options are checked
again, once per case of ``BLOCK_VARIANTS`` in tests/blockspecs.py (e.g. the residual block's group norm).
"""
from __future__ import annotations

import dataclasses
import json
import logging
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import ClassVar

import pytest
import torch
from blockspecs import BLOCK_VARIANTS
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from ffneuro import blocks
from ffneuro.accounting import (
    bp_memory,
    bp_training_costs,
    ff_memory,
    ff_training_costs,
    inference_costs,
    net_spec,
)
from ffneuro.accounting.objective import objective_cost
from ffneuro.blocks import BLOCKS
from ffneuro.config import RunConfig
from ffneuro.errors import ConfigError
from ffneuro.models import BPNet, FFNet
from ffneuro.profiler.measure import step_peak_bytes
from ffneuro.spec import Activation, Flatten, Linear, NetSpec, Neuron, Node
from ffneuro.spec.block import BlockSpec, StackPlan

NAMES = BLOCKS.names()
CASES = NAMES + sorted(BLOCK_VARIANTS)   # every block type, then block types with options (tests/blockspecs.py)
CLASSES = 10
SHAPE = (3, 8, 8)

#: the config every block type is checked with (two units, the second downsampling) ...
DEFAULT = dict(layers=2, widths=(16, 16), kernel=3, pool="max", pool_every=2)
#: ... and what a block type changes because it cannot take it
NEEDS: dict[str, dict] = {
    "fc": dict(pool="none"),                          # dense units do not downsample
    "cfse": dict(widths=(10, 20), labels="none", goodness="classwise", loss="cwc"),   # class-owned channel groups
}
MEMORY_TOLERANCE = 0.10
MEASURED: dict[str, float] = {}   # replay / allocator per case, printed with -s (docs/variants/blocks.md)


def config(name: str, **overrides) -> RunConfig:
    """The config of ``name``: a block type's, or a variant's (its block type with its options and objective)."""
    variant = BLOCK_VARIANTS.get(name, {})
    arch = variant.get("arch", name)
    values = {**DEFAULT, **NEEDS.get(arch, {}), **variant, "arch": arch, "readout": "both", "readout_from": 1,
              "train_first_layer": True, "epochs": 1, "lr": 1e-2}
    values.update(overrides)
    return RunConfig(**values)


def bp_config(name: str, **overrides) -> RunConfig:
    return dataclasses.replace(config(name, **overrides), algo="bp", readout="linear")


def batch(n: int, shape: Sequence[int] = SHAPE) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return torch.rand(n, *shape, generator=g), torch.arange(n) % CLASSES


# ---------------------------------------------------------------------------------------------- registry


@pytest.mark.parametrize("name", NAMES)
def test_each_block_type_is_registered_under_its_own_name(name):
    cls = BLOCKS.get(name)
    assert issubclass(cls, BlockSpec) and cls.kind == name
    cls.check_options({})
    with pytest.raises(ConfigError, match=name):
        cls.check_options({"no_such_option": 1})


# ------------------------------------------------------------------------------------- spec and module


@pytest.mark.parametrize("name", CASES)
def test_the_spec_matches_its_torch_module(name):
    cfg = config(name)
    torch.manual_seed(0)
    net = FFNet(cfg, SHAPE, CLASSES)
    specs = blocks.layer_specs(cfg, SHAPE, num_classes=CLASSES)
    assert specs == net.layer_specs()
    x, y = batch(2)
    h = net.input_rows(x, y)[0]
    for unit, spec in zip(net.units, specs):
        assert spec.params == sum(p.numel() for p in unit.block.parameters()), spec.name
        out = unit(h)
        assert tuple(out.shape[1:]) == spec.goodness_shape, spec.name
        h = unit.hand_on(out)
        assert tuple(h.shape[1:]) == spec.out_shape, spec.name
        u = spec.unit()
        assert (u.in_shape, u.out_shape, u.params, u.macs) == (spec.in_shape, spec.out_shape, spec.params, spec.macs)
        assert spec.neurons == sum(math.prod(n.out_shape) for n in spec.synapses)


# ---------------------------------------------------------------------------------------------- MACs


def counted_flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def _torch_overcounts_grouped_weight_grads() -> bool:
    """FlopCounterMode counts a grouped conv's weight gradient ``groups`` times (pytorch/pytorch PR #183405
    fixes it); probed, so the tests follow whichever torch is installed."""
    conv = nn.Conv2d(4, 4, 3, padding=1, groups=4)
    y = conv(torch.rand(1, 4, 5, 5))
    return counted_flops(lambda: y.sum().backward()) == 4 * counted_flops(lambda: conv(torch.rand(1, 4, 5, 5)))


def torch_extra_macs(specs, rows: int) -> int:
    """The weight-gradient MACs FlopCounterMode adds to the true count for the grouped convs of trained blocks."""
    if not _torch_overcounts_grouped_weight_grads():
        return 0
    return sum((n.groups - 1) * rows * n.macs for s in specs if s.trainable for n in s.synapses
               if getattr(n, "groups", 1) > 1)


@pytest.mark.parametrize("name", CASES)
def test_ff_step_and_readout_macs_equal_the_flop_counter(name):
    cfg = config(name)
    torch.manual_seed(0)
    net, n = FFNet(cfg, SHAPE, CLASSES), 3
    x, y = batch(n)
    specs = net.layer_specs()
    objective = objective_cost(cfg, CLASSES)
    cost = ff_training_costs(specs, num_classes=CLASSES, batch=n, linear_readout=True,
                             readout_from=cfg.readout_from, objective=objective)
    rows = n * objective.rows_per_image
    assert counted_flops(lambda: net.train_batch(x, y)) == 2 * (cost.macs + torch_extra_macs(specs, rows))
    # the per-unit summary a run file stores (UnitCost.macs_ff_train), one unit step at a time
    h, positives, labels = net.input_rows(x, y)
    for unit, unit_cost, spec in zip(net.units, net.costs(), specs):
        with FlopCounterMode(display=False) as counter:
            h_in, (h, _) = h, unit.train_step(h, positives, labels)
            if spec.refresh_chained and unit.learning:   # its share of the network's refresh pass (cfse's chain)
                with torch.no_grad():
                    unit(h_in)
        extra = torch_extra_macs([spec], n * unit_cost.ff_passes)
        assert counter.get_total_flops() == 2 * (n * unit_cost.macs_ff_train + extra), unit.name
    net.eval()
    for readout in ("goodness", "linear"):
        cost = inference_costs(specs, readout=readout, num_classes=CLASSES, batch=n, readout_from=cfg.readout_from,
                               objective=objective)
        assert counted_flops(lambda r=readout: net.predict(x, r)) == 2 * cost.macs, readout


@pytest.mark.parametrize("name", CASES)
def test_bp_step_and_readout_macs_equal_the_flop_counter(name):
    cfg = bp_config(name)
    torch.manual_seed(0)
    net, n = BPNet(cfg, SHAPE, CLASSES), 3
    x, y = batch(n)
    specs = net.layer_specs()
    assert specs == blocks.layer_specs(cfg, SHAPE, num_classes=CLASSES)
    assert counted_flops(lambda: net.train_batch(x, y)) == \
        2 * (bp_training_costs(specs, num_classes=CLASSES, batch=n).macs + torch_extra_macs(specs, n))
    net.eval()
    assert counted_flops(lambda: net.predict(x)) == \
        2 * inference_costs(specs, readout="linear", num_classes=CLASSES, batch=n, algo="bp").macs


# ---------------------------------------------------------------------------------------------- memory
# The batch is allocated before profiling starts, so it is in the replay (input_bytes) but not in the
# measurement; the label patterns are a buffer of the model, in the measurement but outside the replay.


@pytest.mark.parametrize("name", CASES)
def test_ff_step_memory_replay_matches_the_cpu_allocator(name):
    cfg, n = config(name), 8     # 16 rows with pairs: 1×1 convs take oneDNN; see the BP test for the other path
    torch.manual_seed(0)
    x, y = batch(n)
    model, measured = step_peak_bytes(lambda: FFNet(cfg, SHAPE, CLASSES), x, y)
    m = ff_memory(model.layer_specs(), n, num_classes=CLASSES, linear_readout=True, readout_from=cfg.readout_from,
                  backend="cpu", objective=objective_cost(cfg, CLASSES))
    est = m.peak_bytes - m.input_bytes
    if model.labels is not None:
        est += model.labels.patterns.numel() * model.labels.patterns.element_size()
    MEASURED[f"{name} ff"] = est / measured
    print(f"{name} FF step: replay {est} B, allocator {measured} B, ratio {est / measured:.3f} (peak at {m.peak_at})")
    assert abs(est - measured) <= MEMORY_TOLERANCE * measured, (est, measured, m.peak_at)


@pytest.mark.parametrize("name", CASES)
def test_bp_step_memory_replay_matches_the_cpu_allocator(name):
    cfg, n = bp_config(name), 8  # 8 rows, one thread: ATen's own kernel runs 1×1 convs
    torch.manual_seed(0)
    x, y = batch(n)
    model, measured = step_peak_bytes(lambda: BPNet(cfg, SHAPE, CLASSES), x, y)
    m = bp_memory(model.layer_specs(), n, num_classes=CLASSES, backend="cpu")
    est = m.peak_bytes - m.input_bytes
    MEASURED[f"{name} bp"] = est / measured
    print(f"{name} BP step: replay {est} B, allocator {measured} B, ratio {est / measured:.3f} (peak at {m.peak_at})")
    assert abs(est - measured) <= MEMORY_TOLERANCE * measured, (est, measured, m.peak_at)


# ------------------------------------------------------------------------------------- JSON and NIR


@pytest.mark.parametrize("name", CASES)
def test_the_spec_graph_round_trips_through_json(name):
    torch.manual_seed(0)
    for spec in (FFNet(config(name), SHAPE, CLASSES).spec(), BPNet(bp_config(name), SHAPE, CLASSES).spec()):
        assert spec == net_spec(spec_blocks(spec, name), *spec_head(spec))
        assert NetSpec.from_dict(json.loads(json.dumps(spec.to_dict()))) == spec
        assert NetSpec.from_json(spec.to_json()) == spec


def spec_blocks(spec: NetSpec, name: str) -> list[BlockSpec]:
    """The block specs behind ``spec`` (rebuilt from the config, named as its units)."""
    algo = "bp" if spec.units[-1].name == "head" else "ff"
    cfg = config(name) if algo == "ff" else bp_config(name)
    return blocks.layer_specs(cfg, SHAPE, algo=algo, num_classes=CLASSES)


def spec_head(spec: NetSpec) -> tuple:
    from ffneuro.accounting import LinearSpec

    last = spec.units[-1]
    if last.name != "head":
        return ()
    linear = next(n for n in last.nodes if isinstance(n, Linear))
    return (LinearSpec("head", linear.in_features, linear.out_features),)


NIR_LACKS = "batch_norm", "group_norm", "max pooling"   # node kinds NIR has no counterpart for (the writer refuses them)


def nir_lacks(node: Node) -> str | None:
    if node.kind in ("batch_norm", "group_norm"):
        return node.kind
    if node.kind == "pool2d" and node.pool == "max":
        return "max pooling"
    return None


def nir_signatures(spec: NetSpec) -> list[tuple]:
    """What a NIR file keeps of ``spec``, independent of node order: per unit its name and the graph that
    ends at its output, each node with (recursively) the nodes it reads, the unit's input as "input".
    RMS norms are left out (NIR has none), ReLUs become IF neurons (the writer's rate-coded conversion)."""
    return [(u.name, _signature(u, len(u.nodes) - 1), sum(n.kind != "rms_norm" for n in u.nodes)) for u in spec.units]


def _signature(u, i: int) -> tuple | str:
    """Node ``i`` of unit ``u`` with the signatures of the nodes it reads (sorted: an add is commutative)."""
    if i < 0:
        return "input"
    node = u.nodes[i]
    if node.kind == "rms_norm":
        return _signature(u, u.wiring[i][0])
    if isinstance(node, Activation):
        node = Neuron(node.in_shape, "if", 1)
    return (repr(node), tuple(sorted((_signature(u, j) for j in u.wiring[i]), key=repr)))


@pytest.mark.parametrize("name", CASES)
def test_the_spec_graph_round_trips_through_nir(name, tmp_path):
    pytest.importorskip("nir")
    from ffneuro.spec.nir_io import read_nir, write_nir

    torch.manual_seed(0)
    for pool in ("avg", "none"):   # NIR has no max pooling: avg where the block type takes it
        try:   # the FF units (a head's flatten would be read back into the unit before it, by NIR's grouping)
            spec = FFNet(config(name, pool=pool), SHAPE, CLASSES).spec()
            break
        except ConfigError:
            continue
    path = tmp_path / f"{name}.nir"
    lacking = {k for n in spec.nodes if (k := nir_lacks(n))}
    if lacking:
        with pytest.raises(ConfigError, match="|".join(k.replace("_", "[_ ]") for k in lacking)):
            write_nir(spec, path)
        return
    write_nir(spec, path)
    back = read_nir(path)
    assert back.input_shape == spec.input_shape and back.output_shape == spec.output_shape
    assert nir_signatures(back) == nir_signatures(spec)
    assert [u.synapses for u in back.units] == [u.synapses for u in spec.units]
    assert (back.macs, back.synops) == (spec.macs, spec.synops)


# ---------------------------------------------------------------------------------------------- profiler


def _numbers_or_marked(est, report) -> None:
    """Every figure of a supported workload is a finite number, or None where the report says why: peak
    memory with a note that it is not modelled, latency where the target has no peak rate (``unknown``)."""
    no_rate = any(k.endswith("(latency)") for k in report.unknown)
    for f in ("energy_j", "latency_s", "macs", "effective_macs", "bytes_on_core", "bytes_off_core", "cores_needed"):
        v = getattr(est, f)
        if v is None and f == "latency_s" and no_rate:
            continue
        assert v is not None and math.isfinite(v) and v >= 0, (report.target, est.workload, f, v)
    if est.peak_memory_bytes is None:
        assert any(n.startswith("peak memory not modelled: ") for n in est.notes), (est.workload, est.notes)
    else:
        assert est.peak_memory_bytes > 0 and not any("not modelled" in n for n in est.notes), est.notes
    for u in est.per_unit:
        assert u.energy_j is not None and math.isfinite(u.energy_j) and u.energy_j >= 0, (est.workload, u.unit)
        assert (u.latency_s is None and no_rate) or math.isfinite(u.latency_s), (report.target, est.workload, u.unit)


@pytest.mark.parametrize("name", CASES)
def test_the_profiler_estimates_every_shipped_target(name):
    from ffneuro.profiler import profile_config, shipped_profiles

    cfg = config(name)
    targets = shipped_profiles()
    assert targets
    specs = blocks.layer_specs(cfg, SHAPE, algo="ff", num_classes=CLASSES)
    for hw in targets:
        report = profile_config(cfg, SHAPE, CLASSES, hw, batch=4)
        assert report.workloads, hw
        for w, est in report.workloads.items():
            if not est.supported:
                assert est.reason, (hw, w)
                continue
            _numbers_or_marked(est, report)
            if w in ("ff_train", "bp_train"):   # every shipped block models its memory
                assert est.peak_memory_bytes is not None, (hw, w, est.notes)
        ff = report.workloads.get("ff_train")
        if ff is not None and ff.supported:   # the profiler costs the block's own nodes
            cost = ff_training_costs(specs, num_classes=CLASSES, batch=4, linear_readout=True,
                                     readout_from=cfg.readout_from, objective=objective_cost(cfg, CLASSES))
            assert ff.macs * 4 == pytest.approx(cost.macs), hw


# ---------------------------------------------------------------------------------------------- learning


@pytest.mark.parametrize("name", CASES)
def test_one_epoch_on_synthetic_data_learns_above_chance(name):
    from ffneuro.data.synthetic import make_synthetic
    from ffneuro.train.memory_guard import check_run_memory
    from ffneuro.train.trainer import Trainer

    data = make_synthetic(n_train=1000, n_test=200, size=12)   # 36 steps of 25 (an epoch of 500 is too short for some)
    cfg = config(name, batch_size=25, val_size=100, device="cpu", lr=3e-3, linear_lr=3e-3, eval_batch_size=500)
    assert check_run_memory(cfg, data) is not None   # the memory guard checks it (its memory is modelled)
    torch.manual_seed(0)
    summary = Trainer(cfg, data).run()
    chance = 1 / data.num_classes
    print(f"{name}: test accuracy after one epoch {summary.test}")
    assert max(summary.test.values()) > 2 * chance, summary.test


# ------------------------------------------------------------------------ a block without memory replays


@dataclass(frozen=True)
class _NoReplayBlock(BlockSpec):
    """A throwaway dense block (flatten → linear → ReLU) that models its costs but not its memory."""

    kind: ClassVar[str] = "noreplay"

    name: str
    in_shape: tuple[int, ...]
    width: int
    trainable: bool = True

    def nodes(self) -> tuple[Node, ...]:
        out: list[Node] = [Flatten(self.in_shape)] if len(self.in_shape) > 1 else []
        return (*out, Linear((math.prod(self.in_shape),), self.width), Activation((self.width,), "relu"))

    @property
    def goodness_shape(self) -> tuple[int, ...]:
        return (self.width,)

    @classmethod
    def stack(cls, image_shape, widths, plan: StackPlan):
        if any(p != "none" for p in plan.pools):
            raise ConfigError("noreplay blocks do not downsample")
        specs, shape = [], tuple(image_shape)
        for i, w in enumerate(widths):
            specs.append(cls(f"{plan.prefix}{i + 1}", shape, w, plan.trainable[i]))
            shape = specs[-1].out_shape
        return specs

    forward_ops = property(lambda self: 2 * self.width)
    neuron_grad_ops = property(lambda self: self.width)
    bias_grad_ops = property(lambda self: self.width)
    bp_stored = property(lambda self: self.width)
    update_ops = property(lambda self: 2)

    def bp_input_grad_ops(self, first: bool) -> int:
        return self.width

    def build(self) -> nn.Module:
        from ffneuro.blocks.module import BlockModule

        class Module(BlockModule):
            def __init__(self, spec):
                super().__init__(spec)
                self.linear = nn.Linear(math.prod(spec.in_shape), spec.width)

            def forward(self, x):
                return torch.relu(self.linear(x.flatten(1)))

        return Module(self)


@pytest.fixture
def noreplay(monkeypatch):
    """``--arch noreplay`` registered for one test (as a block file would register it)."""
    monkeypatch.setitem(blocks.BLOCK_FILES, "noreplay", __name__)
    monkeypatch.setitem(blocks._LOADED, "noreplay", _NoReplayBlock)
    return RunConfig(arch="noreplay", layers=2, widths=(16, 12), pool="none", readout="both", train_first_layer=True,
                     epochs=1, device="cpu", batch_size=10, val_size=20)


def test_a_block_without_memory_replays_is_not_checked_by_the_memory_guard(noreplay, caplog):
    from ffneuro.data.synthetic import make_synthetic
    from ffneuro.train.memory_guard import check_run_memory

    data = make_synthetic(n_train=60, n_test=20, size=8)
    with caplog.at_level(logging.WARNING, logger="ffneuro.train.memory_guard"):
        assert check_run_memory(noreplay, data) is None
    assert "memory guard: not checked: " in caplog.text and "noreplay" in caplog.text
    # it still trains (the guard refuses nothing it cannot check)
    net = FFNet(noreplay, data.image_shape, data.num_classes)
    net.train_batch(torch.rand(4, *data.image_shape), torch.arange(4))


def test_a_block_without_memory_replays_has_its_peak_memory_marked_not_modelled(noreplay):
    from ffneuro.profiler import profile_config, shipped_profiles

    marked = 0
    for hw in shipped_profiles():
        report = profile_config(noreplay, (1, 8, 8), CLASSES, hw, batch=4)
        for est in report.workloads.values():
            if not est.supported:
                continue
            _numbers_or_marked(est, report)   # costs and energy are still numbers
            if est.peak_memory_bytes is None:
                assert any(n.startswith("peak memory not modelled: ") and "noreplay" in n for n in est.notes)
                marked += 1
    assert marked, "no target replays PyTorch's memory"   # a GPU or CPU target runs this package's PyTorch code
