"""Training-time Dice aux-ops: hard Dice of thresholded/argmaxed predictions against the label."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ai4med.common.build_ctx import BuildContext
from ai4med.components.aux_ops.aux_op import AuxiliaryOperation
from ai4med.components.losses.targets import index_labels, onehot_targets, to_channels_first
from ai4med.utils.arrays import channel_argmax


def hard_dice_per_class(
    predictions: torch.Tensor,
    label: torch.Tensor,
    data_format: str = "channels_first",
    skip_background: bool = False,
    is_onehot_targets: bool = False,
    is_independent_predictions: bool = False,
    jaccard: bool = False,
    threshold: float = 0.5,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-(case, class) hard Dice (or IoU) and the mask of classes present in the label.

    Predictions are binarised by argmax over channels, or by `threshold` per channel when
    `is_independent_predictions` (sigmoid outputs) or there is a single channel. Where a
    class is absent from the label the score is NaN.

    Returns:
        (scores, present), both (N, C') float tensors (C' = C - 1 with `skip_background`).
    """
    p = to_channels_first(torch.as_tensor(predictions), data_format)
    n_classes = p.shape[1]
    t = torch.as_tensor(label, device=p.device)
    if skip_background and n_classes == 1:
        raise ValueError("There is only 1 single channel in the predicted output, and skip_background is True")
    if not (is_independent_predictions or is_onehot_targets or n_classes == 1):
        # argmax against index labels: one confusion count per case instead of two one-hot tensors
        if t.ndim == p.ndim:
            t = to_channels_first(t, data_format)
        labels = index_labels(t, n_classes, p.ndim)
        if labels.shape[2:] != p.shape[2:] or labels.shape[0] != p.shape[0]:
            raise ValueError(f"label {tuple(labels.shape)} does not match predictions {tuple(p.shape)}")
        small = torch.uint8 if n_classes <= 256 else torch.int64
        inter, pred_sum, target_sum = _confusion_sums(channel_argmax(p, 1, dtype=small), labels[:, 0], n_classes)
    else:
        pf = p.float()
        pred = (pf > threshold).float() if is_independent_predictions or n_classes == 1 else \
            onehot_targets(channel_argmax(pf, 1, keepdim=True), n_classes, p.ndim)
        if is_onehot_targets:
            target = (to_channels_first(t, data_format) > 0.5).float()
        else:  # one channel
            target = (to_channels_first(t, data_format) > 0).float() if t.ndim == p.ndim else (t > 0).float()[:, None]
        if target.shape != pred.shape:
            raise ValueError(f"label {tuple(target.shape)} does not match predictions {tuple(pred.shape)}")
        axes = list(range(2, p.ndim))
        inter, pred_sum, target_sum = (pred * target).sum(axes), pred.sum(axes), target.sum(axes)
    if skip_background:
        inter, pred_sum, target_sum = inter[:, 1:], pred_sum[:, 1:], target_sum[:, 1:]
    total = pred_sum + target_sum
    score = inter / (total - inter) if jaccard else 2.0 * inter / total
    present = target_sum > 0
    score = torch.where(present, score, torch.full_like(score, float("nan")))
    return score, present.float()


def _confusion_sums(pred: torch.Tensor, target: torch.Tensor, n_classes: int) -> tuple[torch.Tensor, ...]:
    """(intersection, predicted voxels, label voxels) per (case, class), float (N, C), from class maps."""
    n = pred.shape[0]
    # one code per voxel, (case, predicted, label); int32 halves the traffic of int64 (n * C^2 bins fit easily)
    code = pred.to(torch.int32) * n_classes
    code += target.to(torch.int32)
    code += (torch.arange(n, dtype=torch.int32, device=pred.device) * n_classes * n_classes).view(
        n, *[1] * (pred.ndim - 1))
    counts = torch.bincount(code.reshape(-1), minlength=n * n_classes * n_classes).view(n, n_classes, n_classes)
    counts = counts.float()  # [case, predicted class, label class]
    return counts.diagonal(dim1=1, dim2=2), counts.sum(2), counts.sum(1)


def _nanmean(x: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    return torch.nanmean(x) if dim is None else torch.nanmean(x, dim=dim)


class ComputeDice(AuxiliaryOperation):
    """`{tag: mean Dice over the (case, class) pairs present in the label}` (+ `{mask_tag: (N, C) mask}`).

    Args: see `hard_dice_per_class`; `tag`/`mask_tag` name the outputs.
    """

    def __init__(
        self,
        tag: str,
        mask_tag: str | None = None,
        data_format: str = "channels_first",
        skip_background: bool = False,
        is_onehot_targets: bool = False,
        is_independent_predictions: bool = False,
        jaccard: bool = False,
        threshold: float = 0.5,
        do_summary: bool = True,
        do_print: bool = True,
    ) -> None:
        super().__init__(do_summary, do_print)
        self.tag = tag
        self.mask_tag = mask_tag
        self.dice_args = dict(
            data_format=data_format,
            skip_background=skip_background,
            is_onehot_targets=is_onehot_targets,
            is_independent_predictions=is_independent_predictions,
            jaccard=jaccard,
            threshold=threshold,
        )

    def get_output_tensors(self, predictions: Any, label: Any, build_ctx: BuildContext) -> dict[str, Any]:
        score, present = hard_dice_per_class(predictions, label, **self.dice_args)
        out: dict[str, Any] = {self.tag: _nanmean(score)}
        if self.mask_tag:
            out[self.mask_tag] = present
        return out


class DiceMaskedOutput(AuxiliaryOperation):
    """Outputs named by `tags`: the mean over classes, then one Dice per class.

    Each per-class value averages the cases whose label contains the class (NaN if none
    does); the first value is the NaN-ignoring mean of the per-class values. With a
    single class only the first tag is produced.
    """

    def __init__(
        self,
        tags: Sequence[str] | str,
        data_format: str = "channels_first",
        skip_background: bool = False,
        is_onehot_targets: bool = False,
        is_independent_predictions: bool = False,
        jaccard: bool = False,
        threshold: float = 0.5,
        do_summary: bool = True,
        do_print: bool = True,
    ) -> None:
        super().__init__(do_summary, do_print)
        self.tags = [tags] if isinstance(tags, str) else list(tags)
        if not self.tags:
            raise ValueError("DiceMaskedOutput needs at least one tag")
        self.dice_args = dict(
            data_format=data_format,
            skip_background=skip_background,
            is_onehot_targets=is_onehot_targets,
            is_independent_predictions=is_independent_predictions,
            jaccard=jaccard,
            threshold=threshold,
        )

    def get_output_tensors(self, predictions: Any, label: Any, build_ctx: BuildContext) -> dict[str, Any]:
        score, _ = hard_dice_per_class(predictions, label, **self.dice_args)
        per_class = _nanmean(score, dim=0)
        out: dict[str, Any] = {self.tags[0]: _nanmean(per_class)}
        if per_class.numel() > 1:
            for tag, value in zip(self.tags[1:], per_class):
                out[tag] = value
        return out
