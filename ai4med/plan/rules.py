"""The planning rules, one function each, with the nnU-Net v2 rule it follows.

References are to nnU-Net v2 (`nnunetv2/experiment_planning/experiment_planners/
default_experiment_planner.py` = "planner", `.../network_topology.py` = "topology",
`nnunetv2/preprocessing/normalization/default_normalization_schemes.py` = "normalization").
The code is ours; where we deviate (short CPU budgets), the docstring says so and why.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = [
    "ANISOTROPY_THRESHOLD",
    "NoFitError",
    "target_spacing",
    "is_anisotropic",
    "use_nonzero_mask",
    "normalization",
    "pool_and_conv_props",
    "initial_patch_size",
    "reduce_patch_axis",
    "fit_patch_size",
    "batch_size_for",
    "features_per_stage",
    "deep_supervision",
    "mirror_axes",
    "augmentations",
    "foreground_sampling",
    "training_length",
]

class NoFitError(ValueError):
    """No candidate patch passes the budget test."""


#: planner `ANISO_THRESHOLD`: an axis whose spacing exceeds 3x the others' is "low resolution"
ANISOTROPY_THRESHOLD = 3.0


def target_spacing(
    spacings: Sequence[Sequence[float]], shapes: Sequence[Sequence[int]], threshold: float = ANISOTROPY_THRESHOLD,
) -> list[float]:
    """Median spacing per axis; for anisotropic data, the 10th percentile on the low-resolution axis.

    planner `determine_fullres_target_spacing`: when the worst axis's median spacing is more
    than `threshold` x the others' AND it has fewer than 1/`threshold` of their voxels (median
    cropped shape), resampling to its median would interpolate badly between few slices, so
    that axis takes the 10th percentile of its spacings instead, never below the other axes'
    largest spacing.

    >>> target_spacing([[1, 1, 5], [1, 1, 5], [1, 1, 3]], [[100, 100, 20]] * 3)
    [1.0, 1.0, 3.4]
    >>> target_spacing([[1, 1, 1], [2, 2, 2]], [[10, 10, 10]] * 2)
    [1.5, 1.5, 1.5]
    """
    sp = np.asarray(spacings, np.float64)
    target = np.percentile(sp, 50, axis=0)
    size = np.percentile(np.asarray(shapes, np.float64), 50, axis=0)
    worst = int(np.argmax(target))
    others = [i for i in range(len(target)) if i != worst]
    if not others:
        return [float(v) for v in target]
    aniso_spacing = target[worst] > threshold * max(target[i] for i in others)
    aniso_voxels = size[worst] * threshold < min(size[i] for i in others)
    if aniso_spacing and aniso_voxels:
        low = float(np.percentile(sp[:, worst], 10))
        other_max = max(float(target[i]) for i in others)
        target[worst] = max(low, other_max + 1e-5) if low < other_max else low
    return [round(float(v), 6) for v in target]


def is_anisotropic(spacing: Sequence[float], threshold: float = ANISOTROPY_THRESHOLD) -> bool:
    """Whether the largest spacing exceeds `threshold` x the smallest (nnU-Net's `do_dummy_2d_data_aug`).

    >>> is_anisotropic([1, 1, 5]), is_anisotropic([1, 1, 2])
    (True, False)
    """
    return max(spacing) / min(spacing) > threshold


def use_nonzero_mask(crop_fractions: Sequence[float]) -> bool:
    """Normalise over the nonzero region when cropping to it shrank the median case below 3/4.

    planner `determine_normalization_scheme_and_whether_mask_is_used_for_norm`: skull-stripped
    MR and similar images have a zero background that would otherwise dominate the z-score.

    >>> use_nonzero_mask([0.5, 0.6, 0.9]), use_nonzero_mask([1.0, 0.95])
    (True, False)
    """
    return float(np.median(crop_fractions)) < 0.75


def normalization(modality: str, foreground: dict[str, float], nonzero: bool) -> dict[str, Any]:
    """The intensity normalisation of one channel.

    normalization `CTNormalization`: CT intensities are physical (HU), so every case is clipped to
    the dataset's foreground [0.5, 99.5] percentiles, then z-scored with the foreground mean and
    std (dataset-wide, not per image). `ZScoreNormalization` otherwise: per-image z-score, over the
    nonzero region when `nonzero` (see `use_nonzero_mask`).

    >>> normalization("CT", {"percentile_00_5": -100, "percentile_99_5": 300, "mean": 50, "std": 100}, False)
    {'scheme': 'CTNormalization', 'clip': [-100.0, 300.0], 'mean': 50.0, 'std': 100.0}
    >>> normalization("MR", {}, True)
    {'scheme': 'ZScoreNormalization', 'nonzero': True}
    """
    if modality.upper() == "CT":
        std = max(float(foreground["std"]), 1e-8)
        return {"scheme": "CTNormalization",
                "clip": [float(foreground["percentile_00_5"]), float(foreground["percentile_99_5"])],
                "mean": float(foreground["mean"]), "std": std}
    return {"scheme": "ZScoreNormalization", "nonzero": bool(nonzero)}


def pool_and_conv_props(
    spacing: Sequence[float], patch_size: Sequence[int], min_feature_map: int = 4, max_numpool: int = 999,
) -> tuple[list[int], list[list[int]], list[list[int]], list[int], list[int]]:
    """DynUnet strides and kernels from spacing and patch size; the patch padded to fit them.

    topology `get_pool_and_conv_props`: at each level, pool (stride 2) the axes whose current
    spacing is within 2x of the finest and whose feature map stays >= 2 * `min_feature_map`
    (a lone axis needs 3x); a kernel becomes 3 on an axis once its spacing is within 2x of the
    finest (1 before: no in-plane blurring across thick slices). The bottleneck gets 3s.

    Returns:
        (pools per axis, strides per level (first all 1), kernels per level, patch size padded to a
        multiple of 2**pools, that multiple per axis).

    >>> n, strides, kernels, patch, div = pool_and_conv_props([1, 1, 1], [64, 64, 64])
    >>> n, len(strides), kernels[0], patch
    ([4, 4, 4], 5, [3, 3, 3], [64, 64, 64])
    >>> _, strides, kernels, _, _ = pool_and_conv_props([1, 1, 4], [64, 64, 16])
    >>> strides[:4], kernels[:3]
    ([[1, 1, 1], [2, 2, 1], [2, 2, 1], [2, 2, 2]], [[3, 3, 1], [3, 3, 1], [3, 3, 3]])
    """
    dim = len(spacing)
    cur_sp = [float(s) for s in spacing]
    cur_size = [float(s) for s in patch_size]
    strides = [[1] * dim]
    kernels: list[list[int]] = []
    pools = [0] * dim
    kernel = [1] * dim
    while True:
        valid = [i for i in range(dim) if cur_size[i] >= 2 * min_feature_map]
        if not valid:
            break
        finest = min(cur_sp[i] for i in valid)
        valid = [i for i in valid if cur_sp[i] / finest < 2 and pools[i] < max_numpool]
        if not valid or (len(valid) == 1 and cur_size[valid[0]] < 3 * min_feature_map):
            break
        for d in range(dim):
            if kernel[d] != 3 and cur_sp[d] / min(cur_sp) < 2:
                kernel[d] = 3
        step = [1] * dim
        for v in valid:
            step[v] = 2
            pools[v] += 1
            cur_sp[v] *= 2
            cur_size[v] = math.ceil(cur_size[v] / 2)
        strides.append(step)
        kernels.append(list(kernel))
    kernels.append([3] * dim)
    div = [2**p for p in pools]
    padded = [int(s) if s % d == 0 else int(s + d - s % d) for s, d in zip(patch_size, div)]
    return pools, strides, kernels, padded, div


def initial_patch_size(spacing: Sequence[float], median_shape: Sequence[int], edge: int = 256) -> list[int]:
    """A patch of edge**3 voxels with the aspect ratio of 1/spacing (isotropic in mm), clipped to the median shape.

    planner `get_plans_for_configuration`: start as large as 256**3 voxels and let the memory
    rule shrink it; clipping to the median image size is nnU-Net v2's change from v1. `edge`
    below 256 is our start for CPU budgets (fewer shrink steps, same result once memory-bound).

    >>> initial_patch_size([1, 1, 2], [300, 300, 300], 64)
    [81, 81, 40]
    """
    inv = 1.0 / np.asarray(spacing, np.float64)
    dim = len(spacing)
    size = inv * (edge**dim / np.prod(inv)) ** (1.0 / dim)
    return [int(min(round(float(s)), int(m))) for s, m in zip(size, median_shape)]


def reduce_patch_axis(patch: Sequence[int], median_shape: Sequence[int], spacing: Sequence[float],
                      min_feature_map: int = 4) -> list[int]:
    """One shrink step: the axis largest relative to the median shape loses one 2**pools multiple.

    planner `get_plans_for_configuration` (the `while estimate > reference` loop): reduce the
    axis that violates the data's aspect ratio most; the multiple is recomputed after a first
    subtraction so that valid sizes are not skipped.

    >>> reduce_patch_axis([64, 64, 64], [100, 100, 50], [1, 1, 1])
    [64, 64, 56]
    """
    patch = [int(p) for p in patch]
    axis = int(np.argsort([p / m for p, m in zip(patch, median_shape)])[-1])
    div = pool_and_conv_props(spacing, patch, min_feature_map)[4]
    tmp = list(patch)
    tmp[axis] -= div[axis]
    div = pool_and_conv_props(spacing, tmp, min_feature_map)[4]
    patch[axis] -= div[axis]
    return pool_and_conv_props(spacing, patch, min_feature_map)[3]


def fit_patch_size(
    spacing: Sequence[float], median_shape: Sequence[int], fits: Callable[[list[int]], bool], edge: int = 256,
    min_feature_map: int = 4, min_edge: int = 4,
) -> list[int]:
    """The largest patch (per the shrink order of `reduce_patch_axis`) for which `fits(patch)` holds.

    `fits` is the memory (and, for CPU budgets, time) test of a training step at batch size 2
    (nnU-Net's `UNet_min_batch_size`), measured on the actual network.

    >>> fit_patch_size([1, 1, 1], [64, 64, 64], lambda p: np.prod(p) <= 32**3, edge=64)
    [32, 32, 32]
    """
    patch = pool_and_conv_props(spacing, initial_patch_size(spacing, median_shape, edge), min_feature_map)[3]
    for _ in range(1000):
        if fits(patch):
            return patch
        new = reduce_patch_axis(patch, median_shape, spacing, min_feature_map)
        if new == patch or min(new) < min_edge:
            break
        patch = new
    raise NoFitError(f"no patch size fits the budget (smallest tried {patch}); give a larger --budget")


def batch_size_for(
    budget_bytes: float, fixed_bytes: float, bytes_per_sample: float, dataset_voxels: float, patch: Sequence[int],
    min_batch: int = 2, max_coverage: float = 0.05,
) -> int:
    """Batch size filling the memory budget, at most 5% of the dataset's voxels per batch, at least 2.

    planner: `batch_size = round(reference / estimate * ref_bs)`, capped so one batch covers at
    most `max_dataset_covered` (5%) of the dataset (overfitting guard), floored at
    `UNet_min_batch_size` (2). Here the estimate is our measured per-sample step memory.

    >>> batch_size_for(10e9, 1e9, 1e9, 1e12, [64, 64, 64])
    9
    >>> batch_size_for(10e9, 1e9, 1e9, 64**3 * 20, [64, 64, 64])
    2
    """
    by_memory = int((budget_bytes - fixed_bytes) // max(bytes_per_sample, 1.0))
    by_coverage = int(round(dataset_voxels * max_coverage / float(np.prod(patch, dtype=np.float64))))
    return max(min(by_memory, by_coverage), min_batch)


def features_per_stage(num_stages: int, base: int = 32, max_features: int = 320) -> list[int]:
    """Filters per level: `base * 2**level`, capped (planner `_features_per_stage`; 320 in 3D).

    >>> features_per_stage(6)
    [32, 64, 128, 256, 320, 320]
    """
    return [min(max_features, base * 2**i) for i in range(num_stages)]


def deep_supervision(num_stages: int) -> tuple[bool, int]:
    """(enabled, extra heads): every decoder level but the lowest is supervised, as in nnU-Net v2.

    nnU-Net's `PlainConvUNet(deep_supervision=True)` emits one output per decoder stage; the
    lowest-resolution ones carry little signal and DynUnet allows at most `len(strides) - 2`.

    >>> deep_supervision(5), deep_supervision(2)
    ((True, 3), (False, 1))
    """
    if num_stages < 3:
        return False, 1
    return True, num_stages - 2


def mirror_axes(spatial_dims: int = 3) -> list[int]:
    """Axes for mirroring augmentation and test-time augmentation: all of them (nnU-Net's
    `configure_rotation_dummyDA_mirroring_and_inital_patch_size` returns (0, 1, 2) in 3D).

    >>> mirror_axes(3)
    [0, 1, 2]
    """
    return list(range(spatial_dims))


def augmentations(kind: str, spacing: Sequence[float]) -> list[dict[str, Any]]:
    """The training augmentation set: nnU-Net's (`get_training_transforms`) for long budgets, a lighter one for CPU.

    nnU-Net applies rotation (in-plane only for anisotropic data: `do_dummy_2d_data_aug`),
    scaling (0.7-1.4), Gaussian noise, Gaussian blur, brightness, contrast, gamma and
    mirroring. On a short CPU budget a network sees each case only a few hundred times, so
    regularisation costs more Dice than it buys and the resampling ones dominate step time:
    the "cpu" set keeps mirroring and the cheap intensity ones.

    >>> [a["name"] for a in augmentations("cpu", [1, 1, 1])]
    ['RandomAxisFlip', 'ScaleShiftIntensity']
    >>> augmentations("gpu", [1, 1, 5])[0]["args"]["angle"]
    [0.0, 0.0, 30.0]
    """
    img_lab = ["image", "label"]
    flip = {"name": "RandomAxisFlip", "args": {"fields": img_lab, "label_field": "label", "probability": 0.5}}
    shift = {"name": "ScaleShiftIntensity", "args": {"fields": "image", "scale": 0.25, "shift": 0.1, "probability": 0.3}}
    if kind == "cpu":
        return [flip, shift]
    angle = [0.0, 0.0, 30.0] if is_anisotropic(spacing) else [30.0, 30.0, 30.0]
    low = int(np.argmax(spacing))
    if is_anisotropic(spacing):  # rotate only about the low-resolution axis (in-plane)
        angle = [0.0] * len(spacing)
        angle[low] = 30.0
    return [
        {"name": "RandomRotate3D", "args": {"fields": img_lab, "label_field": "label", "probability": 0.2,
                                            "angle": angle}},
        {"name": "RandomZoom", "args": {"image_field": "image", "label_field": "label", "probability": 0.2,
                                        "lower_limits": [0.7] * 3, "upper_limits": [1.4] * 3}},
        {"name": "AddGaussianNoise", "args": {"fields": "image", "probability": 0.1, "variance": 0.1}},
        {"name": "RandomGaussianSmooth", "args": {"fields": "image", "probability": 0.2, "sigma_range": [0.5, 1.0]}},
        {"name": "ScaleShiftIntensity", "args": {"fields": "image", "scale": 0.25, "shift": 0.0, "probability": 0.15}},
        {"name": "AdjustContrast", "args": {"fields": "image", "probability": 0.3, "gamma": [0.7, 1.5]}},
        flip,
    ]


def foreground_sampling() -> dict[str, int]:
    """Patch centres: 1 in 3 on foreground (nnU-Net's `oversample_foreground_percent = 0.33`).

    >>> foreground_sampling()
    {'pos': 1, 'neg': 2}
    """
    return {"pos": 1, "neg": 2}


def training_length(
    iterations_per_epoch: int, step_seconds: float | None = None, time_budget_s: float | None = None,
    total_iterations: int = 250_000, validations: int = 20,
) -> dict[str, int]:
    """Epochs and validation interval for the budget.

    nnU-Net trains 1000 epochs x 250 iterations (`nnUNetTrainer.num_epochs`,
    `num_iterations_per_epoch`). With a wall-time budget the iteration count is what fits:
    90% of the budget over the measured step time (the rest is validation and loading).

    >>> training_length(10)
    {'epochs': 25000, 'iterations': 250000, 'num_training_epoch_per_valid': 1250}
    >>> training_length(10, step_seconds=0.5, time_budget_s=1000)
    {'epochs': 180, 'iterations': 1800, 'num_training_epoch_per_valid': 9}
    """
    iters = total_iterations
    if time_budget_s is not None and step_seconds:
        iters = max(int(0.9 * time_budget_s / step_seconds), iterations_per_epoch)
    epochs = max(1, math.ceil(iters / max(iterations_per_epoch, 1)))
    return {"epochs": epochs, "iterations": epochs * iterations_per_epoch,
            "num_training_epoch_per_valid": max(1, epochs // validations)}
