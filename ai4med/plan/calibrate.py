"""Seconds per training iteration of a written MMAR, data loading included (CPU budgets).

The planner's step time covers the network only; on a CPU the random part of the data chain
(the patch crop and the augmentations, in the same process as the step) is not free. This runs
the config's own training transforms on one case: the deterministic prefix once (what the
cache holds; it is paid once per case), the random rest three times (paid every iteration), and
the epochs are re-fitted to the time budget with step + data time (`rules.training_length`).
"""

from __future__ import annotations

import logging
import time
from typing import Any

from ai4med.plan import rules

logger = logging.getLogger(__name__)

__all__ = ["data_seconds", "refit_training_length"]


def data_seconds(config: str, environment: str, mmar_root: str, case: dict[str, Any]) -> tuple[float, float]:
    """(seconds of the cached prefix, seconds of the random rest) of the training chain on `case`."""
    import numpy as np

    from ai4med.common.transform_ctx import TransformContext
    from ai4med.components.data.smart_cache import deterministic_prefix_length
    from ai4med.config.workflow_config import load_config

    cfg = load_config(config, environment, None, mmar_root=mmar_root)
    chain = cfg.build_list("/train/pre_transforms", "transforms")
    n_det = deterministic_prefix_length(chain)
    ctx = TransformContext({"image": case["image"], "label": case["label"]}, np.random.default_rng(0))
    t0 = time.perf_counter()
    for t in chain[:n_det]:
        ctx = t(ctx)
    prefix = time.perf_counter() - t0
    rest = []
    for _ in range(3):
        c = ctx.copy() if hasattr(ctx, "copy") else TransformContext(dict(ctx), np.random.default_rng(1))
        t0 = time.perf_counter()
        for t in chain[n_det:]:
            c = t(c)
        rest.append(time.perf_counter() - t0)
    return prefix, min(rest)


def refit_training_length(plans: dict[str, Any], prefix_s: float, random_s: float, n_train: int) -> dict[str, Any]:
    """The plans' `training` with epochs re-fitted to the budget, counting data time."""
    budget = plans["budget"]
    t = dict(plans["training"])
    if budget["kind"] != "cpu" or not budget.get("time_s"):
        return t
    step = plans["memory"]["step_seconds"] + random_s
    usable = max(budget["time_s"] - prefix_s * n_train, 0.1 * budget["time_s"])  # first epoch fills the cache
    t.update(rules.training_length(n_train, step, usable))
    t["data_seconds"] = {"per_case_cached": prefix_s, "per_iteration": random_s}
    return t
