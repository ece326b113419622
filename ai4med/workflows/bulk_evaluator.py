"""BulkEvaluator: the case pipeline over a datalist, with metrics (Clara's evaluate workflow).

The cases run through `ai4med.inference.pipeline.CasePipeline` (pre-transforms -> inferer ->
post-transforms -> writers; `ai4med.inference.runner.run_cases` prepares the next case while the
current one is inferred). This module adds only the metrics: with `do_validation`, each metric
gets the prediction and the label in one space, chosen explicitly, never by shapes that happen
to match:

* `metric_space="label"` (default): the label file's own grid. The prediction (as a label map)
  is brought onto it through the AFFINEs (the inverse of every crop / resample of the
  pre-transforms; nearest neighbour, zeros outside what the network saw);
* `metric_space="model"`: the network's grid, against the label field sent through the same
  pre-transforms (seed 004's AIAA evaluation configs crop image and label alike); a label on
  another grid is an error.

`label_transforms` (optional) load the label for the metrics from a fresh copy of the item.
Reports are `<metric>_raw_results.txt` / `<metric>_summary_results.txt`.

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

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ai4med.common.medical_image import MedicalImage
from ai4med.common.transform_ctx import TransformContext
from ai4med.components.writers.prediction import PredictionWriter
from ai4med.errors import UserError
from ai4med.inference.from_config import (
    EvalOptions,
    datalist_of,
    flag,
    make_inference_context,
    metric_space,
    pipeline_parts,
)
from ai4med.inference.pipeline import CaseOutput, CasePipeline, grid_of, run_chain, same_grid, to_grid, to_label_map
from ai4med.inference.runner import CaseResult, Prefetch, case_name, run_cases

__all__ = ["BulkEvaluator", "CaseResult", "EvaluationResult", "EvalOptions", "load_items", "case_name",
           "evaluator_from_config"]

logger = logging.getLogger(__name__)


def load_items(datalist: str, key: str = "validation", base_dir: str | None = None) -> list[dict[str, Any]]:
    """The items of one list of a Decathlon-style datalist, paths made absolute and checked."""
    from ai4med.io.datalist import load_datalist

    return load_datalist(datalist, key, base_dir)


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


class BulkEvaluator:
    """Runs inference (and metrics) over a list of cases; Clara's `BulkEvaluator`.

    Args:
        data_list: datalist items (dicts of field -> path), e.g. from `load_items`.
        inference_ctx: the model (`ai4med.inference.models.open_model`).
        inferer: an `Inferer` (default: `TorchSimpleInferer`, the whole volume at once).
        pre_transforms / post_transforms: as `CasePipeline` (post None: `SegmentationPostProcess`).
        writers: objects with `write(ctx, write_path)` (or transforms) (None: `PredictionWriter`).
        label_transforms: load the label for the metrics from a fresh copy of the item.
        val_metrics: metric components (`update_from(fields, name)` or seed `update(value, name)`).
        do_validation: compute metrics (needs labels). output_infer_result: write predictions.
        output_dir: where writers write (and reports go when metrics have no report_path).
        report_dir: where every metric report goes (overrides the metrics' report_path).
        image_field / label_field / output_field: context field names ("image", "label", "model").
        overwrite_previous_result: False skips cases whose default output file exists (inference only).
        progress: tqdm progress bar (None: only on a terminal).
        prefetch: load this many cases ahead on a background thread (0: none; None: as many as a quarter
            of the available memory holds, 1 to 4, `inference.runner.prefetch_depth`).
        metric_space: "label" or "model" (see the module docstring).
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
        prefetch: int | None = None,
        metric_space: str = "label",
    ) -> None:
        if metric_space not in ("label", "model"):
            raise ValueError(f"metric_space must be 'label' or 'model', got {metric_space!r}")
        self.data_list = [dict(it) for it in data_list]
        writers = [PredictionWriter(output_field, src_field=image_field)] if writers is None else list(writers)
        self.pipeline = CasePipeline(inference_ctx, inferer, pre_transforms, post_transforms, writers,
                                     image_field, label_field, output_field)
        self.inference_ctx = inference_ctx
        self.label_transforms = list(label_transforms)
        self.val_metrics = list(val_metrics)
        self.do_validation = bool(do_validation)
        self.output_infer_result = bool(output_infer_result)
        self.output_dir = output_dir
        self.report_dir = report_dir
        self.image_field, self.label_field, self.output_field = image_field, label_field, output_field
        self.overwrite_previous_result = bool(overwrite_previous_result)
        self.progress = progress
        self.prefetch = None if prefetch is None else max(0, int(prefetch))
        self.metric_space = metric_space
        if self.output_infer_result and not self.output_dir:
            raise ValueError("output_infer_result needs an output_dir")
        self._started: tuple[Prefetch, list[dict[str, Any]], list[str]] | None = None  # start_prefetch's

    @property
    def writers(self) -> list[Any]:
        return self.pipeline.writers

    # --- metrics -----------------------------------------------------------------------------
    def metric_pair(self, item: dict[str, Any], ctx: TransformContext) -> tuple[np.ndarray, np.ndarray]:
        """(prediction, label) arrays on one grid, in `metric_space` (see the module docstring)."""
        pred = ctx.get_image(self.output_field)
        if self.label_transforms:
            lctx = run_chain(self.label_transforms, TransformContext(dict(item)))
            label = lctx[self.label_field]
            if not isinstance(label, MedicalImage):
                return pred.get_data(), np.asarray(label)
        elif self.metric_space == "model":
            label = ctx.get(self.label_field)
            if not isinstance(label, MedicalImage):
                raise KeyError(f"the case has no {self.label_field!r} field to validate against")
            if not same_grid(grid_of(pred), grid_of(label)):
                raise ValueError(
                    f"metric_space 'model': the {self.label_field!r} field is on another grid "
                    f"({grid_of(label)[1]}) than the prediction ({grid_of(pred)[1]}): send the label through the "
                    "same pre-transforms, or use metric_space 'label'")
            return pred.get_data(), label.get_data()
        else:
            raw = item.get(self.label_field)
            if isinstance(raw, (str, os.PathLike)) or (isinstance(raw, (list, tuple)) and raw):
                from ai4med.io.image_io import read_image

                label = read_image(raw if isinstance(raw, (str, os.PathLike)) else list(raw))
            elif isinstance(raw, MedicalImage):
                label = raw
            else:
                raise KeyError(f"the case has no {self.label_field!r} file to validate against")
        labels = to_label_map(pred)
        affine, shape = grid_of(label)
        on_label = to_grid(labels, affine, shape, order=0).get_data()
        return on_label[None], label.get_data()

    def _update_metrics(self, item: dict[str, Any], out: CaseOutput, result: CaseResult) -> None:
        ctx = out.ctx
        fields = dict(ctx)
        fields[self.output_field], fields[self.label_field] = self.metric_pair(item, ctx)
        for m in self.val_metrics:
            if hasattr(m, "update_from"):
                m.update_from(fields, result.name)
            else:
                m.update(fields[m.get_field()], result.name)

    def default_output(self, item: dict[str, Any], index: int) -> str | None:
        w = self.writers[0] if len(self.writers) == 1 else None
        if isinstance(w, PredictionWriter) and self.output_dir:
            return w.output_path(self.output_dir, case_name(item, self.image_field, index))
        return None

    # --- the loop ----------------------------------------------------------------------------
    def cases_to_run(self) -> tuple[list[dict[str, Any]], list[str]]:
        """(items, names) of the cases to run: all, less those whose output exists when it may not be
        overwritten."""
        todo: list[dict[str, Any]] = []
        names: list[str] = []
        for i, item in enumerate(self.data_list):
            out = self.default_output(item, i)
            if (not self.overwrite_previous_result and not self.do_validation and self.output_infer_result
                    and out and os.path.exists(out)):
                logger.info("%s: %s exists, skipped", case_name(item, self.image_field, i), out)
                continue
            todo.append(item)
            names.append(case_name(item, self.image_field, i))
        return todo, names

    def start_prefetch(self) -> None:
        """Start reading and pre-processing the first cases on a background thread now, before `run`:
        `evaluator_from_config` calls it before it opens the model, whose imports and checkpoint take
        seconds that the first cases' reading then overlaps."""
        if self._started is None:
            todo, names = self.cases_to_run()
            self._started = (Prefetch(self.pipeline, todo, self.prefetch), todo, names)

    def set_inference_context(self, inference_ctx: Any) -> None:
        """The model to run (for an evaluator made before its model was opened)."""
        self.inference_ctx = self.pipeline.context = inference_ctx

    def close(self) -> None:
        """Stop a started prefetch (a run that will not happen, e.g. the model failed to open)."""
        if self._started is not None:
            self._started[0].close()
            self._started = None

    def run(self) -> EvaluationResult:
        """Process every case; write the metric reports; return the summary."""
        if self.inference_ctx is None:
            raise ValueError("no model: pass inference_ctx, or call set_inference_context before run")
        for m in self.val_metrics:
            m.reset()
        started, self._started = self._started, None  # a later run decides its cases again
        prefetched, todo, names = started if started is not None else (None, *self.cases_to_run())
        on_case = self._update_metrics if self.do_validation and self.val_metrics else None
        cases = run_cases(self.pipeline, todo, self.output_dir, on_case, write=self.output_infer_result,
                          prefetch=self.prefetch, progress=self.progress,
                          desc="infer" if not self.do_validation else "evaluate", names=names, prefetched=prefetched)
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


