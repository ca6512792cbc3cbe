"""Peer normalisation (Hinton 2022, in his FF code): a regulariser that keeps every hidden unit in use.

Each neuron keeps a running mean of its activity on positive data; the penalty is the mean squared
difference between each neuron's running mean and the layer's average running mean, which pushes
neurons that are seldom active up and dominant ones down. The running means are state (a buffer of
the unit, saved with its weights so a resume continues them).
"""
from __future__ import annotations

import torch


def peer_normalisation(activity: torch.Tensor, running: torch.Tensor, momentum: float) -> tuple[torch.Tensor, torch.Tensor]:
    """(penalty, new running mean) for ``activity`` (N, neurons...) of positive samples.

    new = momentum·running + (1 − momentum)·mean_n(activity) (the gradient flows through this batch's
    mean only); penalty = mean_j (mean(new) − new_j)².
    """
    mean_activity = activity.flatten(1).mean(0)
    new = running.detach() * momentum + mean_activity * (1.0 - momentum)
    penalty = (new.mean() - new).pow(2).mean()
    return penalty, new.detach()
