"""The per-unit summary the units and the HDF5 run file record (``/accounting``): one row per unit."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from .ops import BYTES_PER_ELEMENT, conv2d_macs


@dataclass(frozen=True)
class UnitCost:
    """Static, per-sample costs of one FF unit (a conv layer with its local loss).

    A summary for the run file; the phase-by-phase accounting is :func:`ffneuro.accounting.ff_training_costs`.
    """

    name: str
    params: int
    param_bytes: int
    activation_elems: int       # output neurons (conv outputs, pre-pool) the unit produces per sample
    activation_bytes: int       # bytes to hold them at the run's precision
    macs_forward: int           # one forward pass
    macs_weight_grad: int       # dL/dW of one pass (FF needs no input gradient)
    macs_input_grad: int        # dL/dx of one pass (only backprop needs it)
    trainable: bool

    @property
    def macs_ff_train(self) -> int:
        """FF training per sample: forward of positive and negative, weight gradient of both."""
        return 2 * self.macs_forward + (2 * self.macs_weight_grad if self.trainable else 0)

    def macs_inference(self, num_classes: int, readout: str) -> int:
        """Linear readout: one forward; goodness readout: one forward per candidate class."""
        return self.macs_forward * (num_classes if readout == "goodness" else 1)

    def as_dict(self) -> dict:
        return {**asdict(self), "macs_ff_train": self.macs_ff_train}


def conv_unit_cost(name: str, in_shape: tuple[int, int, int], filters: int, kernel: int,
                   *, bias: bool = True, trainable: bool = True, precision: str = "fp32",
                   stride: int = 1) -> UnitCost:
    """Costs of a 'same'-padded (padding kernel // 2) conv with ``filters`` outputs on an input of
    ``in_shape`` (C, H, W); at ``stride`` 2 its output is (H - 1) // 2 + 1 by (W - 1) // 2 + 1."""
    c_in, h, w = in_shape
    h, w = (h - 1) // stride + 1, (w - 1) // stride + 1
    nbytes = BYTES_PER_ELEMENT[precision]
    params = filters * c_in * kernel * kernel + (filters if bias else 0)
    macs = conv2d_macs(c_in, filters, kernel, h, w)
    return UnitCost(name=name, params=params, param_bytes=params * 4, activation_elems=filters * h * w,
                    activation_bytes=filters * h * w * nbytes, macs_forward=macs, macs_weight_grad=macs,
                    macs_input_grad=macs, trainable=trainable)
