"""The per-unit summary the units and the HDF5 run file record (``/accounting``): one row per unit."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .ops import BYTES_PER_ELEMENT


@dataclass(frozen=True)
class UnitCost:
    """Static, per-sample costs of one FF unit (a block with its local loss).

    A summary for the run file; the phase-by-phase accounting is :func:`ffneuro.accounting.ff_training_costs`.
    """

    name: str
    params: int
    param_bytes: int
    activation_elems: int       # output neurons (conv outputs, pre-pool) the unit produces per sample
    activation_bytes: int       # bytes to hold them at the run's precision
    macs_forward: int           # one forward pass (padding taps counted, as dense kernels run them)
    macs_weight_grad: int       # dL/dW of one pass
    macs_input_grad: int        # dL/dx of one pass, as backprop computes it (not for the image)
    trainable: bool
    synops_forward: int = 0     # one forward pass without padding taps (NeuroBench's synaptic operations)
    ff_passes: int = 2          # FF rows per training image: positive and negative (1: a class-wise loss)
    macs_ff_input_grad: int = 0 # the input gradients an FF step computes inside the block (parameters upstream learn)
    refresh_passes: int = 0     # forwards after the update (cfse's bn_refresh runs the step's rows once more)

    @property
    def macs_ff_train(self) -> int:
        """FF training per sample: the forward of each pass (positive and negative, or the one unlabelled
        image), the weight gradient of each (and the input gradient where the block needs it), and any forward
        the unit runs after its update."""
        backward = self.macs_weight_grad + self.macs_ff_input_grad
        return self.ff_passes * (self.macs_forward + (backward if self.trainable else 0)) \
            + self.refresh_passes * self.macs_forward

    def macs_inference(self, num_classes: int, readout: str) -> int:
        """Linear readout: one forward; goodness readout: one forward per candidate class."""
        return self.macs_forward * (num_classes if readout == "goodness" else 1)

    def as_dict(self) -> dict:
        return {**asdict(self), "macs_ff_train": self.macs_ff_train}


def unit_cost(spec, precision: str = "fp32", ff_passes: int = 2) -> UnitCost:
    """The summary of one block, from its spec (the one description of the layer); ``ff_passes``: FF rows
    per training image (2 with positives and negatives, 1 with a class-wise loss)."""
    macs = spec.macs
    return UnitCost(name=spec.name, params=spec.params, param_bytes=spec.params * 4, activation_elems=spec.neurons,
                    activation_bytes=spec.neurons * BYTES_PER_ELEMENT[precision], macs_forward=macs,
                    macs_weight_grad=macs, macs_input_grad=spec.bp_input_grad_macs(False), trainable=spec.trainable,
                    synops_forward=spec.synops, ff_passes=ff_passes,
                    macs_ff_input_grad=spec.ff_backward_macs - macs,
                    refresh_passes=ff_passes if getattr(spec, "refresh_after_update", False) else 0)
