"""BulkEvaluator: a datalist through pre-transforms -> inferer -> post-transforms -> writers and metrics.

Clara's evaluate workflow (`validate.sh`, `infer.sh`) as one loop over cases:

1. the item's fields go through the pre-transforms (label steps are skipped for items that
   have no label, so an inference list of bare images works with a validation chain);
2. the inferer runs the image on the inference context (torch, TorchScript, ONNX Runtime or
   Triton); the first output becomes the field `model`, a `MedicalImage` carrying the
   image's properties (geometry, original grid, file name);
3. the post-transforms run (default `SegmentationPostProcess`: argmax / threshold, optional
   largest component, back onto the input's original grid);
4. with `do_validation`, each metric gets the prediction and the label *on the prediction's
   grid* (the label transforms' label, else the label file as read, else the transformed
   label); reports are `<metric>_raw_results.txt` / `<metric>_summary_results.txt`;
5. with `output_infer_result`, the writers write the case (default `PredictionWriter`:
   `<out>/<case>/<case>_model.nii.gz`, single channel squeezed, with the input's geometry;
   written atomically).

The next case's pre-transforms run on a background thread while the current one is
inferred. A case that fails is logged and skipped; the result lists it.

Example:
    >>> import os, tempfile, torch
    >>> from ai4med.datasets.synthetic import make_synthetic_dataset
    >>> from ai4med.components.inferers.torch_predictor import TorchInferenceContext
    >>> from ai4med.components.transforms.io import LoadNifti
    >>> from ai4med.components.transforms.channels import ConvertToChannelsFirst
    >>> d = tempfile.mkdtemp()
    >>> dl = make_synthetic_dataset(d, num_cases=2, size=16)
    >>> ctx = TorchInferenceContext(torch.nn.Conv3d(1, 2, 1), precision="fp32", runtime="torch")
    >>> ev = BulkEvaluator(load_items(dl, "validation"), ctx,
    ...                    pre_transforms=[LoadNifti(["image", "label"]), ConvertToChannelsFirst(["image", "label"])],
    ...                    output_dir=os.path.join(d, "eval"), progress=False)
    >>> res = ev.run(); len(res.cases), len(res.written), res.failed
    (1, 1, [])
"""

from __future__ import annotations

import contextlib
import copy
import logging
import os
import time
from collections.abc import Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ai4med.common.constants import ImageProperty
from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.data.dataset import run_chain
from ai4med.errors import UserError

__all__ = [
    "BulkEvaluator",
    "CaseResult",
    "EvaluationResult",
    "PredictionWriter",
    "SegmentationPostProcess",
    "load_items",
    "case_name",
]

logger = logging.getLogger(__name__)


def load_items(datalist: str, key: str = "validation", base_dir: str | None = None) -> list[dict[str, Any]]:
    """The items of one list of a Decathlon-style datalist, paths made absolute and checked."""
    from ai4med.io.datalist import load_datalist

    return load_datalist(datalist, key, base_dir)


def case_name(item: dict[str, Any], image_field: str = "image", index: int = 0) -> str:
    """The case's name: the image file's base name (first file of a multi-channel item)."""
    value = item.get(image_field)
    if isinstance(value, (list, tuple)) and value:
        value = value[0]
    if isinstance(value, (str, os.PathLike)):
        return os.path.basename(os.fspath(value))
    return f"case_{index}"


def _stem(name: str) -> str:
    for ext in (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".npy", ".png", ".jpg", ".jpeg", ".dcm"):
        if name.lower().endswith(ext):
            return name[: -len(ext)]
    return name


