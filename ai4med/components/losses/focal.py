"""Focal loss on probability maps (Lin et al. 2017), and its sum with Dice."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from ai4med.common.build_ctx import BuildContext
from ai4med.components.losses.dice import dice_loss
from ai4med.components.losses.loss import Loss
from ai4med.components.losses.targets import onehot_targets, to_channels_first


def focal_loss(
    predictions: torch.Tensor,
    targets: torch.Tensor,
    gamma: float = 2.0,
    alpha: float | Sequence[float] | None = None,
    data_format: str = "channels_first",
    skip_background: bool = False,
    is_onehot_targets: bool = False,
    eps: float = 1e-8,
) -> torch.Tensor:
    """Mean over all (N, C, *spatial) elements of `-a_c (1 - p_c)^gamma t_c log(p_c + eps)`.

    The reduction and `alpha` (scalar -> `[1 - alpha, alpha, ...]`, or one per class)
    follow MONAI's softmax FocalLoss, so on softmax probabilities this equals
    `monai.losses.FocalLoss(use_softmax=True, to_onehot_y=True)` on the logits.

    Args:
        predictions: (N, C, *spatial) probabilities (softmax output; NOT logits).
        targets: (N, 1, *spatial) indices or one-hot with `is_onehot_targets`.
        gamma: focusing exponent.
        alpha: class balancing.
        data_format: "channels_first" or "channels_last".
        skip_background: drop channel 0 (after the softmax, unlike MONAI).
        is_onehot_targets: targets already one-hot.
        eps: added inside the log.
    """
    predictions = to_channels_first(predictions, data_format).float()
    if is_onehot_targets:
        targets = to_channels_first(targets, data_format).float()
    else:
        if targets.ndim == predictions.ndim:
            targets = to_channels_first(targets, data_format)
        targets = onehot_targets(targets, predictions.shape[1], predictions.ndim)
    loss = -((1.0 - predictions) ** gamma) * torch.log(predictions + eps) * targets
    if alpha is not None:
        n = predictions.shape[1]
        fac = [1.0 - float(alpha)] + [float(alpha)] * (n - 1) if isinstance(alpha, (int, float)) else list(alpha)
        if len(fac) != n:
            raise ValueError(f"alpha has {len(fac)} values for {n} classes")
        loss = loss * torch.tensor(fac, dtype=loss.dtype, device=loss.device).view(1, n, *[1] * (loss.ndim - 2))
    if skip_background:
        if loss.shape[1] == 1:
            raise ValueError("There is only 1 single channel in the predicted output, and skip_background is True")
        loss = loss[:, 1:]
    return loss.mean()


class Focal(Loss):
    """Focal loss on probabilities (a softmax `final_activation`); args as `focal_loss`."""

    def __init__(
        self,
        data_format: str = "channels_first",
        gamma: float = 2.0,
        alpha: float | Sequence[float] | None = None,
        skip_background: bool = False,
        is_onehot_targets: bool = False,
        eps: float = 1e-8,
    ) -> None:
        Loss.__init__(self)
        self.args = dict(
            gamma=gamma,
            alpha=alpha,
            data_format=data_format,
            skip_background=skip_background,
            is_onehot_targets=is_onehot_targets,
            eps=eps,
        )

    def get_loss(self, predictions: torch.Tensor, targets: torch.Tensor, build_ctx: BuildContext | None = None):
        return focal_loss(predictions, targets, **self.args)


class FocalDice(Loss):
    """`lambda_dice * Dice + lambda_focal * Focal` on probabilities.

    `skip_background` applies to the Dice term only (as `CrossEntropyDice`).
    """

    def __init__(
        self,
        data_format: str = "channels_first",
        skip_background: bool = False,
        squared_pred: bool = False,
        jaccard: bool = False,
        smooth: float = 1e-5,
        top_smooth: float = 0.0,
        is_onehot_targets: bool = False,
        gamma: float = 2.0,
        alpha: float | Sequence[float] | None = None,
        lambda_dice: float = 1.0,
        lambda_focal: float = 1.0,
    ) -> None:
        Loss.__init__(self)
        self.dice_args = dict(
            data_format=data_format,
            skip_background=skip_background,
            squared_pred=squared_pred,
            jaccard=jaccard,
            smooth=smooth,
            top_smooth=top_smooth,
            is_onehot_targets=is_onehot_targets,
        )
        self.focal_args = dict(gamma=gamma, alpha=alpha, data_format=data_format, is_onehot_targets=is_onehot_targets)
        self.lambda_dice = lambda_dice
        self.lambda_focal = lambda_focal

    def get_loss(self, predictions: torch.Tensor, targets: torch.Tensor, build_ctx: BuildContext | None = None):
        return self.lambda_dice * dice_loss(predictions, targets, **self.dice_args) + self.lambda_focal * focal_loss(
            predictions, targets, **self.focal_args
        )
