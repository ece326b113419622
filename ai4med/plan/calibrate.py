"""Seconds per training iteration of a written MMAR, data loading included (CPU budgets).

The planner's step time is the network's (forward, backward and Adam under a stand-in loss).
A real iteration also runs the configured loss on every deep-supervision head, the aux-ops, the
handlers and the random part of the data chain (the patch crop and the augmentations), in
whatever processes the pipeline uses: nothing a model of the step can see. (A config whose
pipeline ran four DataLoader workers on two cores took 1.6 s an iteration on MNI152 against
0.92 s modelled; the budget then cut its cosine schedule at 63%.) So the written MMAR itself is
trained for a few iterations (`iteration_seconds`: the median after the first), the
deterministic prefix of its chain is timed on one case (`prefix_seconds`: paid once per case,
while the first epoch fills the cache), and the iterations are re-fitted to the time budget from
both (`rules.training_length`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ai4med.plan import rules

logger = logging.getLogger(__name__)

__all__ = ["prefix_seconds", "iteration_seconds", "refit_training_length"]

#: iterations run by `iteration_seconds` (the first is not counted)
PROBE_ITERATIONS = 4


def prefix_seconds(config: str, environment: str, mmar_root: str, case: dict[str, Any]) -> float:
    """Seconds of the training chain's deterministic prefix (what the cache holds) on `case`."""
    import numpy as np

    from ai4med.common.transform_ctx import TransformContext
    from ai4med.components.data.smart_cache import deterministic_prefix_length
    from ai4med.config.workflow_config import load_config

    cfg = load_config(config, environment, None, mmar_root=mmar_root)
    chain = cfg.build_list("/train/pre_transforms", "transforms")
    ctx = TransformContext({"image": case["image"], "label": case["label"]}, np.random.default_rng(0))
    t0 = time.perf_counter()
    for t in chain[:deterministic_prefix_length(chain)]:
        ctx = t(ctx)
    return time.perf_counter() - t0


def iteration_seconds(config: str, environment: str, mmar_root: str, iterations: int = PROBE_ITERATIONS) -> float:
    """Median seconds of a training iteration of the MMAR as written (after the first), no validation."""
    import statistics
    import tempfile

    from ai4med.config.workflow_config import load_config
    from ai4med.workflows.engine import Events
    from ai4med.workflows.trainer import Trainer

    class NoValidation(Trainer):
        def make_validator(self):  # the probe times training only
            return None

    ends: list[float] = []

    class Clock:
        def attach(self, engine: Any) -> None:
            engine.add_handler(Events.ITERATION_COMPLETED, lambda e: ends.append(time.perf_counter()), name="clock")

    cfg = load_config(config, environment, {"iterations": iterations, "checkpoint_interval": 0}, mmar_root=mmar_root)
    with tempfile.TemporaryDirectory(prefix="ai4med_plan_probe_") as tmp:
        trainer = NoValidation(cfg, tmp, None)
        trainer.handlers.append(Clock())
        trainer.run()
    deltas = [b - a for a, b in zip(ends, ends[1:])]
    if not deltas:
        raise RuntimeError(f"the training probe ran {len(ends)} iteration(s); it needs 2 or more")
    return float(statistics.median(deltas))


def refit_training_length(plans: dict[str, Any], prefix_s: float, iteration_s: float, n_train: int) -> dict[str, Any]:
    """The plans' `training` with the iterations re-fitted to the budget from measured iteration and
    cache-filling times."""
    budget = plans["budget"]
    t = dict(plans["training"])
    if budget["kind"] != "cpu" or not budget.get("time_s"):
        return t
    usable = max(budget["time_s"] - prefix_s * n_train, 0.1 * budget["time_s"])  # first epoch fills the cache
    t.update(rules.training_length(n_train, iteration_s, usable))
    t["data_seconds"] = {"per_case_cached": prefix_s}
    t["iteration_seconds"] = iteration_s
    return t
