"""Intensity transforms: values against MONAI / scipy, labels untouched, seeded reproducibility."""

from __future__ import annotations

import numpy as np
import pytest

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.transforms import intensity as I


def _ctx(seed=0, shape=(1, 12, 10, 8), with_label=True):
    rng = np.random.default_rng(123)
    d = {"image": MedicalImage(rng.normal(100, 50, shape).astype(np.float32), "CDHW")}
    if with_label:
        d["label"] = MedicalImage((rng.random(shape) > 0.7).astype(np.float32), "CDHW")
    return TransformContext(d, rng=np.random.default_rng(seed))


@pytest.mark.parametrize("clip", [True, False])
def test_scale_intensity_range_matches_monai(clip):
    from monai.transforms import ScaleIntensityRange as M

    ctx = _ctx()
    x = ctx["image"].get_data().copy()
    out = I.ScaleIntensityRange("image", a_min=0, a_max=150, b_min=-1, b_max=1, clip=clip)(ctx)["image"].get_data()
    ref = np.asarray(M(a_min=0, a_max=150, b_min=-1, b_max=1, clip=clip)(x))
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-5)
    assert out.dtype == np.float32


def test_scale_intensity_range_2019_spelling_and_config():
    from ai4med.components.transforms.catalog import REGISTRY
    from ai4med.config.builder import ComponentBuilder

    b = ComponentBuilder("c.json", registries={"transforms": REGISTRY})
    t = b.build({"name": "transforms.ScaleIntensityRange", "field": "image", "a_min": -1024, "a_max": 1024,
                 "b_min": -1.0, "b_max": 1.0, "clip": True}, "transforms")
    ctx = TransformContext({"image": MedicalImage(np.array([[-2000.0, 0.0, 512.0]]), "HW")})
    np.testing.assert_allclose(t(ctx)["image"].get_data(), [[-1.0, 0.0, 0.5]])


def test_normalize_nonzero_matches_monai():
    from monai.transforms import NormalizeIntensity

    x = np.random.default_rng(0).normal(5, 2, (2, 8, 8, 8)).astype(np.float32)
    x[:, :3] = 0
    ctx = TransformContext({"image": MedicalImage(x.copy(), "CDHW")})
    out = I.NormalizeNonzeroIntensities("image")(ctx)["image"].get_data()
    ref = np.asarray(NormalizeIntensity(nonzero=True, channel_wise=True)(x))
    np.testing.assert_allclose(out, ref, rtol=1e-4, atol=1e-5)
    assert np.all(out[:, :3] == 0)


def test_adjust_contrast_matches_monai():
    from monai.transforms import AdjustContrast as M

    ctx = _ctx()
    x = ctx["image"].get_data().copy()
    out = I.AdjustContrast("image", gamma=1.7, probability=1.0)(ctx)["image"].get_data()
    np.testing.assert_allclose(out, np.asarray(M(gamma=1.7)(x)), rtol=1e-4, atol=1e-3)


def test_center_data_and_fixed_values():
    ctx = _ctx(with_label=False)
    out = I.CenterData(applied_keys="image")(ctx)["image"].get_data()
    assert abs(out.mean()) < 1e-4 and abs(out.std() - 1) < 1e-4
    ctx = TransformContext({"image": MedicalImage(np.array([[4.0, 6.0]]), "HW")})
    np.testing.assert_allclose(I.CenterData("image", subtrahend=2, divisor=2)(ctx)["image"].get_data(), [[1, 2]])


def test_gaussian_smooth_matches_scipy():
    from scipy.ndimage import gaussian_filter

    ctx = _ctx(with_label=False)
    x = ctx["image"].get_data().copy()
    out = I.RandomGaussianSmooth("image", sigma_range=(1.0, 1.0), probability=1.0)(ctx)["image"].get_data()
    np.testing.assert_allclose(out[0], gaussian_filter(x[0], 1.0, mode="nearest"), rtol=1e-5, atol=1e-4)


