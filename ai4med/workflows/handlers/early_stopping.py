"""EarlyStopping: stop when the key metric has not improved for `patience` validations."""

from __future__ import annotations

import logging

from ai4med.workflows.engine import Engine, Events

logger = logging.getLogger(__name__)


class EarlyStopping:
    """Terminates training after `patience` validations without a key-metric improvement
    of at least `min_delta` (counted at `Events.VALIDATION_COMPLETED`, which the validation
    handler fires after each run, per epoch or per N iterations).
    """

    def __init__(self, patience: int = 10, min_delta: float = 0.0) -> None:
        if patience < 1:
            raise ValueError(f"patience must be >= 1, got {patience}")
        self.patience = patience
        self.min_delta = min_delta
        self._best = float("-inf")
        self._bad = 0

    def attach(self, engine: Engine) -> None:
        engine.add_handler(Events.VALIDATION_COMPLETED, self._check, name="early-stopping")

    def _check(self, engine: Engine) -> None:
        value = engine.state.extra.get("key_metric_value")
        if value is None:
            return
        if value > self._best + self.min_delta:
            self._best, self._bad = value, 0
            return
        self._bad += 1
        if self._bad >= self.patience:
            logger.info("early stopping at epoch %d (iteration %d): no improvement for %d validations",
                        engine.state.extra.get("validated_epoch", engine.state.epoch), engine.state.iteration,
                        self._bad)
            engine.terminate()
