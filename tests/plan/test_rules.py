"""The planning rules against nnU-Net's behaviour, with real values."""

from __future__ import annotations

import numpy as np
import pytest

from ai4med.plan import rules


def test_target_spacing_median_for_isotropic_data():
    sp = [[1.0, 1.0, 1.0], [0.8, 0.8, 1.2], [1.2, 1.2, 2.0]]
    assert rules.target_spacing(sp, [[100, 100, 100]] * 3) == [1.0, 1.0, 1.2]


def test_target_spacing_anisotropic_axis_takes_10th_percentile():
    # ACDC-like: thick slices (5-10 mm) and few of them -> 10th percentile on that axis, not the median
    sp = [[1.5, 1.5, z] for z in (5.0, 6.0, 10.0, 10.0, 10.0, 10.0, 10.0)]
    out = rules.target_spacing(sp, [[200, 200, 10]] * 7)
    assert out[:2] == [1.5, 1.5]
    assert out[2] == pytest.approx(np.percentile([5, 6, 10, 10, 10, 10, 10], 10))
    assert out[2] < 10.0


def test_target_spacing_keeps_median_when_the_coarse_axis_has_many_voxels():
    sp = [[1.0, 1.0, z] for z in (4.0, 5.0, 6.0)]
    # coarse spacing but as many slices as the other axes: not nnU-Net's anisotropic case
    assert rules.target_spacing(sp, [[100, 100, 100]] * 3) == [1.0, 1.0, 5.0]


def test_pool_and_conv_props_isotropic():
    pools, strides, kernels, patch, div = rules.pool_and_conv_props([1, 1, 1], [128, 128, 128])
    assert pools == [5, 5, 5]  # 128 -> 4 at the bottleneck (min feature map 4)
    assert strides == [[1, 1, 1]] + [[2, 2, 2]] * 5
    assert kernels == [[3, 3, 3]] * 6
    assert patch == [128, 128, 128] and div == [32, 32, 32]


def test_pool_and_conv_props_anisotropic_pools_the_fine_axes_first():
    pools, strides, kernels, patch, div = rules.pool_and_conv_props([0.8, 0.8, 4.0], [160, 160, 20])
    assert strides[1] == [2, 2, 1] and strides[2] == [2, 2, 1]  # z too coarse to pool until x/y catch up
    assert kernels[0] == [3, 3, 1]  # no 3-wide kernel across thick slices
    assert kernels[-1] == [3, 3, 3]
    assert pools[2] < pools[0]
    assert all(p % d == 0 for p, d in zip(patch, div))
    assert len(strides) == len(kernels)


def test_pool_and_conv_props_pads_patch_to_the_multiple():
    _, _, _, patch, div = rules.pool_and_conv_props([1, 1, 1], [100, 100, 100])
    assert div == [16, 16, 16] and patch == [112, 112, 112]


def test_initial_patch_is_isotropic_in_mm_and_clipped_to_median_shape():
    p = rules.initial_patch_size([1.0, 1.0, 2.0], [500, 500, 500], edge=128)
    assert p[0] == p[1] and abs(p[0] / p[2] - 2.0) < 0.05
    assert np.prod(p) == pytest.approx(128**3, rel=0.02)
    assert rules.initial_patch_size([1, 1, 1], [40, 300, 300], 128) == [40, 128, 128]


def test_reduce_patch_axis_shrinks_the_axis_largest_relative_to_the_data():
    out = rules.reduce_patch_axis([128, 128, 128], [256, 256, 128], [1, 1, 1])
    assert out[:2] == [128, 128] and out[2] < 128


def test_fit_patch_size_returns_the_first_candidate_that_fits():
    tried = []

    def fits(p):
        tried.append(list(p))
        return np.prod(p) <= 48**3

    out = rules.fit_patch_size([1, 1, 1], [96, 96, 96], fits, edge=96)
    assert np.prod(out) <= 48**3
    assert tried[-1] == out and all(np.prod(t) > 48**3 for t in tried[:-1])
    with pytest.raises(rules.NoFitError):
        rules.fit_patch_size([1, 1, 1], [96, 96, 96], lambda p: False, edge=96)


def test_batch_size_budget_coverage_and_minimum():
    assert rules.batch_size_for(10e9, 1e9, 1e9, 1e15, [64] * 3) == 9  # memory-bound
    assert rules.batch_size_for(100e9, 1e9, 1e9, 64**3 * 100, [64] * 3) == 5  # 5% of 100 patches
    assert rules.batch_size_for(1e9, 1e9, 1e9, 1e15, [64] * 3) == 2  # never below 2


def test_normalization_schemes():
    fg = {"percentile_00_5": -120.0, "percentile_99_5": 280.0, "mean": 60.0, "std": 80.0}
    ct = rules.normalization("ct", fg, nonzero=True)
    assert ct == {"scheme": "CTNormalization", "clip": [-120.0, 280.0], "mean": 60.0, "std": 80.0}
    assert rules.normalization("MR", fg, nonzero=False) == {"scheme": "ZScoreNormalization", "nonzero": False}
    assert rules.use_nonzero_mask([0.5, 0.7, 0.8]) and not rules.use_nonzero_mask([0.8, 0.9, 1.0])


def test_features_deep_supervision_mirroring_sampling():
    assert rules.features_per_stage(4, 16, 64) == [16, 32, 64, 64]
    assert rules.deep_supervision(6) == (True, 4) and rules.deep_supervision(2) == (False, 1)
    assert rules.mirror_axes(3) == [0, 1, 2]
    assert rules.foreground_sampling() == {"pos": 1, "neg": 2}


def test_augmentations_rotate_in_plane_for_anisotropic_data():
    names = [a["name"] for a in rules.augmentations("gpu", [1, 1, 1])]
    assert {"RandomRotate3D", "RandomZoom", "AddGaussianNoise", "RandomAxisFlip"} <= set(names)
    rot = rules.augmentations("gpu", [0.7, 0.7, 5.0])[0]
    assert rot["args"]["angle"] == [0.0, 0.0, 30.0]
    assert [a["name"] for a in rules.augmentations("cpu", [1, 1, 5])] == ["RandomAxisFlip", "ScaleShiftIntensity"]


def test_training_length():
    assert rules.training_length(50) == {"epochs": 5000, "iterations": 250000, "num_training_epoch_per_valid": 250}
    t = rules.training_length(8, step_seconds=0.3, time_budget_s=600)
    assert t["iterations"] == 1800 and t["epochs"] == 225  # 0.9 * 600 / 0.3 = 1800 steps
