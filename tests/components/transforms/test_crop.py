"""Crop transforms: values, geometry (AFFINE / CROP_BOX), pos/neg statistics, reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.transforms import crop as C

AFFINE = np.array([[0.0, -2.0, 0.0, 10.0], [1.5, 0.0, 0.0, -20.0], [0.0, 0.0, 3.0, 5.0], [0, 0, 0, 1]])


def _world(affine, ijk):
    return (np.asarray(affine) @ np.r_[np.asarray(ijk, float), 1.0])[:3]


def make_ctx(shape=(24, 20, 16), seed=0, box=((6, 10), (5, 9), (4, 8)), label_value=1):
    rng = np.random.default_rng(123)
    img = rng.normal(size=(1, *shape)).astype(np.float32)
    lab = np.zeros((1, *shape), np.uint8)
    lab[(0, *[slice(a, b) for a, b in box])] = label_value
    props = {ImageProperty.AFFINE: AFFINE.copy(), ImageProperty.SPACING: (1.5, 2.0, 3.0)}
    return TransformContext(
        {"image": MedicalImage(img, "CDHW", dict(props)), "label": MedicalImage(lab, "CDHW", dict(props))},
        rng=np.random.default_rng(seed),
    )


# ------------------------------------------------------------------------------------------------ kernels
def test_crop_or_pad_inside_and_outside():
    a = np.arange(10)
    assert C.crop_or_pad(a, [0], [2], [3]).tolist() == [2, 3, 4]
    assert C.crop_or_pad(a, [0], [-2], [4], pad_value=-1).tolist() == [-1, -1, 0, 1]
    assert C.crop_or_pad(a, [0], [8], [4], pad_value=-1).tolist() == [8, 9, -1, -1]
    b = np.arange(24).reshape(2, 3, 4)
    out = C.crop_or_pad(b, [1, 2], [1, 1], [2, 2])
    np.testing.assert_array_equal(out, b[:, 1:3, 1:3])


def test_resolve_size():
    assert C.resolve_size([-1, 4, 5], (10, 10, 10)) == (10, 4, 5)
    assert C.resolve_size(3, (10, 10)) == (3, 3)
    with pytest.raises(ValueError):
        C.resolve_size([1, 2], (10, 10, 10))


@pytest.mark.parametrize("fast", [False, True])
def test_pos_neg_ratio_statistics(fast):
    mask = np.zeros((30, 30, 30), bool)
    mask[10:14, 12:16, 5:9] = True
    rng = np.random.default_rng(0)
    draws = C.pos_neg_crop_starts(mask, (8, 8, 8), pos=3, neg=1, num=2000, rng=rng, fast=fast)
    frac = np.mean([p for _, p in draws])
    assert abs(frac - 0.75) < 0.03
    for start, is_pos in draws[:300]:
        window = mask[tuple(slice(s, s + 8) for s in start)]
        assert all(0 <= s <= 22 for s in start)
        if is_pos:
            assert window.any()


def test_pos_neg_negative_centres_are_background():
    mask = np.zeros((20, 20), bool)
    mask[:, :10] = True  # left half foreground
    draws = C.pos_neg_crop_starts(mask, (1, 1), pos=0, neg=1, num=200, rng=np.random.default_rng(1), fast=True)
    assert all(not p and s[1] >= 10 for s, p in draws)


def test_pos_neg_only_background_falls_back():
    mask = np.zeros((10, 10), bool)
    draws = C.pos_neg_crop_starts(mask, (4, 4), pos=1, neg=0, num=5, rng=np.random.default_rng(0))
    assert all(not p for _, p in draws)


# ------------------------------------------------------------------------------------------------ fixed crops
def test_center_crop_values_and_affine():
    ctx = make_ctx()
    orig = ctx["image"].get_data()
    C.CropSubVolumeCenter(["image", "label"], [8, 8, -1]).transform(ctx)
    out = ctx["image"]
    assert out.shape == (1, 8, 8, 16)
    start = (8, 6, 0)
    np.testing.assert_array_equal(out.get_data(), orig[:, 8:16, 6:14, :])
    np.testing.assert_allclose(_world(out.get_property("affine"), (0, 0, 0)), _world(AFFINE, start))
    assert out.get_property(ImageProperty.CROP_BOX) == [[8, 16], [6, 14], [0, 16]]
    assert ctx["label"].get_property(ImageProperty.CROP_BOX) == [[8, 16], [6, 14], [0, 16]]


def test_center_crop_pads_small_image():
    ctx = TransformContext({"image": MedicalImage(np.ones((4, 4), np.float32), "HW")})
    out = C.CropSubVolumeCenter("image", [6, 2]).transform(ctx)["image"].get_data()
    assert out.shape == (6, 2)
    assert out[0].sum() == 0 and out[-1].sum() == 0 and out[1:5].sum() == 8


@pytest.mark.parametrize("cls", [C.CropSubVolumeRandomWithinBounds, C.CropFixedSizeRandomCenter])
def test_random_fixed_crops(cls):
    seen = set()
    for seed in range(12):
        ctx = make_ctx(seed=seed)
        orig_img = ctx["image"].get_data()
        orig_lab = ctx["label"].get_data()
        t = cls(["image", "label"], [10, 8, 6])
        assert not t.is_deterministic()
        t.transform(ctx)
        (name, params), = ctx.history
        start = params["start"]
        seen.add(start)
        sl = (slice(None), *[slice(s, s + z) for s, z in zip(start, (10, 8, 6))])
        assert all(0 <= s and s + z <= d for s, z, d in zip(start, (10, 8, 6), (24, 20, 16)))
        np.testing.assert_array_equal(ctx["image"].get_data(), orig_img[sl])
        np.testing.assert_array_equal(ctx["label"].get_data(), orig_lab[sl])
        np.testing.assert_allclose(_world(ctx["label"].get_property("affine"), (0, 0, 0)), _world(AFFINE, start))
    assert len(seen) > 6
    a, b = make_ctx(seed=5), make_ctx(seed=5)
    cls(["image"], [10, 8, 6]).transform(a)
    cls(["image"], [10, 8, 6]).transform(b)
    np.testing.assert_array_equal(a["image"].get_data(), b["image"].get_data())


@pytest.mark.parametrize("keep_aspect", [True, False])
def test_random_size_with_displacement(keep_aspect):
    for seed in range(10):
        ctx = TransformContext(
            {"image": MedicalImage(np.arange(40 * 30, dtype=np.float32).reshape(1, 40, 30), "CHW")},
            rng=np.random.default_rng(seed),
        )
        orig = ctx["image"].get_data()
        C.CropRandomSizeWithDisplacement("image", lower_size=0.5, max_displacement=4, keep_aspect=keep_aspect)(ctx)
        params = ctx.history[0][1]
        (s0, s1), (z0, z1) = params["start"], params["size"]
        assert 20 <= z0 <= 40 and 15 <= z1 <= 30
        if keep_aspect:
            assert abs(z0 / 40 - z1 / 30) < 0.05
        assert abs((s0 + z0 / 2) - 20) <= 4.5 + 0.5 or s0 in (0, 40 - z0)
        np.testing.assert_array_equal(ctx["image"].get_data(), orig[:, s0 : s0 + z0, s1 : s1 + z1])


def test_crop_random_sub_image_in_range_defaults_to_image():
    ctx = TransformContext(
        {"image": MedicalImage(np.zeros((3, 32, 32), np.float32), "CHW")}, rng=np.random.default_rng(0)
    )
    C.CropRandomSubImageInRange(lower_size=16, max_displacement=0, keep_aspect=True)(ctx)
    assert 16 <= ctx["image"].shape[1] <= 32 and ctx["image"].shape[0] == 3


# ------------------------------------------------------------------------------------------------ pos/neg crops
@pytest.mark.parametrize("cls", [C.CropByPosNegRatio, C.FastCropByPosNegRatio])
def test_batch_crop_by_pos_neg_ratio(cls):
    ctx = make_ctx(seed=3)
    orig_img = ctx["image"].get_data()
    t = cls([8, 8, 8], ["image", "label"], "label", pos=1, neg=1, batch_size=5)
    t.transform(ctx)
    img, lab = ctx["image"], ctx["label"]
    assert str(img.get_shape_format()) == "NCDHW" and img.shape == (5, 1, 8, 8, 8)
    assert lab.shape == (5, 1, 8, 8, 8)
    params = ctx.history[-1][1]
    for i, (start, is_pos) in enumerate(zip(params["starts"], params["positive"])):
        sl = (slice(None), *[slice(s, s + 8) for s in start])
        np.testing.assert_array_equal(img.get_data()[i], orig_img[sl])
        if is_pos:
            assert lab.get_data()[i].any()
        np.testing.assert_allclose(_world(img.get_property("batch_affines")[i], (0, 0, 0)), _world(AFFINE, start))
    again = make_ctx(seed=3)
    cls([8, 8, 8], ["image", "label"], "label", pos=1, neg=1, batch_size=5).transform(again)
    np.testing.assert_array_equal(again["image"].get_data(), img.get_data())


def test_batch_crop_ratio_over_many_draws():
    ctx = make_ctx(seed=0)
    t = C.CropByPosNegRatio([6, 6, 6], ["image", "label"], "label", pos=1, neg=3, batch_size=800)
    t.transform(ctx)
    frac = np.mean(ctx.history[-1][1]["positive"])
    assert abs(frac - 0.25) < 0.04


def test_crop_by_pos_neg_image_threshold_restricts_negatives():
    ctx = make_ctx(seed=0)
    data = np.zeros_like(ctx["image"].get_data())
    data[:, 12:, :, :] = 1.0  # "body" only in the second half of axis 0
    ctx["image"] = ctx["image"].new_image(data)
    t = C.CropByPosNegRatio([1, 1, 1], ["image", "label"], "label", pos=0, neg=1, batch_size=50,
                            image_field="image", image_threshold=0.5)
    t.transform(ctx)
    assert all(s[0] >= 12 for s in ctx.history[-1][1]["starts"])


def test_crop_by_pos_neg_label_only_crops_label_only():
    ctx = make_ctx(seed=0)
    C.CropByPosNegRatioLabelOnly([8, 8, 8], label_field="label", pos=1, neg=0, batch_size=3).transform(ctx)
    assert ctx["label"].shape == (3, 1, 8, 8, 8)
    assert ctx["image"].shape == (1, 24, 20, 16)
    assert all(ctx["label"].get_data()[i].any() for i in range(3))


def test_ctrl_epoch_ratio_schedule():
    t = C.CropSubVolumePosNegRatioCtrlEpoch("image", "label", [8, 8, 8], ratio_start=4.0, ratio_end=0.0,
                                            ratio_step=-2.0, num_epochs=5)
    assert [t.ratio_at(e) for e in (0, 4, 5, 9, 10, 50)] == [4.0, 4.0, 2.0, 2.0, 0.0, 0.0]
    fracs = []
    for epoch in (0, 10):
        pos = 0
        for seed in range(300):
            ctx = make_ctx(seed=seed, shape=(16, 16, 16))
            ctx.epoch = epoch
            t.transform(ctx)
            pos += ctx.history[-1][1]["positive"][0]
        fracs.append(pos / 300)
        assert ctx["image"].shape == (1, 8, 8, 8) and ctx["label"].shape == (1, 8, 8, 8)
    assert abs(fracs[0] - 0.8) < 0.08 and fracs[1] == 0.0


def test_fast_pos_neg_crop_roi_plain_equals_crop():
    ctx = make_ctx(seed=2)
    orig = ctx["image"].get_data()
    C.FastPosNegRatioCropROI([8, 8, 8], "image", "label", pos=1, neg=0).transform(ctx)
    start = ctx.history[0][1]["starts"][0]
    np.testing.assert_array_equal(ctx["image"].get_data(), orig[(slice(None), *[slice(s, s + 8) for s in start])])
    assert ctx["label"].get_data().any()


def test_fast_pos_neg_crop_roi_augmented():
    ctx = make_ctx(seed=4, shape=(24, 24, 24), box=((8, 16), (8, 16), (8, 16)), label_value=2)
    t = C.FastPosNegRatioCropROI([12, 12, 12], "image", "label", pos=1, neg=0, rotation=True, rotation_degree=20,
                                 scale=True, scale_factor=0.2, deform=True)
    assert not t.is_deterministic()
    t.transform(ctx)
    lab = ctx["label"].get_data()
    assert set(np.unique(lab)) <= {0, 2}  # nearest neighbour: no new label values
    assert lab.any()
    aug = ctx.history[-1][1]
    s = aug["scale"]
    new_affine = ctx["image"].get_property("affine")
    # index-space rotation (det 1) times isotropic scale s: the voxel volume scales by s^3
    np.testing.assert_allclose(np.linalg.det(new_affine[:3, :3]), np.linalg.det(AFFINE[:3, :3]) * s**3, rtol=1e-9)
    m = C._rotation_matrix(np.deg2rad(aug["angles_deg"])) * s
    start = ctx.history[0][1]["starts"][0]
    center = np.array(start) + 6
    for v in [(0, 0, 0), (11, 3, 7)]:
        np.testing.assert_allclose(_world(new_affine, v), _world(AFFINE, center + m @ (np.array(v) - 6)), atol=1e-9)
    again = make_ctx(seed=4, shape=(24, 24, 24), box=((8, 16), (8, 16), (8, 16)), label_value=2)
    C.FastPosNegRatioCropROI([12, 12, 12], "image", "label", pos=1, neg=0, rotation=True, rotation_degree=20,
                             scale=True, scale_factor=0.2, deform=True).transform(again)
    np.testing.assert_array_equal(again["image"].get_data(), ctx["image"].get_data())


def test_augmented_crop_identity_and_scale():
    data = np.arange(64, dtype=np.float32).reshape(1, 8, 8)
    out = C.augmented_crop(data, [1, 2], center=(4, 4), size=(4, 4), matrix=np.eye(2))
    np.testing.assert_array_equal(out, data[:, 2:6, 2:6])
    out2 = C.augmented_crop(data, [1, 2], center=(4, 4), size=(2, 2), matrix=2 * np.eye(2), order=0)
    np.testing.assert_array_equal(out2[0], data[0][[2, 4]][:, [2, 4]])


def test_transform_volume_crop_roi_fast_pos_neg_ratio():
    ctx = make_ctx(seed=1)
    C.TransformVolumeCropROIFastPosNegRatio(["image", "label"], [8, 8, 8], rotation=True, rotation_degree=10,
                                            pos=1, neg=0).transform(ctx)
    assert ctx["image"].shape == (1, 8, 8, 8) and ctx["label"].get_data().any()


# ------------------------------------------------------------------------------------------------ foreground
def test_crop_foreground_object_no_zoom_is_exact():
    ctx = make_ctx(box=((6, 10), (5, 9), (4, 8)), label_value=3)
    orig = ctx["image"].get_data()
    t = CropFG = C.CropForegroundObject(size=[6, 6, 6], image_field="image", label_field="label", pad=1)
    assert CropFG.is_deterministic()
    t.transform(ctx)
    np.testing.assert_allclose(ctx["image"].get_data(), orig[:, 5:11, 4:10, 3:9], rtol=1e-6)
    lab = ctx["label"].get_data()
    assert set(np.unique(lab)) == {0, 1}  # binary
    assert lab[0, 1:5, 1:5, 1:5].all() and lab.sum() == 64
    np.testing.assert_allclose(_world(ctx["image"].get_property("affine"), (0, 0, 0)), _world(AFFINE, (5, 4, 3)))
    assert ctx["image"].get_property(ImageProperty.CROP_BOX) == [[5, 11], [4, 10], [3, 9]]


def test_crop_foreground_object_zoom_geometry():
    ctx = make_ctx(box=((4, 12), (4, 12), (4, 12)))
    C.CropForegroundObject(size=[16, 16, 16], pad=0).transform(ctx)
    img, lab = ctx["image"], ctx["label"]
    assert img.shape == (1, 16, 16, 16) and lab.shape == (1, 16, 16, 16)
    assert lab.get_data().all()  # the object fills the resized box
    a = img.get_property("affine")
    # output voxel v sits at input voxel 4 + (v + 0.5) * 0.5 - 0.5
    for v in [(0, 0, 0), (15, 15, 15), (3, 7, 11)]:
        inp = [4 + (x + 0.5) * 0.5 - 0.5 for x in v]
        np.testing.assert_allclose(_world(a, v), _world(AFFINE, inp), atol=1e-9)
    np.testing.assert_allclose(img.get_property(ImageProperty.SPACING), (0.75, 1.0, 1.5))


def test_crop_foreground_object_random_label():
    def ctx_two_objects(seed):
        ctx = make_ctx(seed=seed)
        lab = ctx["label"].get_data().copy()
        lab[0, 15:20, 12:18, 10:14] = 2
        ctx["label"] = ctx["label"].new_image(lab)
        return ctx

    t = C.CropForegroundObject(size=[8, 8, 8], pad=0, foreground_only=False)
    assert not t.is_deterministic()
    picked = set()
    for seed in range(10):
        ctx = ctx_two_objects(seed)
        t.transform(ctx)
        picked.add(ctx.history[-1][1]["label_value"])
        assert ctx["label"].get_data().all()  # the chosen object's box at pad 0 is full
    assert picked == {1, 2}


def test_crop_foreground_object_needs_foreground():
    ctx = make_ctx(box=((0, 0), (0, 0), (0, 0)))
    with pytest.raises(ValueError, match="foreground"):
        C.CropForegroundObject(size=[8, 8, 8]).transform(ctx)


def test_pos_neg_starts_from_cached_voxel_lists_are_the_mask_path_draws():
    """The index cache changes the cost, not the draws: same seed, same windows."""
    import gc

    from ai4med.components.transforms.crop import _mask_of, pos_neg_crop_starts
    from ai4med.components.transforms.voxel_index_cache import VoxelIndexCache

    rng = np.random.default_rng(7)
    label = (rng.random((1, 20, 18, 16)) > 0.8).astype(np.uint8)
    img = MedicalImage(label, "CDHW")
    cache = VoxelIndexCache()
    for seed in range(20):
        plain = pos_neg_crop_starts(_mask_of(img), (8, 8, 8), 1, 2, 4, np.random.default_rng(seed))
        fg_bg = cache.indices(label, lambda img=img: _mask_of(img))
        cached = pos_neg_crop_starts(None, (8, 8, 8), 1, 2, 4, np.random.default_rng(seed), indices=fg_bg,
                                     shape=(20, 18, 16))
        assert cached == plain
    assert len(cache) == 1 and cache.indices(label, lambda: pytest.fail("recomputed"))[0].dtype == np.int32
    del label, img, fg_bg
    gc.collect()
    assert len(cache) == 0  # freed with the array


def test_voxel_index_cache_stays_within_its_byte_budget():
    from ai4med.components.transforms.voxel_index_cache import VoxelIndexCache

    cache = VoxelIndexCache(max_bytes=3 * 1000 * 4)  # three 1000-voxel labels (fg + bg = 1000 int32 each)
    arrays = [np.zeros((10, 10, 10), np.uint8) for _ in range(5)]
    for a in arrays:
        cache.indices(a, lambda a=a: a > 0)
    assert len(cache) == 3
    calls = []
    cache.indices(arrays[0], lambda: calls.append(1) or arrays[0] > 0)  # the oldest was dropped
    assert calls == [1]


def test_a_cached_volume_cropped_again_reuses_its_voxel_lists():
    from ai4med.components.transforms import crop as C
    from ai4med.components.transforms.voxel_index_cache import LABEL_INDICES

    rng = np.random.default_rng(0)
    img = MedicalImage(rng.random((1, 24, 24, 24)).astype(np.float32), "CDHW")
    lab = MedicalImage((rng.random((1, 24, 24, 24)) > 0.7).astype(np.uint8), "CDHW")
    t = C.CropByPosNegRatio([8, 8, 8], ["image", "label"], "label", pos=1, neg=1, batch_size=3)
    made = []
    real = C._mask_of

    def counting(image):
        made.append(1)
        return real(image)

    import unittest.mock

    with unittest.mock.patch.object(C, "_mask_of", counting):
        for seed in range(4):
            out = t(TransformContext({"image": img, "label": lab}, np.random.default_rng(seed)))
            assert out.get_image("label").get_data().shape == (3, 1, 8, 8, 8)
    assert made == [1] and len(LABEL_INDICES) >= 1
