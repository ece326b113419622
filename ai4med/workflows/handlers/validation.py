"""ValidationHandler: run the evaluator every N epochs (or N iterations) and track the key metric."""

from __future__ import annotations

import logging
from collections.abc import Callable

from ai4med.workflows.engine import Engine, Events

logger = logging.getLogger("ai4med.validate")


class ValidationHandler:
    """Calls `evaluate() -> {metric: value}` every `every` epochs, or every `every_iterations`
    iterations when that is > 0, and at the end of training (the last epoch, or the end of the
    iteration budget) if it has not just run.

    A new best key metric sets `state.best_metric`/`best_epoch` and flags `new_best`; each run
    fires `Events.VALIDATION_COMPLETED` (the checkpoint handler saves `model.pt` there, early
    stopping and validation-triggered LR policies count validations there).
    `state.extra["validated_epoch"]` is the epoch the validation belongs to (the one in
    progress when it runs mid-epoch), `["validated_iteration"]` the iteration.
    """

    def __init__(self, evaluate: Callable[[], dict[str, float]], key_metric: str | None, every: int = 1,
                 every_iterations: int = 0) -> None:
        self.evaluate = evaluate
        self.key_metric = key_metric
        self.every = max(1, every)
        self.every_iterations = max(0, int(every_iterations))

    def attach(self, engine: Engine) -> None:
        if self.every_iterations:
            engine.add_handler(Events.ITERATION_COMPLETED, self._on_iteration, name="validation")
        engine.add_handler(Events.EPOCH_COMPLETED, self._on_epoch, name="validation")
        engine.add_handler(Events.COMPLETED, self._on_completed, name="validation")

    def _on_iteration(self, engine: Engine) -> None:
        if engine.state.iteration % self.every_iterations == 0 or engine.budget_spent():
            self._run(engine)

    def _on_completed(self, engine: Engine) -> None:
        if engine.budget_spent() and engine.state.extra.get("validated_iteration") != engine.state.iteration:
            self._run(engine)  # the budget ended inside an epoch

    def _on_epoch(self, engine: Engine) -> None:
        s = engine.state
        last = s.epoch == s.max_epochs or engine.budget_spent()
        if self.every_iterations:  # by iterations: only the end of training, if not just validated
            if last and s.extra.get("validated_iteration") != s.iteration:
                self._run(engine)
            return
        if s.epoch % self.every == 0 or last:
            self._run(engine)

    def _run(self, engine: Engine) -> None:
        s = engine.state
        metrics = self.evaluate()
        s.metrics.update({f"val_{k}" if not k.startswith("val_") else k: v for k, v in metrics.items()})
        s.extra["validated_epoch"] = s.epoch + 1 if s.in_epoch else s.epoch
        s.extra["validated_iteration"] = s.iteration
        text = " ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        if self.key_metric is not None and self.key_metric in metrics:
            value = float(metrics[self.key_metric])
            s.extra["key_metric_value"] = value
            if value > s.best_metric:
                s.best_metric, s.best_epoch = value, s.extra["validated_epoch"]
                s.extra["best_iteration"] = s.iteration
                s.extra["new_best"] = True
            text += f" (best {self.key_metric} {s.best_metric:.4f} at epoch {s.best_epoch})"
        logger.info("validation epoch %d iteration %d: %s", s.extra["validated_epoch"], s.iteration, text)
        engine.fire(Events.VALIDATION_COMPLETED)