def test_bias_field_matches_monai_model():
    from monai.transforms import RandBiasField

    coeffs = np.linspace(-0.2, 0.3, I.n_bias_coeffs(3, 3)).tolist()
    ref = RandBiasField(degree=3)._generate_random_field((7, 8, 9), 3, coeffs)
    np.testing.assert_allclose(np.log(I.bias_field((7, 8, 9), 3, coeffs)), ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize(
    "make",
    [
        lambda: I.ScaleIntensityRange(["image", "label"], a_min=0, a_max=10, b_min=0, b_max=1),
        lambda: I.ScaleShiftIntensity(["image", "label"], scale=0.2, shift=0.5),
        lambda: I.ScaleIntensityOscillation(["image", "label"], magnitude=0.2),
        lambda: I.AddGaussianNoise(["image", "label"], probability=1.0),
        lambda: I.AdjustContrast(["image", "label"], probability=1.0),
        lambda: I.NormalizeNonzeroIntensities(["image", "label"]),
        lambda: I.RandomGaussianSmooth(["image", "label"], probability=1.0),
        lambda: I.RandomMRBiasField(["image", "label"], probability=1.0),
        lambda: I.CenterData(["image", "label"]),
    ],
)
def test_label_fields_never_change(make):
    ctx = _ctx()
    label_before = ctx["label"].get_data().copy()
    image_before = ctx["image"].get_data().copy()
    out = make()(ctx)
    np.testing.assert_array_equal(out["label"].get_data(), label_before)
    assert not np.array_equal(out["image"].get_data(), image_before)


def test_is_label_property_wins_over_name():
    ctx = _ctx()
    ctx["label"].set_property(ImageProperty.IS_LABEL, False)  # e.g. a soft "label" image
    before = ctx["label"].get_data().copy()
    out = I.ScaleShiftIntensity("label", shift=1.0)(ctx)
    assert not np.array_equal(out["label"].get_data(), before)


@pytest.mark.parametrize(
    "make",
    [
        lambda: I.ScaleIntensityOscillation("image", magnitude=0.3),
        lambda: I.ScaleShiftIntensity("image", scale=0.1, shift=0.1),
        lambda: I.AddGaussianNoise("image", probability=1.0),
        lambda: I.AdjustContrast("image", probability=1.0),
        lambda: I.RandomGaussianSmooth("image", probability=1.0),
        lambda: I.RandomMRBiasField("image", probability=1.0),
    ],
)
def test_random_reproducible_and_recorded(make):
    t = make()
    assert t.is_deterministic() is False
    a, b, c = t(_ctx(seed=5)), t(_ctx(seed=5)), t(_ctx(seed=6))
    np.testing.assert_array_equal(a["image"].get_data(), b["image"].get_data())
    assert not np.array_equal(a["image"].get_data(), c["image"].get_data())
    assert a.history and a.history[0][0] == type(t).__name__ and a.history == b.history


def test_probability_zero_is_identity_and_recorded():
    ctx = _ctx()
    before = ctx["image"].get_data().copy()
    out = I.AddGaussianNoise("image", probability=0.0)(ctx)
    np.testing.assert_array_equal(out["image"].get_data(), before)
    assert out.history == [("AddGaussianNoise", {"applied": False})]


def test_noise_variance_and_shift_range():
    ctx = TransformContext({"image": MedicalImage(np.zeros((64, 64), np.float32), "HW")}, rng=np.random.default_rng(1))
    out = I.AddGaussianNoise("image", probability=1.0, variance=0.25)(ctx)["image"].get_data()
    assert abs(out.std() - 0.5) < 0.02
    for seed in range(20):
        ctx = TransformContext({"image": MedicalImage(np.ones((2, 2), np.float32), "HW")}, rng=np.random.default_rng(seed))
        out = I.ScaleShiftIntensity("image", shift=0.1)(ctx)
        shift = out.history[0][1]["shift"]
        assert -0.1 <= shift <= 0.1
        np.testing.assert_allclose(out["image"].get_data(), 1 + shift, rtol=1e-6)


def test_input_not_modified_in_place():
    ctx = _ctx()
    src = ctx["image"].get_data()
    copy = src.copy()
    I.ScaleIntensityRange("image", a_min=0, a_max=1, b_min=0, b_max=1, clip=True)(ctx)
    I.ScaleShiftIntensity("image", shift=1)(ctx)
    np.testing.assert_array_equal(src, copy)
