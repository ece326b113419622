"""Random transforms after a batch-by-transform crop draw per crop (as MONAI does per sample)."""

from __future__ import annotations

import numpy as np
import pytest

from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.data.dataset import SampleKey, TransformDataset
from ai4med.components.transforms.crop import CropByPosNegRatio
from ai4med.components.transforms.intensity import AdjustContrast, ScaleShiftIntensity
from ai4med.components.transforms.spatial import NPRandomFlip3D, RandomAxisFlip
from ai4med.components.transforms.utils import get_affine, stack_batch, unstack_batch

SHAPE = (20, 20, 20)
N_CROPS = 8


def _coords() -> np.ndarray:
    """Each voxel holds its own index, d * 10000 + h * 100 + w."""
    d, h, w = np.meshgrid(*[np.arange(n) for n in SHAPE], indexing="ij")
    return (d * 10000 + h * 100 + w).astype(np.float32)


class Load:
    def transform(self, ctx):
        affine = np.diag([2.0, 1.5, 1.0, 1.0])
        ctx["image"] = MedicalImage(_coords()[None], "CDHW", {"affine": affine})
        lab = np.zeros(SHAPE, np.uint8)
        lab[6:14, 6:14, 6:14] = 1
        ctx["label"] = MedicalImage(lab[None], "CDHW", {"affine": affine.copy()})
        return ctx


def _chain(intensity):
    return [Load(), CropByPosNegRatio([8, 8, 8], ["image", "label"], "label", 1, 1, batch_size=N_CROPS),
            RandomAxisFlip(["image", "label"], probability=0.5), intensity]


def _flips(img: np.ndarray) -> tuple[bool, bool, bool]:
    """Which axes of a crop of the coordinate image run backwards."""
    c = img[0]
    return c[1, 0, 0] < c[0, 0, 0], c[0, 1, 0] < c[0, 0, 0], c[0, 0, 1] < c[0, 0, 0]


def test_crops_of_one_volume_get_their_own_flips_and_intensity_draws():
    ds = TransformDataset([{"image": "x"}], _chain(ScaleShiftIntensity("image", scale=0.5, probability=1.0)), seed=4)
    key = SampleKey(0, 0, 0)
    _, samples = ds[key]
    assert len(samples) == N_CROPS
    flips = {_flips(s["image"].get_data()) for s in samples}
    assert len(flips) > 1, flips  # one shared draw gave every crop the same flip
    # each crop is the original range (70707 in an 8^3 crop) times its own (1 + s)
    vals = [float(np.ptp(s["image"].get_data())) for s in samples]
    assert len({round(v, 3) for v in vals}) == N_CROPS, vals
    # the same seed gives the same crops, flips and draws
    _, again = TransformDataset([{"image": "x"}], _chain(ScaleShiftIntensity("image", scale=0.5, probability=1.0)),
                                seed=4)[key]
    for a, b in zip(samples, again):
        np.testing.assert_array_equal(a["image"].get_data(), b["image"].get_data())
    # labels flip with their crop
    for s in samples:
        assert _flips(s["image"].get_data()) == _flips_of_label(s)


def _flips_of_label(sample) -> tuple[bool, bool, bool]:
    """Flips read from the label's affine (each crop keeps its own geometry through the flips)."""
    a = get_affine(sample["label"])
    return a[0, 0] < 0, a[1, 1] < 0, a[2, 2] < 0


def test_adjust_contrast_uses_each_items_min_max():
    lo = np.linspace(0.0, 1.0, 27, dtype=np.float32).reshape(1, 3, 3, 3)
    hi = lo * 10 + 10
    batch = MedicalImage(np.stack([lo, hi]), "NCDHW")
    ctx = TransformContext({"image": batch}, rng=np.random.default_rng(0))
    out = AdjustContrast("image", gamma=2.0, probability=1.0)(ctx)["image"].get_data()
    np.testing.assert_allclose(out[0], lo ** 2, atol=1e-5)
    np.testing.assert_allclose(out[1], (lo ** 2) * 10 + 10, atol=1e-4)


def test_batched_intensity_draws_are_per_item_and_single_sample_unchanged():
    batch = MedicalImage(np.ones((5, 1, 4, 4, 4), np.float32), "NCDHW")
    t = ScaleShiftIntensity("image", scale=0.5, shift=0.5, probability=1.0)
    out = t(TransformContext({"image": batch}, rng=np.random.default_rng(1)))["image"].get_data()
    per_item = out.reshape(5, -1)
    assert np.all(per_item == per_item[:, :1])  # one draw per item, constant within it
    assert len(set(per_item[:, 0].round(6))) == 5
    # an unbatched image draws exactly as before: the first draw of the same generator
    one = t(TransformContext({"image": MedicalImage(np.ones((1, 4, 4, 4), np.float32), "CDHW")},
                             rng=np.random.default_rng(1)))["image"].get_data()
    assert float(one.flat[0]) == pytest.approx(float(out[0].flat[0]))


def test_batched_flips_keep_each_items_geometry():
    base = np.diag([2.0, 1.5, 1.0, 1.0])
    items = []
    for k in range(6):
        aff = base.copy()
        aff[:3, 3] = [k, 2 * k, 3 * k]
        items.append(MedicalImage(_coords()[None, :6, :6, :6], "CDHW", {"affine": aff}))
    ctx = TransformContext({"image": stack_batch(items)}, rng=np.random.default_rng(3))
    out = unstack_batch(NPRandomFlip3D(["image"], probability=0.5)(ctx)["image"])
    patterns = set()
    for k, img in enumerate(out):
        patterns.add(_flips(img.get_data()))
        # the voxel at the item's index 0 came from the original index its value names; the
        # item's affine must place it where the original affine did
        v = int(img.get_data()[0, 0, 0, 0])
        orig = np.array([v // 10000, v // 100 % 100, v % 100, 1.0])
        np.testing.assert_allclose(get_affine(img) @ [0, 0, 0, 1.0], items[k].get_property("affine") @ orig)
    assert len(patterns) > 1
