"""MetricList: collects per-case metric values and reduces them (seed 002).

Subclasses implement `get()`; `self._list` is a numpy array of the values collected so
far (one row per case), so seed-style `np.mean(self._list)` code works unchanged.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from ai4med.io.atomic import atomic_write_text


class MetricList:
    """Per-case values of one metric, with optional raw/summary reports.

    Args:
        name: the metric's name (report files are `<name>_raw_results.txt` and
            `<name>_summary_results.txt` under `report_path`).
        invalid_value: the value recorded for a case whose metric is undefined.
        report_path: folder for reports, or None for no reports.
    """

    def __init__(self, name: str, invalid_value: float = float("nan"), report_path: str | None = None) -> None:
        self.name = name
        self.invalid_value = invalid_value
        self.report_path = report_path
        self._values: list[Any] = []
        self._labels: list[str | None] = []
        self._list: np.ndarray | None = None

    def update(self, value: Any, label: str | None = None) -> None:
        """Add one case's value (a scalar or a per-class vector); None means invalid."""
        arr = np.asarray(self.invalid_value if value is None else value, dtype=np.float64)
        if value is None and self._values:  # an invalid case takes the shape of the valid ones
            arr = np.full_like(self._values[0], self.invalid_value)
        self._values.append(arr)
        self._labels.append(label)
        self._list = np.stack(self._values) if self._values else None

    def reset(self) -> None:
        self._values, self._labels, self._list = [], [], None

    def get_name(self) -> str:
        return self.name

    def get_values(self) -> np.ndarray:
        return np.empty(0) if self._list is None else self._list

    def get(self) -> Any:
        """Reduce the collected values (default: mean ignoring invalid values)."""
        if self._list is None or self._list.size == 0:
            return 0
        return float(np.nanmean(self._list))

    def __len__(self) -> int:
        return len(self._values)

    def write_reports(self, path: str | None = None) -> list[str]:
        """Write `<name>_raw_results.txt` (one line per case) and the summary; return paths."""
        folder = path or self.report_path
        if not folder:
            return []
        os.makedirs(folder, exist_ok=True)
        raw_lines = []
        for i, (label, value) in enumerate(zip(self._labels, self._values)):
            vals = "\t".join(f"{v:.6f}" for v in np.ravel(value))  # a scalar, a per-class vector or an array
            raw_lines.append(f"{label if label is not None else i}\t{vals}")
        summary = self.get()
        summary_txt = "\t".join(f"{float(v):.6f}" for v in np.ravel(np.asarray(summary, dtype=np.float64)))
        out = []
        for suffix, text in (("raw", "\n".join(raw_lines) + "\n"), ("summary", f"{self.name}\t{summary_txt}\n")):
            target = os.path.join(folder, f"{self.name}_{suffix}_results.txt")
            atomic_write_text(target, text)
            out.append(target)
        return out

