"""StatsHandler: progress and metrics on the console (through logging)."""

from __future__ import annotations

import logging
import math
import time
from typing import Any

from ai4med.workflows.engine import Engine, Events

logger = logging.getLogger("ai4med.train")


class StatsHandler:
    """Logs the running loss every `log_every` iterations and a summary each epoch.

    Args:
        log_every: iterations between progress lines (0: only per-epoch lines).
        name: prefix of the lines ("train", "validate").
    """

    def __init__(self, log_every: int = 0, name: str = "train") -> None:
        self.log_every = log_every
        self.name = name
        self._epoch_start = 0.0
        self._losses: list[float] = []

    def attach(self, engine: Engine) -> None:
        engine.add_handler(Events.EPOCH_STARTED, self._on_epoch_started, name="stats")
        engine.add_handler(Events.ITERATION_COMPLETED, self._on_iteration, name="stats")
        engine.add_handler(Events.EPOCH_COMPLETED, self._on_epoch_completed, name="stats")

    def _on_epoch_started(self, engine: Engine) -> None:
        self._epoch_start = time.perf_counter()
        self._losses = []

    def _on_iteration(self, engine: Engine) -> None:
        loss = _loss_of(engine.state.output)
        if loss is not None:
            self._losses.append(loss)
        if self.log_every and engine.state.iteration % self.log_every == 0:
            logger.info("%s epoch %d/%d iter %d loss %.4f", self.name, engine.state.epoch + 1,
                        engine.state.max_epochs, engine.state.epoch_iteration, loss if loss is not None else math.nan)

    def _on_epoch_completed(self, engine: Engine) -> None:
        s = engine.state
        mean_loss = sum(self._losses) / len(self._losses) if self._losses else math.nan
        s.metrics["train_loss"] = mean_loss
        extras = " ".join(f"{k} {v:.4f}" for k, v in sorted(s.extra.get("epoch_aux", {}).items()))
        logger.info("%s epoch %d/%d loss %.4f %s(%.1f s, %d iterations)", self.name, s.epoch, s.max_epochs,
                    mean_loss, extras + " " if extras else "", time.perf_counter() - self._epoch_start,
                    s.epoch_iteration)


def _loss_of(output: Any) -> float | None:
    if isinstance(output, dict):
        output = output.get("loss")
    try:
        return float(output)
    except (TypeError, ValueError):
        return None
