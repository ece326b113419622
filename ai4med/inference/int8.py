"""INT8, opt-in: NNCF post-training quantisation of an exported ONNX model, run on OpenVINO, gated on masks.

`ai4med export --int8` quantises the export with NNCF, calibrated on windows of the training
datalist's images after the config's inference pre-transforms (the inputs the network sees), and
keeps the INT8 model (`<name>_int8.xml` + `.bin`) only when its masks agree with the fp32 model's
on the validation cases (mean Dice >= `min_dice`, default 0.99); the window positions are cached
beside the export (`<name>_int8_calibration.json`) so a re-export calibrates on the same windows.
`precision="int8"` (CLI `--precision int8`, server / deploy model configs) runs that file, which
must exist.

The export tries the presets of `PRESETS` fastest first and keeps the first whose masks pass the
bar. On a 2-core AVX2 CPU without VNNI, INT8 gains little over OpenVINO fp32 (a batch of four 96^3
windows of the bench UNet: about 1.3 s vs 1.5 s under load in one probe); CPUs with VNNI / AMX-INT8
gain more (a 2-core Sapphire Rapids: 0.54 s a scan vs 1.07 s for OpenVINO fp32). Measure with
`bench/inference.py`.

Example:
    >>> windows_of(np.zeros((1, 10, 10, 10), np.float32), [4, 4, 4], 2, np.random.default_rng(0))[0].shape
    (1, 1, 4, 4, 4)
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ai4med.components.inferers.openvino_graph import split_thin_transposed_convs
from ai4med.errors import UserError

__all__ = ["PRESETS", "windows_of", "calibration_windows", "quantize", "int8_path", "mask_dice", "require_nncf"]

logger = logging.getLogger(__name__)


def require_nncf() -> None:
    import importlib.util

    if importlib.util.find_spec("nncf") is None or importlib.util.find_spec("openvino") is None:
        raise UserError("INT8 needs NNCF and OpenVINO: pip install nncf openvino (or pip install 'ai4med[int8]')")


def int8_path(model_path: str) -> str:
    """Where the INT8 model of an export lives: `<folder>/<stem>_int8.xml` (`model.onnx` -> `model_int8.xml`)."""
    folder, name = os.path.split(os.path.abspath(model_path))
    stem = name.rsplit(".", 1)[0] if "." in name else name
    return os.path.join(folder, stem.removesuffix("_int8") + "_int8.xml")


def windows_of(image: np.ndarray, size: Sequence[int], n: int, rng: np.random.Generator,
               positions: list[list[int]] | None = None) -> list[np.ndarray]:
    """`n` windows (1, C, *size) of a channel-first image (zero-padded when smaller); the starts are appended
    to `positions` when given, or read from it when it already holds `n` of them."""
    spatial = image.shape[1:]
    pad = [(0, 0)] + [(0, max(0, int(s) - d)) for s, d in zip(size, spatial)]
    if any(p[1] for p in pad[1:]):
        image = np.pad(image, pad)
        spatial = image.shape[1:]
    out = []
    for i in range(n):
        if positions is not None and i < len(positions):
            start = positions[i]
        else:
            start = [int(rng.integers(0, d - s + 1)) for d, s in zip(spatial, size)]
            if positions is not None:
                positions.append(start)
        sl = tuple(slice(a, a + int(s)) for a, s in zip(start, size))
        out.append(np.ascontiguousarray(image[(slice(None), *sl)][None], dtype=np.float32))
    return out


def calibration_windows(pipeline: Any, items: Sequence[dict[str, Any]], size: Sequence[int], n: int,
                        cache: str | None = None, seed: int = 0, cache_out: str | None = None) -> list[np.ndarray]:
    """`n` windows over the items (spread evenly), after the pipeline's pre-transforms; positions read from
    `cache` (JSON) when it matches the items and size, and written to `cache_out` (default `cache`)."""
    if not items:
        raise UserError("INT8 calibration needs training images: the datalist's training list is empty")
    key = {"items": [str(it.get(pipeline.image_field)) for it in items], "size": [int(s) for s in size], "n": n}
    positions: dict[str, list[list[int]]] = {}
    if cache and os.path.isfile(cache):
        try:
            doc = json.load(open(cache))
            if doc.get("key") == key:
                positions = doc["positions"]
        except (OSError, ValueError, KeyError):
            positions = {}
    rng = np.random.default_rng(seed)
    per = [n // len(items) + (1 if i < n % len(items) else 0) for i in range(len(items))]
    windows: list[np.ndarray] = []
    for idx, (item, k) in enumerate(zip(items, per)):
        if k == 0:
            continue
        ctx = pipeline.prepare(dict(item))
        img = ctx.get_image(pipeline.image_field)
        sf = img.get_shape_format()
        data = np.moveaxis(img.get_data(), sf.get_channel_axis(), 0) if sf.has_channel() else img.get_data()[None]
        pos = positions.setdefault(key["items"][idx], [])
        windows += windows_of(data, size, k, rng, pos)
    if cache_out or cache:
        from ai4med.io.atomic import atomic_write_text

        atomic_write_text(cache_out or cache, json.dumps({"key": key, "positions": positions}) + "\n")
    return windows


#: NNCF presets, fastest first: PERFORMANCE (symmetric activations) runs every convolution on AMX-INT8 /
#: VNNI kernels (a scan of the bench UNet: 0.54 s vs 0.90 s for MIXED on a 2-core Sapphire Rapids, mask
#: Dice vs fp32 0.993 vs 0.994); MIXED (asymmetric activations) is kept for models that need it
PRESETS = ("performance", "mixed")


def quantize(onnx_path: str, windows: Sequence[np.ndarray], out_xml: str, preset: str = PRESETS[0]) -> str:
    """NNCF post-training quantisation of the ONNX model on `windows` with `preset` (one of `PRESETS`);
    saves the OpenVINO IR `out_xml`."""
    require_nncf()
    import nncf
    import openvino as ov

    if preset not in PRESETS:
        raise ValueError(f"preset must be one of {PRESETS}, got {preset!r}")
    model = ov.Core().read_model(onnx_path)
    split_thin_transposed_convs(model)  # before quantising: the sub-pixel convolution is quantised too
    name = model.inputs[0].get_any_name()
    data = nncf.Dataset(list(windows), lambda w: {name: w})
    quantized = nncf.quantize(model, data, subset_size=len(windows),
                              preset=getattr(nncf.QuantizationPreset, preset.upper()))
    ov.save_model(quantized, out_xml)
    return out_xml


def mask_dice(a: np.ndarray, b: np.ndarray) -> float:
    """Mean Dice over the labels present in either map (1.0 when both are empty)."""
    labels = sorted(set(np.unique(a).tolist()) | set(np.unique(b).tolist()) - {0})
    if not labels:
        return 1.0
    scores = []
    for v in labels:
        x, y = a == v, b == v
        scores.append(2.0 * np.logical_and(x, y).sum() / max(1, x.sum() + y.sum()))
    return float(np.mean(scores))
