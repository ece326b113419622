"""Cross-entropy on probability maps, and its sum with Dice (Clara's CrossEntropyDice)."""

from __future__ import annotations

import torch

from ai4med.common.build_ctx import BuildContext
from ai4med.components.losses.dice import dice_loss
from ai4med.components.losses.loss import Loss
from ai4med.components.losses.targets import index_labels, to_channels_first


def cross_entropy_loss(
    predictions: torch.Tensor,
    targets: torch.Tensor,
    data_format: str = "channels_first",
    skip_background: bool = False,
    smooth: float = 1e-8,
    is_onehot_targets: bool = False,
) -> torch.Tensor:
    """Mean over batch and voxels of `-sum_c t_c * log(p_c + smooth)`.

    Args:
        predictions: (N, C, *spatial) probabilities (softmax output; NOT logits).
        targets: (N, 1, *spatial) indices or one-hot (N, C, *spatial) with `is_onehot_targets`.
        data_format: "channels_first" or "channels_last".
        skip_background: leave channel 0 out of the sum.
        smooth: added inside the log so that p = 0 stays finite.
        is_onehot_targets: targets already one-hot.
    """
    predictions = to_channels_first(predictions, data_format).float()
    if skip_background and predictions.shape[1] == 1:
        raise ValueError("There is only 1 single channel in the predicted output, and skip_background is True")
    if not is_onehot_targets:
        # with one-hot targets the channel sum keeps only the label's term: gather it (no one-hot tensor)
        if targets.ndim == predictions.ndim:
            targets = to_channels_first(targets, data_format)
        labels = index_labels(targets, predictions.shape[1], predictions.ndim)
        terms = torch.log(predictions.gather(1, labels) + smooth)
        if skip_background:
            terms = terms * (labels > 0)
        return -terms.mean()
    targets = to_channels_first(targets, data_format).float()
    if targets.shape != predictions.shape:
        raise ValueError(f"one-hot targets {tuple(targets.shape)} must match predictions {tuple(predictions.shape)}")
    if skip_background:
        targets, predictions = targets[:, 1:], predictions[:, 1:]
    return -(targets * torch.log(predictions + smooth)).sum(1).mean()


class CrossEntropy(Loss):
    """Voxel-wise cross-entropy on probabilities (a softmax `final_activation`).

    Equals `torch.nn.CrossEntropyLoss` on the logits (up to `smooth`).

    Args: as `cross_entropy_loss`.
    """

    def __init__(
        self,
        data_format: str = "channels_first",
        skip_background: bool = False,
        smooth: float = 1e-8,
        is_onehot_targets: bool = False,
    ) -> None:
        Loss.__init__(self)
        self.data_format = data_format
        self.skip_background = skip_background
        self.smooth = smooth
        self.is_onehot_targets = is_onehot_targets

    def get_loss(self, predictions: torch.Tensor, targets: torch.Tensor, build_ctx: BuildContext | None = None):
        return cross_entropy_loss(
            predictions, targets, self.data_format, self.skip_background, self.smooth, self.is_onehot_targets
        )


class CrossEntropyDice(Loss):
    """`lambda_dice * Dice + lambda_ce * CrossEntropy` on probabilities (MONAI's DiceCELoss).

    `skip_background` applies to the Dice term only, as in MONAI's DiceCELoss.

    Args:
        data_format, skip_background, squared_pred, jaccard, smooth, top_smooth,
        is_onehot_targets: the Dice arguments.
        lambda_dice: weight of the Dice term.
        lambda_ce: weight of the cross-entropy term.
        ce_smooth: constant inside the cross-entropy log.
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
        lambda_dice: float = 1.0,
        lambda_ce: float = 1.0,
        ce_smooth: float = 1e-8,
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
        self.data_format = data_format
        self.is_onehot_targets = is_onehot_targets
        self.lambda_dice = lambda_dice
        self.lambda_ce = lambda_ce
        self.ce_smooth = ce_smooth

    def get_loss(self, predictions: torch.Tensor, targets: torch.Tensor, build_ctx: BuildContext | None = None):
        ce = cross_entropy_loss(
            predictions, targets, self.data_format, False, self.ce_smooth, self.is_onehot_targets
        )
        return self.lambda_dice * dice_loss(predictions, targets, **self.dice_args) + self.lambda_ce * ce
