"""`ai4med evaluate` (Clara `validate.sh`, seed 004 `tlt-evaluate`): metrics of a model on a datalist.

Each case of the list goes through the config's pre-transforms, the inferer, the
post-transforms (default: argmax / threshold, back onto the input's grid) and the
metrics (default: per-case, per-class Dice). Reports `<metric>_raw_results.txt` (one line
per case: name, then one value per class) and `<metric>_summary_results.txt` go to `-o`
(else each metric's report_path, else the MMAR's eval/). `--save_predictions` also writes
the predictions. `--runtime onnxruntime|openvino` runs a checkpoint / TorchScript model through
that fp32 CPU runtime (converted on first use); an ONNX file runs on OpenVINO on a CPU by default
(`--runtime onnxruntime`: ONNX Runtime; `--runtime torch` is an error). Exit code 1 when a case failed.

The workflow is `ai4med.workflows.bulk_evaluator`; `ai4med infer` is the same run with
predictions written and no metrics.
"""

from __future__ import annotations

import logging
import os
from typing import Any

__all__ = ["run", "run_bulk", "options_from_args", "apply_runtime", "precision_of_use_amp"]

logger = logging.getLogger(__name__)


def precision_of_use_amp(use_amp: Any) -> str:
    """The inference precision a config's `use_amp` asks for (`ai4med.inference.settings`)."""
    from ai4med.inference.settings import precision_of_use_amp as of_use_amp

    return of_use_amp(use_amp)


def image_items(path: str, mode: str) -> list[dict[str, str]]:
    """`-d` naming images instead of a datalist: a volume file, or a folder of volumes / DICOM series
    (`ai4med.io.inputs.find_inputs`, as `ai4med deploy` finds its inputs). Only `infer` takes them:
    metrics need labels."""
    from ai4med.errors import UserError
    from ai4med.io.inputs import VOLUME_EXTS, find_inputs

    if mode != "infer":
        raise UserError(f"-d {path}: {mode} computes metrics, which need labels: give a datalist that pairs "
                        "images and labels (`ai4med check-datalist` checks one); images alone work with `infer`")
    if not os.path.isdir(path):
        return [{"image": os.path.abspath(path)}]
    found, ignored = find_inputs(path)
    for p, why in ignored:
        logger.warning("-d %s: left out %s (%s)", path, p, why)
    if not found:
        raise UserError(f"-d {path}: no volume ({', '.join(VOLUME_EXTS)}) and no DICOM series in this folder")
    logger.info("-d %s: %d image(s) to infer", path, len(found))
    return [{"image": os.path.abspath(p)} for p in found]


def names_images(path: str | None) -> bool:
    """True when `-d` names a folder or an image file rather than a datalist (JSON)."""
    from ai4med.io.inputs import is_volume

    return bool(path) and (os.path.isdir(path) or is_volume(str(path)))


def options_from_args(args: Any, mode: str, cfg: Any) -> Any:
    from ai4med.apps._cli_args import resolve_device
    from ai4med.inference.from_config import EvalOptions

    use_amp = cfg.get("/use_amp", cfg.variables.get("use_amp"))
    precision = args.precision or ("auto" if args.amp else precision_of_use_amp(use_amp))
    opts = EvalOptions(
        mode=mode, datalist=args.datalist, data_list_key=args.data_list_key, file_root=args.file_root,
        output_dir=args.output, model_file_path=args.model_file_path, model_name=args.model_name,
        triton_url=args.triton_url, triton_model_name=args.triton_model_name, triton_protocol=args.triton_protocol,
        device=resolve_device(args.device), precision=precision, runtime=getattr(args, "runtime", "auto") or "auto",
        keep_largest_cc=args.keep_largest_cc,
        progress=False if args.no_progress else None, overwrite=not args.no_overwrite,
        trust_checkpoint=bool(getattr(args, "trust_checkpoint", False)),
        metric_space=getattr(args, "metric_space", None),
    )
    folds = getattr(args, "folds", None)
    if folds:
        from ai4med.apps._folds import fold_model_paths
        from ai4med.errors import UserError

        if args.model_file_path or args.triton_url:
            raise UserError("--folds picks the models itself: leave out --model_file_path / --triton_url")
        chosen = "all" if str(folds).strip() == "all" else [int(k) for k in str(folds).replace(" ", "").split(",") if k]
        ckpt_dir = cfg.resolve_path(str(cfg.variables.get("MMAR_CKPT_DIR") or "models"))
        opts.model_file_path = fold_model_paths(ckpt_dir, chosen, args.model_name + ".pt")
        logger.info("%s: an ensemble of %d fold models: %s", mode, len(opts.model_file_path),
                    ", ".join(opts.model_file_path))
    if mode == "infer" and getattr(args, "validate", False):
        opts.do_validation = True
    if names_images(args.datalist):
        if opts.do_validation:
            from ai4med.errors import UserError

            raise UserError(f"-d {args.datalist}: --validate needs labels: give a datalist that pairs images and labels")
        opts.items, opts.datalist = image_items(args.datalist, mode), None
    if mode == "evaluate" and getattr(args, "save_predictions", False):
        opts.output_infer_result = True
    return opts