def evaluator_from_config(cfg: Any, opts: EvalOptions, inference_ctx: Any = None) -> BulkEvaluator:
    """A `BulkEvaluator` for a training config (its `validate` section + the best checkpoint) or an
    evaluation config (config_validation.json / config_inference.json keys, see the inventory §2.4)."""
    infer_mode = opts.mode == "infer"
    do_validation = flag(cfg, "do_validation", opts.do_validation, not infer_mode)
    output = flag(cfg, "output_infer_result", opts.output_infer_result, infer_mode)
    parts = pipeline_parts(cfg, opts)
    if opts.items is not None:
        items = [dict(it) for it in opts.items]
    else:
        datalist, key, root = datalist_of(cfg, opts, (parts.base or "") + "/image_pipeline")
        items = load_items(datalist, key, root)
        if not items:
            raise UserError(f"{datalist}: the list {key!r} is empty")
    metrics = cfg.build_list(parts.metrics_pointer, "metrics") if do_validation else []
    if do_validation and not metrics:
        from ai4med.components.metrics.dice import ComputeAverageDice

        metrics = [ComputeAverageDice("mean_dice", "model")]
    if opts.output_dir:
        output_dir = os.path.abspath(opts.output_dir)
    else:
        output_dir = cfg.resolve_path(str(cfg.variables.get("MMAR_EVAL_OUTPUT_PATH") or "eval"))
    evaluator = BulkEvaluator(
        items, inference_ctx, parts.inferer, parts.pre, parts.post, parts.writers, parts.label_transforms, metrics,
        do_validation=do_validation, output_infer_result=output, output_dir=output_dir,
        report_dir=opts.output_dir, progress=opts.progress, overwrite_previous_result=opts.overwrite,
        metric_space=metric_space(cfg, opts, parts.base),
    )
    if inference_ctx is None:  # the first cases are read while the model opens (imports, checkpoint: seconds)
        evaluator.start_prefetch()
        try:
            evaluator.set_inference_context(make_inference_context(cfg, opts))
        except BaseException:
            evaluator.close()
            raise
    return evaluator
