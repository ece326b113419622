"""Loader / writer transforms: data and properties from real files, writers round-trip."""

from __future__ import annotations

import os

import nibabel as nib
import numpy as np
import pytest

from ai4med.common.constants import ImageProperty as P
from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.transforms import io as IO

AFFINE = np.array([[-0.8, 0, 0, 90.0], [0, 0.9, 0, -60.0], [0, 0, 2.5, 12.0], [0, 0, 0, 1]])


@pytest.fixture
def nifti_pair(tmp_path):
    rng = np.random.default_rng(0)
    img = rng.integers(-1000, 1000, (12, 10, 6)).astype(np.int16)
    lab = (rng.random((12, 10, 6)) > 0.8).astype(np.uint8)
    ip, lp = str(tmp_path / "case1.nii.gz"), str(tmp_path / "case1_seg.nii.gz")
    nib.save(nib.Nifti1Image(img, AFFINE), ip)
    nib.save(nib.Nifti1Image(lab, AFFINE), lp)
    return ip, lp, img, lab


def test_load_nifti_data_and_properties(nifti_pair):
    ip, lp, img, lab = nifti_pair
    ctx = IO.LoadNifti(["image", "label"])(TransformContext({"image": ip, "label": lp}))
    im = ctx["image"]
    assert str(im.get_shape_format()) == "DHW" and im.dtype == np.float32
    np.testing.assert_array_equal(im.get_data(), img.astype(np.float32))
    np.testing.assert_allclose(im.get_property(P.AFFINE), AFFINE)
    assert im.get_property(P.SPACING) == pytest.approx((0.8, 0.9, 2.5))
    assert tuple(im.get_property(P.ORIGINAL_SHAPE)) == (12, 10, 6)
    np.testing.assert_allclose(im.get_property(P.ORIGINAL_AFFINE), AFFINE)
    assert os.path.samefile(im.get_property(P.FILENAME), ip)
    np.testing.assert_array_equal(ctx["label"].get_data(), lab)
    # dtype None keeps the file's type; the 2019 name loads the same
    ctx = IO.LoadNifty(fields="label", dtype=None)(TransformContext({"label": lp}))
    assert ctx["label"].dtype == np.uint8


def test_load_nifti_list_of_files_is_channels(nifti_pair):
    ip, lp, img, lab = nifti_pair
    out = IO.LoadNifti("image")(TransformContext({"image": [ip, lp]}))["image"]
    assert str(out.get_shape_format()) == "CDHW" and out.shape == (2, 12, 10, 6)
    np.testing.assert_array_equal(out.get_data()[1], lab)


def test_load_nifti_closest_canonical(nifti_pair):
    ip, *_ , img, _lab = nifti_pair
    out = IO.LoadNifti("image", as_closest_canonical=True)(TransformContext({"image": ip}))["image"]
    np.testing.assert_array_equal(out.get_data(), np.flip(img, 0).astype(np.float32))
    assert out.get_property(P.AFFINE)[0, 0] > 0
    np.testing.assert_allclose(out.get_property(P.ORIGINAL_AFFINE), AFFINE)


