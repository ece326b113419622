"""ReduceMeanMasked: the mean of the predictions over the voxels that the label marks."""

from __future__ import annotations

from typing import Any

import torch

from ai4med.common.build_ctx import BuildContext
from ai4med.components.aux_ops.aux_op import AuxiliaryOperation


class ReduceMeanMasked(AuxiliaryOperation):
    """Mean of `predictions` where `label != 0`, over `axis` (all axes if None).

    Outputs `{tag: mean}` (NaN where the mask is empty) and, with `mask_tag`,
    `{mask_tag: 1.0 where the mask was non-empty else 0.0}`. The label broadcasts
    against the predictions (a 1-channel label masks every channel).

    Example:
        >>> ctx = BuildContext({BuildContext.KEY_PREDICTIONS: torch.tensor([1.0, 2.0, 4.0]),
        ...                     BuildContext.KEY_LABEL_INPUT: torch.tensor([0, 1, 1])})
        >>> ReduceMeanMasked("m").build(ctx)["m"].item()
        3.0
    """

    def __init__(
        self, tag: str, mask_tag: str | None = None, axis: int | list[int] | None = None,
        do_summary: bool = True, do_print: bool = True,
    ) -> None:
        super().__init__(do_summary, do_print)
        self.tag = tag
        self.mask_tag = mask_tag
        self.axis = axis

    def get_output_tensors(self, predictions: Any, label: Any, build_ctx: BuildContext) -> dict[str, Any]:
        values = torch.as_tensor(predictions).float()
        mask = torch.broadcast_to((torch.as_tensor(label) != 0).float(), values.shape)
        dims = self.axis if self.axis is not None else list(range(values.ndim))
        count = mask.sum(dim=dims)
        mean = (values * mask).sum(dim=dims) / count
        out: dict[str, Any] = {self.tag: mean}
        if self.mask_tag:
            out[self.mask_tag] = (count > 0).float()
        return out
