"""Boundary metrics of segmentations: Hausdorff-95 distance and surface Dice (MONAI's implementations).

Both compare, per case and per class, the boundary of the prediction with the label's, in mm
when `spacing` is given (else voxels): `ComputeHausdorff95` the 95th percentile of the
symmetric surface distances (lower is better; do not make it the key metric, which is
maximised), `ComputeSurfaceDice` the fraction of both boundaries within `tolerance` mm of the
other (Nikolov et al. 2021; higher is better). A class absent from the label is NaN (skipped,
as Dice); a class present in the label but not predicted gets, for Hausdorff-95, the
diagonal of the image (the farthest any boundary can be), where MONAI would return NaN and
silently drop the miss.

Example:
    >>> import numpy as np
    >>> lab = np.zeros((1, 8, 8, 8)); lab[0, 2:6, 2:6, 2:6] = 1
    >>> pred = np.zeros((2, 8, 8, 8)); pred[0] = 1 - lab[0]; pred[1] = lab[0]
    >>> m = ComputeHausdorff95("hd95", "model"); m.update_from({"model": pred, "label": lab}); m.get()
    0.0
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np

from ai4med.components.metrics.base import FieldMetric, segmentation_cases
from ai4med.components.metrics.dice import MetricDiceFromArray, _class_map

__all__ = ["ComputeHausdorff95", "ComputeSurfaceDice", "surface_scores"]


def _one_hot(cmap: np.ndarray, n: int) -> Any:
    import torch

    t = torch.as_tensor(cmap.astype(np.int64))
    return torch.nn.functional.one_hot(t, n).movedim(-1, 0)[None].float()


def surface_scores(
    pred: np.ndarray, label: np.ndarray, kind: str, remove_bg: bool = True, spacing: Sequence[float] | None = None,
    tolerance: float | Sequence[float] = 1.0, percentile: float = 95.0, logit_thresh: float = 0.5,
) -> np.ndarray:
    """Per-class Hausdorff (`kind="hd"`) or surface Dice (`kind="nsd"`) of one case.

    Args:
        pred: (C, *spatial) probabilities or a (1, *spatial) class map; label: (1, *spatial) class map.
    """
    from monai.metrics import compute_hausdorff_distance, compute_surface_dice

    pmap = _class_map(pred, logit_thresh)
    lmap = np.round(label.reshape(pmap.shape)).astype(np.int64)
    n = max(pred.shape[0] if pred.shape[0] > 1 else 2, int(lmap.max(initial=0)) + 1, int(pmap.max(initial=0)) + 1)
    p1, l1 = _one_hot(pmap, n), _one_hot(lmap, n)
    sp = None if spacing is None else [float(s) for s in spacing]
    if kind == "hd":
        vals = compute_hausdorff_distance(p1, l1, include_background=not remove_bg, percentile=percentile,
                                          spacing=sp)[0].numpy().astype(np.float64)
    else:
        n_fg = n - (1 if remove_bg else 0)
        tol = [float(tolerance)] * n_fg if np.isscalar(tolerance) else [float(t) for t in tolerance]
        if len(tol) != n_fg:
            raise ValueError(f"tolerance: {len(tol)} values for {n_fg} classes")
        vals = compute_surface_dice(p1, l1, tol, include_background=not remove_bg,
                                    spacing=sp)[0].numpy().astype(np.float64)
    first = 1 if remove_bg else 0
    diag = math.sqrt(sum((d * (s if sp else 1.0)) ** 2 for d, s in zip(pmap.shape, sp or [1.0] * pmap.ndim)))
    for i, c in enumerate(range(first, n)):
        in_label, in_pred = bool((lmap == c).any()), bool((pmap == c).any())
        if not in_label:
            vals[i] = np.nan
        elif not in_pred:
            vals[i] = diag if kind == "hd" else 0.0
    return vals


class _SurfaceMetric(FieldMetric):
    kind = "hd"

    def __init__(self, name: str, field: str, label_field: str = "label", is_2d: bool = False, remove_bg: bool = True,
                 spacing: Sequence[float] | None = None, logit_thresh: float = 0.5, report_path: str | None = None,
                 do_summary: bool = True, do_print: bool = True, is_key_metric: bool = False,
                 invalid_value: float = float("nan")) -> None:
        FieldMetric.__init__(self, MetricDiceFromArray(name, invalid_value, report_path), field, label_field,
                             do_summary, do_print, is_key_metric)
        self.is_2d, self.remove_bg, self.logit_thresh = is_2d, remove_bg, logit_thresh
        self.spacing = None if spacing is None else [float(s) for s in spacing]

    def _extra(self) -> dict[str, Any]:
        return {}

    def update(self, value: Any, label: Any = None, label_value: Any = None) -> None:
        for p, t, name in segmentation_cases(self, value, label, label_value, self.is_2d):
            self.metric_list.update(surface_scores(p, t, self.kind, self.remove_bg, self.spacing,
                                                   logit_thresh=self.logit_thresh, **self._extra()), name)


class ComputeHausdorff95(_SurfaceMetric):
    """Mean over cases of the per-case class-mean 95th-percentile Hausdorff distance (mm with `spacing`).

    Args: as `ComputeAverageDice`, plus `spacing` (mm per spatial axis; None: voxels) and
    `percentile` (95).
    """

    kind = "hd"

    def __init__(self, name: str, field: str, label_field: str = "label", percentile: float = 95.0,
                 **kwargs: Any) -> None:
        super().__init__(name, field, label_field, **kwargs)
        self.percentile = float(percentile)

    def _extra(self) -> dict[str, Any]:
        return {"percentile": self.percentile}


class ComputeSurfaceDice(_SurfaceMetric):
    """Mean over cases of the per-case class-mean surface Dice at `tolerance` mm (one value or one per class).

    Example:
        >>> import numpy as np
        >>> lab = np.zeros((1, 8, 8, 8)); lab[0, 2:6, 2:6, 2:6] = 1
        >>> pred = np.zeros((1, 8, 8, 8)); pred[0, 2:6, 2:6, 3:7] = 1
        >>> m = ComputeSurfaceDice("nsd", "model", tolerance=0.5); m.update_from({"model": pred, "label": lab})
        >>> round(m.get(), 4)  # the two faces of the 1-voxel shift are beyond 0.5 voxel
        0.6429
    """

    kind = "nsd"

    def __init__(self, name: str, field: str, label_field: str = "label", tolerance: float | Sequence[float] = 1.0,
                 **kwargs: Any) -> None:
        super().__init__(name, field, label_field, **kwargs)
        self.tolerance = tolerance

    def _extra(self) -> dict[str, Any]:
        return {"tolerance": self.tolerance}
