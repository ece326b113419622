"""Spatial transforms: values against MONAI / scipy, geometry (AFFINE) kept true, restore, randomness."""

from __future__ import annotations

import numpy as np
import pytest

from ai4med.common.constants import ImageProperty as P
from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.transforms import spatial as S
from ai4med.io.geometry import geometry_properties

AFFINE = np.array([[-0.8, 0, 0, 90.0], [0, 0.9, 0, -60.0], [0, 0, 2.5, 12.0], [0, 0, 0, 1]])


def _world(affine, ijk):
    return (np.asarray(affine) @ np.append(np.asarray(ijk, float), 1.0))[:3]


def _blob_volume(shape=(40, 36, 16), centre=(22, 15, 7), radius=6.0, fortran=False):
    g = np.meshgrid(*[np.arange(s) for s in shape], indexing="ij")
    d2 = (g[0] - centre[0]) ** 2 + (g[1] - centre[1]) ** 2 + ((g[2] - centre[2]) * 2.5) ** 2
    label = (d2 < radius**2).astype(np.float32)
    image = (np.exp(-d2 / 60.0) * 100 + g[0] * 0.5 + g[2]).astype(np.float32)
    if fortran:
        image, label = np.asfortranarray(image), np.asfortranarray(label)
    return image, label


def _ctx(fmt="CDHW", seed=0, fortran=False, **kw):
    image, label = _blob_volume(fortran=fortran, **kw)
    if fmt == "CDHW":
        image, label = image[None], label[None]
    props = geometry_properties(AFFINE, image.shape[-3:])
    return TransformContext(
        {"image": MedicalImage(image, fmt, dict(props)), "label": MedicalImage(label, fmt, dict(props))},
        rng=np.random.default_rng(seed),
    )


def _centroid_world(img):
    data = img.get_data()
    data = data[0] if data.ndim == 4 else data
    idx = np.argwhere(data > 0.5).mean(axis=0)
    return _world(img.get_property(P.AFFINE), idx)


def _dice(a, b):
    a, b = a > 0.5, b > 0.5
    return 2 * (a & b).sum() / (a.sum() + b.sum())


# --- kernels ---------------------------------------------------------------------------
@pytest.mark.parametrize("order", [0, 1])
@pytest.mark.parametrize("fortran", [False, True])
def test_resample_separable_matches_scipy(order, fortran):
    from scipy import ndimage

    x = np.random.default_rng(0).normal(size=(2, 20, 17, 13)).astype(np.float32)
    x = np.asfortranarray(x) if fortran else x
    coords = {1: np.arange(11) * 1.9 - 0.3, 2: np.arange(17) * 1.0, 3: np.arange(20) * 0.61 + 0.2}
    out = S.resample_separable(x, coords, order)
    g = np.meshgrid(coords[1], coords[2], coords[3], indexing="ij")
    ref = np.stack([ndimage.map_coordinates(x[c], g, order=order, mode="nearest", prefilter=False) for c in range(2)])
    np.testing.assert_allclose(out, ref, atol=1e-5)


def test_resample_affine_general_matches_scipy():
    from scipy import ndimage

    x = np.random.default_rng(0).normal(size=(9, 10, 11)).astype(np.float32)
    r = S.rotation_matrix([0.2, -0.1, 0.3])
    m, off = S._centre_map(r, x.shape)
    out = S.resample_affine(x, m, off, x.shape, order=1, padding="zeros")
    ref = ndimage.affine_transform(x, m, off, order=1, mode="constant", cval=0.0, prefilter=False)
    inner = (slice(2, -2),) * 3
    np.testing.assert_allclose(out[inner], ref[inner], atol=1e-4)


def test_resize_matches_scipy_zoom():
    from scipy import ndimage

    x = np.random.default_rng(1).normal(size=(7, 9, 5)).astype(np.float32)
    out = S.resize(x, (13, 4, 5), order=1)
    ref = ndimage.zoom(x, (13 / 7, 4 / 9, 1), order=1, mode="nearest", grid_mode=False, prefilter=False)
    np.testing.assert_allclose(out, ref, atol=1e-5)


