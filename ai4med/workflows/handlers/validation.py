"""ValidationHandler: run the evaluator every N epochs and track the key metric."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ai4med.workflows.engine import Engine, Events

logger = logging.getLogger("ai4med.validate")


class ValidationHandler:
    """Calls `evaluate() -> {metric: value}` every `every` epochs (and after the last).

    A new best key metric sets `state.best_metric`/`best_epoch` and flags `new_best`,
    which the checkpoint handler (attached after this one) turns into `model.pt`.
    """

    def __init__(self, evaluate: Callable[[], dict[str, float]], key_metric: str | None, every: int = 1) -> None:
        self.evaluate = evaluate
        self.key_metric = key_metric
        self.every = max(1, every)

    def attach(self, engine: Engine) -> None:
        engine.add_handler(Events.EPOCH_COMPLETED, self._run, name="validation")

    def _run(self, engine: Engine) -> None:
        s = engine.state
        if s.epoch % self.every != 0 and s.epoch != s.max_epochs:
            return
        metrics = self.evaluate()
        s.metrics.update({f"val_{k}" if not k.startswith("val_") else k: v for k, v in metrics.items()})
        s.extra["validated_epoch"] = s.epoch
        text = " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        if self.key_metric is not None and self.key_metric in metrics:
            value = float(metrics[self.key_metric])
            s.extra["key_metric_value"] = value
            if value > s.best_metric:
                s.best_metric, s.best_epoch = value, s.epoch
                s.extra["new_best"] = True
            text += f" (best {self.key_metric} {s.best_metric:.4f} at epoch {s.best_epoch})"
        logger.info("validation epoch %d: %s", s.epoch, text)
