"""Extreme-point guidance: the points, the heat-map peaks, perturbation and reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.transforms import guidance as G


def diamond(shape=(20, 18, 16), center=(9, 8, 7), r=4):
    idx = np.indices(shape)
    return (sum(np.abs(idx[d] - center[d]) for d in range(3)) <= r)


def make_ctx(mask, seed=0, image_format="CDHW"):
    img = np.random.default_rng(5).normal(size=mask.shape).astype(np.float32)
    if image_format == "CDHW":
        img = img[None]
    return TransformContext(
        {"image": MedicalImage(img, image_format), "label": MedicalImage(mask[None].astype(np.uint8), "CDHW")},
        rng=np.random.default_rng(seed),
    )


def test_extreme_points_of_a_diamond():
    pts = G.extreme_points(diamond())
    expected = [[5, 8, 7], [13, 8, 7], [9, 4, 7], [9, 12, 7], [9, 8, 3], [9, 8, 11]]
    assert pts.tolist() == expected


def test_extreme_points_ties_pick_the_face_centre():
    m = np.zeros((10, 10), bool)
    m[2:7, 3:8] = True
    assert G.extreme_points(m).tolist() == [[2, 5], [6, 5], [4, 3], [4, 7]]


def test_extreme_points_perturbation_bounded_and_seeded():
    m = diamond()
    base = G.extreme_points(m)
    a = G.extreme_points(m, pert=2, rng=np.random.default_rng(0))
    b = G.extreme_points(m, pert=2, rng=np.random.default_rng(0))
    np.testing.assert_array_equal(a, b)
    assert np.abs(a - base).max() <= 2 and (a != base).any()
    with pytest.raises(ValueError):
        G.extreme_points(np.zeros((3, 3), bool))


def test_heatmap_peaks_exactly_at_points():
    pts = np.array([[2, 3, 4], [10, 12, 1]])
    h = G.points_heatmap((12, 14, 6), pts, sigma=1.5, rescale_min=-1, rescale_max=1)
    assert h.dtype == np.float32
    assert h[2, 3, 4] == pytest.approx(1.0) and h[10, 12, 1] == pytest.approx(1.0)
    assert h.min() == pytest.approx(-1.0)
    # Gaussian fall-off with sigma: one voxel away along an axis
    lo, hi = h.min(), h.max()
    assert (h[3, 3, 4] - lo) / (hi - lo) == pytest.approx(np.exp(-1 / (2 * 1.5**2)), rel=1e-4)
    np.testing.assert_array_equal(G.points_heatmap((3, 3), np.zeros((0, 2)), 2.0), np.full((3, 3), -1.0))


def test_add_extreme_points_channel_deterministic():
    mask = diamond()
    ctx = make_ctx(mask)
    orig = ctx["image"].get_data().copy()
    t = G.AddExtremePointsChannel(image_field="image", label_field="label", sigma=3, pert=0)
    assert t.is_deterministic()
    t.transform(ctx)
    out = ctx["image"]
    assert out.shape == (2, 20, 18, 16) and str(out.get_shape_format()) == "CDHW"
    np.testing.assert_array_equal(out.get_data()[0], orig[0])
    heat = out.get_data()[1]
    for p in G.extreme_points(mask):
        assert heat[tuple(p)] == pytest.approx(1.0)
    assert heat.min() == pytest.approx(-1.0)
    # the global maxima are the six points only
    peaks = np.argwhere(np.isclose(heat, heat.max()))
    assert sorted(map(tuple, peaks)) == sorted(map(tuple, G.extreme_points(mask)))
    assert ctx.history[-1][1]["points"] == G.extreme_points(mask).tolist()


def test_add_extreme_points_channel_perturbed_reproducible():
    mask = diamond()
    t = G.AddExtremePointsChannel(image_field="image", label_field="label", sigma=2, pert=3)
    assert not t.is_deterministic()
    a, b, c = make_ctx(mask, seed=7), make_ctx(mask, seed=7), make_ctx(mask, seed=8)
    for ctx in (a, b, c):
        t.transform(ctx)
    np.testing.assert_array_equal(a["image"].get_data(), b["image"].get_data())
    assert not np.array_equal(a["image"].get_data(), c["image"].get_data())
    pts = np.array(a.history[-1][1]["points"])
    assert np.abs(pts - G.extreme_points(mask)).max() <= 3
    heat = a["image"].get_data()[1]
    for p in pts:
        assert heat[tuple(p)] == pytest.approx(1.0)


def test_add_extreme_points_channel_dhw_image_and_points_field():
    mask = diamond()
    ctx = make_ctx(mask, image_format="DHW")
    G.AddExtremePointsChannel(sigma=3, rescale_min=0, rescale_max=1, points_channel_field="points_map",
                              permutation=0).transform(ctx)
    assert ctx["image"].shape == (2, 20, 18, 16)
    assert ctx["points_map"].shape == (1, 20, 18, 16)
    assert ctx["points_map"].get_data().min() == pytest.approx(0.0)


def test_add_extreme_points_channel_empty_label():
    ctx = make_ctx(np.zeros((8, 8, 8), bool))
    G.AddExtremePointsChannel(rescale_min=-1, rescale_max=1).transform(ctx)
    assert (ctx["image"].get_data()[1] == -1).all()


def test_fetch_extreme_points_same_and_shifted_grid():
    mask = diamond()
    ctx = make_ctx(mask)
    G.FetchExtremePoints(image_field="image", label_field="label", points="pts").transform(ctx)
    np.testing.assert_array_equal(ctx["pts"], G.extreme_points(mask))
    # label on a grid shifted by (2, 0, -1) voxels relative to the image
    img_aff = np.diag([2.0, 2.0, 2.0, 1.0])
    lab_aff = img_aff.copy()
    lab_aff[:3, 3] = [4.0, 0.0, -2.0]
    ctx = TransformContext({
        "image": MedicalImage(np.zeros((1, 30, 30, 30), np.float32), "CDHW", {"affine": img_aff}),
        "label": MedicalImage(mask[None].astype(np.uint8), "CDHW", {"affine": lab_aff}),
    })
    G.FetchExtremePoints(image_field="image", label_field="label").transform(ctx)
    np.testing.assert_array_equal(ctx["points"], G.extreme_points(mask) + [2, 0, -1])
