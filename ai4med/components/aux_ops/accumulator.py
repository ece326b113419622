"""MetricAccumulator: per-step aux-op values -> per-interval means on the console and TensorBoard."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import numpy as np

logger = logging.getLogger(__name__)


class ScalarWriter(Protocol):
    """What the accumulator needs of a `torch.utils.tensorboard.SummaryWriter`."""

    def add_scalar(self, tag: str, scalar_value: float, global_step: int | None = None) -> Any: ...


def _scalar(value: Any) -> float | None:
    """A float for scalars and size-1 arrays/tensors, None for anything else."""
    try:
        arr = np.asarray(value.detach().cpu() if hasattr(value, "detach") else value, dtype=np.float64)
    except (TypeError, ValueError):
        return None
    return float(arr.reshape(-1)[0]) if arr.size == 1 else None


class MetricAccumulator:
    """Collects scalar outputs step by step and reports their means.

    Only scalar and size-1 values are aggregated (as in Clara); others are skipped.
    NaN values (e.g. Dice of a class absent from a batch) are ignored by the means.

    Args:
        summary_writer: a SummaryWriter-like object (`add_scalar`), or None.
        print_fn: where `do_print` lines go (default: this module's logger at INFO).
        prefix: prepended to TensorBoard tags (e.g. "train/").

    Example:
        >>> acc = MetricAccumulator(print_fn=lambda s: None)
        >>> acc.update({"acc": 0.5}); acc.update({"acc": 1.0})
        >>> acc.report(step=2)
        {'acc': 0.75}
    """

    def __init__(
        self,
        summary_writer: ScalarWriter | None = None,
        print_fn: Callable[[str], None] | None = None,
        prefix: str = "",
    ) -> None:
        self.summary_writer = summary_writer
        self.print_fn = print_fn or logger.info
        self.prefix = prefix
        self._values: dict[str, list[float]] = {}
        self._summary: set[str] = set()
        self._print: set[str] = set()
        self._skipped: set[str] = set()

    def update(self, outputs: Mapping[str, Any], do_summary: bool = True, do_print: bool = True) -> None:
        """Add one step's outputs."""
        for key, value in outputs.items():
            v = _scalar(value)
            if v is None:
                if key not in self._skipped:
                    self._skipped.add(key)
                    logger.debug("MetricAccumulator skips non-scalar output %r", key)
                continue
            self._values.setdefault(key, []).append(v)
            if do_summary:
                self._summary.add(key)
            if do_print:
                self._print.add(key)

    def add_aux_op(self, aux_op: Any, outputs: Mapping[str, Any]) -> None:
        """Add one step's outputs of `aux_op`, honouring its `do_summary` / `do_print`."""
        self.update(outputs, getattr(aux_op, "do_summary", True), getattr(aux_op, "do_print", True))

    def means(self) -> dict[str, float]:
        """NaN-ignoring mean per key since the last report (NaN if every value was NaN)."""
        out = {}
        for key, vals in self._values.items():
            finite = [v for v in vals if not math.isnan(v)]
            out[key] = float(np.mean(finite)) if finite else float("nan")
        return out

    def format(self, means: Mapping[str, float] | None = None) -> str:
        means = self.means() if means is None else means
        return " ".join(f"{k}: {v:.4f}" for k, v in means.items() if k in self._print)

    def report(self, step: int, epoch: int | None = None) -> dict[str, float]:
        """Write the means (TensorBoard for `do_summary` keys, console for `do_print` keys), then reset."""
        means = self.means()
        if self.summary_writer is not None:
            for key, value in means.items():
                if key in self._summary and not math.isnan(value):
                    self.summary_writer.add_scalar(self.prefix + key, value, step)
        line = self.format(means)
        if line:
            head = f"epoch {epoch} step {step}" if epoch is not None else f"step {step}"
            self.print_fn(f"{head} {line}")
        self.reset()
        return means

    def reset(self) -> None:
        self._values.clear()
        self._summary.clear()
        self._print.clear()
