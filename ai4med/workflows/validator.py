"""Validation during training: full volumes -> inferer -> metrics, reduced across ranks."""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from ai4med.common.constants import ImageProperty
from ai4med.components.models.torch_model import PredictionModule
from ai4med.config.errors import ConfigError
from ai4med.errors import UserError
from ai4med.workflows.distributed import gather_objects
from ai4med.workflows.handlers.stats import format_duration

__all__ = ["PredictionModule", "Validator", "case_name", "overlay_slice"]

logger = logging.getLogger(__name__)


def case_name(batch: dict[str, Any], index: int, fallback: str, field: str = "image") -> str:
    """The file name of sample `index` (from `batch["properties"][field]`), else `fallback`."""
    per_field = batch.get("properties") or {}
    samples = per_field.get(field) or []
    if index < len(samples) and samples[index]:
        name = samples[index].get(ImageProperty.FILENAME)
        if isinstance(name, (list, tuple)):  # one file per channel
            name = name[0] if name else None
        if name:
            return os.path.basename(str(name))
    return fallback


def overlay_slice(image: np.ndarray, pred: np.ndarray, label: np.ndarray | None = None) -> np.ndarray | None:
    """The middle slice (last axis) of a (C, *spatial) case as an HWC uint8 picture: grey image with
    the predicted classes in colour; the label's outline in white when given. 2D cases use the plane."""
    if image.ndim < 3:
        return None
    img = image[0]
    if img.ndim == 3:
        k = img.shape[2] // 2
        img = img[:, :, k]
        cls = (np.argmax(pred, 0) if pred.shape[0] > 1 else (pred[0] > 0.5))[:, :, k]
        lab = None if label is None else np.asarray(label).reshape(-1, *image.shape[1:])[0][:, :, k]
    else:
        cls = np.argmax(pred, 0) if pred.shape[0] > 1 else (pred[0] > 0.5)
        lab = None if label is None else np.asarray(label).reshape(-1, *image.shape[1:])[0]
    lo, hi = np.percentile(img, [1, 99])
    grey = np.clip((img - lo) / max(hi - lo, 1e-6), 0, 1)
    rgb = np.stack([grey] * 3, -1)
    palette = np.array([[0, 0, 0], [1, 0.2, 0.2], [0.2, 1, 0.2], [0.3, 0.5, 1], [1, 1, 0.2], [1, 0.3, 1]])
    cls = np.asarray(cls, dtype=np.int64)
    colour = palette[np.clip(cls, 0, len(palette) - 1)]
    mask = (cls > 0)[..., None]
    rgb = np.where(mask, 0.55 * rgb + 0.45 * colour, rgb)
    if lab is not None:
        lab = np.round(lab).astype(np.int64)
        edge = np.zeros(lab.shape, bool)
        edge[1:, :] |= lab[1:, :] != lab[:-1, :]
        edge[:, 1:] |= lab[:, 1:] != lab[:, :-1]
        rgb[edge] = 1.0
    return (np.rot90(rgb) * 255).astype(np.uint8)