# --- resampling to a spacing ---------------------------------------------------------------
@pytest.mark.parametrize("fortran", [False, True])
def test_scale_by_resolution_matches_monai_spacing(fortran):
    from monai.data import MetaTensor
    from monai.transforms import Spacing

    ctx = _ctx(fortran=fortran)
    x = ctx["image"].get_data().copy()
    out = S.ScaleByResolution(["image", "label"], target_resolution=[1.5, 1.5, 2.0])(ctx)
    ref = Spacing(pixdim=(1.5, 1.5, 2.0), mode="bilinear")(MetaTensor(x, affine=AFFINE))
    img = out["image"]
    assert img.shape == tuple(ref.shape)
    np.testing.assert_allclose(img.get_property(P.AFFINE), np.asarray(ref.affine), atol=1e-6)
    np.testing.assert_allclose(img.get_data(), np.asarray(ref), atol=1e-3)
    assert img.get_property(P.SPACING) == pytest.approx((1.5, 1.5, 2.0))
    # the loader's grid is kept for RestoreOriginalShape
    assert tuple(img.get_property(P.ORIGINAL_SHAPE)) == (40, 36, 16)
    np.testing.assert_array_equal(img.get_property(P.ORIGINAL_AFFINE), AFFINE)
    # labels: nearest neighbour (only original values), same grid as the image
    lab = out["label"]
    assert set(np.unique(lab.get_data())) <= {0.0, 1.0}
    np.testing.assert_array_equal(lab.get_property(P.AFFINE), img.get_property(P.AFFINE))
    # the object stays where it was in world space
    np.testing.assert_allclose(_centroid_world(lab), _centroid_world(_ctx()["label"]), atol=1.0)


def test_scale_by_resolution_label_matches_monai_nearest():
    from monai.data import MetaTensor
    from monai.transforms import Spacing

    ctx = _ctx()
    y = ctx["label"].get_data().copy()
    out = S.ScaleByResolution("label", target_resolution=[1.3, 0.7, 3.0])(ctx)["label"].get_data()
    ref = np.asarray(Spacing(pixdim=(1.3, 0.7, 3.0), mode="nearest")(MetaTensor(y, affine=AFFINE)))
    assert out.shape == ref.shape
    assert (out != ref).mean() < 0.002  # rounding ties at exact half-voxel positions may differ


def test_resample_volume_2019_args_without_affine():
    x = np.random.default_rng(0).normal(size=(1, 8, 8, 8)).astype(np.float32)
    ctx = TransformContext({"image": MedicalImage(x, "CDHW")})
    out = S.ResampleVolume(applied_key="image", resolution=[1, 1, 1], target_resolution=[2, 2, 2])(ctx)["image"]
    assert out.shape == (1, 4, 4, 4)
    np.testing.assert_allclose(out.get_data()[0], x[0, ::2, ::2, ::2], atol=1e-6)
    assert out.get_property(P.SPACING) == pytest.approx((2.0, 2.0, 2.0))


@pytest.mark.parametrize("make", [
    lambda: S.ScaleByResolution(["image", "label"], target_resolution=[1.2, 1.1, 1.7]),
    lambda: S.ScaleByFactor(["image", "label"], factor=[0.6, 1.3, 1.5]),
    lambda: S.ScaleToShape(["image", "label"], shape=[30, 50, 21]),
])
def test_restore_original_shape_round_trip(make):
    ctx = _ctx(radius=10.0)
    orig_label = ctx["label"].get_data().copy()
    orig_image = ctx["image"].get_data().copy()
    ctx = make()(ctx)
    ctx["model"] = MedicalImage(ctx["label"].get_data().copy(), "CDHW")  # a "prediction" on the resampled grid
    ctx = S.RestoreOriginalShape("model", src_field="image", is_label=True)(ctx)
    ctx = S.RestoreOriginalShape("image")(ctx)
    pred = ctx["model"]
    assert pred.shape == orig_label.shape
    np.testing.assert_array_equal(pred.get_property(P.AFFINE), AFFINE)
    assert _dice(pred.get_data(), orig_label) >= 0.95
    assert ctx["image"].shape == orig_image.shape
    np.testing.assert_array_equal(ctx["image"].get_property(P.AFFINE), AFFINE)
    assert np.corrcoef(ctx["image"].get_data().ravel(), orig_image.ravel())[0, 1] > 0.99


def test_restore_after_crop_pads_with_zeros():
    from ai4med.components.transforms.utils import affine_after_crop, set_affine

    ctx = _ctx()
    img = ctx["image"]
    crop = img.new_image(img.get_data()[:, 5:25, 4:30, 2:14].copy())
    set_affine(crop, affine_after_crop(AFFINE, (5, 4, 2)))
    ctx["image"] = crop
    ctx["model"] = MedicalImage(np.ones_like(crop.get_data()), "CDHW")
    out = S.RestoreOriginalShape("model", src_field="image", is_label=True)(ctx)["model"].get_data()
    expected = np.zeros((1, 40, 36, 16), np.float32)
    expected[:, 5:25, 4:30, 2:14] = 1
    np.testing.assert_array_equal(out, expected)


