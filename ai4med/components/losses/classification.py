"""Classification losses (binary, multi-class, class-weighted multi-class).

Classifiers in ai4med default to `final_activation: "linear"`, so these losses take
logits (`from_logits=True`) and apply sigmoid/softmax in a numerically stable way;
set `from_logits=False` when the model already outputs probabilities.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from ai4med.common.build_ctx import BuildContext
from ai4med.components.losses.loss import Loss

_EPS = 1e-7


def _class_indices(targets: torch.Tensor, n_classes: int) -> torch.Tensor:
    """(N,), (N, 1) indices or (N, C) one-hot -> (N,) long indices."""
    if targets.ndim == 2 and targets.shape[1] == n_classes and n_classes > 1:
        return targets.argmax(1)
    return targets.reshape(-1).round().long() if targets.is_floating_point() else targets.reshape(-1).long()


class BinaryClassificationLoss(Loss):
    """Mean binary cross-entropy; predictions and targets have the same number of elements.

    Args:
        from_logits: predictions are logits (else probabilities in [0, 1]).
    """

    def __init__(self, from_logits: bool = True) -> None:
        Loss.__init__(self)
        self.from_logits = from_logits

    def get_loss(self, predictions: torch.Tensor, targets: torch.Tensor, build_ctx: BuildContext | None = None):
        p = predictions.float().reshape(-1)
        t = targets.float().reshape(-1)
        if p.numel() != t.numel():
            raise ValueError(f"predictions {tuple(predictions.shape)} and targets {tuple(targets.shape)} differ in size")
        if self.from_logits:
            return F.binary_cross_entropy_with_logits(p, t)
        return F.binary_cross_entropy(p.clamp(_EPS, 1 - _EPS), t)


def _log_probs(predictions: torch.Tensor, from_logits: bool) -> torch.Tensor:
    p = predictions.float()
    return F.log_softmax(p, dim=1) if from_logits else torch.log(p.clamp_min(_EPS))


class MulticlassClassificationLoss(Loss):
    """Mean softmax cross-entropy of (N, C) predictions against indices or one-hot targets.

    Args:
        from_logits: predictions are logits (else softmax probabilities).
    """

    def __init__(self, from_logits: bool = True) -> None:
        Loss.__init__(self)
        self.from_logits = from_logits

    def get_loss(self, predictions: torch.Tensor, targets: torch.Tensor, build_ctx: BuildContext | None = None):
        logp = _log_probs(predictions, self.from_logits)
        return F.nll_loss(logp, _class_indices(targets, logp.shape[1]).to(logp.device))


class WeightedMulticlassClassificationLoss(Loss):
    """Class-weighted softmax cross-entropy, reduced as Clara's TF version did.

    Each case's loss is multiplied by the weight of its true class; the sum is divided by
    the number of cases with a non-zero weight (TF's SUM_BY_NONZERO_WEIGHTS). Without
    `class_weights` this is `MulticlassClassificationLoss`.

    Args:
        class_weights: one weight per class.
        from_logits: predictions are logits (else softmax probabilities).
    """

    def __init__(self, class_weights: Sequence[float] | None = None, from_logits: bool = True) -> None:
        Loss.__init__(self)
        self.class_weights = None if class_weights is None else [float(w) for w in class_weights]
        self.from_logits = from_logits

    def get_loss(self, predictions: torch.Tensor, targets: torch.Tensor, build_ctx: BuildContext | None = None):
        logp = _log_probs(predictions, self.from_logits)
        idx = _class_indices(targets, logp.shape[1]).to(logp.device)
        ce = F.nll_loss(logp, idx, reduction="none")
        if self.class_weights is None:
            return ce.mean()
        if len(self.class_weights) != logp.shape[1]:
            raise ValueError(f"class_weights has {len(self.class_weights)} values for {logp.shape[1]} classes")
        w = torch.tensor(self.class_weights, dtype=ce.dtype, device=ce.device)[idx]
        return (w * ce).sum() / (w != 0).sum().clamp_min(1)