# --- post-processing and writing -----------------------------------------------------------
class SegmentationPostProcess:
    """Default post-processing of a segmentation prediction (a transform: `transform(ctx)`).

    Probabilities (C, *spatial) become a class map (1, *spatial): argmax over channels when
    C > 1, else `> threshold`; optionally only the largest connected component of each
    class is kept; the map is then brought back onto the grid the image was loaded on
    (`RestoreOriginalShape`, nearest neighbour), skipped when the grid did not change.

    Args:
        field: the prediction field ("model"). src_field: the image field ("image").
        threshold: for single-channel predictions. keep_largest_cc: clean each class.
        restore: return to the original grid.

    Example:
        >>> ctx = TransformContext({"model": MedicalImage(np.array([[[[0.2, 0.9]]], [[[0.8, 0.1]]]]), "CDHW")})
        >>> SegmentationPostProcess(restore=False).transform(ctx)["model"].get_data().tolist()
        [[[[1, 0]]]]
    """

    def __init__(self, field: str = "model", src_field: str = "image", threshold: float = 0.5,
                 keep_largest_cc: bool = False, restore: bool = True) -> None:
        self.field = field
        self.src_field = src_field
        self.threshold = float(threshold)
        self.keep_largest_cc = bool(keep_largest_cc)
        self.restore = bool(restore)

    def is_deterministic(self) -> bool:
        return True

    def transform(self, transform_ctx: TransformContext) -> TransformContext:
        from ai4med.components.transforms.post import ArgmaxAcrossChannels, KeepLargestCC, ThresholdValues

        img = transform_ctx.get_image(self.field)
        sf = img.get_shape_format()
        channels = img.shape[sf.get_channel_axis()] if sf.has_channel() else 1
        if channels > 1:
            ArgmaxAcrossChannels(self.field, keepdims=True, dtype="uint8").transform(transform_ctx)
        else:
            ThresholdValues(self.field, self.threshold, dtype="uint8").transform(transform_ctx)
        if self.keep_largest_cc:
            KeepLargestCC(self.field).transform(transform_ctx)
        if self.restore and self._grid_changed(transform_ctx):
            from ai4med.components.transforms.spatial import RestoreOriginalShape

            RestoreOriginalShape(self.field, src_field=self.src_field, is_label=True, dtype="uint8").transform(
                transform_ctx)
        return transform_ctx

    def _grid_changed(self, transform_ctx: TransformContext) -> bool:
        src = transform_ctx.get(self.src_field)
        if not isinstance(src, MedicalImage) or not src.has_property(ImageProperty.ORIGINAL_SHAPE):
            return False
        pred = transform_ctx.get_image(self.field)
        spatial = tuple(pred.shape[a] for a in pred.get_shape_format().get_spatial_axes())
        original = tuple(int(s) for s in src.get_property(ImageProperty.ORIGINAL_SHAPE))[-len(spatial):]
        if spatial != original:
            return True
        aff, orig = src.get_property(ImageProperty.AFFINE), src.get_property(ImageProperty.ORIGINAL_AFFINE)
        return aff is not None and orig is not None and not np.allclose(aff, orig, atol=1e-6)


class PredictionWriter:
    """Writes a field to `<write_path>/<case>/<case>_<field><ext>` with its image geometry.

    A single-channel image is written as a 3D (2D) volume; the AFFINE is the field's own
    (after `RestoreOriginalShape`: the input file's), else `src_field`'s. Atomic.

    Args:
        field: the field to write ("model"). dtype: on-disk type ("uint8"; None keeps it).
        ext: ".nii.gz", ".nii", ".mha", ... src_field: image field for the name and geometry.
    """

    def __init__(self, field: str = "model", dtype: str | None = "uint8", ext: str = ".nii.gz",
                 src_field: str = "image") -> None:
        self.field = field
        self.dtype = dtype
        self.ext = ext if ext.startswith(".") else "." + ext
        self.src_field = src_field

    def output_path(self, write_path: str, name: str) -> str:
        stem = _stem(name)
        return os.path.join(write_path, stem, f"{stem}_{self.field}{self.ext}")

    def write(self, transform_ctx: TransformContext, write_path: str | None = None) -> str:
        from ai4med.io.image_io import write_image

        value = transform_ctx[self.field]
        src = transform_ctx.get(self.src_field)
        src = src if isinstance(src, MedicalImage) else None
        if not isinstance(value, MedicalImage):
            from ai4med.components.transforms.channels import _wrap_like

            value = _wrap_like(np.asarray(value), src.get_shape_format()) if src is not None else MedicalImage(
                np.asarray(value), {2: "HW", 3: "DHW", 4: "CDHW"}[np.asarray(value).ndim])
        sf = value.get_shape_format()
        if sf.has_channel() and value.shape[sf.get_channel_axis()] == 1:
            value = value.new_image(np.squeeze(value.get_data(), sf.get_channel_axis()), sf.without_channel())
        affine = value.get_property(ImageProperty.AFFINE)
        if affine is None and src is not None:
            affine = src.get_property(ImageProperty.AFFINE)
        filename = value.get_property(ImageProperty.FILENAME) or (
            src.get_property(ImageProperty.FILENAME) if src is not None else None) or "output"
        if isinstance(filename, (list, tuple)):
            filename = filename[0] if filename else "output"
        path = self.output_path(write_path or os.getcwd(), os.path.basename(str(filename)))
        return write_image(value, path, affine=affine, dtype=self.dtype)


# --- results ---------------------------------------------------------------------------------
@dataclass
class CaseResult:
    """One case: its name, seconds per stage (load, infer, post, write), files written, error."""

    name: str
    seconds: dict[str, float] = field(default_factory=dict)
    outputs: list[str] = field(default_factory=list)
    error: str | None = None


