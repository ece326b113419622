"""AUC metrics for classification: per-case probabilities and labels, ROC AUC over all cases.

The AUC itself is MONAI's `compute_roc_auc` (no scikit-learn).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from ai4med.components.metrics.base import FieldMetric, case_names, to_numpy
from ai4med.libs.metrics.metric_list import MetricList


def roc_auc(probs: np.ndarray, labels: np.ndarray, average: str = "macro") -> float:
    """ROC AUC of (N,) or (N, C) probabilities against binary / one-hot labels of the same shape."""
    import torch
    from monai.metrics import compute_roc_auc

    p = torch.as_tensor(probs, dtype=torch.float64)
    y = torch.as_tensor(labels, dtype=torch.float64)
    if p.ndim == 2 and p.shape[1] == 1:
        p, y = p[:, 0], y[:, 0]
    return float(compute_roc_auc(p, y, average=average))


def _rows(value: Any, label_value: Any) -> tuple[np.ndarray, np.ndarray]:
    """(N, C) probabilities and (N, C) binary labels (index labels are one-hot encoded)."""
    p = to_numpy(value)
    p = p.reshape(-1, 1) if p.ndim <= 1 else p.reshape(p.shape[0], -1)
    y = to_numpy(label_value)
    if y.size == p.shape[0] and p.shape[1] > 1:  # class indices
        y = np.eye(p.shape[1])[np.round(y.reshape(-1)).astype(np.int64)]
    y = y.reshape(p.shape)
    return p, y


class MetricAUC(MetricList):
    """Rows of `[probs..., labels...]` per case; `get()` is the ROC AUC over all rows.

    Args:
        auc_average: "macro", "weighted", "micro" or "none" (per class, MONAI's meanings).
        class_index: compute the AUC of this class column only.
        include_list: class columns to include (default all).
    """

    def __init__(self, name: str, report_path: str | None = None, auc_average: str = "macro",
                 class_index: int | None = None, include_list: Sequence[int] | None = None,
                 invalid_value: float = float("nan")) -> None:
        MetricList.__init__(self, name, invalid_value, report_path)
        self.auc_average = auc_average
        self.class_index = class_index
        self.include_list = None if include_list is None else [int(i) for i in include_list]

    def get(self) -> Any:
        vals = self.get_values()
        if vals.size == 0:
            return float(self.invalid_value)
        c = vals.shape[1] // 2
        probs, labels = vals[:, :c], vals[:, c:]
        cols = [self.class_index] if self.class_index is not None else (self.include_list or list(range(c)))
        probs, labels = probs[:, cols], labels[:, cols]
        if len(np.unique(labels)) < 2:
            return float(self.invalid_value)  # AUC undefined with one label value
        return roc_auc(probs, labels, self.auc_average)


class ComputeAUC(FieldMetric):
    """ROC AUC of the probabilities in `field` (e.g. ComputeBinaryPreds' output) against `label_field`.

    Example:
        >>> m = ComputeAUC("auc", "binary_preds", "binary_labels")
        >>> m.update_from({"binary_preds": [0.1, 0.4, 0.35, 0.8], "binary_labels": [0, 0, 1, 1]}); m.get()
        0.75
    """

    def __init__(
        self,
        name: str,
        field: str,
        label_field: str,
        report_path: str | None = None,
        auc_average: str = "macro",
        class_index: int | None = None,
        do_summary: bool = True,
        do_print: bool = True,
        is_key_metric: bool = False,
        include_list: Sequence[int] | None = None,
    ) -> None:
        ml = MetricAUC(name, report_path, auc_average, class_index, include_list)
        FieldMetric.__init__(self, ml, field, label_field, do_summary, do_print, is_key_metric)

    def update(self, value: Any, label: Any = None, label_value: Any = None) -> None:
        if label_value is None:
            raise ValueError(f"metric {self.get_name()!r} needs the label ({self.label_field!r})")
        p, y = _rows(value, label_value)
        for row_p, row_y, name in zip(p, y, case_names(label, p.shape[0])):
            self.metric_list.update(np.concatenate([row_p, row_y]), name)


class MulticlassAverage(MetricList):
    """Per-head AUC of a multi-head (or multi-label) classifier, averaged over the selected heads.

    Rows are `[probs_h..., labels_h...]` for each head h in turn; `head_sizes` records the
    class count of each head (1 for a binary head).
    """

    def __init__(self, name: str, report_path: str | None = None, auc_average: str = "macro",
                 label_index: int | Sequence[int] | None = None, invalid_value: float = float("nan")) -> None:
        MetricList.__init__(self, name, invalid_value, report_path)
        self.auc_average = auc_average
        self.label_index = label_index
        self.head_sizes: list[int] = []

    def per_head(self) -> list[float]:
        vals = self.get_values()
        out, start = [], 0
        for size in self.head_sizes:
            p, y = vals[:, start:start + size], vals[:, start + size:start + 2 * size]
            start += 2 * size
            out.append(roc_auc(p, y, self.auc_average) if len(np.unique(y)) > 1 else float("nan"))
        return out

    def get(self) -> float:
        if self.get_values().size == 0:
            return float(self.invalid_value)
        aucs = np.asarray(self.per_head())
        if self.label_index is not None:
            idx = [self.label_index] if isinstance(self.label_index, int) else list(self.label_index)
            aucs = aucs[idx]
        finite = aucs[~np.isnan(aucs)]
        return float(finite.mean()) if finite.size else float(self.invalid_value)


class ComputeMulticlassAverage(FieldMetric):
    """Mean AUC over the heads (labels) of a multi-head classifier; `label_index` selects heads.

    `field` holds a list of per-head probabilities (ComputeMulticlassPreds' output) or one
    (N, C) array read as C independent binary labels (multi-label); `label_field` likewise.
    """

    def __init__(
        self,
        name: str,
        field: str,
        label_field: str,
        report_path: str | None = None,
        auc_average: str = "macro",
        label_index: int | Sequence[int] | None = None,
        do_summary: bool = True,
        do_print: bool = True,
        is_key_metric: bool = False,
    ) -> None:
        ml = MulticlassAverage(name, report_path, auc_average, label_index)
        FieldMetric.__init__(self, ml, field, label_field, do_summary, do_print, is_key_metric)

    def update(self, value: Any, label: Any = None, label_value: Any = None) -> None:
        if label_value is None:
            raise ValueError(f"metric {self.get_name()!r} needs the label ({self.label_field!r})")
        if isinstance(value, (list, tuple)):
            heads = [_rows(v, y) for v, y in zip(value, label_value)]
        else:
            p, y = _rows(value, label_value)
            heads = [(p[:, i:i + 1], y[:, i:i + 1]) for i in range(p.shape[1])]
        sizes = [h[0].shape[1] for h in heads]
        if self.metric_list.head_sizes and sizes != self.metric_list.head_sizes:
            raise ValueError(f"head sizes changed from {self.metric_list.head_sizes} to {sizes}")
        self.metric_list.head_sizes = sizes
        n = heads[0][0].shape[0]
        for i, name in enumerate(case_names(label, n)):
            self.metric_list.update(np.concatenate([np.concatenate([p[i], y[i]]) for p, y in heads]), name)