def test_load_numpy_png_and_labels(tmp_path):
    from PIL import Image

    np.save(tmp_path / "v.npy", np.arange(24, dtype=np.int16).reshape(2, 3, 4))
    ctx = IO.LoadNumpyFromFilename(["image"])(TransformContext({"image": str(tmp_path / "v.npy")}))
    assert str(ctx["image"].get_shape_format()) == "DHW" and ctx["image"].get_data()[1, 2, 3] == 23
    rgb = np.random.default_rng(0).integers(0, 255, (6, 7, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "p.png")
    smooth = np.full((6, 7, 3), 120, np.uint8)
    Image.fromarray(smooth).save(tmp_path / "p.jpg", quality=100)
    ctx = IO.LoadPng(["image", "label"])(TransformContext({"image": str(tmp_path / "p.png"), "label": [0, 1, 1]}))
    assert str(ctx["image"].get_shape_format()) == "CHW"
    np.testing.assert_array_equal(ctx["image"].get_data(), np.moveaxis(rgb, -1, 0).astype(np.float32))
    np.testing.assert_array_equal(ctx["label"], [0.0, 1.0, 1.0])
    jpg = IO.LoadJpg("image")(TransformContext({"image": str(tmp_path / "p.jpg")}))["image"]
    assert jpg.shape == (3, 6, 7) and np.abs(jpg.get_data() - 120.0).max() < 3


def test_load_image_masks_from_numpy(tmp_path):
    stack = np.random.default_rng(0).random((3, 4, 4, 4)).astype(np.float32)
    np.save(tmp_path / "s.npy", stack)
    ctx = IO.LoadImageMasksFromNumpy(num_masks=1)(TransformContext({"image": str(tmp_path / "s.npy")}))
    np.testing.assert_array_equal(ctx["image"].get_data(), stack[:2])
    np.testing.assert_array_equal(ctx["label"].get_data(), stack[2:])
    np.save(tmp_path / "m.npy", (stack[0] > 0.5).astype(np.uint8))
    ctx = IO.LoadImageMasksFromNumpy()(TransformContext({"image": str(tmp_path / "s.npy"),
                                                         "label": str(tmp_path / "m.npy")}))
    assert ctx["image"].shape == (3, 4, 4, 4) and ctx["label"].shape == (4, 4, 4)


def test_resolution_and_shape_helpers(nifti_pair, tmp_path):
    ip = nifti_pair[0]
    ctx = IO.LoadResolutionFromNifty(applied_key="image")(TransformContext({"image": ip}))
    assert ctx["image_resolution"] == pytest.approx([0.8, 0.9, 2.5])
    np.save(tmp_path / "v.npy", np.zeros((5, 6, 7, 2)))
    ctx = IO.Load3DShapeFromNumpy(applied_key="image")(TransformContext({"image": str(tmp_path / "v.npy")}))
    assert ctx["image_shape"] == [5, 6, 7]


def test_write_nifty_results_round_trip(nifti_pair, tmp_path):
    ip, _lp, img, _lab = nifti_pair
    ctx = IO.LoadNifti("image")(TransformContext({"image": ip}))
    ctx["prediction"] = (ctx["image"].get_data() > 0).astype(np.float32)  # a bare model output
    out_dir = str(tmp_path / "out")
    path = IO.WriteNiftyResults(applied_key="prediction", write_path=out_dir, dtype="uint8").write(ctx)
    assert path == os.path.join(out_dir, "case1", "case1_prediction.nii.gz")
    back = nib.load(path)
    np.testing.assert_allclose(back.affine, AFFINE, atol=1e-5)
    np.testing.assert_array_equal(np.asanyarray(back.dataobj), (img > 0).astype(np.uint8))
    assert back.get_data_dtype() == np.uint8


def test_writer_registry_aliases():
    from ai4med.components.writers.catalog import REGISTRY

    assert REGISTRY.get("WriteNiftyResults") is REGISTRY.get("WriteNifti") is IO.WriteNiftyResults


def test_write_after_resample_lands_in_world(nifti_pair, tmp_path):
    from ai4med.components.transforms.spatial import ScaleByResolution

    ip = nifti_pair[0]
    ctx = ScaleByResolution("image", target_resolution=[1.6, 1.8, 1.25])(IO.LoadNifti("image")(
        TransformContext({"image": ip})))
    path = IO.WriteNiftyResults("image", write_path=str(tmp_path)).write(ctx)
    back = nib.load(path)
    assert back.shape == ctx["image"].shape
    # voxel (0,0,0) of the resampled grid is the input's voxel (0,0,0) in world space
    np.testing.assert_allclose(back.affine[:3, 3], AFFINE[:3, 3], atol=1e-4)
    np.testing.assert_allclose(np.abs(np.diag(back.affine)[:3]), [1.6, 1.8, 1.25], atol=1e-5)


def test_save_as_nifti_batched(tmp_path):
    img = MedicalImage(np.zeros((2, 1, 3, 3, 3), np.float32), "NCDHW", {P.FILENAME: "/d/x.nii.gz"})
    IO.SaveAsNifti("image", out_dir=str(tmp_path))(TransformContext({"image": img}))
    assert sorted(os.listdir(tmp_path)) == ["x_image_0_0.nii.gz", "x_image_0_1.nii.gz"]


def test_load_missing_field_is_clear():
    with pytest.raises(KeyError, match="no field 'label'"):
        IO.LoadNifti(["label"])(TransformContext({"image": "a.nii"}))


def test_seed_004_aiaa_train_chain_from_json(tmp_path):
    """The seed's AIAA training pre_transforms (2019 flat args) build and run end to end."""
    pytest.importorskip("ai4med.components.transforms.crop")
    pytest.importorskip("ai4med.components.transforms.guidance")
    from ai4med.components.transforms.catalog import REGISTRY
    from ai4med.config.builder import ComponentBuilder

    nodes = [
        {"name": "transforms.LoadNumpyFromFilename", "fields": ["image", "label"]},
        {"name": "transforms.NPRandomFlip3D", "applied_keys": ["image", "label"]},
        {"name": "transforms.NPRandomZoom3D", "applied_keys": ["image", "label"], "lower_limits": [0.8, 0.8, 0.8],
         "upper_limits": [1.2, 1.2, 1.2]},
        {"name": "transforms.VolumeTo4dArray", "fields": ["image", "label"]},
        {"name": "transforms.ScaleIntensityRange", "field": "image", "a_min": -1024, "a_max": 1024,
         "b_min": -1.0, "b_max": 1.0, "clip": True},
        {"name": "transforms.ScaleIntensityOscillation", "field": "image", "magnitude": 0.2},
        {"name": "transforms.CropForegroundObject", "size": [32, 32, 32], "image_field": "image",
         "label_field": "label", "pad": 4, "foreground_only": True},
        {"name": "transforms.NPRandomRot90_XY", "applied_keys": ["image", "label"]},
        {"name": "transforms.AddExtremePointsChannel", "image_field": "image", "label_field": "label",
         "sigma": 3, "pert": 3},
    ]
    builder = ComponentBuilder("config_train.json", registries={"transforms": REGISTRY})
    chain = [builder.build(n, "transforms") for n in nodes]
    g = np.meshgrid(*[np.arange(s) for s in (30, 26, 20)], indexing="ij")
    lab = (((g[0] - 15) ** 2 + (g[1] - 12) ** 2 + (g[2] - 10) ** 2) < 36).astype(np.uint8)
    img = (lab.astype(np.int16) * 200 - 500).astype(np.int16)
    np.save(tmp_path / "i.npy", img)
    np.save(tmp_path / "l.npy", lab)

    def run(seed):
        ctx = TransformContext({"image": str(tmp_path / "i.npy"), "label": str(tmp_path / "l.npy")},
                               rng=np.random.default_rng(seed))
        for t in chain:
            ctx = t(ctx)
        return ctx

    a, b = run(3), run(3)
    assert a["image"].shape == (2, 32, 32, 32) and a["label"].shape == (1, 32, 32, 32)
    np.testing.assert_array_equal(a["image"].get_data(), b["image"].get_data())
    assert [h[0] for h in a.history][:2] == ["NPRandomFlip3D", "NPRandomZoom3D"]