@dataclass
class EvaluationResult:
    """What a run produced: metric summaries, per-case results and the report files."""

    metrics: dict[str, float]
    cases: list[CaseResult]
    reports: list[str]

    @property
    def written(self) -> list[str]:
        return [p for c in self.cases for p in c.outputs]

    @property
    def failed(self) -> list[CaseResult]:
        return [c for c in self.cases if c.error is not None]


# --- the evaluator ---------------------------------------------------------------------------
class BulkEvaluator:
    """Runs inference (and metrics) over a list of cases; Clara's `BulkEvaluator`.

    Args:
        data_list: datalist items (dicts of field -> path), e.g. from `load_items`.
        inference_ctx: the model (`TorchInferenceContext`, `OnnxInferenceContext`, ...).
        inferer: an `Inferer` (default: `TorchSimpleInferer`, the whole volume at once).
        pre_transforms: transforms that load and prepare each item.
        post_transforms: transforms run on the prediction field (None: `SegmentationPostProcess`).
        writers: objects with `write(ctx, write_path)` (or transforms) (None: `PredictionWriter`).
        label_transforms: load the label for the metrics from a fresh copy of the item.
        val_metrics: metric components (`update_from(fields, name)` or seed `update(value, name)`).
        do_validation: compute metrics (needs labels). output_infer_result: write predictions.
        output_dir: where writers write (and reports go when metrics have no report_path).
        report_dir: where every metric report goes (overrides the metrics' report_path).
        image_field / label_field / output_field: context field names ("image", "label", "model").
        overwrite_previous_result: False skips cases whose default output file exists (inference only).
        progress: tqdm progress bar (None: only on a terminal).
        prefetch: load this many cases ahead on a background thread (0: none).
    """

    def __init__(
        self,
        data_list: Sequence[dict[str, Any]],
        inference_ctx: Any,
        inferer: Any = None,
        pre_transforms: Sequence[Any] = (),
        post_transforms: Sequence[Any] | None = None,
        writers: Sequence[Any] | None = None,
        label_transforms: Sequence[Any] = (),
        val_metrics: Sequence[Any] = (),
        do_validation: bool = True,
        output_infer_result: bool = True,
        output_dir: str | None = None,
        report_dir: str | None = None,
        image_field: str = "image",
        label_field: str = "label",
        output_field: str = "model",
        overwrite_previous_result: bool = True,
        progress: bool | None = None,
        prefetch: int = 1,
    ) -> None:
        if inferer is None:
            from ai4med.components.inferers.torch_inferers import TorchSimpleInferer

            inferer = TorchSimpleInferer()
        self.data_list = [dict(it) for it in data_list]
        self.inference_ctx = inference_ctx
        self.inferer = inferer
        self.pre_transforms = list(pre_transforms)
        self.post_transforms = (
            [SegmentationPostProcess(output_field, image_field)] if post_transforms is None else list(post_transforms))
        self.writers = [PredictionWriter(output_field, src_field=image_field)] if writers is None else list(writers)
        self.label_transforms = list(label_transforms)
        self.val_metrics = list(val_metrics)
        self.do_validation = bool(do_validation)
        self.output_infer_result = bool(output_infer_result)
        self.output_dir = output_dir
        self.report_dir = report_dir
        self.image_field = image_field
        self.label_field = label_field
        self.output_field = output_field
        self.overwrite_previous_result = bool(overwrite_previous_result)
        self.progress = progress
        self.prefetch = max(0, int(prefetch))
        if self.output_infer_result and not self.output_dir:
            raise ValueError("output_infer_result needs an output_dir")

    # --- one case ------------------------------------------------------------------------
    def prepare(self, item: dict[str, Any]) -> TransformContext:
        """The item after the pre-transforms (label-only steps dropped when the item has no label)."""
        ctx = TransformContext(dict(item))
        chain = self.pre_transforms if self.label_field in item else _without_field(self.pre_transforms,
                                                                                     self.label_field)
        return run_chain(chain, ctx)

    def predict(self, ctx: TransformContext) -> MedicalImage:
        """Run the inferer on the image field; the first output as an image with the input's properties."""
        from ai4med.components.inferers.layout import output_format, to_numpy

        image = ctx.get_image(self.image_field)
        sf = image.get_shape_format()
        out = self.inferer.infer({self.image_field: image.get_data()}, sf, self.inference_ctx)
        names = list(getattr(self.inference_ctx, "output_names", []) or [])
        key = names[0] if names and names[0] in out else next(iter(out))
        pred = to_numpy(out[key])
        if pred.dtype != np.float32 and np.issubdtype(pred.dtype, np.floating):
            pred = pred.astype(np.float32)
        fmt = output_format(sf)
        if pred.ndim != fmt.get_number_of_dims():
            raise ValueError(f"the model returned shape {pred.shape} for an image of shape {image.shape} ({sf})")
        return image.new_image(pred, fmt)

    def metric_label(self, item: dict[str, Any], ctx: TransformContext) -> Any:
        """The label on the prediction's grid (see the module docstring)."""
        pred = ctx.get_image(self.output_field)
        spatial = tuple(pred.shape[a] for a in pred.get_shape_format().get_spatial_axes())
        if self.label_transforms:
            lctx = run_chain(self.label_transforms, TransformContext(dict(item)))
            return _data(lctx[self.label_field])
        candidates = []
        raw = item.get(self.label_field)
        if isinstance(raw, (str, os.PathLike)):
            from ai4med.io.image_io import read_image

            candidates.append(read_image(os.fspath(raw)))
        if isinstance(ctx.get(self.label_field), MedicalImage):
            candidates.append(ctx.get_image(self.label_field))
        for lab in candidates:
            if tuple(lab.shape[a] for a in lab.get_shape_format().get_spatial_axes()) == spatial:
                return _data(lab)
        if not candidates:
            raise KeyError(f"the case has no {self.label_field!r} to validate against")
        raise ValueError(
            f"no label matches the prediction's grid {spatial}: the label file has "
            f"{candidates[0].shape}; restore the prediction to the original grid (RestoreOriginalShape) "
            "or give label_transforms"
        )

    def default_output(self, item: dict[str, Any], index: int) -> str | None:
        w = self.writers[0] if len(self.writers) == 1 else None
        if isinstance(w, PredictionWriter) and self.output_dir:
            return w.output_path(self.output_dir, case_name(item, self.image_field, index))
        return None

    def _finish(self, item: dict[str, Any], index: int, ctx: TransformContext, result: CaseResult) -> None:
        t = time.perf_counter()
        ctx[self.output_field] = self.predict(ctx)
        result.seconds["infer"] = time.perf_counter() - t
        t = time.perf_counter()
        ctx = run_chain(self.post_transforms, ctx)
        if self.do_validation and self.val_metrics:
            fields = dict(ctx)
            fields[self.output_field] = _data(ctx[self.output_field])
            fields[self.label_field] = self.metric_label(item, ctx)
            for m in self.val_metrics:
                if hasattr(m, "update_from"):
                    m.update_from(fields, result.name)
                else:
                    m.update(fields[m.get_field()], result.name)
        result.seconds["post"] = time.perf_counter() - t
        if self.output_infer_result:
            t = time.perf_counter()
            for w in self.writers:
                written = w.write(ctx, self.output_dir) if hasattr(w, "write") else run_chain([w], ctx)
                if isinstance(written, str):
                    result.outputs.append(written)
            result.seconds["write"] = time.perf_counter() - t

    # --- the loop ------------------------------------------------------------------------
    def run(self) -> EvaluationResult:
        """Process every case; write the metric reports; return the summary."""
        from tqdm import tqdm

        for m in self.val_metrics:
            m.reset()
        todo: list[tuple[int, dict[str, Any]]] = []
        cases: list[CaseResult] = []
        for i, item in enumerate(self.data_list):
            out = self.default_output(item, i)
            if (not self.overwrite_previous_result and not self.do_validation and self.output_infer_result
                    and out and os.path.exists(out)):
                logger.info("%s: %s exists, skipped", case_name(item, self.image_field, i), out)
                continue
            todo.append((i, item))
        bar = tqdm(total=len(todo), unit="case", desc="infer" if not self.do_validation else "evaluate",
                   disable=False if self.progress else None if self.progress is None else True)
        try:
            for (i, item), (loaded, seconds) in zip(todo, self._prepared(todo)):
                result = CaseResult(case_name(item, self.image_field, i), {"load": seconds})
                try:
                    if isinstance(loaded, BaseException):
                        raise loaded
                    self._finish(item, i, loaded, result)
                except KeyboardInterrupt:
                    raise
                except Exception as e:  # one bad case is reported, the others go on
                    result.error = f"{type(e).__name__}: {e}"
                    logger.error("%s failed: %s", result.name, result.error)
                    logger.debug("traceback of %s", result.name, exc_info=e)
                else:
                    logger.info("%s: %s", result.name,
                                " ".join(f"{k} {v:.2f}s" for k, v in result.seconds.items()))
                cases.append(result)
                bar.update(1)
        finally:
            bar.close()
        metrics, reports = {}, []
        if self.do_validation:
            for m in self.val_metrics:
                value = np.asarray(m.get(), dtype=np.float64)
                metrics[m.get_name()] = float(np.nanmean(value)) if value.size else float("nan")
                reports += self._write_reports(m)
        return EvaluationResult(metrics, cases, reports)

    def _write_reports(self, metric: Any) -> list[str]:
        if self.report_dir:
            return list(metric.write_reports(self.report_dir))
        own = getattr(getattr(metric, "metric_list", None), "report_path", None)
        if own:
            return list(metric.write_reports())
        return list(metric.write_reports(self.output_dir)) if self.output_dir else []

    def _prepared(self, todo: list[tuple[int, dict[str, Any]]]) -> Iterator[tuple[Any, float]]:
        """(context or exception, seconds) per case, `prefetch` cases loaded ahead on a thread."""

        def load(item: dict[str, Any]) -> tuple[Any, float]:
            t = time.perf_counter()
            try:
                return self.prepare(item), time.perf_counter() - t
            except Exception as e:  # reported by the loop, in order
                return e, time.perf_counter() - t

        if self.prefetch == 0:
            for _, item in todo:
                yield load(item)
            return
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ai4med-load") as pool:
            pending: list[Future] = []
            items = iter(todo)
            for _, item in _take(items, self.prefetch + 1):
                pending.append(pool.submit(load, item))
            while pending:
                yield pending.pop(0).result()
                for _, item in _take(items, 1):
                    pending.append(pool.submit(load, item))


