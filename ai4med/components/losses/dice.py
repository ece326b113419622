"""Dice loss: the seed-002 `dice_loss` function on PyTorch, and the `Dice` loss component."""

from __future__ import annotations

import torch

from ai4med.common.build_ctx import BuildContext
from ai4med.components.losses.loss import Loss
from ai4med.components.losses.targets import onehot_targets, to_channels_first


def dice_loss(
    predictions: torch.Tensor,
    targets: torch.Tensor,
    data_format: str = "channels_first",
    skip_background: bool = False,
    squared_pred: bool = False,
    jaccard: bool = False,
    smooth: float = 1e-5,
    top_smooth: float = 0.0,
    is_onehot_targets: bool = False,
) -> torch.Tensor:
    """One minus the mean soft Dice over batch and channels (seed 002, line for line).

    Args:
        predictions: (N, C, *spatial) probabilities (e.g. softmax output; NOT logits).
        targets: (N, 1, *spatial) class indices, or one-hot (N, C, *spatial) with
            `is_onehot_targets`.
        data_format: "channels_first" or "channels_last" for both tensors.
        skip_background: drop channel 0 before averaging.
        squared_pred: square targets and predictions in the denominator.
        jaccard: the seed's Jaccard variant, 2I / (S - I) = 2 * soft IoU (MONAI's
            `jaccard=True` is the soft IoU itself); kept for parity with Clara.
        smooth: denominator constant.
        top_smooth: numerator constant.
        is_onehot_targets: targets already one-hot.

    Returns:
        scalar tensor, computed in float32 (safe under autocast).

    Raises:
        ValueError: the seed's sanity checks on channel counts.
    """
    predictions = to_channels_first(predictions, data_format).float()
    if is_onehot_targets or targets.ndim == predictions.ndim:
        targets = to_channels_first(targets, data_format)
    n_channels_pred = predictions.shape[1]
    n_channels_targ = targets.shape[1] if targets.ndim == predictions.ndim else 1
    n_len = predictions.ndim

    if skip_background and n_channels_pred == 1:
        raise ValueError("There is only 1 single channel in the predicted output, and skip_zero is True")
    if skip_background and n_channels_targ == 1 and is_onehot_targets:
        raise ValueError(
            "There is only 1 single channel in the true output (and it is is_onehot_true), and skip_zero is True"
        )
    if is_onehot_targets and n_channels_targ != n_channels_pred:
        raise ValueError(
            f"Number of channels in target {n_channels_targ} and pred outputs {n_channels_pred} "
            "must be equal to use is_onehot_true == True"
        )

    targets = targets.float() if is_onehot_targets else onehot_targets(targets, n_channels_pred, n_len)
    if skip_background:
        targets = targets[:, 1:]
        predictions = predictions[:, 1:]

    reduce_axis = list(range(2, n_len))
    intersection = torch.sum(targets * predictions, dim=reduce_axis)
    if squared_pred:
        targets = targets**2
        predictions = predictions**2
    denominator = torch.sum(targets, dim=reduce_axis) + torch.sum(predictions, dim=reduce_axis)
    if jaccard:
        denominator = denominator - intersection
    f = (2.0 * intersection + top_smooth) / (denominator + smooth)
    return 1.0 - f.mean()


class Dice(Loss):
    """Soft Dice loss component (seed 002's `MyClonedDiceLoss`; 2019 name `losses.dice_loss`).

    Expects probabilities (a model with `final_activation` softmax or sigmoid); the
    arguments are those of `dice_loss`.

    Example:
        >>> import torch
        >>> p = torch.tensor([[[0.9, 0.2]], [[0.1, 0.8]]]).permute(1, 0, 2)  # (1, 2, 2)
        >>> round(Dice().get_loss(p, torch.tensor([[[0, 1]]])).item(), 2)
        0.15
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
    ) -> None:
        Loss.__init__(self)
        self.data_format = data_format
        self.skip_background = skip_background
        self.squared_pred = squared_pred
        self.jaccard = jaccard
        self.smooth = smooth
        self.top_smooth = top_smooth
        self.is_onehot_targets = is_onehot_targets

    def get_loss(self, predictions: torch.Tensor, targets: torch.Tensor, build_ctx: BuildContext | None = None):
        return dice_loss(
            predictions,
            targets,
            data_format=self.data_format,
            skip_background=self.skip_background,
            squared_pred=self.squared_pred,
            jaccard=self.jaccard,
            smooth=self.smooth,
            top_smooth=self.top_smooth,
            is_onehot_targets=self.is_onehot_targets,
        )

    def __call__(self, predictions: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return self.get_loss(predictions, targets)