# --- geometry of flips, rot90, zoom, rotations, padding ----------------------------------------
def test_flips_exact_and_geometry():
    ctx = _ctx()
    x = ctx["image"].get_data().copy()
    before = _centroid_world(ctx["label"])
    out = S.RandomSpatialFlip(["image", "label"], probability=1.0, spatial_axis=[0, 2])(ctx)
    np.testing.assert_array_equal(out["image"].get_data(), np.flip(x, (1, 3)))
    np.testing.assert_allclose(_centroid_world(out["label"]), before, atol=1e-6)
    # a voxel keeps its world position
    i = (3, 4, 5)
    np.testing.assert_allclose(
        _world(out["image"].get_property(P.AFFINE), (40 - 1 - 3, 4, 16 - 1 - 5)), _world(AFFINE, i), atol=1e-9
    )


def test_rot90_exact_matches_monai_and_geometry():
    from monai.transforms import Rotate90

    ctx = _ctx(seed=3)
    x = ctx["image"].get_data().copy()
    before = _centroid_world(ctx["label"])
    out = S.NPRandomRot90_XY(["image", "label"], probability=1.0)(ctx)
    k = out.history[0][1]["k"]
    np.testing.assert_array_equal(out["image"].get_data(), np.asarray(Rotate90(k=k, spatial_axes=(0, 1))(x)))
    np.testing.assert_allclose(_centroid_world(out["label"]), before, atol=1e-6)
    assert out["image"].get_property(P.SPACING) == pytest.approx((0.9, 0.8, 2.5) if k % 2 else (0.8, 0.9, 2.5))


@pytest.mark.parametrize("k", [1, 2, 3])
def test_rot90_affine_every_voxel(k):
    from ai4med.components.transforms.utils import affine_after_rot90

    shape = (4, 6, 3)
    x = np.arange(np.prod(shape)).reshape(shape)
    r = np.rot90(x, k, (0, 1))
    new = affine_after_rot90(AFFINE, k, (0, 1), shape)
    for idx in np.ndindex(r.shape):
        old = np.argwhere(x == r[idx])[0]
        np.testing.assert_allclose(_world(new, idx), _world(AFFINE, old), atol=1e-9)


def test_random_zoom_keep_size_geometry_and_labels():
    ctx = _ctx(seed=2)
    before = _centroid_world(ctx["label"])
    out = S.NPRandomZoom3D(["image", "label"], [0.8] * 3, [1.25] * 3, keep_size=True)(ctx)
    assert out["image"].shape == (1, 40, 36, 16) and out["label"].shape == (1, 40, 36, 16)
    assert set(np.unique(out["label"].get_data())) <= {0.0, 1.0}
    np.testing.assert_allclose(_centroid_world(out["label"]), before, atol=1.5)
    z = out.history[0][1]["zoom"]
    sp = out["image"].get_property(P.SPACING)
    assert sp[0] == pytest.approx(0.8 * 39 / (round(40 * z[0]) - 1))


def test_random_zoom_without_keep_size_changes_shape():
    ctx = _ctx(fmt="DHW")
    out = S.NPRandomZoom3D(["image"], [1.5] * 3, [1.5] * 3)(ctx)
    assert out["image"].shape == (60, 54, 24)


def test_scale_by_factor_matches_scipy_zoom():
    from scipy import ndimage

    ctx = _ctx(fmt="DHW")
    x = ctx["image"].get_data().copy()
    out = S.ScaleByFactor("image", factor=0.5)(ctx)["image"].get_data()
    ref = ndimage.zoom(x, 0.5, order=1, mode="nearest", grid_mode=False, prefilter=False)
    np.testing.assert_allclose(out, ref, atol=1e-4)


def test_random_rotate3d_labels_and_world():
    ctx = _ctx(seed=4)
    before = _centroid_world(ctx["label"])
    out = S.RandomRotate3D(["image", "label"], probability=1.0, angle=20)(ctx)
    assert set(np.unique(out["label"].get_data())) <= {0.0, 1.0}
    np.testing.assert_allclose(_centroid_world(out["label"]), before, atol=1.0)


