"""AuxiliaryOperation: extra per-step outputs (accuracy, Dice, -loss, ...) for monitoring.

Built after model and loss; `get_output_tensors(predictions, label, build_ctx)` returns
a dict of tensors. `build` runs it without gradients, stores every output in the build
context (so later aux-ops can use them, as in Clara) and returns the dict. Scalar
outputs are aggregated across steps by `MetricAccumulator` (console if `do_print`,
TensorBoard if `do_summary`).
"""

from __future__ import annotations

from typing import Any

import torch

from ai4med.common.build_ctx import BuildContext
from ai4med.common.graph_component import GraphComponent


class AuxiliaryOperation(GraphComponent):
    """Base of aux-ops.

    Args:
        do_summary: aggregate the outputs for TensorBoard.
        do_print: aggregate the outputs for the console.
    """

    def __init__(self, do_summary: bool = True, do_print: bool = True) -> None:
        GraphComponent.__init__(self)
        self.do_summary = do_summary
        self.do_print = do_print

    def get_output_tensors(self, predictions: Any, label: Any, build_ctx: BuildContext) -> dict[str, Any]:
        raise NotImplementedError(f"Class {type(self).__name__} does not implement get_output_tensors")

    def build(self, build_ctx: BuildContext) -> dict[str, Any]:
        """Compute the outputs from the context's predictions and label; subclasses never override this."""
        predictions = build_ctx.get(BuildContext.KEY_PREDICTIONS)
        label = build_ctx.get(BuildContext.KEY_LABEL_INPUT)
        with torch.no_grad():
            outputs = self.get_output_tensors(predictions, label, build_ctx)
        for key, value in outputs.items():
            build_ctx.set(key, value)
        return outputs
