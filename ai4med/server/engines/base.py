"""Engine: one served model and the inference template every engine follows.

    pre (engine guidance + configured pre_transforms) -> infer (the device's queue) ->
    post (activation, threshold/argmax, configured post_transforms) -> result on the input grid

Each stage's wall time is returned in `params["latencies"]`. Engines never read or write
files and never see HTTP: the router hands them a `SpatialView` and the request params
and gets back an `EngineResult`.

Example:
    >>> import numpy as np
    >>> to_label(np.array([[[0.2, 0.9]], [[0.8, 0.1]]], "f4"), 0.5).tolist()
    [[1, 0]]
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.server.engines.config import ModelConfigError, build_component, build_context, transform_node
from ai4med.server.errors import ApiError
from ai4med.server.images import SpatialView

logger = logging.getLogger(__name__)

#: transforms the engines do themselves (guidance, loading, activation/argmax, writing)
ENGINE_HANDLED = {
    "AddExtremePointsChannel", "LoadNifti", "LoadNifty", "LoadPng", "LoadJpg", "LoadNumpyFromFilename",
    "LoadImageMasksFromNumpy", "SplitAcrossChannels", "ArgmaxAcrossChannels", "ThresholdValues",
    "WriteNiftyResults", "SaveAsNifti", "SplitBasedOnLabel", "FetchExtremePoints", "RestoreOriginalShape",
}


@dataclass
class EngineResult:
    """What an engine returns: a mask on the input grid (or None) and the reply params."""

    mask: np.ndarray | None
    params: dict[str, Any] = field(default_factory=dict)
    #: v1 `points` part (bare array), for segmentation-type results
    points: list[list[int]] | None = None


def to_probabilities(pred: np.ndarray, activation: str = "auto") -> np.ndarray:
    """Channel-first network output as probabilities (softmax / sigmoid unless already in [0, 1])."""
    act = activation.lower()
    if act == "auto":
        in_unit = float(pred.min(initial=0.0)) >= 0.0 and float(pred.max(initial=0.0)) <= 1.0
        sums_one = pred.shape[0] == 1 or bool(np.allclose(pred.sum(axis=0), 1.0, atol=1e-3))
        act = "none" if in_unit and sums_one else ("sigmoid" if pred.shape[0] == 1 else "softmax")
    if act == "softmax":
        e = np.exp(pred - pred.max(axis=0, keepdims=True))
        return e / e.sum(axis=0, keepdims=True)
    if act == "sigmoid":
        return 1.0 / (1.0 + np.exp(-pred))
    return pred


def to_label(prob: np.ndarray, thresh: float = 0.5) -> np.ndarray:
    """Probabilities (C, *spatial) -> uint8 label map: C=1 or 2 thresholded, else argmax."""
    if prob.shape[0] == 1:
        return (prob[0] > thresh).astype(np.uint8)
    if prob.shape[0] == 2:
        return (prob[1] > thresh).astype(np.uint8)
    return np.argmax(prob, axis=0).astype(np.uint8)


def resize(data: np.ndarray, shape: Sequence[int], order: int) -> np.ndarray:
    """Resample the spatial axes of channel-first `data` to `shape` (order 1 linear, 0 nearest)."""
    shape = tuple(int(s) for s in shape)
    if tuple(data.shape[1:]) == shape:
        return data
    import torch

    t = torch.from_numpy(np.ascontiguousarray(data, dtype=np.float32))[None]
    mode = "nearest-exact" if order == 0 else ("trilinear" if len(shape) == 3 else "bilinear")
    kw = {} if order == 0 else {"align_corners": True}
    out = torch.nn.functional.interpolate(t, size=shape, mode=mode, **kw)[0].numpy()
    return out


class Engine:
    """A served model.

    Args:
        name: the model name (unique in the pool).
        entry: its engine_pool.json object (name, class, module, config_file, labels, ...).
        config: the model config file's content (keys normalised).
        config_path: that file's path (relative paths in it resolve from its folder).
        device: where the model runs.
    """

    #: the AIAA model `type` of this engine
    model_type: ClassVar[str] = "others"
    internal_name: ClassVar[str] = "Engine"

    def __init__(self, name: str, entry: dict[str, Any], config: dict[str, Any], config_path: str,
                 device: str = "cpu") -> None:
        self.name = name
        self.entry = dict(entry)
        self.config = dict(config)
        self.config_path = config_path
        self.config_dir = os.path.dirname(os.path.abspath(config_path)) if config_path else os.getcwd()
        self.device = str(config.get("device") or entry.get("device") or device)
        labels = entry.get("labels", config.get("labels", []))
        self.labels = [str(x) for x in labels] if isinstance(labels, list) else [str(labels)]
        self.description = str(entry.get("description", config.get("description", "")))
        self.version = str(config.get("version", entry.get("version", "3")))
        self.thresh = float(config.get("thresh", 0.5))
        self.activation = str(config.get("final_activation", "auto"))
        self.context: Any = None
        self.inferer: Any = None
        self.pre: list[Any] = []
        self.post: list[Any] = []
        self.post_fields: list[str] = []
        self.stats = {"requests": 0, "errors": 0, "total_s": 0.0}
        self._stats_lock = threading.Lock()

    # --- loading ----------------------------------------------------------------------
    def default_inferer(self) -> dict[str, Any]:
        return {"name": "TorchSimpleInferer"}

    def load(self) -> None:
        """Build the model, the inferer and the transforms (raises ModelConfigError)."""
        self.context = build_context(self.config, self.config_dir, self.device)
        node = self.config.get("inferer") or self.config.get("inference") or self.default_inferer()
        self.inferer = self._build(node, "inferers", "inferer")
        self.pre = self._transforms(self.config.get("pre_transforms") or [], "pre_transforms")
        self.post = self._transforms(self.config.get("post_transforms") or [], "post_transforms")

    def _build(self, node: Any, kind: str, what: str) -> Any:
        try:
            return build_component(node, kind, self.config_path)
        except Exception as exc:
            raise ModelConfigError(f"{self.config_path}: {what}: {exc}") from exc

    def _transforms(self, nodes: list[Any], what: str) -> list[Any]:
        if not isinstance(nodes, list):
            raise ModelConfigError(f"{self.config_path}: {what} must be a list")
        out = []
        for i, raw in enumerate(nodes):
            if not isinstance(raw, dict):
                raise ModelConfigError(f"{self.config_path}: {what}[{i}] must be an object")
            node = transform_node(raw)
            if node.get("disabled") or node["name"] in ENGINE_HANDLED:
                continue
            out.append(self._build(node, "transforms", f"{what}[{i}]"))
        return out

    def in_channels(self, default: int = 1) -> int:
        """Input channels of the model (declared, else guessed from its first convolution)."""
        if "in_channels" in self.config:
            return int(self.config["in_channels"])
        try:
            shape = next(iter(self.context.get_model_input_shapes().values()))
            return int(shape[1]) if len(shape) > 1 and shape[1] else default
        except Exception:
            return default

    def warmup_input(self) -> np.ndarray | None:
        """A dummy input for `warmup` (None: no warm-up)."""
        return None

    def warmup(self) -> None:
        """One dummy call (exports / compiles lazily built runtimes before the first request)."""
        if not self.config.get("warmup", True) or self.context is None:
            return
        x = self.warmup_input()
        if x is not None:
            t0 = time.perf_counter()
            self.infer(x)
            logger.info("model %s warmed up in %.2fs", self.name, time.perf_counter() - t0)

    def close(self) -> None:
        if self.context is not None:
            try:
                self.context.close()
            except Exception:  # pragma: no cover
                logger.exception("closing model %s", self.name)
            self.context = None

    # --- description ------------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        """The model object of `/v1/models` (aiaa_api.md §3.2)."""
        return {
            "name": self.name,
            "type": self.model_type,
            "labels": list(self.labels),
            "description": self.description,
            "version": self.version,
            "internal name": self.internal_name,
        }

    # --- the template -----------------------------------------------------------------
    def run(self, view: SpatialView, params: dict[str, Any]) -> EngineResult:
        """Validate, pre-process, infer and post-process one request (in the device's worker)."""
        if self.context is None:
            raise ApiError(503, f"model {self.name!r} is not loaded")
        t0 = time.perf_counter()
        try:
            result = self.process(view, params)
        except ApiError:
            self._count(t0, error=True)
            raise
        except Exception:
            self._count(t0, error=True)
            raise
        self._count(t0)
        return result

    def _count(self, t0: float, error: bool = False) -> None:
        with self._stats_lock:
            self.stats["requests"] += 1
            self.stats["errors"] += int(error)
            self.stats["total_s"] += time.perf_counter() - t0

    def process(self, view: SpatialView, params: dict[str, Any]) -> EngineResult:
        raise NotImplementedError

    # --- stages shared by the engines ---------------------------------------------------
    def apply_pre(self, data: np.ndarray, like: MedicalImage) -> np.ndarray:
        """Configured pre_transforms on channel-first data; returns channel-first float32."""
        if not self.pre:
            return data.astype(np.float32, copy=False)
        fmt = "CDHW" if data.ndim == 4 else "CHW"
        img = like.new_image(data.astype(np.float32, copy=False), fmt)
        # configs written for training name a label field too (VolumeTo4dArray(["image", "label"]));
        # at inference an empty label stands in for it
        label = like.new_image(np.zeros(data.shape[1:], np.uint8), fmt[1:])
        ctx = TransformContext({"image": img, "label": label}, rng=np.random.default_rng(0))
        try:
            for t in self.pre:
                ctx = t(ctx) if callable(t) else t.transform(ctx)
        except ApiError:
            raise
        except Exception as exc:
            raise ApiError(400, f"pre-processing failed for this image: {str(exc)[:300]}") from None
        out = ctx.get_image("image")
        sf = out.get_shape_format()
        arr = out.get_data()
        arr = np.moveaxis(arr, sf.get_channel_axis(), 0) if sf.has_channel() else arr[None]
        return np.ascontiguousarray(arr, dtype=np.float32)

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Channel-first input -> channel-first float output of the model."""
        fmt = "CDHW" if x.ndim == 4 else "CHW"
        out = self.inferer.infer({"image": x}, fmt, self.context)
        pred = next(iter(out.values())) if isinstance(out, dict) else out
        return np.asarray(pred, dtype=np.float32)

    def apply_post(self, label: np.ndarray, like: MedicalImage) -> np.ndarray:
        """Configured post_transforms on the label map (fields `model`, `pred`, `label`)."""
        if not self.post:
            return label
        fmt = "DHW" if label.ndim == 3 else "HW"
        img = like.new_image(label, fmt)
        ctx = TransformContext({"model": img, "pred": img, "label": img}, rng=np.random.default_rng(0))
        for t in self.post:
            ctx = t(ctx) if callable(t) else t.transform(ctx)
        for key in ("model", "pred", "label"):
            out = ctx.get(key)
            if isinstance(out, MedicalImage) and out is not img:
                return np.asarray(out.get_data()).astype(np.uint8).reshape(label.shape)
        return label

    def label_from_pred(self, pred: np.ndarray) -> np.ndarray:
        return to_label(to_probabilities(pred, self.activation), self.thresh)


def timed(latencies: dict[str, float], stage: str, t0: float) -> float:
    """Record the stage's seconds since t0; returns now."""
    now = time.perf_counter()
    latencies[stage] = round(now - t0, 4)
    return now
