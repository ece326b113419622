"""Validation Dice: per-case, per-class Dice of full-size predictions against labels (numpy)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ai4med.components.metrics.base import FieldMetric, RaggedMetricList, segmentation_cases


def _class_map(pred: np.ndarray, logit_thresh: float) -> np.ndarray:
    """(C, *spatial) probabilities -> class map: argmax for C > 1; for C == 1 a class map
    if its values are integers above 1 (an argmaxed prediction), else `> logit_thresh`."""
    if pred.shape[0] > 1:
        return np.argmax(pred, axis=0)
    p = pred[0]
    if p.max(initial=0) > 1 and np.all(p == np.round(p)):
        return p.astype(np.int64)
    return (p > logit_thresh).astype(np.int64)


def dice_per_class(
    pred: np.ndarray, label: np.ndarray, remove_bg: bool = True, logit_thresh: float = 0.5,
    is_one_hot_targets: bool = False,
) -> np.ndarray:
    """Dice per class of one case; NaN where the class is absent from the label (MONAI's `ignore_empty`).

    Args:
        pred: (C, *spatial) probabilities/logits or a (1, *spatial) class map.
        label: (1, *spatial) or (*spatial) class map, or (C, *spatial) one-hot.
    """
    pmap = _class_map(pred, logit_thresh)
    if is_one_hot_targets:
        lmap = np.argmax(label, axis=0)
    else:
        lmap = np.round(label.reshape(pmap.shape)).astype(np.int64) if label.size == pmap.size else None
        if lmap is None:
            raise ValueError(f"label shape {label.shape} does not match prediction {pred.shape}")
    n = max(pred.shape[0] if pred.shape[0] > 1 else 2, int(lmap.max(initial=0)) + 1, int(pmap.max(initial=0)) + 1)
    scores = []
    for c in range(1 if remove_bg else 0, n):
        p, t = pmap == c, lmap == c
        t_sum = t.sum()
        scores.append(np.nan if t_sum == 0 else 2.0 * np.logical_and(p, t).sum() / (p.sum() + t_sum))
    return np.asarray(scores, dtype=np.float64)


class MetricDiceFromArray(RaggedMetricList):
    """Per-case vectors of per-class Dice; `get()` = mean over cases of the per-case class mean (as
    MONAI's DiceMetric with reduction "mean"), NaN ignored, `invalid_value` if nothing valid."""

    def get(self) -> float:
        vals = self.get_values()
        if vals.size == 0:
            return float(self.invalid_value)
        with np.errstate(invalid="ignore"):
            valid = ~np.all(np.isnan(vals), axis=1)
            if not valid.any():
                return float(self.invalid_value)
            return float(np.mean(np.nanmean(vals[valid], axis=1)))


class ComputeAverageDice(FieldMetric):
    """Mean Dice of the prediction `field` against `label_field` over the validation cases.

    Args:
        name: metric name.
        field: predictions, (N, C, *spatial) or (C, *spatial) (probabilities, logits with
            `logit_thresh`, or an argmaxed class map).
        label_field: the label, class map or one-hot (`is_one_hot_targets`).
        is_2d: cases are 2D (tells a batch axis from a spatial one).
        remove_bg: leave class 0 out.
        logit_thresh: threshold of single-channel predictions.
        report_path: folder for per-case (per-class) and summary reports.

    Example:
        >>> m = ComputeAverageDice("dice", "model", is_2d=True)
        >>> pred = np.array([[[0.9, 0.1], [0.2, 0.3]], [[0.1, 0.9], [0.8, 0.7]]])  # (C=2, 2, 2)
        >>> m.update_from({"model": pred, "label": np.array([[[0, 1], [1, 0]]])}); round(m.get(), 4)
        0.8
    """

    def __init__(
        self,
        name: str,
        field: str,
        label_field: str = "label",
        is_2d: bool = False,
        remove_bg: bool = True,
        logit_thresh: float = 0.5,
        is_one_hot_targets: bool = False,
        report_path: str | None = None,
        do_summary: bool = True,
        do_print: bool = True,
        is_key_metric: bool = False,
        invalid_value: float = float("nan"),
    ) -> None:
        FieldMetric.__init__(self, MetricDiceFromArray(name, invalid_value, report_path), field, label_field,
                             do_summary, do_print, is_key_metric)
        self.is_2d = is_2d
        self.remove_bg = remove_bg
        self.logit_thresh = logit_thresh
        self.is_one_hot_targets = is_one_hot_targets

    def update(self, value: Any, label: Any = None, label_value: Any = None) -> None:
        for p, t, name in segmentation_cases(self, value, label, label_value, self.is_2d):
            scores = dice_per_class(p, t, self.remove_bg, self.logit_thresh, self.is_one_hot_targets)
            self.metric_list.update(scores, name)


class MetricAverageFromArrayDice(ComputeAverageDice):
    """The 2019 (Clara 1.x) validation Dice; accepts that release's spellings:
    `tag` for name, `applied_key` for field, `label_key` for label_field, `stopping_metric` for is_key_metric."""

    def __init__(
        self,
        name: str | None = None,
        field: str | None = None,
        label_field: str | None = None,
        is_2d: bool = False,
        remove_bg: bool = True,
        logit_thresh: float = 0.5,
        is_one_hot_targets: bool = False,
        report_path: str | None = None,
        do_summary: bool = True,
        do_print: bool = True,
        is_key_metric: bool | None = None,
        invalid_value: float = float("nan"),
        tag: str | None = None,
        applied_key: str | None = None,
        label_key: str | None = None,
        stopping_metric: bool | None = None,
    ) -> None:
        name = name or tag
        field = field or applied_key or "model"
        if not name:
            raise ValueError("MetricAverageFromArrayDice needs a name (or the 2019 'tag')")
        key = is_key_metric if is_key_metric is not None else bool(stopping_metric)
        super().__init__(name, field, label_field or label_key or "label", is_2d, remove_bg, logit_thresh,
                         is_one_hot_targets, report_path, do_summary, do_print, key, invalid_value)
