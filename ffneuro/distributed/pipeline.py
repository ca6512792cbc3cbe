"""Layer-pipelined units: each rank trains a run of consecutive units and streams its outputs on.

FF needs nothing back from the units above, so a rank trains its units on batch b, sends the detached
hand-on outputs forward and takes batch b + 1 while the next rank works on b: after the pipeline fills,
every stage computes at once. A unit's hand-on output is computed before its own update, and the
readout's neutral pass runs after the rank's units updated on the batch, exactly as in one process, so a
pipelined run is the same computation as the sequential one. Every rank draws the same global batch (the
same generator) so labels and negatives need not travel; rank 0 embeds the images. Evaluation is
pipelined the same way. At every commit rank 0 gathers the other ranks' units, weights and optimisers.
"""
from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
import torch.distributed as dist

from ..accounting.wire import pipeline_wire_bytes, readout_columns
from ..errors import ConfigError
from ..models import FFNet
from ..models.ff_net import StepResult, evaluating
from ..train.parallel import Local
from ..units import UnitStats
from .context import DistContext
from .placement import auto_placement, parse_placement, stage_units, unit_step_times

CHECKS_EVERY = 50  # batches between the ranks' agreement on a stop signal: each one drains the pipeline


class Pipeline(Local):
    """Rank r trains units ``counts[0] + … + counts[r-1]`` onwards (``counts[r]`` of them)."""

    name = "pipeline"

    def __init__(self, ctx: DistContext, placement: str | None = None):
        self.ctx, self.rank, self.world = ctx, ctx.rank, ctx.world
        self.placement = placement
        self._device = torch.device("cpu")
        self._sends: list = []
        self.sent = 0.0   # bytes sent to the next rank by training steps since the last wire() call
        self.steps = 0
        self.images = 0

    def device(self, requested: str) -> torch.device:
        self._device = self.ctx.device(requested)
        return self._device

    # ------------------------------------------------------------------------------- placement

    def prepare(self, model, batch_size: int) -> None:
        if not isinstance(model, FFNet):
            raise ConfigError("--parallel pipeline needs FF units: backprop sends gradients back through every "
                              "layer (use --parallel data for BP)")
        if model.refresh_through:
            raise ConfigError("--parallel pipeline splits the units over processes, but bn_refresh=chain runs one pass "
                              "through all of them after each step; use bn_refresh=true (each unit on its own input)")
        n = len(model.units)
        self.placed_by, self.unit_times = self.placement or "time", None
        if self.placed_by == "macs":     # the accounting's training MACs per image
            self.counts = auto_placement([c.macs_ff_train for c in model.costs()], self.world)
        elif self.placed_by == "time":   # measured on rank 0 (the others wait), so every rank places alike
            times = unit_step_times(model, batch_size, self._device) if self.rank == 0 else None
            self.unit_times = self.ctx.broadcast(times)
            self.counts = auto_placement(self.unit_times, self.world)
        else:
            self.counts = parse_placement(self.placement, n, self.world)
            self.placed_by = "given"
        self.owned = list(stage_units(self.counts, self.rank))
        self.first, self.last = self.rank == 0, self.rank == self.world - 1
        self.model = model
        self.specs = model.layer_specs()
        self.readout_from = model.readout_units[0] + 1

    def describe(self) -> dict:
        out = {"mode": self.name, "world_size": self.world, "placement": list(self.counts),
               "placed_by": self.placed_by}
        if self.unit_times is not None:
            out["unit_step_s"] = [round(t, 6) for t in self.unit_times]
        return out

    def _cols(self, upto: int) -> int:
        """Readout feature columns from units before index ``upto`` (0-based, exclusive)."""
        return readout_columns(self.specs, self.readout_from, upto) if upto >= self.readout_from else 0

    # ------------------------------------------------------------------------------ messaging

    def _recv(self, shape: Sequence[int]) -> torch.Tensor:
        t = torch.empty(tuple(shape), device=self._device)
        dist.recv(t, src=self.rank - 1)
        return t

    def _send(self, tensors: Sequence[torch.Tensor], count: bool) -> None:
        """Send to the next rank without waiting; the previous batch's sends must be done first (at most
        one batch in flight keeps memory bounded)."""
        self._flush()
        for t in tensors:
            t = t.contiguous()
            self._sends.append((dist.isend(t, dst=self.rank + 1), t))   # the tensor lives until the send is done
            if count:
                self.sent += t.numel() * t.element_size()

    def _flush(self) -> None:
        for work, _ in self._sends:
            work.wait()
        self._sends = []

    # ------------------------------------------------------------------------------- training

    def train_batch(self, model: FFNet, x: torch.Tensor, y: torch.Tensor, generator: torch.Generator) -> StepResult:
        # every rank draws the negatives, so the generator stays the same everywhere; rank 0 embeds them
        h, n, labels = model.input_rows(x, y, generator, None if self.first else slice(0, 0))
        start, stop = self.owned[0], self.owned[-1] + 1
        if not self.first:
            rows, n, labels = model.row_layout(y)
            h = self._recv((rows, *self.specs[start].in_shape))
        linear = model.linear is not None
        collect = linear and not model.pairs          # the readout reuses the training rows' outputs
        kept = []
        if collect and self._cols(start):          # the readout features of the stages before
            kept.append(self._recv((len(y), self._cols(start))))
        stats = [None] * len(model.units)
        for i in range(start, stop):
            h, s = model.units[i].train_step(h, n, labels)
            stats[i] = s
            if collect and i in model.readout_units:
                kept.append(h.flatten(1))
        neutral = None
        if linear and model.pairs:                    # the readout's neutral pass, after this stage's updates
            neutral = model.readout_input(x) if self.first else self._recv((len(y), *self.specs[start].in_shape))
            if self._cols(start):
                kept.append(self._recv((len(y), self._cols(start))))
            with torch.no_grad(), evaluating(model):
                for step in model.walk(neutral, stop, start):
                    neutral = step.out
                    if step.index in model.readout_units:
                        kept.append(step.out.flatten(1))
        feats = (kept[0] if len(kept) == 1 else torch.cat(kept, 1)) if kept else None
        losses = {name: h.new_zeros(()) for name in model.loss_names()}
        for i in range(start, stop):
            losses[model.units[i].name] = stats[i].loss
        train_loss = h.new_zeros(())
        if not self.last:
            out = [h] + ([neutral] if neutral is not None else []) + ([feats] if feats is not None else [])
            self._send(out, count=True)
        elif linear:
            train_loss = model.linear.train_step(feats, y)
            losses["linear readout"] = train_loss
        self.steps += 1
        self.images += len(y)
        zero = UnitStats.zeros(h)
        return StepResult(losses, train_loss, [s if s is not None else zero for s in stats])

    def reduce(self, t: torch.Tensor) -> torch.Tensor:
        self._flush()
        out = t.detach().clone()
        dist.all_reduce(out)
        return out

    def agree(self, flag: bool) -> bool:
        self._flush()
        return self.ctx.any(flag, self._device)

    def checks_every(self) -> int:
        return CHECKS_EVERY

    # ----------------------------------------------------------------------------- evaluation

    @torch.no_grad()
    def count_correct(self, model: FFNet, split, slices: Sequence[slice], readouts: Sequence[str],
                      check_stop: Callable[[], None]) -> dict[str, int]:
        start, stop = self.owned[0], self.owned[-1] + 1
        counts = []
        for readout in readouts:
            correct = 0
            for sl in slices:
                x, y = split.batch(sl)
                if readout == "goodness":
                    correct += self._goodness_batch(model, x, y, start, stop)
                else:
                    correct += self._linear_batch(model, x, y, start, stop)
            counts.append(correct)
        self._flush()
        counts = self.ctx.broadcast(counts, src=self.world - 1)
        return dict(zip(readouts, counts))

    def _goodness_batch(self, model: FFNet, x, y, start: int, stop: int) -> int:
        rows = len(y) * (model.num_classes if model.pairs else 1)
        score_shape = (rows,) if model.pairs else (rows, model.num_classes)
        if self.first:
            h = model.labels.embed_all(x) if model.pairs else x
            total = torch.zeros(score_shape, device=self._device)
        else:
            h, total = self._recv((rows, *self.specs[start].in_shape)), self._recv(score_shape)
        for step in model.walk(h, stop, start):
            if step.index in model.readout_units:
                total += step.unit.scores(step.y)
            h = step.out
        if not self.last:
            self._send([h, total], count=False)
            return 0
        return int((total.view(len(y), model.num_classes).argmax(1) == y).sum())

    def _linear_batch(self, model: FFNet, x, y, start: int, stop: int) -> int:
        h = model.readout_input(x) if self.first else self._recv((len(y), *self.specs[start].in_shape))
        kept = [self._recv((len(y), self._cols(start)))] if not self.first and self._cols(start) else []
        for step in model.walk(h, stop, start):
            if step.index in model.readout_units:
                kept.append(step.out.flatten(1))
            h = step.out
        feats = (kept[0] if len(kept) == 1 else torch.cat(kept, 1)) if kept else None
        if not self.last:
            self._send([h] + ([feats] if feats is not None else []), count=False)
            return 0
        return int((model.linear(feats).argmax(1) == y).sum())

    # ---------------------------------------------------------------------------- checkpoints

    def _mine(self, key: str) -> bool:
        """Whether state entry ``key`` belongs to this rank (its units; the linear readout on the last)."""
        if key.startswith("units."):
            return int(key.split(".")[1]) in self.owned
        if key.startswith("linear."):
            return self.last
        return self.first   # shared buffers (label patterns) are the same everywhere: rank 0's

    def gather_state(self, model, state, arrays, meta):
        """Rank 0 gets every rank's units (weights and optimisers) and loads them into its own copy, so its
        network is whole (for the final measurements); the other ranks get None."""
        self._flush()
        names = {model.units[i].name for i in self.owned} | ({"linear"} if self.last else set())
        part = ({k: v for k, v in state.items() if self._mine(k)},
                {k: v for k, v in arrays["optimizers"].items() if k in names},
                {k: v for k, v in meta["optimizers"].items() if k in names})
        parts = self.ctx.gather(part)
        if not self.first:
            return None, None, None
        merged = dict(state)
        for weights, opt_arrays, opt_meta in parts:
            merged.update(weights)
            arrays["optimizers"].update(opt_arrays)
            meta["optimizers"].update(opt_meta)
        model.load_state_dict({k: torch.as_tensor(v) for k, v in merged.items()})
        return merged, arrays, meta

    def share(self, obj):
        return self.ctx.broadcast(obj)

    def wire(self) -> dict[str, float]:
        """Bytes each rank sent to the next per training step, measured and as the accounting predicts."""
        measured = self.sent / max(self.steps, 1)
        batch = self.images / max(self.steps, 1)
        model = self.model
        predicted = pipeline_wire_bytes(self.specs, self.counts, batch, pairs=model.pairs,
                                        linear=model.linear is not None, readout_from=self.readout_from)
        self.sent, self.steps, self.images = 0.0, 0, 0
        all_measured = self.ctx.gather(measured)
        out: dict[str, float] = {}
        if self.first:
            for r, (m, p) in enumerate(zip(all_measured, predicted)):
                out[f"wire_bytes_per_step_rank{r}"] = float(m)
                out[f"wire_bytes_per_step_rank{r}_predicted"] = float(p)
        return out
