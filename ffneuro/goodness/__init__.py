"""Goodness functions, local losses and their accuracies: the pure math of an FF unit's objective.

* :mod:`.functions`: goodness (how strongly a unit's activity says "positive"), per sample (``sumsq``,
  ``meansq``) or per class-owned channel group (``classwise``, CwComp; ``classmean``, DeeperForward's
  mean goodness), and the FF logit.
* :mod:`.losses`: the local losses, each registered with the goodness it takes and its
  hyperparameters (settable with ``--loss-params``): ``bce``, ``symba`` on positive/negative pairs;
  ``cwc``, ``pvn``, ``cwg`` on class-wise goodness (no negative images).
* :mod:`.peer`: Hinton's peer normalisation, a regulariser any unit may add to its loss.
"""
from .functions import (
    GOODNESS,
    Goodness,
    classwise_means,
    classwise_squares,
    discrimination_accuracy,
    ff_logits,
    mean_squares,
    pair_accuracy,
    sum_squares,
)
from .losses import LOSSES, Loss, cwc_loss, cwg_loss, ff_loss, pvn_loss, symba_loss
from .peer import peer_normalisation

__all__ = ["GOODNESS", "LOSSES", "Goodness", "Loss", "classwise_means", "classwise_squares", "cwc_loss", "cwg_loss",
           "discrimination_accuracy", "ff_logits", "ff_loss", "mean_squares", "pair_accuracy", "peer_normalisation",
           "pvn_loss", "sum_squares", "symba_loss"]
