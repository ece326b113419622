"""Dataset fingerprint: what the planning rules read (nnU-Net v2's `DatasetFingerprintExtractor`).

Per case: shape, spacing, orientation (axis codes), the shape after cropping to the image's
nonzero region, per channel the 0.5 / 50 / 99.5 percentiles, mean and std of the intensities
under the label's foreground, class voxel fractions and connected-component counts. The
dataset-level intensity statistics pool a fixed-size random sample of foreground voxels of
every case, as nnU-Net does (10 000 per case), so a big case does not dominate.

Cases are read in a process pool (2 workers at most: the machines this runs on share their
cores) behind a tqdm bar, and cached in `fingerprint_cache.json` keyed by each file's path,
size and mtime: re-planning after adding cases reads only the new ones.
"""

from __future__ import annotations

import base64
import json
import logging
import os
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

from ai4med.errors import UserError

logger = logging.getLogger(__name__)

__all__ = ["case_fingerprint", "dataset_fingerprint", "file_key", "SAMPLES_PER_CASE"]

#: foreground voxels sampled per case for the dataset's intensity statistics (nnU-Net: 10 000)
SAMPLES_PER_CASE = 10000
CACHE_VERSION = 2


def file_key(paths: Sequence[str]) -> list[list[Any]]:
    """[[path, size, mtime_ns], ...]: changes whenever a file is replaced or edited."""
    out = []
    for p in paths:
        st = os.stat(p)
        out.append([os.path.abspath(p), st.st_size, st.st_mtime_ns])
    return out


def _paths(case: dict[str, Any]) -> list[str]:
    image = case["image"] if isinstance(case["image"], list) else [case["image"]]
    return [*image, case["label"]]


