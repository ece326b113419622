"""Synthetic 3D shapes with labels: fast, deterministic data for tests and quick demos."""

from __future__ import annotations

import logging

import numpy as np

from ai4med.datasets._writer import write_cases

logger = logging.getLogger(__name__)


def synthetic_case(
    size: int | tuple[int, int, int], rng: np.random.Generator, num_classes: int = 2
) -> tuple[np.ndarray, np.ndarray]:
    """One volume with `num_classes - 1` random ellipsoids on a noisy background.

    Returns (image float32, label uint8) of the same shape; label k marks ellipsoid k,
    whose mean intensity is k (so the task is learnable but not trivial under noise).
    """
    shape = (size, size, size) if isinstance(size, int) else tuple(size)
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij"), -1)
    label = np.zeros(shape, np.uint8)
    for k in range(1, num_classes):
        radii = rng.uniform(0.12, 0.25, 3) * np.array(shape)
        centre = rng.uniform(0.3, 0.7, 3) * np.array(shape)
        inside = (((grid - centre) / radii) ** 2).sum(-1) <= 1.0
        label[inside] = k
    image = label.astype(np.float32) + rng.normal(0.0, 0.35, shape).astype(np.float32)
    return image, label


def make_synthetic_dataset(
    out_dir: str, num_cases: int = 6, size: int = 64, seed: int = 0, num_classes: int = 2,
    spacing: tuple[float, float, float] = (1.0, 1.0, 1.5), num_validation: int | None = None,
) -> str:
    """Write `num_cases` synthetic NIfTI pairs and `datalist.json` under `out_dir`.

    Example:
        >>> path = make_synthetic_dataset("/tmp/syn", num_cases=4, size=32)  # doctest: +SKIP
    """
    if num_cases < 1:
        raise ValueError("num_cases must be >= 1")
    rng = np.random.default_rng(seed)
    cases = [synthetic_case(size, rng, num_classes) for _ in range(num_cases)]
    affine = np.diag([*spacing, 1.0])
    labels = {"0": "background", **{str(k): f"object_{k}" for k in range(1, num_classes)}}
    path = write_cases(out_dir, cases, affine, labels, "ai4med synthetic ellipsoids",
                       num_validation if num_validation is not None else max(1, num_cases // 3))
    logger.info("wrote %d synthetic cases to %s", num_cases, out_dir)
    return path