def _take(it: Iterator[Any], n: int) -> list[Any]:
    out = []
    for _ in range(n):
        with contextlib.suppress(StopIteration):
            out.append(next(it))
    return out


def _data(value: Any) -> np.ndarray:
    return value.get_data() if isinstance(value, MedicalImage) else np.asarray(value)


def _without_field(transforms: Iterable[Any], name: str) -> list[Any]:
    """The chain with `name` removed from multi-field transforms; steps only on `name` dropped."""
    out = []
    for t in transforms:
        fields = getattr(t, "fields", None)
        if isinstance(fields, list) and name in fields:
            rest = [f for f in fields if f != name]
            if not rest:
                continue
            t = copy.copy(t)
            t.fields = rest
            t.field = rest[0]
        elif getattr(t, "field", None) == name and not isinstance(fields, list):
            continue
        out.append(t)
    return out



# --- models: checkpoint + network from config, TorchScript, ONNX, Triton -------------------------
NETWORK_POINTERS = ("/train/model", "/model")
CHECKPOINT_EXTS = (".pt", ".pth", ".ckpt")


def is_torchscript(path: str) -> bool:
    """True for a TorchScript archive (`torch.jit.save`), False for a `torch.save` checkpoint."""
    import zipfile

    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())
    except (OSError, zipfile.BadZipFile):
        return False


