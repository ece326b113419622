"""Hausdorff-95 and surface Dice (MONAI) with known distances."""

from __future__ import annotations

import numpy as np
import pytest

from ai4med.components.metrics.catalog import REGISTRY
from ai4med.components.metrics.surface import ComputeHausdorff95, ComputeSurfaceDice

pytestmark = pytest.mark.filterwarnings("ignore")


def _cube(lo, hi, shape=(12, 12, 12)):
    a = np.zeros((1, *shape))
    a[0, lo[0]:hi[0], lo[1]:hi[1], lo[2]:hi[2]] = 1
    return a


def _probs(cmap, n=2):
    return np.stack([(cmap[0] == c).astype(float) for c in range(n)])


def test_hd95_of_a_shift_in_voxels_and_mm():
    lab = _cube((3, 3, 3), (8, 8, 8))
    pred = _probs(_cube((3, 3, 5), (8, 8, 10)))  # shifted 2 voxels along the last axis
    m = ComputeHausdorff95("hd95", "model")
    m.update_from({"model": pred, "label": lab})
    assert m.get() == pytest.approx(2.0)
    mm = ComputeHausdorff95("hd95", "model", spacing=[1.0, 1.0, 1.5])
    mm.update_from({"model": pred, "label": lab})
    assert mm.get() == pytest.approx(3.0)


def test_missing_prediction_counts_as_the_image_diagonal_and_absent_class_is_skipped():
    lab = np.zeros((1, 12, 12, 12))
    lab[0, 2:5, 2:5, 2:5] = 1
    lab[0, 7:10, 7:10, 7:10] = 2
    pred = np.zeros_like(lab)
    pred[0, 2:5, 2:5, 2:5] = 1  # class 1 right, class 2 missed
    m = ComputeHausdorff95("hd95", "model")
    m.update_from({"model": _probs(pred, 3), "label": lab}, "case0")
    assert m.get() == pytest.approx((0.0 + np.sqrt(3 * 144)) / 2)
    only1 = ComputeHausdorff95("hd95", "model")
    only1.update_from({"model": _probs(pred, 3), "label": pred})  # class 2 absent from label: NaN, skipped
    assert only1.get() == pytest.approx(0.0)


def test_surface_dice_tolerance():
    lab = _cube((3, 3, 3), (8, 8, 8))
    pred = _probs(_cube((3, 3, 4), (8, 8, 9)))
    strict = ComputeSurfaceDice("nsd", "model", tolerance=0.5)
    strict.update_from({"model": pred, "label": lab})
    loose = ComputeSurfaceDice("nsd", "model", tolerance=1.0)
    loose.update_from({"model": pred, "label": lab})
    assert 0.0 < strict.get() < 1.0 and loose.get() == pytest.approx(1.0)
    missed = ComputeSurfaceDice("nsd", "model")
    missed.update_from({"model": _probs(np.zeros_like(lab)), "label": lab})
    assert missed.get() == 0.0
    assert REGISTRY.get("ComputeHausdorff95") is ComputeHausdorff95
    assert REGISTRY.get("ComputeSurfaceDice") is ComputeSurfaceDice