def _load(case: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(image (C, *spatial) float32, label (*spatial) int, affine) of one case."""
    import nibabel as nib

    images = case["image"] if isinstance(case["image"], list) else [case["image"]]
    chans, affine = [], None
    for p in images:
        try:
            img = nib.load(p)
        except Exception as exc:  # nibabel raises several types for bad files
            raise UserError(f"{p}: cannot read image: {exc}") from exc
        data = np.asanyarray(img.dataobj).astype(np.float32)
        affine = img.affine if affine is None else affine
        chans.extend([data] if data.ndim == 3 else list(np.moveaxis(data, -1, 0)))
    try:
        lab = nib.load(case["label"])
    except Exception as exc:
        raise UserError(f"{case['label']}: cannot read label: {exc}") from exc
    label = np.asanyarray(lab.dataobj)
    label = np.rint(label).astype(np.int64) if label.dtype.kind == "f" else label.astype(np.int64)
    image = np.stack(chans)
    if image.shape[1:] != label.shape:
        raise UserError(f"{case['label']}: label shape {label.shape} differs from the image's {image.shape[1:]}")
    return image, label, affine


def case_fingerprint(case: dict[str, Any], seed: int = 0, samples: int = SAMPLES_PER_CASE) -> dict[str, Any]:
    """The fingerprint of one case (see the module docstring); `samples` foreground values kept per channel."""
    import nibabel as nib
    from scipy import ndimage

    from ai4med.components.transforms.crop import foreground_bbox

    image, label, affine = _load(case)
    spacing = [float(v) for v in np.sqrt((affine[:3, :3] ** 2).sum(0))]
    nonzero = np.any(image != 0, axis=0)
    box = foreground_bbox(nonzero)
    crop_shape = [b - a for a, b in zip(*box)] if box else list(label.shape)
    fg = label > 0
    rng = np.random.default_rng(seed)
    channels = []
    for c in range(image.shape[0]):
        vals = image[c][fg] if fg.any() else image[c][nonzero] if nonzero.any() else image[c].ravel()
        stats = {
            "mean": float(vals.mean()), "std": float(vals.std()),
            "percentile_00_5": float(np.percentile(vals, 0.5)), "median": float(np.median(vals)),
            "percentile_99_5": float(np.percentile(vals, 99.5)),
            "min": float(vals.min()), "max": float(vals.max()),
        }
        pick = rng.choice(vals.size, min(samples, vals.size), replace=False) if vals.size else []
        channels.append({"stats": stats, "sample": _pack(vals[pick])})
    total = float(label.size)
    classes = {}
    for k in np.unique(label):
        if k == 0:
            continue
        mask = label == k
        _, n_cc = ndimage.label(mask)
        classes[str(int(k))] = {"fraction": float(mask.sum() / total), "components": int(n_cc)}
    return {
        "shape": [int(s) for s in label.shape],
        "spacing": spacing,
        "orientation": "".join(nib.aff2axcodes(affine)),
        "num_channels": int(image.shape[0]),
        "crop_shape": [int(s) for s in crop_shape],
        "crop_fraction": float(np.prod(crop_shape) / total),
        "intensity": [ch["stats"] for ch in channels],
        "classes": classes,
        "_samples": [ch["sample"] for ch in channels],
    }


def _pack(values: np.ndarray) -> str:
    """A sample as base64 float32 (a quarter of the JSON text of the numbers)."""
    return base64.b64encode(np.asarray(values, "<f4").tobytes()).decode("ascii")


def _unpack(text: str) -> np.ndarray:
    return np.frombuffer(base64.b64decode(text), "<f4").astype(np.float64)


def _job(args: tuple[dict[str, Any], int]) -> dict[str, Any]:
    return case_fingerprint(*args)


def _read_cache(path: str | None) -> dict[str, Any]:
    if not path or not os.path.isfile(path):
        return {}
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except (OSError, json.JSONDecodeError) as exc:
        logger.warning("ignoring an unreadable fingerprint cache %s: %s", path, exc)
        return {}
    return data.get("cases", {}) if data.get("version") == CACHE_VERSION else {}


def dataset_fingerprint(
    cases: Sequence[dict[str, Any]], cache_path: str | None = None, workers: int = 2, progress: bool = True,
) -> dict[str, Any]:
    """Fingerprint of every case plus the dataset's pooled foreground intensity statistics.

    Args:
        cases: `{"image": path or [paths], "label": path}` items, paths absolute.
        cache_path: JSON cache of per-case results (read, then rewritten atomically).
        workers: process-pool size (capped at 2).
        progress: show a tqdm bar.
    """
    from tqdm import tqdm

    from ai4med.io.atomic import atomic_write_text

    cache = _read_cache(cache_path)
    keys = [json.dumps(file_key(_paths(c))) for c in cases]
    todo = [i for i, k in enumerate(keys) if k not in cache]
    results: dict[int, dict[str, Any]] = {i: cache[keys[i]] for i in range(len(cases)) if keys[i] in cache}
    if todo:
        logger.info("fingerprinting %d case(s) (%d cached)", len(todo), len(cases) - len(todo))
        jobs = [(cases[i], i) for i in todo]
        workers = max(1, min(2, int(workers), len(todo)))
        bar = tqdm(total=len(todo), desc="fingerprint", unit="case", disable=not progress)
        try:
            if workers == 1:
                for i, job in zip(todo, jobs):
                    results[i] = _job(job)
                    bar.update()
            else:
                with ProcessPoolExecutor(workers) as pool:
                    for i, res in zip(todo, pool.map(_job, jobs)):
                        results[i] = res
                        bar.update()
        finally:
            bar.close()
        if cache_path:
            cache.update({keys[i]: results[i] for i in todo})
            live = {k: cache[k] for k in keys}
            atomic_write_text(cache_path, json.dumps({"version": CACHE_VERSION, "cases": live}))
    per_case = [results[i] for i in range(len(cases))]
    n_ch = {r["num_channels"] for r in per_case}
    if len(n_ch) != 1:
        raise UserError(f"cases have different channel counts: {sorted(n_ch)}")
    pooled = []
    for c in range(n_ch.pop()):
        vals = np.concatenate([_unpack(r["_samples"][c]) for r in per_case])
        pooled.append({
            "mean": float(vals.mean()), "std": float(vals.std()),
            "percentile_00_5": float(np.percentile(vals, 0.5)), "median": float(np.median(vals)),
            "percentile_99_5": float(np.percentile(vals, 99.5)),
            "min": float(vals.min()), "max": float(vals.max()),
        })
    out_cases = []
    for case, r in zip(cases, per_case):
        entry = {k: v for k, v in r.items() if not k.startswith("_")}
        entry["image"] = case["image"]
        entry["label"] = case["label"]
        out_cases.append(entry)
    classes = sorted({int(k) for r in per_case for k in r["classes"]})
    return {"num_cases": len(cases), "num_channels": len(pooled), "classes": classes,
            "foreground_intensity": pooled, "cases": out_cases}
