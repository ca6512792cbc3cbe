"""Bytes that cross between processes when units are spread over them (``ffneuro.distributed``).

Pipelined units: at a stage boundary after unit k, one training step sends unit k's hand-on output for
every training row (2N for the pair objective, N otherwise), and, when the run has a linear readout,
what the readout needs from the stages so far: for the pair objective unit k's hand-on of the neutral
pass (N rows), and the readout features of the readout units up to k (N rows). Hand-on tensors are fp32
(``FFUnit.hand_on``). Data-parallel units: each rank hands every trained parameter's gradient (fp32) to
one all-reduce per optimiser; a ring all-reduce then sends 2(W−1)/W of those bytes per rank.
"""
from __future__ import annotations

import math
from collections.abc import Sequence

FP32 = 4


def readout_columns(specs: Sequence, readout_from: int, upto: int) -> int:
    """Features the linear readout gets from units ``readout_from``..``upto`` (1-based, inclusive)."""
    return sum(math.prod(s.out_shape) for s in specs[readout_from - 1: upto])


def pipeline_wire_bytes(specs: Sequence, counts: Sequence[int], batch: float, *, pairs: bool, linear: bool,
                        readout_from: int) -> list[float]:
    """Bytes each rank sends to the next per training step of ``batch`` images (the last rank sends none);
    ``counts``: consecutive units per rank."""
    out, last = [], 0
    for r, c in enumerate(counts):
        last += c
        if r == len(counts) - 1:
            out.append(0.0)
            continue
        hand_on = math.prod(specs[last - 1].out_shape)
        rows = (2 if pairs else 1) * batch
        sent = rows * hand_on
        if linear:
            sent += (batch * hand_on if pairs else 0) + batch * readout_columns(specs, readout_from, last)
        out.append(float(sent * FP32))
    return out


def data_parallel_grad_bytes(specs: Sequence, readout_params: int = 0) -> float:
    """Gradient bytes one rank hands to all-reduce per step: every trainable unit's parameters and the
    linear readout's (``readout_params``), in fp32."""
    return float(FP32 * (sum(s.params for s in specs if s.trainable) + readout_params))