def build_network(cfg: Any, node: Any = None) -> Any:
    """The model component of the config (`/train/model`, else `/model`), or `node` when given."""
    if node is not None:
        return cfg.builder.build(node, "models", "/model_loader/args/model")
    for pointer in NETWORK_POINTERS:
        if cfg.has(pointer):
            return cfg.build(pointer, "models")
    raise UserError(f"{cfg.file}: no network definition (looked for {', '.join(NETWORK_POINTERS)}); give the "
                    "training config (-c config/config_train.json) or an exported model (--model_file_path)")


def prediction_module(model: Any) -> Any:
    """An `nn.Module` whose output is the model's predictions (final activation applied)."""
    import torch

    from ai4med.components.models.torch_model import find_module
    from ai4med.workflows.validator import PredictionModule

    module = find_module(model)
    if isinstance(model, torch.nn.Module) or not hasattr(model, "get_predictions"):
        return module.eval()
    return PredictionModule(model, module).eval()


def checkpoint_module(cfg: Any, checkpoint: str, node: Any = None) -> Any:
    """The config's network with the checkpoint's weights, as a prediction module (eval mode)."""
    from ai4med.components.models.torch_model import find_module
    from ai4med.workflows.handlers.checkpoint import load_weights

    model = build_network(cfg, node)
    try:
        load_weights(find_module(model), checkpoint)
    except RuntimeError as e:
        raise UserError(f"{checkpoint}: the weights do not fit the network of {cfg.file}: {e}") from e
    return prediction_module(model)


