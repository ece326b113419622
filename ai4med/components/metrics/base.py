"""Shared plumbing of the built-in metrics: the validation loop feeds them a dict of fields.

`update_from(fields, case_name)` reads `fields[field]` (an inferer output, a transform
field or an aux-op output) and, for metrics that compare with a reference,
`fields[label_field]`; it then calls `update(value, case_name, label_value=...)`.
BYOC metrics built on the seed's plain `Metric` are fed `metric.update(fields[field])`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ai4med.components.metric import Metric
from ai4med.libs.metrics.metric_list import MetricList


def to_numpy(x: Any) -> np.ndarray:
    """A float64 numpy array from a tensor (any device), array, list or scalar."""
    if hasattr(x, "detach"):
        x = x.detach().float().cpu().numpy()
    return np.asarray(x, dtype=np.float64)


def case_names(label: str | Sequence[str] | None, n: int) -> list[str | None]:
    """One name per case of a batch (None when unnamed)."""
    if label is None or isinstance(label, str):
        return [label] * n if n == 1 or label is None else [f"{label}[{i}]" for i in range(n)]
    names = list(label)
    if len(names) != n:
        raise ValueError(f"{len(names)} case names for a batch of {n}")
    return names


def segmentation_cases(metric: Any, value: Any, label: Any, label_value: Any, is_2d: bool) -> Any:
    """(prediction, label, case name) per case of a batch (or of one case) of segmentation outputs, checked:
    the label is given and the prediction is (N, C, *spatial) or (C, *spatial)."""
    if label_value is None:
        raise ValueError(f"metric {metric.get_name()!r} needs the label ({metric.label_field!r})")
    pred, lab = to_numpy(value), to_numpy(label_value)
    case_ndim = (2 if is_2d else 3) + 1
    if pred.ndim == case_ndim:
        pred, lab = pred[None], lab[None]
    if pred.ndim != case_ndim + 1:
        raise ValueError(f"predictions of shape {pred.shape} are not (N, C, {'H, W' if is_2d else 'D, H, W'})")
    return zip(pred, lab, case_names(label, pred.shape[0]))


class RaggedMetricList(MetricList):
    """A MetricList whose per-case vectors may grow (e.g. a class seen late); rows are NaN-padded."""

    def update(self, value: Any, label: str | None = None) -> None:
        arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
        width = max([arr.size] + [v.size for v in self._values])
        if any(v.size != width for v in self._values) or arr.size != width:
            pad = lambda a: np.concatenate([a, np.full(width - a.size, np.nan)])  # noqa: E731
            self._values = [pad(np.atleast_1d(v)) for v in self._values]
            arr = pad(arr)
        self._values.append(arr)
        self._labels.append(label)
        self._list = np.stack(self._values)


class FieldMetric(Metric):
    """A `Metric` that knows its `label_field` and can be fed a dict of fields."""

    def __init__(
        self,
        metric_list: MetricList,
        field: str,
        label_field: str | None = None,
        do_summary: bool = True,
        do_print: bool = True,
        is_key_metric: bool = False,
    ) -> None:
        Metric.__init__(self, metric_list, field, do_summary=do_summary, do_print=do_print, is_key_metric=is_key_metric)
        self.label_field = label_field

    def get_label_field(self) -> str | None:
        return self.label_field

    def update_from(self, fields: Mapping[str, Any], case_name: str | Sequence[str] | None = None) -> None:
        """Record the case(s) in `fields` (a batch is split into cases)."""
        if self.field not in fields:
            raise KeyError(f"metric {self.get_name()!r}: no field {self.field!r} in {sorted(fields)}")
        label_value = None
        if self.label_field is not None:
            if self.label_field not in fields:
                raise KeyError(f"metric {self.get_name()!r}: no label field {self.label_field!r} in {sorted(fields)}")
            label_value = fields[self.label_field]
        self.update(fields[self.field], case_name, label_value=label_value)

    def update(self, value: Any, label: Any = None, label_value: Any = None) -> None:  # type: ignore[override]
        raise NotImplementedError
