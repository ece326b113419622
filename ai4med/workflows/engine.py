"""Engine: one small loop that runs a step function over epochs and fires events.

Everything else (checkpoints, validation, logging, LR schedules, early stopping) is a
handler attached to an event, so the loop stays readable and each concern is testable
on its own (Ignite's design, without its global state).

Example:
    >>> eng = Engine(lambda engine, batch: batch * 2)
    >>> seen = []
    >>> eng.add_handler(Events.ITERATION_COMPLETED, lambda e: seen.append(e.state.output))
    >>> _ = eng.run(lambda epoch: [1, 2], max_epochs=2)
    >>> seen
    [2, 4, 2, 4]
"""

from __future__ import annotations

import enum
import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

logger = logging.getLogger(__name__)


class Events(enum.Enum):
    STARTED = "started"
    EPOCH_STARTED = "epoch_started"
    ITERATION_STARTED = "iteration_started"
    ITERATION_COMPLETED = "iteration_completed"
    EPOCH_COMPLETED = "epoch_completed"
    VALIDATION_COMPLETED = "validation_completed"  # fired by the validation handler after each run
    COMPLETED = "completed"
    EXCEPTION_RAISED = "exception_raised"


@dataclass
class State:
    """What the loop knows; handlers read and write it (e.g. metrics, best values)."""

    epoch: int = 0                 # epochs completed
    iteration: int = 0             # iterations completed in total
    epoch_iteration: int = 0       # iterations completed in this epoch
    max_epochs: int = 0
    max_iterations: int = 0        # the iteration budget (0: none, epochs decide)
    in_epoch: bool = False         # inside an epoch's batch loop (ITERATION_* events)
    resume_epoch_iteration: int = 0  # batches of the first epoch already done (a mid-epoch resume)
    batch: Any = None
    output: Any = None
    metrics: dict[str, float] = field(default_factory=dict)
    best_metric: float = float("-inf")
    best_epoch: int = -1
    should_terminate: bool = False
    extra: dict[str, Any] = field(default_factory=dict)


Handler = Callable[["Engine"], None]


@dataclass
class _Registration:
    handler: Handler
    every: int
    name: str


class Engine:
    """Runs `process_fn(engine, batch) -> output` over the batches of every epoch.

    Args:
        process_fn: the step function (training or evaluation step).
    """

    def __init__(self, process_fn: Callable[[Engine, Any], Any]) -> None:
        self.process_fn = process_fn
        self.state = State()
        self._handlers: dict[Events, list[_Registration]] = {e: [] for e in Events}

    def add_handler(self, event: Events, handler: Handler, every: int = 1, name: str | None = None) -> None:
        """Call `handler(engine)` on `event`; `every=N` filters to every N-th epoch/iteration."""
        self._handlers[event].append(_Registration(handler, max(1, int(every)), name or repr(handler)))

    def fire(self, event: Events) -> None:
        counter = {
            Events.EPOCH_STARTED: self.state.epoch + 1,
            Events.EPOCH_COMPLETED: self.state.epoch,
            Events.ITERATION_STARTED: self.state.iteration + 1,
            Events.ITERATION_COMPLETED: self.state.iteration,
        }.get(event, 0)
        for reg in list(self._handlers[event]):
            if counter % reg.every == 0:
                reg.handler(self)

    def terminate(self) -> None:
        """Stop after the current iteration (early stopping, signals)."""
        self.state.should_terminate = True

    def budget_spent(self) -> bool:
        """True once the iteration budget (`max_iterations`) is used up."""
        return bool(self.state.max_iterations) and self.state.iteration >= self.state.max_iterations

    def run(self, batches_for_epoch: Callable[[int], Iterable[Any]], max_epochs: int,
            max_iterations: int | None = None) -> State:
        """Run until `max_epochs` epochs are complete or `max_iterations` iterations are done.

        Resumes from `state.epoch` / `state.iteration`; after a mid-epoch resume the first epoch
        starts at `state.resume_epoch_iteration` (`batches_for_epoch` must then yield only the
        batches left). An epoch cut short (by `terminate` or the iteration budget) does not count:
        no EPOCH_COMPLETED, and `state.in_epoch` stays True for the COMPLETED handlers, so a
        checkpoint written there resumes mid-epoch.
        """
        s = self.state
        s.max_epochs = max_epochs
        s.max_iterations = int(max_iterations or 0)
        s.should_terminate = False
        try:
            self.fire(Events.STARTED)
            while s.epoch < max_epochs and not s.should_terminate and not self.budget_spent():
                s.epoch_iteration, s.resume_epoch_iteration = s.resume_epoch_iteration, 0
                self.fire(Events.EPOCH_STARTED)
                s.in_epoch = True
                cut = False
                for batch in batches_for_epoch(s.epoch):
                    if self.budget_spent():  # a batch is left, but the budget is used up
                        cut = True
                        break
                    s.batch = batch
                    self.fire(Events.ITERATION_STARTED)
                    s.output = self.process_fn(self, batch)
                    s.iteration += 1
                    s.epoch_iteration += 1
                    self.fire(Events.ITERATION_COMPLETED)
                    if s.should_terminate:
                        cut = True
                        break
                s.batch = None
                if cut:
                    break
                s.in_epoch = False
                s.epoch += 1
                self.fire(Events.EPOCH_COMPLETED)
            self.fire(Events.COMPLETED)
            s.in_epoch = False
        except BaseException as exc:
            s.in_epoch = False
            s.extra["exception"] = exc
            self.fire(Events.EXCEPTION_RAISED)
            raise
        return s