def find_checkpoint(cfg: Any, model_file_path: str | None = None, model_name: str = "model") -> str:
    """The checkpoint file: `model_file_path` (a file, or a folder holding `<model_name>.pt`),
    else the `MMAR_CKPT` variable, else `<MMAR_CKPT_DIR>/<model_name>.pt`."""
    if model_file_path:
        path = _existing(cfg, model_file_path)
    elif cfg.variables.get("MMAR_CKPT"):
        path = cfg.resolve_path(str(cfg.variables["MMAR_CKPT"]))
    else:
        folder = cfg.variables.get("MMAR_CKPT_DIR") or (cfg.mmar.models_dir if cfg.mmar else "models")
        path = cfg.resolve_path(str(folder))
    if os.path.isdir(path):
        names = [model_name if os.path.splitext(model_name)[1] else model_name + e for e in CHECKPOINT_EXTS]
        found = [os.path.join(path, n) for n in names if os.path.isfile(os.path.join(path, n))]
        if not found:
            raise UserError(f"no checkpoint {names[0]} in {path}: train first (ai4med train) or give "
                            "--model_file_path / --model_name")
        path = found[0]
    if not os.path.isfile(path):
        raise UserError(f"model file {path} does not exist")
    return path


def _existing(cfg: Any, path: str) -> str:
    """A path the user typed: as given if it exists (relative to the cwd), else under the MMAR root."""
    path = os.path.expanduser(path)
    if os.path.isabs(path) or os.path.exists(path):
        return os.path.abspath(path)
    return cfg.resolve_path(path)


ONNX_RUNTIMES = ("auto", "onnxruntime", "openvino")


def onnx_runtime_for(device: str = "cpu", runtime: str = "auto") -> str:
    """The runtime that runs an ONNX file: "onnxruntime" or "openvino" as asked; "auto": OpenVINO on a
    CPU when openvino is installed, else ONNX Runtime (its CUDA provider on a GPU)."""
    if runtime not in ONNX_RUNTIMES:
        raise UserError(f"runtime {runtime!r} does not run an ONNX file; use one of {', '.join(ONNX_RUNTIMES)}"
                        + (" (torch runs checkpoints and TorchScript models)" if runtime == "torch" else ""))
    if runtime == "openvino" and str(device) != "cpu":
        raise UserError(f"runtime 'openvino' runs ONNX files on the CPU, not on {device}; use --device cpu "
                        "or --runtime onnxruntime")
    if runtime != "auto":
        return runtime
    from ai4med.components.inferers.openvino_runtime import openvino_available

    return "openvino" if str(device) == "cpu" and openvino_available() else "onnxruntime"


def context_for_file(path: str, cfg: Any = None, device: str = "cpu", precision: str = "fp32",
                     node: Any = None, runtime: str = "auto") -> Any:
    """The inference context of a model file: `.onnx` (OpenVINO or ONNX Runtime, see `onnx_runtime_for`),
    a TorchScript archive, or a checkpoint (network from `cfg`), run on `runtime` (see
    `onnx_runtime_for` and `torch_predictor.resolve_runtime`)."""
    from ai4med.components.inferers.torch_predictor import TorchInferenceContext, TorchScriptInferenceContext

    if path.lower().endswith(".onnx"):
        if onnx_runtime_for(device, runtime) == "openvino":
            from ai4med.components.inferers.openvino_predictor import OpenVinoInferenceContext

            return OpenVinoInferenceContext(path)
        from ai4med.components.inferers.onnx_predictor import OnnxInferenceContext

        return OnnxInferenceContext(path, device="cpu" if device == "cpu" else "auto")
    try:
        if is_torchscript(path):
            return TorchScriptInferenceContext(path, device=device, precision=precision, runtime=runtime)
        if cfg is None:
            raise UserError(f"{path} is a checkpoint: the network definition comes from a config (-c)")
        return TorchInferenceContext(checkpoint_module(cfg, path, node), device=device, precision=precision,
                                     runtime=runtime)
    except (ValueError, ImportError) as exc:  # a runtime that cannot run this precision / device
        raise UserError(f"{path}: runtime {runtime!r}: {exc}") from exc


class CheckpointLoader:
    """Model loader: the config's network (or `model`) + a checkpoint file (Clara's CheckpointLoader).

    Args:
        checkpoint_file (also `ckpt_path`): the file; else `checkpoint_dir` + `checkpoint_file_prefix`.
        model: a network component node (default: the config's `/train/model` or `/model`).
    """

    def __init__(self, checkpoint_file: str | None = None, checkpoint_dir: str | None = None,
                 checkpoint_file_prefix: str = "model", model: Any = None, ckpt_path: str | None = None,
                 input_node_names: Any = None, output_node_names: Any = None) -> None:
        self.checkpoint_file = checkpoint_file or ckpt_path
        self.checkpoint_dir = checkpoint_dir
        self.prefix = checkpoint_file_prefix
        self.model = model

    def load(self, cfg: Any, device: str = "cpu", precision: str = "fp32", runtime: str = "auto") -> Any:
        path = find_checkpoint(cfg, self.checkpoint_file or self.checkpoint_dir, self.prefix)
        return context_for_file(path, cfg, device, precision, self.model, runtime=runtime)


