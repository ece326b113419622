"""Engine: one served model, run through the one inference template (`ai4med.inference.pipeline`).

    guidance in (the engine: crop around clicks, ...) -> configured pre_transforms ->
    guidance channels (the engine: points, clicks) -> infer (the device's queue) ->
    configured post_transforms -> label map back on the uploaded image's grid

The CLI, the deploy app and every engine share the model opener, the pre/post stages and the
rule that turns an output into a label map (`to_label_map`: argmax over several channels,
`> thresh` for one) and brings it back through the geometry (AFFINEs). An engine keeps only
what is its own: the guidance it turns into input (`guidance_in`, `add_guidance`) and the reply
params. The configured transforms run as configured; the few an engine performs itself from
the request (`GUIDANCE`) and file writers (a server writes no files) are named in the log when
the model loads, never dropped silently.

Each stage's wall time is returned in `params["latencies"]`. Engines never read or write
files and never see HTTP: the router hands them a `SpatialView` and the request params
and gets back an `EngineResult`.

Example:
    >>> import numpy as np
    >>> [round(float(p), 3) for p in to_probabilities(np.array([[[0.0, 2.0]], [[0.0, 0.0]]], "f4"))[:, 0, 1]]
    [0.881, 0.119]
"""

from __future__ import annotations

import logging
import os
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar

import numpy as np

from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.server.engines.config import ModelConfigError, build_component, build_context, transform_node
from ai4med.server.errors import ApiError
from ai4med.server.images import SpatialView

logger = logging.getLogger(__name__)

#: transforms that write files: a server replies with the result and writes nothing
WRITERS = {"WriteNiftyResults", "SaveAsNifti"}


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
    #: configured pre_transforms the engine performs itself from the request (name -> what replaces it)
    GUIDANCE: ClassVar[dict[str, str]] = {}

    def default_inferer(self) -> dict[str, Any]:
        return {"name": "TorchSimpleInferer"}

    def load(self) -> None:
        """Build the model, the inferer, the transforms and the case pipeline (raises ModelConfigError)."""
        from ai4med.inference.pipeline import CasePipeline

        self.context = build_context(self.config, self.config_dir, self.device, self.config_path)
        node = self.config.get("inferer") or self.config.get("inference") or self.default_inferer()
        self.inferer = self._build(node, "inferers", "inferer")
        self.guidance_nodes: dict[str, Any] = {}
        self.pre = self._transforms(self.config.get("pre_transforms") or [], "pre_transforms")
        self.post = self._transforms(self.config.get("post_transforms") or [], "post_transforms")
        self.result_field = self._result_field()
        self.pipeline = CasePipeline(self.context, self.inferer, self.pre, self.post, (),
                                     result_field=self.result_field, threshold=self.thresh)

    def _build(self, node: Any, kind: str, what: str) -> Any:
        try:
            return build_component(node, kind, self.config_path)
        except Exception as exc:
            raise ModelConfigError(f"{os.path.basename(self.config_path or '')}: {what}: {exc}") from exc

    def _transforms(self, nodes: list[Any], what: str) -> list[Any]:
        if not isinstance(nodes, list):
            raise ModelConfigError(f"{self.config_path}: {what} must be a list")
        out = []
        for i, raw in enumerate(nodes):
            if not isinstance(raw, dict):
                raise ModelConfigError(f"{self.config_path}: {what}[{i}] must be an object")
            node = transform_node(raw)
            if node.get("disabled"):
                continue
            name = node["name"]
            if what == "pre_transforms" and name in self.GUIDANCE:
                self.guidance_nodes[name] = self._build(node, "transforms", f"{what}[{i}]")
                logger.info("model %s: %s[%d] %s is done by the engine, at its place in the chain: %s", self.name,
                            what, i, name, self.GUIDANCE[name])
                out.append(GuidanceStep(name))
                continue
            if name in WRITERS:
                logger.info("model %s: %s[%d] %s skipped: the server replies with the result and writes no "
                            "files", self.name, what, i, name)
                continue
            out.append(self._build(node, "transforms", f"{what}[{i}]"))
        return out

    def _result_field(self) -> str | None:
        """The field the reply's mask comes from: the first configured writer's (seed 004 writes the
        `prediction` channel split off by SplitAcrossChannels), else the prediction itself."""
        for w in self.config.get("writers") or []:
            if isinstance(w, dict):
                node = transform_node(w)
                key = (node.get("args") or {}).get("applied_key") or (node.get("args") or {}).get("field")
                if isinstance(key, str) and key not in ("image", "label"):
                    return key
        return None

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

    # --- the template -------------------------------------------------------------------
    def run_case(self, image: MedicalImage, lat: dict[str, float],
                 guidance: dict[str, tuple[Callable[[TransformContext], TransformContext], str]] | None = None,
                 ) -> np.ndarray:
        """One request through the template; returns the label map on `image`'s own grid.

        `guidance` maps a `GUIDANCE` transform name to (what the engine does instead, "first" or
        "last"): it runs where the config names that transform, else before ("first") or after
        ("last") the configured pre-transforms. E.g. DEXTR3D's crop around the clicks (tracked in
        the AFFINE) and its points channel.
        """
        t = time.perf_counter()
        guidance = dict(guidance or {})
        ctx = TransformContext({"image": image, GuidanceStep.FIELD: guidance}, rng=np.random.default_rng(0))
        placed = {step.name for step in self.pre if isinstance(step, GuidanceStep)}
        try:
            for name, (fn, where) in guidance.items():
                if name not in placed and where == "first":
                    ctx = fn(ctx)
            ctx = self.pipeline.prepare(ctx)
            for name, (fn, where) in guidance.items():
                if name not in placed and where != "first":
                    ctx = fn(ctx)
            del ctx[GuidanceStep.FIELD]
        except ApiError:
            raise
        except Exception as exc:
            raise ApiError(400, f"pre-processing failed for this image: {str(exc)[:300]}") from None
        t = timed(lat, "pre", t)
        ctx["model"] = self.pipeline.predict(ctx)
        t = timed(lat, "infer", t)
        ctx = self.pipeline.postprocess(ctx)
        mask = self.pipeline.result(ctx).get_data()
        timed(lat, "post", t)
        return np.ascontiguousarray(mask, dtype=np.uint8) if mask.max(initial=0) <= 255 else mask

    def infer(self, x: np.ndarray) -> np.ndarray:
        """Channel-first input -> channel-first float output of the model (warm-up)."""
        fmt = "CDHW" if x.ndim == 4 else "CHW"
        out = self.inferer.infer({"image": x}, fmt, self.context)
        pred = next(iter(out.values())) if isinstance(out, dict) else out
        return np.asarray(pred, dtype=np.float32)


class GuidanceStep:
    """Stands in a configured chain for a transform the engine performs from the request (see
    `Engine.run_case`): it runs the engine's function put in the context for that name."""

    FIELD = "_engine_guidance"

    def __init__(self, name: str) -> None:
        self.name = name

    def is_deterministic(self) -> bool:
        return True

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        entry = (transform_ctx.get(self.FIELD) or {}).get(self.name)
        return entry[0](transform_ctx) if entry else transform_ctx


def float_image(view: SpatialView) -> MedicalImage:
    """The uploaded image as channel-first float32 (what the loaders give the CLI), geometry kept."""
    fmt = "CDHW" if view.data.ndim == 4 else "CHW"
    return view.image.new_image(view.data, fmt)


def timed(latencies: dict[str, float], stage: str, t0: float) -> float:
    """Record the stage's seconds since t0; returns now."""
    now = time.perf_counter()
    latencies[stage] = round(now - t0, 4)
    return now
