"""NegLoss: the negated loss as an output, so "higher is better" metrics can track it."""

from __future__ import annotations

from typing import Any

import torch

from ai4med.common.build_ctx import BuildContext
from ai4med.components.aux_ops.aux_op import AuxiliaryOperation


class NegLoss(AuxiliaryOperation):
    """`{tag: -loss}` from the build context's `KEY_LOSS`.

    Example:
        >>> ctx = BuildContext({BuildContext.KEY_LOSS: torch.tensor(0.25)})
        >>> NegLoss("negloss").build(ctx)["negloss"].item()
        -0.25
    """

    def __init__(self, tag: str, do_summary: bool = True, do_print: bool = True) -> None:
        super().__init__(do_summary, do_print)
        self.tag = tag

    def get_output_tensors(self, predictions: Any, label: Any, build_ctx: BuildContext) -> dict[str, Any]:
        loss = build_ctx.must_get(BuildContext.KEY_LOSS)
        return {self.tag: -torch.as_tensor(loss).detach().float()}
