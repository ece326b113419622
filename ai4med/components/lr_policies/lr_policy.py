"""LR policies: Clara's learning-rate schedules, applied to a torch optimizer by the loop.

Each policy has a `trigger` saying when the training loop calls `apply`:

- "step": before every training iteration, with the global step (DecayOnStep);
- "epoch": at the start of every epoch, with the epoch index and total epochs
  (ReduceCosine, ReducePoly);
- "validation": after every validation, with the key metric (ReduceOnPlateau).

The LR a schedule starts from is the optimizer's LR when `apply` first runs; it is kept
in each param group as `initial_lr` (PyTorch's convention), so it is saved with the
optimizer's state dict and a resumed run continues the same schedule.
"""

from __future__ import annotations

import math
from typing import Any

import torch


class LRPolicy:
    """Base: `compute_lr(...)` says the LR; `apply(optimizer, ...)` writes it to every param group."""

    trigger = "step"

    def __init__(self, total_epochs: int | None = None) -> None:
        self.total_epochs = total_epochs

    def compute_lr(
        self, initial_lr: float, current_lr: float, step: int, epoch: int, total_epochs: int | None, metric: Any
    ) -> float:
        raise NotImplementedError

    def apply(
        self,
        optimizer: torch.optim.Optimizer,
        step: int = 0,
        epoch: int = 0,
        metric: Any = None,
        total_epochs: int | None = None,
    ) -> float:
        """Set the LR of every param group for this step/epoch/metric; returns the first group's LR."""
        total = total_epochs if total_epochs is not None else self.total_epochs
        lrs = []
        for group in optimizer.param_groups:
            initial = group.setdefault("initial_lr", group["lr"])
            group["lr"] = float(self.compute_lr(initial, group["lr"], int(step), int(epoch), total, metric))
            lrs.append(group["lr"])
        self.after_apply()
        return lrs[0]

    def after_apply(self) -> None:
        """Hook for stateful policies, run once per `apply` after all groups are updated."""

    def state_dict(self) -> dict[str, Any]:
        return {}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        pass


def _need_total(total_epochs: int | None, name: str) -> int:
    if not total_epochs:
        raise ValueError(f"{name} needs total_epochs (pass it to apply() or the constructor)")
    return int(total_epochs)


class DecayOnStep(LRPolicy):
    """`lr = initial_lr * decay_ratio ** (step // decay_freq)`: multiply by the ratio every N steps.

    Example:
        >>> DecayOnStep(decay_ratio=0.1, decay_freq=100).compute_lr(1.0, 1.0, 250, 0, None, None)
        0.010000000000000002
    """

    trigger = "step"

    def __init__(self, decay_ratio: float, decay_freq: int, total_epochs: int | None = None) -> None:
        super().__init__(total_epochs)
        if int(decay_freq) <= 0:
            raise ValueError(f"decay_freq must be positive, got {decay_freq}")
        self.decay_ratio = float(decay_ratio)
        self.decay_freq = int(decay_freq)

    def compute_lr(self, initial_lr, current_lr, step, epoch, total_epochs, metric) -> float:
        return initial_lr * self.decay_ratio ** (step // self.decay_freq)


class DecayLRonStep(DecayOnStep):
    """The 2019 (Clara 1.x) name of DecayOnStep (`lr_policy.DecayLRonStep`)."""


class ReduceCosine(LRPolicy):
    """`lr = initial_lr * rate * (1 + cos(pi * epoch / total_epochs))`; rate 0.5 is cosine annealing to 0.

    Example:
        >>> ReduceCosine().compute_lr(1.0, 1.0, 0, 5, 10, None)
        0.5
    """

    trigger = "epoch"

    def __init__(self, rate: float = 0.5, total_epochs: int | None = None) -> None:
        super().__init__(total_epochs)
        self.rate = float(rate)

    def compute_lr(self, initial_lr, current_lr, step, epoch, total_epochs, metric) -> float:
        total = _need_total(total_epochs, "ReduceCosine")
        return initial_lr * self.rate * (1.0 + math.cos(math.pi * min(epoch, total) / total))


class ReducePoly(LRPolicy):
    """`lr = initial_lr * (1 - epoch / total_epochs) ** poly_power` (polynomial decay to 0).

    Example:
        >>> ReducePoly(poly_power=2).compute_lr(1.0, 1.0, 0, 5, 10, None)
        0.25
    """

    trigger = "epoch"

    def __init__(self, poly_power: float = 0.9, total_epochs: int | None = None) -> None:
        super().__init__(total_epochs)
        self.poly_power = float(poly_power)

    def compute_lr(self, initial_lr, current_lr, step, epoch, total_epochs, metric) -> float:
        total = _need_total(total_epochs, "ReducePoly")
        return initial_lr * (1.0 - min(epoch, total) / total) ** self.poly_power


class ReduceOnPlateau(LRPolicy):
    """Multiply the LR by `reduction_rate` once the validation metric failed to improve
    `plateau_count_trigger` times in a row (then start counting again).

    Args:
        plateau_count_trigger: validations without improvement before a reduction.
        reduction_rate: LR multiplier per reduction.
        mode: "max" (the key metric, e.g. Dice, higher is better) or "min".
        min_lr: lower bound of the LR.
    """

    trigger = "validation"

    def __init__(
        self,
        plateau_count_trigger: int = 10,
        reduction_rate: float = 0.1,
        mode: str = "max",
        min_lr: float = 0.0,
        total_epochs: int | None = None,
    ) -> None:
        super().__init__(total_epochs)
        if mode not in ("max", "min"):
            raise ValueError(f"mode must be 'max' or 'min', got {mode!r}")
        self.plateau_count_trigger = int(plateau_count_trigger)
        self.reduction_rate = float(reduction_rate)
        self.mode = mode
        self.min_lr = float(min_lr)
        self.best: float | None = None
        self.count = 0
        self._reduce = False

    def _observe(self, metric: Any) -> None:
        value = float(metric)
        improved = self.best is None or (value > self.best if self.mode == "max" else value < self.best)
        if improved:
            self.best, self.count = value, 0
        else:
            self.count += 1
        self._reduce = self.count >= self.plateau_count_trigger

    def apply(self, optimizer, step=0, epoch=0, metric=None, total_epochs=None) -> float:
        if metric is None:
            raise ValueError("ReduceOnPlateau.apply needs the validation metric")
        self._observe(metric)
        return super().apply(optimizer, step, epoch, metric, total_epochs)

    def compute_lr(self, initial_lr, current_lr, step, epoch, total_epochs, metric) -> float:
        return max(current_lr * self.reduction_rate, self.min_lr) if self._reduce else current_lr

    def after_apply(self) -> None:
        if self._reduce:
            self.count, self._reduce = 0, False

    def state_dict(self) -> dict[str, Any]:
        return {"best": self.best, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best, self.count = state.get("best"), int(state.get("count", 0))
