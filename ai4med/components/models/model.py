"""Model: the seed-002 network base class, on PyTorch.

`get_predictions(inputs, is_training, build_ctx)` returns the network output for a
batch; `get_loss()` is added to the loss component's value; `get_update_ops()` is kept
for API compatibility (PyTorch updates batch-norm statistics in the forward pass).
"""

from __future__ import annotations

from typing import Any

from ai4med.common.build_ctx import BuildContext
from ai4med.common.graph_component import GraphComponent


class Model(GraphComponent):
    """Base class of models.

    Subclasses typically build a `torch.nn.Module` in `__init__` (exposed as
    `self.model` or returned by `get_module()`) and run it in `get_predictions`.
    """

    def __init__(self) -> None:
        GraphComponent.__init__(self)

    def get_loss(self) -> Any:
        """An additional model-specific loss term (default 0)."""
        return 0

    def get_update_ops(self) -> list:
        """Kept for seed compatibility; PyTorch needs no explicit update ops."""
        return []

    def get_predictions(self, inputs: Any, is_training: bool, build_ctx: BuildContext | None) -> Any:
        raise NotImplementedError(f"Class {type(self).__name__} does not implement get_predictions")

    def build(self, build_ctx: BuildContext) -> Any:
        inputs = build_ctx.must_get(BuildContext.KEY_MODEL_INPUT)
        is_training = build_ctx.must_get(BuildContext.KEY_IS_TRAIN)
        return self.get_predictions(inputs, is_training, build_ctx)
