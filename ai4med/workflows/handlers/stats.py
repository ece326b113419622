"""StatsHandler: progress and metrics on the console (through logging)."""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from ai4med.workflows.engine import Engine, Events

logger = logging.getLogger("ai4med.train")


class StatsHandler:
    """Logs a summary each epoch, with the time the run has left, and progress lines within long epochs.

    Why: on a real dataset an epoch can take many minutes; without a line between epochs a run looks
    hung, and without a time left nobody can plan around it.

    Args:
        log_every: iterations between progress lines; 0 (default): a line whenever `log_seconds` have
            passed since the last one within an epoch, so short epochs print only their summary.
        name: prefix of the lines ("train", "validate").
        epoch_length: iterations an epoch has (for "iteration i/n" and the time left; None: unknown).
        log_seconds: the time between progress lines when `log_every` is 0 (0: none).
        clock: seconds, monotonic (tests pass a fake one).
    """

    def __init__(self, log_every: int = 0, name: str = "train", epoch_length: int | None = None,
                 log_seconds: float = 30.0, clock: Callable[[], float] = time.perf_counter) -> None:
        self.log_every = log_every
        self.name = name
        self.epoch_length = epoch_length if epoch_length and epoch_length > 0 else None
        self.log_seconds = log_seconds
        self.clock = clock
        self._run_start = 0.0
        self._run_iteration0 = 0
        self._epoch_start = 0.0
        self._last_line = 0.0
        self._losses: list[float] = []

    def attach(self, engine: Engine) -> None:
        engine.add_handler(Events.STARTED, self._on_started, name="stats")
        engine.add_handler(Events.EPOCH_STARTED, self._on_epoch_started, name="stats")
        engine.add_handler(Events.ITERATION_COMPLETED, self._on_iteration, name="stats")
        engine.add_handler(Events.EPOCH_COMPLETED, self._on_epoch_completed, name="stats")

    def _on_started(self, engine: Engine) -> None:
        self._run_start = self.clock()
        self._run_iteration0 = engine.state.iteration  # a resumed run times only its own iterations

    def _on_epoch_started(self, engine: Engine) -> None:
        self._epoch_start = self._last_line = self.clock()
        self._losses = []

    def _on_iteration(self, engine: Engine) -> None:
        s = engine.state
        loss = _loss_of(s.output)
        if loss is not None:
            self._losses.append(loss)
        now = self.clock()
        if self.log_every:
            if s.iteration % self.log_every == 0:
                logger.info("%s epoch %d/%d iter %d loss %.4f", self.name, s.epoch + 1, s.max_epochs,
                            s.epoch_iteration, loss if loss is not None else math.nan)
            return
        if not self.log_seconds or now - self._last_line < self.log_seconds:
            return
        self._last_line = now
        rate = s.epoch_iteration / max(now - self._epoch_start, 1e-9)
        of = f"/{self.epoch_length}" if self.epoch_length else ""
        left = ""
        if self.epoch_length and self.epoch_length > s.epoch_iteration:
            left = f", epoch ends in ~{format_duration((self.epoch_length - s.epoch_iteration) / rate)}"
        mean = sum(self._losses) / len(self._losses) if self._losses else math.nan
        logger.info("%s epoch %d/%d iteration %d%s loss %.4f (%.2f it/s%s)", self.name, s.epoch + 1, s.max_epochs,
                    s.epoch_iteration, of, mean, rate, left)

    def _on_epoch_completed(self, engine: Engine) -> None:
        s = engine.state
        mean_loss = sum(self._losses) / len(self._losses) if self._losses else math.nan
        s.metrics["train_loss"] = mean_loss
        extras = " ".join(f"{k} {v:.4f}" for k, v in sorted(s.extra.get("epoch_aux", {}).items()))
        left = self.time_left(s)
        logger.info("%s epoch %d/%d loss %.4f %s(%.1f s, %d iterations%s)", self.name, s.epoch, s.max_epochs,
                    mean_loss, extras + " " if extras else "", self.clock() - self._epoch_start,
                    s.epoch_iteration, f"; ~{format_duration(left)} left" if left is not None and left >= 0.5 else "")

    def time_left(self, s: Any) -> float | None:
        """Seconds the run has left at the rate so far (validation included); None when unknown or done."""
        done = s.iteration - self._run_iteration0
        if done <= 0:
            return None
        if s.max_iterations:
            remaining = s.max_iterations - s.iteration
        elif self.epoch_length:
            remaining = (s.max_epochs - s.epoch) * self.epoch_length
        else:
            return None
        if remaining <= 0:
            return None
        return remaining * (self.clock() - self._run_start) / done


def format_duration(seconds: float) -> str:
    """`42 s`, `3 min 05 s`, `2 h 07 min`: what a person reads at a glance."""
    seconds = max(0, int(round(seconds)))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min {seconds % 60:02d} s"
    return f"{seconds // 3600} h {seconds % 3600 // 60:02d} min"


def _loss_of(output: Any) -> float | None:
    if isinstance(output, dict):
        output = output.get("loss")
    try:
        return float(output)
    except (TypeError, ValueError):
        return None