def apply_runtime(ctx: Any, runtime: str) -> None:
    """Check that `--runtime` could apply: local model files take it when they are opened
    (`ai4med.inference.models.open_model`); a model that runs elsewhere cannot take one."""
    members = getattr(ctx, "members", None)  # an ensemble: the runtime applied to each member
    if runtime == "auto" or (all(hasattr(m, "runtime") for m in members) if members else hasattr(ctx, "runtime")):
        return
    from ai4med.errors import UserError

    raise UserError(f"--runtime {runtime} applies to checkpoint, TorchScript and ONNX model files, not to "
                    f"{type(ctx).__name__} (Triton runs the model on the server)")


def run_bulk(args: Any, mode: str) -> int:
    """Build the evaluator from the command's config and arguments, run it, print the summary."""
    import os

    from ai4med.apps._cli_args import load_command_config
    from ai4med.errors import UserError
    from ai4med.inference.models import describe
    from ai4med.workflows.bulk_evaluator import evaluator_from_config

    cfg = load_command_config(args)
    opts = options_from_args(args, mode, cfg)
    if getattr(args, "dicomweb", None):
        return run_dicomweb(args, mode, cfg, opts)
    evaluator = evaluator_from_config(cfg, opts)
    cfg.warn_unused_overrides(logger)
    try:
        apply_runtime(evaluator.inference_ctx, getattr(args, "runtime", "auto"))
        logger.info("%s: %d cases, model %s (%s, runtime %s), output %s", mode, len(evaluator.data_list),
                    describe(evaluator.inference_ctx), opts.precision,
                    getattr(evaluator.inference_ctx, "runtime", "-"), evaluator.output_dir)
        result = evaluator.run()
    finally:
        evaluator.close()
        evaluator.inference_ctx.close()
    done = len(result.cases) - len(result.failed)
    print(f"{mode}: {done} of {len(result.cases)} cases done" + (
        f", predictions under {evaluator.output_dir}" if result.written else ""))
    for name, value in result.metrics.items():
        print(f"  {name}: {value:.4f}")
    for path in result.reports:
        print(f"  report {os.path.relpath(path)}")
    if result.failed:
        for case in result.failed:
            print(f"  FAILED {case.name}: {case.error}")
        if not done:
            raise UserError(f"all {len(result.cases)} cases failed")
        return 1
    return 0


def run_dicomweb(args: Any, mode: str, cfg: Any, opts: Any) -> int:
    """`--dicomweb URL --study UID [--series UID]`: the study's image series retrieved (WADO-RS) into a
    temporary folder, run as the cases, and the predictions stored back as DICOM SEG (STOW-RS, one request
    after every case succeeded; `--no_store` keeps them local: `-o DIR`)."""
    import os
    import shutil
    import tempfile

    from ai4med.components.writers.dicom_seg import WriteDicomSeg
    from ai4med.errors import UserError
    from ai4med.pacs.dicomweb import DicomWebClient, retrieve_volume_series
    from ai4med.workflows.bulk_evaluator import evaluator_from_config

    if not args.study:
        raise UserError("--dicomweb needs --study UID (the StudyInstanceUID to segment)")
    client = DicomWebClient(args.dicomweb)
    staging = tempfile.mkdtemp(prefix="ai4med-infer-dicomweb-")
    try:
        series = retrieve_volume_series(client, args.study, args.series, os.path.join(staging, "input"))
        opts.items = [{"image": os.path.join(staging, "input", uid)} for uid in series]
        if mode == "infer" and not args.output:
            opts.output_dir = os.path.join(staging, "output")
        opts.output_infer_result = True
        evaluator = evaluator_from_config(cfg, opts)
        if not any(isinstance(w, WriteDicomSeg) for w in evaluator.writers):
            labels = cfg.get("/labels", None) or cfg.variables.get("labels")
            evaluator.writers.append(WriteDicomSeg(field="model", labels=labels))
        try:
            result = evaluator.run()
        finally:
            evaluator.close()
            evaluator.inference_ctx.close()
        if result.failed:
            raise UserError(f"study {args.study}: " + "; ".join(f"{c.name}: {c.error}" for c in result.failed)
                            + " (nothing was stored)")
        segs = [p for p in result.written if p.endswith(".seg.dcm")]
        if getattr(args, "no_store", False):
            print(f"{mode}: {len(segs)} DICOM SEG file(s) written under {evaluator.output_dir} (not stored)")
            return 0
        stored = client.store(segs, study_uid=args.study)
        print(f"{mode}: study {args.study}: {len(stored)} DICOM SEG object(s) stored on {args.dicomweb}")
        for uid in stored:
            print(f"  {uid}")
        for name, value in result.metrics.items():
            print(f"  {name}: {value:.4f}")
        return 0
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def run(args: Any) -> int:
    """The `evaluate` command (arguments: `ai4med.apps._cli_args.add_evaluate_args`)."""
    return run_bulk(args, "evaluate")
