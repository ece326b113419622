"""Contract test over EVERY registered transform.

Each name: builds from a JSON component spec through the config engine, runs on a small
synthetic context, leaves every image with a ShapeFormat matching its array, and gives the
identical output when run twice from the same generator seed.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.transforms.catalog import REGISTRY

VOL = ["image", "label"]
S8 = [8, 8, 8]

# name -> (input kind, args as they would appear in a config file)
CASES: dict[str, tuple[str, dict]] = {
    # io
    "LoadNifty": ("nifti", {"fields": VOL}),
    "LoadNifti": ("nifti", {"fields": VOL, "as_closest_canonical": True}),
    "LoadNumpyFromFilename": ("npy", {"fields": VOL}),
    "LoadPng": ("png", {"fields": "image"}),
    "LoadJpg": ("jpg", {"fields": "image"}),
    "LoadImageMasksFromNumpy": ("npy", {"image_field": "image", "mask_field": "label"}),
    "LoadResolutionFromNifty": ("nifti", {"applied_key": "image"}),
    "Load3DShapeFromNumpy": ("npy", {"applied_key": "image"}),
    "WriteNiftyResults": ("vol", {"applied_key": "label", "write_path": "{TMP}", "dtype": "uint8"}),
    "SaveAsNifti": ("vol", {"fields": "image", "out_dir": "{TMP}"}),
    # channels
    "VolumeTo4dArray": ("dhw", {"fields": VOL}),
    "ConvertToChannelsFirst": ("dhw", {"fields": VOL}),
    "NPExpandDims": ("dhw", {"applied_keys": VOL, "expand_axis": 0}),
    "NPRepChannels": ("vol", {"applied_keys": "image", "channel_axis": 0, "repeat": 3}),
    "RepeatChannel": ("vol", {"fields": "image", "repeat": 3}),
    "SplitAcrossChannels": ("model", {"applied_key": "model", "squeeze": True, "channel_names": ["background", "prediction"]}),
    "MergeBatchDims": ("vol", {"fields": VOL}),
    "CopyProperties": ("model", {"fields": "model", "from_field": "image"}),
    # intensity
    "ScaleIntensityRange": ("vol", {"field": "image", "a_min": -1, "a_max": 1, "b_min": -1.0, "b_max": 1.0, "clip": True}),
    "ScaleIntensityOscillation": ("vol", {"field": "image", "magnitude": 0.2}),
    "AdjustContrast": ("vol", {"fields": "image", "probability": 1.0}),
    "AddGaussianNoise": ("vol", {"fields": "image", "probability": 1.0, "variance": 0.1}),
    "CenterData": ("vol", {"applied_keys": "image"}),
    "NormalizeNonzeroIntensities": ("vol", {"fields": "image"}),
    "ScaleShiftIntensity": ("vol", {"fields": "image", "scale": 0.1, "shift": 0.1}),
    "RandomGaussianSmooth": ("vol", {"fields": "image", "probability": 1.0}),
    "RandomMRBiasField": ("vol", {"fields": "image", "probability": 1.0}),
    "ScaleIntensityPercentiles": ("vol", {"fields": "image", "lower": 1, "upper": 99, "mode": "zscore"}),
    # spatial
    "ResampleVolume": ("vol", {"applied_key": "image", "resolution": [1.5, 2.0, 3.0], "target_resolution": [3.0, 3.0, 3.0]}),
    "ScaleByResolution": ("vol", {"fields": VOL, "target_resolution": [3.0, 3.0, 3.0]}),
    "ScaleBySpacing": ("vol", {"fields": VOL, "target_spacing": [3.0, 3.0, 3.0]}),
    "ScaleByFactor": ("vol", {"fields": VOL, "factor": 0.5}),
    "ScaleToShape": ("vol", {"fields": VOL, "shape": S8}),
    "RestoreOriginalShape": ("vol", {"field": "label", "src_field": "image", "is_label": True}),
    "NPResizeImage": ("img2d", {"applied_keys": "image", "output_shape": [16, 16], "data_format": "channels_first"}),
    "NP2DRotate": ("img2d", {"applied_keys": "image", "angle": 7, "random": True}),
    "NPRandomFlip3D": ("vol", {"applied_keys": VOL, "probability": 0.5}),
    "NPRandomZoom3D": ("vol", {"applied_keys": VOL, "lower_limits": [0.8] * 3, "upper_limits": [1.2] * 3, "keep_size": True}),
    "NPRandomRot90_XY": ("vol", {"applied_keys": VOL}),
    "FlipAxisRandom": ("vol", {"fields": VOL, "axis": [0, 1, 2]}),
    "RandomZoom": ("vol", {"image_field": "image", "label_field": "label", "lower_limits": [0.9] * 3, "upper_limits": [1.1] * 3}),
    "RandomAxisFlip": ("vol", {"fields": VOL, "probability": 1.0}),
    "RandomSpatialFlip": ("vol", {"fields": VOL, "probability": 1.0}),
    "RandomRotate2D": ("img2d", {"fields": VOL, "probability": 1.0}),
    "RandomRotate3D": ("vol", {"fields": VOL, "probability": 1.0}),
    "SymmetricPadderDiv": ("vol", {"fields": VOL, "divisor": 5}),
    # crop
    "CropSubVolumePosNegRatioCtrlEpoch": ("vol", {"image_field": "image", "label_field": "label", "size": S8,
                                                  "ratio_start": 1.0, "ratio_end": 0.5, "ratio_step": -0.1,
                                                  "num_epochs": 2}),
    "TransformVolumeCropROIFastPosNegRatio": ("vol", {"applied_keys": VOL, "size": S8, "deform": True, "rotation": True,
                                                      "rotation_degree": 10, "scale": True, "scale_factor": 0.1,
                                                      "pos": 1, "neg": 1}),
    "CropRandomSubImageInRange": ("img2d", {"lower_size": 0.5, "max_displacement": 2, "keep_aspect": True}),
    "CropForegroundObject": ("vol", {"size": S8, "image_field": "image", "label_field": "label", "pad": 2,
                                     "foreground_only": True}),
    "CropSubVolumeRandomWithinBounds": ("vol", {"fields": VOL, "size": S8}),
    "CropSubVolumeCenter": ("vol", {"fields": VOL, "size": S8}),
    "CropImageForeground": ("vol", {"fields": VOL, "threshold": 0.1, "margin": 1}),
    "FastPosNegRatioCropROI": ("vol", {"size": S8, "image_field": "image", "label_field": "label", "pos": 1, "neg": 1,
                                       "rotation": True, "rotation_degree": 10}),
    "CropByPosNegRatio": ("vol", {"size": S8, "fields": VOL, "label_field": "label", "pos": 1, "neg": 1,
                                  "batch_size": 2}),
    "FastCropByPosNegRatio": ("vol", {"size": S8, "fields": VOL, "label_field": "label", "pos": 1, "neg": 1,
                                      "batch_size": 2}),
    "CropByPosNegRatioLabelOnly": ("vol", {"size": S8, "label_field": "label", "batch_size": 2}),
    "CropFixedSizeRandomCenter": ("vol", {"fields": VOL, "size": S8}),
    "CropRandomSizeWithDisplacement": ("img2d", {"fields": VOL, "lower_size": 0.5, "max_displacement": 2}),
    # guidance
    "AddExtremePointsChannel": ("vol", {"image_field": "image", "label_field": "label", "sigma": 3, "pert": 3}),
    "FetchExtremePoints": ("vol", {"image_field": "image", "label_field": "label"}),
    # post
    "BratsConvertLabels": ("brats", {"fields": "label"}),
    "SplitBasedOnLabel": ("vol", {"field": "label", "label_names": ["background", "organ"]}),
    "SplitBasedOnBratsClasses": ("brats", {"field": "label"}),
    "ConvertToMultiChannelBasedOnBratsClasses": ("brats", {"fields": "label"}),
    "ConvertToMultiChannelBasedOnLabel": ("vol", {"fields": "label", "num_classes": 2}),
    "ThresholdValues": ("model", {"fields": "model", "threshold": 0.5}),
    "ArgmaxAcrossChannels": ("model", {"fields": "model"}),
    "KeepLargestCC": ("vol", {"fields": "label"}),
    "SegmentationPostProcess": ("model", {"field": "model", "src_field": "image"}),
}

#: transforms that only read metadata (they add a list field, no image)
METADATA_ONLY = {"LoadResolutionFromNifty", "Load3DShapeFromNumpy"}

SHAPE = (16, 16, 16)
AFFINE = np.array([[-1.5, 0, 0, 30.0], [0, -2.0, 0, 20.0], [0, 0, 3.0, -10.0], [0, 0, 0, 1]])


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    import nibabel as nib
    from PIL import Image

    root = tmp_path_factory.mktemp("contract")
    img, lab = _volumes()
    nib.save(nib.Nifti1Image(img, AFFINE), str(root / "img.nii.gz"))
    nib.save(nib.Nifti1Image(lab, AFFINE), str(root / "lab.nii.gz"))
    np.save(root / "img.npy", img)
    np.save(root / "lab.npy", lab)
    pic = (np.arange(32 * 24) % 251).astype(np.uint8).reshape(32, 24)
    Image.fromarray(pic).save(root / "img.png")
    Image.fromarray(np.stack([pic] * 3, -1)).save(root / "img.jpg")
    return root


def _volumes():
    rng = np.random.default_rng(0)
    img = rng.normal(size=SHAPE).astype(np.float32)
    lab = np.zeros(SHAPE, np.uint8)
    lab[4:10, 5:11, 6:12] = 1
    lab[12:14, 12:14, 12:14] = 1  # a second, smaller component
    return img, lab


def _props():
    return {
        ImageProperty.AFFINE: AFFINE.copy(),
        ImageProperty.SPACING: (1.5, 2.0, 3.0),
        ImageProperty.ORIGINAL_SHAPE: SHAPE,
        ImageProperty.ORIGINAL_AFFINE: AFFINE.copy(),
        ImageProperty.FILENAME: "/data/case1.nii.gz",
    }


def make_ctx(kind: str, files, seed: int = 0) -> TransformContext:
    img, lab = _volumes()
    if kind in ("nifti", "npy"):
        ext = ".nii.gz" if kind == "nifti" else ".npy"
        data = {"image": str(files / f"img{ext}"), "label": str(files / f"lab{ext}")}
    elif kind in ("png", "jpg"):
        data = {"image": str(files / f"img.{kind}"), "label": [0, 1]}
    elif kind == "dhw":
        data = {"image": MedicalImage(img, "DHW", _props()), "label": MedicalImage(lab, "DHW", _props())}
    elif kind == "img2d":
        data = {
            "image": MedicalImage(img[:, :, 0][None], "CHW", _props()),
            "label": MedicalImage(lab[:, :, 8][None], "CHW", _props()),
        }
    else:
        if kind == "brats":
            lab = lab.copy()
            lab[5:7, 6:8, 7:9] = 2
            lab[8, 9, 10] = 4
        data = {"image": MedicalImage(img[None], "CDHW", _props()), "label": MedicalImage(lab[None], "CDHW", _props())}
        if kind == "model":
            p = np.random.default_rng(1).random(SHAPE).astype(np.float32)
            data["model"] = MedicalImage(np.stack([1 - p, p]), "CDHW", _props())
    return TransformContext(data, rng=np.random.default_rng(seed))


def build(name: str, tmp_path):
    from ai4med.config.builder import ComponentBuilder

    kind, args = CASES[name]
    args = json.loads(json.dumps(args).replace("{TMP}", str(tmp_path)))  # JSON round trip, like a config
    return ComponentBuilder("contract.json").build({"name": name, "args": args}, "transforms"), kind


def _same(a, b) -> bool:
    if isinstance(a, MedicalImage) or isinstance(b, MedicalImage):
        return (
            isinstance(a, MedicalImage) and isinstance(b, MedicalImage)
            and a.get_shape_format() == b.get_shape_format()
            and a.shape == b.shape
            and np.array_equal(a.get_data(), b.get_data(), equal_nan=True)
        )
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True)
    return a == b


def test_table_covers_the_registry():
    assert set(CASES) == set(REGISTRY.names())


@pytest.mark.parametrize("name", sorted(CASES))
def test_transform_contract(name, files, tmp_path):
    t, kind = build(name, tmp_path)
    assert isinstance(t.is_deterministic(), bool)
    ctx = t.transform(make_ctx(kind, files, seed=0))
    assert isinstance(ctx, TransformContext)
    n_images = 0
    for field, value in ctx.items():
        if isinstance(value, MedicalImage):
            n_images += 1
            sf = value.get_shape_format()
            assert value.get_data().ndim == sf.get_number_of_dims(), (field, value)
    assert n_images >= 1 or name in METADATA_ONLY
    # reproducible: a second instance from the same spec and the same seed gives the same fields
    t2, _ = build(name, tmp_path)
    ctx2 = t2.transform(make_ctx(kind, files, seed=0))
    assert set(ctx) == set(ctx2)
    for field in ctx:
        assert _same(ctx[field], ctx2[field]), field


@pytest.mark.parametrize("name", sorted(n for n, (k, _) in CASES.items() if k in ("vol", "brats", "model")))
def test_labels_never_get_intensity_noise(name, files, tmp_path):
    """Whatever a transform does to the label, it stays integer-valued (no interpolation / noise)."""
    t, kind = build(name, tmp_path)
    ctx = t.transform(make_ctx(kind, files, seed=3))
    lab = ctx.get("label")
    if isinstance(lab, MedicalImage):
        data = lab.get_data()
        np.testing.assert_array_equal(data, np.round(data))