class Validator:
    """Runs the validation pipeline through the inferer and feeds the metrics.

    Args:
        predict: `image (C, *spatial) numpy -> prediction (C', *spatial) numpy`.
        pipeline: the validation image pipeline (batches of full volumes).
        metrics: built metric components; `FieldMetric`s read `fields[field]` / `fields[label_field]`,
            seed-style metrics get `update(fields[field])`.
        output_field: the name the prediction is stored under (Clara: "model").
    """

    #: seconds between progress lines of a long validation (0: none)
    log_seconds: float = 30.0

    def __init__(self, predict: Any, pipeline: Any, metrics: Sequence[Any], output_field: str = "model",
                 image_field: str = "image", label_field: str = "label",
                 clock: Callable[[], float] = time.perf_counter) -> None:
        self.predict = predict
        self.pipeline = pipeline
        self.metrics = list(metrics)
        self.output_field = output_field
        self.image_field = image_field
        self.label_field = label_field
        self.last_slice: np.ndarray | None = None  # HWC uint8 overlay of the first case (TensorBoard)
        self.clock = clock

    def key_metric_name(self) -> str | None:
        keys = [m.get_name() for m in self.metrics if getattr(m, "is_key_metric", lambda: False)()]
        if len(keys) > 1:
            raise ValueError(f"exactly one validation metric may have is_key_metric true, got {keys}")
        if keys:
            return keys[0]
        return self.metrics[0].get_name() if self.metrics else None

    def run(self, epoch: int = 0) -> dict[str, float]:
        for m in self.metrics:
            m.reset()
        self.pipeline.set_epoch(epoch)
        seen = 0
        per_case: list[tuple[str, dict[str, Any]]] = []  # only the fields the metrics read
        try:
            total: int | None = len(self.pipeline)
        except TypeError:
            total = None
        start = last_line = self.clock()
        for done, batch in enumerate(self.pipeline, 1):
            images = batch[self.image_field]
            for i in range(images.shape[0]):
                pred = self.predict(images[i].numpy())
                fields = {k: (v[i].numpy() if torch.is_tensor(v) else v) for k, v in batch.items()
                          if k not in ("properties",)}
                fields[self.output_field] = pred
                name = case_name(batch, i, f"case_{seen}", self.image_field)
                self._check_grid(fields, images[i].shape[1:], name)
                if seen == 0:
                    self._check_fields(fields)
                    self.last_slice = overlay_slice(fields[self.image_field], pred, fields.get(self.label_field))
                per_case.append((name, self._metric_inputs(fields)))
                seen += 1
            now = self.clock()
            if self.log_seconds and now - last_line >= self.log_seconds:  # a long validation must not look hung
                last_line = now
                per_batch = (now - start) / done
                left = f", ~{format_duration(per_batch * (total - done))} left" if total and total > done else ""
                logger.info("validation: batch %d%s (%d cases, %.1f s a batch%s)", done,
                            f"/{total}" if total else "", seen, per_batch, left)
        # with several ranks each holds a shard; pool the per-case values on every rank
        pooled: dict[str, dict[str, Any]] = {}
        for shard in gather_objects(per_case):
            for name, inputs in shard:
                pooled.setdefault(name, inputs)  # shards pad with repeats: keep one per case
        for name, inputs in pooled.items():
            for m in self.metrics:
                if hasattr(m, "update_from"):
                    m.update_from(inputs, name)
                else:
                    m.update(inputs[m.get_field()], name)
        return {m.get_name(): float(np.asarray(m.get()).mean()) for m in self.metrics}

    def _check_grid(self, fields: dict[str, Any], spatial: tuple[int, ...], name: str) -> None:
        """The metrics compare label and prediction voxel by voxel: a label off the image's grid is named
        here (it failed later as a reshape error in the overlay picture or a metric)."""
        label = fields.get(self.label_field)
        shape = tuple(np.shape(label))
        if label is None or len(shape) < len(spatial) or shape[-len(spatial):] == tuple(spatial):
            return
        raise UserError(f"validation case {name}: {self.label_field!r} has spatial shape {shape[-len(spatial):]} "
                        f"but the image {tuple(spatial)} after the validation pre-transforms: the metrics compare "
                        "them voxel by voxel (`ai4med check-datalist` lists every label off its image's grid)")

    def _check_fields(self, fields: dict[str, Any]) -> None:
        """Fail on the first case, naming the metric and the fields there are, rather than with a
        KeyError after the whole validation (seed 002's `"field": "accuracy"` names an aux-op output,
        which validation does not compute)."""
        for m in self.metrics:
            for kind, name in (("field", m.get_field()), ("label_field", getattr(m, "label_field", None))):
                if name is not None and name not in fields:
                    raise ConfigError(
                        f"validation metric {m.get_name()!r} ({type(m).__name__}) reads {kind} {name!r}, which "
                        f"validation does not produce; the fields are {', '.join(sorted(fields))} "
                        f"(\"{self.output_field}\" is the model's prediction): set its \"{kind}\" to one of them")

    def _metric_inputs(self, fields: dict[str, Any]) -> dict[str, Any]:
        """Only the fields the metrics read (keeps cross-rank traffic small)."""
        wanted = set()
        for m in self.metrics:
            wanted.add(m.get_field())
            if getattr(m, "label_field", None):
                wanted.add(m.label_field)
        return {k: v for k, v in fields.items() if k in wanted}

    def write_reports(self, folder: str) -> list[str]:
        """Reports of every metric: the built-in metrics default to `folder` (eval/); a seed-style
        `Metric` (BYOC, seed 002) writes where its `report_path` says, and nothing when that is None."""
        from ai4med.components.metrics.base import FieldMetric

        out = []
        for m in self.metrics:
            out += m.write_reports(folder) if isinstance(m, FieldMetric) else m.write_reports(None)
        return out