def test_np2d_rotate_fixed_and_random():
    x = np.zeros((9, 9), np.float32)
    x[4, 8] = 1
    ctx = TransformContext({"image": MedicalImage(x, "HW")})
    out = S.NP2DRotate("image", angle=90)(ctx)["image"].get_data()
    np.testing.assert_allclose(out, np.rot90(x, 1), atol=1e-6)
    t = S.NP2DRotate("image", angle=10, random=True)
    assert not t.is_deterministic()


def test_symmetric_padder_div():
    ctx = _ctx()
    out = S.SymmetricPadderDiv(["image", "label"], divisor=16)(ctx)["image"]
    assert out.shape == (1, 48, 48, 16)
    np.testing.assert_allclose(_world(out.get_property(P.AFFINE), (4, 6, 0)), _world(AFFINE, (0, 0, 0)))


def test_np_resize_image_channels_last():
    x = np.random.default_rng(0).random((10, 12, 3)).astype(np.float32)
    ctx = TransformContext({"image": MedicalImage(x, "HWC")})
    out = S.NPResizeImage("image", output_shape=[5, 6], data_format="channels_last")(ctx)["image"].get_data()
    assert out.shape == (5, 6, 3)
    np.testing.assert_allclose(out[..., 1], S.resize(x[..., 1], (5, 6)), atol=1e-6)


@pytest.mark.parametrize("make", [
    lambda: S.NPRandomFlip3D(["image", "label"], probability=0.5),
    lambda: S.FlipAxisRandom(["image", "label"], axis=[0, 1, 2]),
    lambda: S.RandomAxisFlip(["image", "label"], probability=1.0),
    lambda: S.RandomSpatialFlip(["image", "label"], probability=0.5),
    lambda: S.NPRandomRot90_XY(["image", "label"], probability=1.0),
    lambda: S.NPRandomZoom3D(["image", "label"], [0.8] * 3, [1.2] * 3, keep_size=True),
    lambda: S.RandomZoom("image", "label", [0.8] * 3, [1.2] * 3),
    lambda: S.RandomRotate3D(["image", "label"], probability=1.0),
])
def test_random_spatial_reproducible_same_draw_for_all_fields(make):
    t = make()
    assert t.is_deterministic() is False
    a, b = t(_ctx(seed=11)), t(_ctx(seed=11))
    np.testing.assert_array_equal(a["image"].get_data(), b["image"].get_data())
    assert a.history == b.history and a.history[0][0] == type(t).__name__
    # image and label got the same spatial change: the label still marks the blob's peak
    lab = a["label"].get_data() > 0.5
    img = a["image"].get_data()
    assert img[lab].mean() > img[~lab].mean() + 30


def test_random_flip_differs_across_seeds():
    outs = {tuple(S.NPRandomFlip3D("image")(_ctx(seed=s)).history[0][1]["axes"]) for s in range(12)}
    assert len(outs) > 2


def test_2d_rotate_with_label_nearest():
    x = np.zeros((16, 16), np.float32)
    x[4:10, 6:12] = 2
    ctx = TransformContext({"image": MedicalImage(x.copy(), "HW"), "label": MedicalImage(x.copy(), "HW")},
                           rng=np.random.default_rng(0))
    out = S.RandomRotate2D(["image", "label"], probability=1.0, angle=30)(ctx)
    assert set(np.unique(out["label"].get_data())) <= {0.0, 2.0}
    assert len(np.unique(out["image"].get_data())) > 2


def test_restore_after_rot90_and_flip_is_exact():
    ctx = _ctx(seed=3)
    orig = ctx["image"].get_data().copy()
    ctx = S.NPRandomRot90_XY(["image"], probability=1.0)(ctx)
    ctx = S.RandomSpatialFlip(["image"], probability=1.0, spatial_axis=[2])(ctx)
    assert ctx.history[0][1]["k"] in (1, 2, 3)
    out = S.RestoreOriginalShape("image")(ctx)["image"]
    np.testing.assert_array_equal(out.get_data(), orig)
    np.testing.assert_array_equal(out.get_property(P.AFFINE), AFFINE)


def test_permuted_scaled_map_matches_grid_sample_path():
    x = np.random.default_rng(0).normal(size=(1, 9, 8, 7)).astype(np.float32)
    m = np.array([[0.0, 0.0, 1.2], [-0.7, 0.0, 0.0], [0.0, 0.9, 0.0]])
    off = np.array([0.5, 7.0, 1.0])
    fast = S.resample_affine(x, m, off, (6, 8, 6), order=1, spatial_axes=(1, 2, 3))
    slow = S._grid_sample(x, m, off, (6, 8, 6), 1, "border", [1, 2, 3])
    np.testing.assert_allclose(fast, slow, atol=1e-4)
