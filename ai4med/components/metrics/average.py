"""ComputeAverage: the mean of a scalar field (e.g. an aux-op output such as NegLoss) over cases."""

from __future__ import annotations

from typing import Any

import numpy as np

from ai4med.components.metrics.base import FieldMetric, case_names, to_numpy
from ai4med.libs.metrics.metric_list import MetricList


class MetricAverage(MetricList):
    """Mean of scalar per-case values, NaN ignored; `invalid_value` when nothing valid was seen."""

    def get(self) -> float:
        vals = self.get_values()
        finite = vals[~np.isnan(vals)] if vals.size else vals
        return float(np.mean(finite)) if finite.size else float(self.invalid_value)


class ComputeAverage(FieldMetric):
    """Average of `field` over the validation cases (a batch-shaped value counts one case per element).

    Args:
        name: metric name (TensorBoard tag, report file prefix).
        field: the field holding the value.
        invalid_value: reported when no valid value was collected.
        report_path: folder for `<name>_raw_results.txt` / `<name>_summary_results.txt`.
        negate_value: store `-value` (turn a loss into a higher-is-better key metric).

    Example:
        >>> m = ComputeAverage("negloss", "loss", negate_value=True)
        >>> m.update_from({"loss": 0.25}); m.update_from({"loss": 0.75}); m.get()
        -0.5
    """

    def __init__(
        self,
        name: str,
        field: str,
        invalid_value: float = float("nan"),
        report_path: str | None = None,
        do_summary: bool = True,
        do_print: bool = True,
        is_key_metric: bool = False,
        negate_value: bool = False,
    ) -> None:
        FieldMetric.__init__(self, MetricAverage(name, invalid_value, report_path), field, None,
                             do_summary, do_print, is_key_metric)
        self.negate_value = negate_value

    def update(self, value: Any, label: Any = None, label_value: Any = None) -> None:
        if value is None:
            self.metric_list.update(None, label)
            return
        vals = to_numpy(value).reshape(-1)
        for v, name in zip(vals, case_names(label, vals.size)):
            self.metric_list.update(-v if self.negate_value else v, name)