class ModelFileLoader:
    """Model loader: an exported model file (TorchScript `.ts` / `.pt`, or `.onnx`).

    Registered as FrozenGraphModelLoader (Clara's name for the exported graph), TorchScriptLoader
    and OnnxModelLoader. Args: `model_file_path` (also `ts_path`, `onnx_path`).
    """

    def __init__(self, model_file_path: str | None = None, ts_path: str | None = None,
                 onnx_path: str | None = None, input_node_names: Any = None, output_node_names: Any = None,
                 **_ignored: Any) -> None:
        self.path = model_file_path or ts_path or onnx_path
        if not self.path:
            raise ValueError("give model_file_path")

    def load(self, cfg: Any, device: str = "cpu", precision: str = "fp32", runtime: str = "auto") -> Any:
        return context_for_file(cfg.resolve_path(self.path), cfg, device, precision, runtime=runtime)


class TritonModelLoader:
    """Model loader: a model served by Triton (`model_name`, `url`, `protocol` http|grpc, `timeout`)."""

    def __init__(self, model_name: str, url: str = "localhost:8000", protocol: str = "http",
                 timeout: float = 30.0) -> None:
        self.model_name, self.url, self.protocol, self.timeout = model_name, url, protocol, timeout

    def load(self, cfg: Any = None, device: str = "cpu", precision: str = "fp32") -> Any:
        from ai4med.components.inferers.triton_predictor import TritonInferenceContext

        return TritonInferenceContext(self.model_name, self.url, self.protocol, timeout=self.timeout)


MODEL_LOADERS = {
    "CheckpointLoader": CheckpointLoader,
    "PTCheckpointLoader": CheckpointLoader,
    "FrozenGraphModelLoader": ModelFileLoader,
    "TorchScriptLoader": ModelFileLoader,
    "OnnxModelLoader": ModelFileLoader,
    "TritonModelLoader": TritonModelLoader,
}


def build_model_loader(cfg: Any, pointer: str = "/model_loader") -> Any:
    """The `model_loader` component of an evaluation config (None if absent)."""
    if not cfg.has(pointer):
        return None
    from ai4med.config.builder import ComponentBuilder
    from ai4med.config.registry import Registry

    reg = Registry("model_loaders", {k: f"{__name__}:{v.__name__}" for k, v in MODEL_LOADERS.items()})
    builder = ComponentBuilder(cfg.file, registries={"model_loaders": reg})
    return builder.build(cfg.get(pointer), "model_loaders", pointer)


# --- the evaluator from a config ----------------------------------------------------------------
@dataclass
class EvalOptions:
    """What the `infer` / `evaluate` commands add to the config.

    `do_validation` / `output_infer_result` None: the config's globals (`--set`), else the
    command's default (`infer`: False/True, `evaluate`: True/False).
    """

    mode: str = "evaluate"
    datalist: str | None = None
    data_list_key: str | None = None
    file_root: str | None = None
    output_dir: str | None = None
    model_file_path: str | None = None
    model_name: str = "model"
    triton_url: str | None = None
    triton_model_name: str | None = None
    triton_protocol: str = "http"
    device: str = "cpu"
    precision: str = "fp32"
    runtime: str = "auto"
    keep_largest_cc: bool = False
    do_validation: bool | None = None
    output_infer_result: bool | None = None
    progress: bool | None = None
    overwrite: bool = True


def is_train_config(cfg: Any) -> bool:
    return cfg.has("/train") or cfg.has("/validate")


def make_inference_context(cfg: Any, opts: EvalOptions) -> Any:
    """The model to run: Triton, a model file, the config's model_loader, or the best checkpoint."""
    if opts.triton_url:
        from ai4med.components.inferers.triton_predictor import TritonInferenceContext

        name = opts.triton_model_name or opts.model_name
        return TritonInferenceContext(name, opts.triton_url, opts.triton_protocol)
    if opts.model_file_path:
        path = _existing(cfg, opts.model_file_path)
        if os.path.isdir(path):
            exported = [os.path.join(path, opts.model_name + e) for e in (".ts", ".onnx")]
            path = next((p for p in exported if os.path.isfile(p)), None) or find_checkpoint(
                cfg, path, opts.model_name)
        if not os.path.isfile(path):
            raise UserError(f"model file {path} does not exist")
        return context_for_file(path, cfg, opts.device, opts.precision, runtime=opts.runtime)
    loader = None if is_train_config(cfg) else build_model_loader(cfg)
    if isinstance(loader, (ModelFileLoader, CheckpointLoader)):
        return loader.load(cfg, opts.device, opts.precision, runtime=opts.runtime)
    if loader is not None:  # Triton, or a BYOC loader with the seed's (cfg, device, precision)
        from ai4med.components.inferers.torch_predictor import TorchInferenceContext

        ctx = loader.load(cfg, opts.device, opts.precision)
        if opts.runtime != "auto" and isinstance(ctx, TorchInferenceContext):
            try:
                ctx.set_runtime(opts.runtime)
            except (ValueError, ImportError) as exc:
                raise UserError(f"runtime {opts.runtime!r}: {exc}") from exc
        return ctx
    return context_for_file(find_checkpoint(cfg, None, opts.model_name), cfg, opts.device, opts.precision,
                            runtime=opts.runtime)


