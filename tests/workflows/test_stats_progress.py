"""Progress lines within long epochs and the time a run has left (StatsHandler), on a fake clock."""

from __future__ import annotations

import logging

import pytest

from ai4med.workflows.engine import Engine
from ai4med.workflows.handlers.stats import StatsHandler, format_duration


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def run(clock, epochs, batches, seconds_per_iteration, max_iterations=None, **kw):
    def step(engine, batch):
        clock.now += seconds_per_iteration
        return {"loss": float(batch)}

    engine = Engine(step)
    StatsHandler(clock=clock, **kw).attach(engine)
    engine.run(lambda epoch: iter(range(batches)), epochs, max_iterations)
    return engine


def test_a_long_epoch_prints_progress_every_log_seconds_with_its_time_left(caplog):
    clock = Clock()
    with caplog.at_level(logging.INFO, logger="ai4med.train"):
        run(clock, epochs=2, batches=100, seconds_per_iteration=1.0, epoch_length=100, log_seconds=30)
    progress = [r.getMessage() for r in caplog.records if "iteration " in r.getMessage()]
    # a line when 30 s have passed since the epoch began or the last line: iterations 30, 60, 90 of each epoch
    assert [m.split(" loss")[0] for m in progress[:3]] == [
        "train epoch 1/2 iteration 30/100", "train epoch 1/2 iteration 60/100", "train epoch 1/2 iteration 90/100"]
    assert len(progress) == 6
    assert "loss 14.5000 (1.00 it/s, epoch ends in ~1 min 10 s)" in progress[0]  # mean of 0..29
    epochs = [r.getMessage() for r in caplog.records if "iterations" in r.getMessage()]
    assert epochs[0].endswith("(100.0 s, 100 iterations; ~1 min 40 s left)")  # one more epoch at 1 s/iteration
    assert epochs[1].endswith("(100.0 s, 100 iterations)")  # done: nothing left to announce


def test_short_epochs_print_only_their_summary_and_log_every_keeps_its_meaning(caplog):
    clock = Clock()
    with caplog.at_level(logging.INFO, logger="ai4med.train"):
        run(clock, epochs=3, batches=3, seconds_per_iteration=0.1, epoch_length=3)
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 3 and all("iterations" in m for m in messages)
    assert messages[0].endswith("(0.3 s, 3 iterations; ~1 s left)")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ai4med.train"):
        run(clock, epochs=1, batches=4, seconds_per_iteration=0.1, log_every=2)
    assert [m.getMessage() for m in caplog.records][:2] == ["train epoch 1/1 iter 2 loss 1.0000",
                                                           "train epoch 1/1 iter 4 loss 3.0000"]


def test_time_left_follows_an_iteration_budget_and_is_unknown_without_a_length(caplog):
    clock = Clock()
    with caplog.at_level(logging.INFO, logger="ai4med.train"):
        run(clock, epochs=10, batches=10, seconds_per_iteration=2.0, max_iterations=25)
    epochs = [r.getMessage() for r in caplog.records if "iterations" in r.getMessage()]
    assert epochs[0].endswith("(20.0 s, 10 iterations; ~30 s left)")  # 15 of the 25 left at 2 s each
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="ai4med.train"):
        run(clock, epochs=2, batches=5, seconds_per_iteration=1.0)  # no epoch_length: no guess
    assert [r.getMessage() for r in caplog.records][0].endswith("(5.0 s, 5 iterations)")


@pytest.mark.parametrize(("seconds", "text"), [(0.4, "0 s"), (42, "42 s"), (185, "3 min 05 s"),
                                               (7620, "2 h 07 min")])
def test_format_duration(seconds, text):
    assert format_duration(seconds) == text


class _Pipeline:
    """Validation batches of one 4^3 image each."""

    def __init__(self, n: int) -> None:
        self.n = n

    def set_epoch(self, epoch: int) -> None:
        pass

    def __len__(self) -> int:
        return self.n

    def __iter__(self):
        import torch

        for _ in range(self.n):
            yield {"image": torch.zeros(1, 1, 4, 4, 4)}


def test_a_long_validation_prints_progress_with_its_time_left(caplog):
    from ai4med.workflows.validator import Validator

    clock = Clock()

    def predict(image):
        clock.now += 20.0  # 20 s a case
        return image

    with caplog.at_level(logging.INFO, logger="ai4med.workflows.validator"):
        assert Validator(predict, _Pipeline(5), [], clock=clock).run() == {}
    lines = [r.getMessage() for r in caplog.records]
    # a line once 30 s have passed since the start or the last line: after cases 2 and 4
    assert lines == ["validation: batch 2/5 (2 cases, 20.0 s a batch, ~1 min 00 s left)",
                     "validation: batch 4/5 (4 cases, 20.0 s a batch, ~20 s left)"]


def test_validation_names_a_case_whose_label_is_off_the_image_grid():
    """It failed as `cannot reshape array of size 28672 into shape (32,32,32)` in the overlay picture."""
    import numpy as np
    import torch

    from ai4med.errors import UserError
    from ai4med.workflows.validator import Validator

    class Pipeline(_Pipeline):
        def __iter__(self):
            yield {"image": torch.zeros(1, 1, 8, 8, 8), "label": torch.zeros(1, 1, 7, 8, 8)}

    with pytest.raises(UserError, match=r"validation case case_0: 'label' has spatial shape \(7, 8, 8\) but the "
                                        r"image \(8, 8, 8\)"):
        Validator(lambda image: np.zeros(image.shape[1:]), Pipeline(1), []).run()