def _datalist(cfg: Any, opts: EvalOptions, pipeline_pointer: str) -> tuple[str, str, str | None]:
    args = cfg.get(pipeline_pointer + "/args", {}) or {}
    v = cfg.variables
    path = args.get("data_list_file_path") or v.get("DATASET_JSON")
    key = opts.data_list_key or args.get("data_list_key") or v.get("DATA_LIST_KEY") or "validation"
    root = args.get("data_file_base_dir") or v.get("DATA_ROOT")
    if not (opts.datalist or path):
        raise UserError(f"{cfg.file}: no datalist: give -d DATALIST (or DATASET_JSON in environment.json)")
    path = _existing(cfg, opts.datalist) if opts.datalist else cfg.resolve_path(str(path))
    if opts.file_root:
        root = _existing(cfg, opts.file_root)
    elif root:
        root = cfg.resolve_path(str(root))
    elif opts.datalist:
        root = None  # the datalist's own folder
    return path, str(key), root


def _flag(cfg: Any, name: str, given: bool | None, default: bool) -> bool:
    if given is not None:
        return bool(given)
    value = cfg.get("/" + name, cfg.variables.get(name))
    if value is None:
        return default
    return value if isinstance(value, bool) else str(value).lower() in ("1", "true", "yes", "on")


def evaluator_from_config(cfg: Any, opts: EvalOptions, inference_ctx: Any = None) -> BulkEvaluator:
    """A `BulkEvaluator` for a training config (its `validate` section + the best checkpoint) or an
    evaluation config (config_validation.json / config_inference.json keys, see the inventory §2.4)."""
    infer_mode = opts.mode == "infer"
    do_validation = _flag(cfg, "do_validation", opts.do_validation, not infer_mode)
    output = _flag(cfg, "output_infer_result", opts.output_infer_result, infer_mode)
    if is_train_config(cfg):
        base, pipeline = "/validate", "/validate/image_pipeline"
        metrics_ptr = "/validate/metrics"
    else:
        base, pipeline = "", "/image_pipeline"
        metrics_ptr = "/val_metrics" if cfg.has("/val_metrics") else "/metrics"
    datalist, key, root = _datalist(cfg, opts, pipeline)
    items = load_items(datalist, key, root)
    if not items:
        raise UserError(f"{datalist}: the list {key!r} is empty")
    pre = cfg.build_list(base + "/pre_transforms", "transforms")
    post = cfg.build_list(base + "/post_transforms", "transforms") if cfg.has(base + "/post_transforms") else None
    if post is None:
        post = [SegmentationPostProcess(keep_largest_cc=opts.keep_largest_cc)]
    writers = cfg.build_list(base + "/writers", "writers") if cfg.has(base + "/writers") else None
    label_transforms = cfg.build_list(base + "/label_transforms", "transforms")
    metrics = cfg.build_list(metrics_ptr, "metrics") if do_validation else []
    if do_validation and not metrics:
        from ai4med.components.metrics.dice import ComputeAverageDice

        metrics = [ComputeAverageDice("mean_dice", "model")]
    inferer = cfg.build(base + "/inferer", "inferers", required=False)
    if opts.output_dir:
        output_dir = os.path.abspath(opts.output_dir)
    else:
        output_dir = cfg.resolve_path(str(cfg.variables.get("MMAR_EVAL_OUTPUT_PATH") or "eval"))
    if inference_ctx is None:
        inference_ctx = make_inference_context(cfg, opts)
    return BulkEvaluator(
        items, inference_ctx, inferer, pre, post, writers, label_transforms, metrics,
        do_validation=do_validation, output_infer_result=output, output_dir=output_dir,
        report_dir=opts.output_dir, progress=opts.progress, overwrite_previous_result=opts.overwrite,
    )
