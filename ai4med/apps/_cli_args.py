"""Arguments of `ai4med infer`, `ai4med evaluate` and `ai4med export` (argparse only: fast `--help`).

Two spellings are accepted, as for training: the MMAR form of Clara's commands/*.sh
(`-m MMAR -c config/config_train.json -e config/environment.json --set KEY=VALUE`, extra
`KEY=VALUE` words also work) and the seed 004 `tlt-infer` / `tlt-evaluate` / `tlt-export`
flags that still mean something for PyTorch (`--config`, `--data_file`, `--file_root`,
`--output_path`, `--model_save_path` / `--model_file_path`, `--model_name`,
`--input_node_names`, `--output_node_names`, `--trt_precision_mode`, `--max_batch_size`,
`--trtis_export` ...). TensorRT-only flags are accepted and ignored with a note.

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser(); add_infer_args(p)
    >>> a = p.parse_args(["-m", "mmar", "--set", "DATA_ROOT=/d", "--amp", "-o", "out"])
    >>> a.mmar, a.overrides_set, a.amp, a.output
    ('mmar', ['DATA_ROOT=/d'], True, 'out')
"""

from __future__ import annotations

import argparse
import os
from typing import Any

__all__ = ["add_infer_args", "add_evaluate_args", "add_export_args", "load_command_config"]

DEFAULT_CONFIG = os.path.join("config", "config_train.json")


#: TensorFlow file names of seed 004 (`model.trt.pb`, `model.fzn.pb`, `model.ckpt`)
TF_MODEL_SUFFIXES = (".trt.pb", ".fzn.pb", ".ckpt", ".pb")


class SeedModelPath(argparse.Action):
    """`--model_save_path $CHECKPOINT/model.trt.pb` (seed 004) names a TensorFlow file that a PyTorch
    export never writes: it means the folder, with `--model_name` the file's stem, so the folder's
    `model.ts` / `model.onnx` / `model.pt` is used."""

    def __call__(self, parser, namespace, values, option_string=None):  # type: ignore[no-untyped-def]
        paths = []
        for value in values if isinstance(values, (list, tuple)) else [values]:
            path = str(value)
            for suffix in TF_MODEL_SUFFIXES:
                if path.endswith(suffix) and not os.path.exists(path):
                    folder, stem = os.path.split(path[: -len(suffix)])
                    namespace.model_name = stem or "model"
                    namespace.seed_model_path = path
                    path = folder or "."
                    break
            paths.append(path)
        # a repeated flag adds models (`--model_file_path a.pt --model_file_path b.pt`: an ensemble of two, as
        # `--model_file_path a.pt b.pt`), instead of keeping the last one silently
        before = getattr(namespace, self.dest, None)
        if before is not None and before != self.default:
            paths = [*(before if isinstance(before, list) else [before]), *paths]
        # one path stays a string; several are an ensemble
        setattr(namespace, self.dest, paths[0] if len(paths) == 1 else paths)


def _add_config_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("-m", "--mmar", default=None, help="MMAR root folder (config paths are relative to it)")
    p.add_argument("-c", "--config", default=None,
                   help=f"workflow config: a config_train.json (its validate section + the best checkpoint) or a "
                        f"config_validation/config_inference.json (default with -m: {DEFAULT_CONFIG})")
    p.add_argument("-e", "--environment", default=None,
                   help="environment.json (default: <mmar>/config/environment.json when present)")
    p.add_argument("--set", nargs="*", action="extend", default=[], dest="overrides_set", metavar="KEY=VALUE",
                   help="override config globals/variables (typed: numbers, true/false, JSON lists)")
    p.add_argument("overrides", nargs="*", default=[], metavar="KEY=VALUE",
                   help="more overrides, as commands/*.sh pass them")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    p.add_argument("--trust_checkpoint", action="store_true",
                   help="read a legacy checkpoint that holds pickled Python objects (can run code: only for files "
                        "you trust; checkpoints are otherwise read weights-only)")


def _add_bulk_args(p: argparse.ArgumentParser, infer: bool) -> None:
    _add_config_args(p)
    p.add_argument("-d", "--data_file", "--datalist", dest="datalist", default=None,
                   help="datalist JSON (default: the config's validation pipeline, else DATASET_JSON); infer also takes "
                        "a folder of volumes / DICOM series, or one image file")
    p.add_argument("--data_list_key", "--key", dest="data_list_key", default=None,
                   help="list of the datalist to run (default: the config's, else 'validation')")
    p.add_argument("--file_root", default=None, help="root of the datalist's relative paths (default: DATA_ROOT)")
    p.add_argument("-o", "--output_path", "--output", dest="output", default=None,
                   help="output folder for predictions and reports (default: the MMAR's eval/)")
    p.add_argument("--model_file_path", "--model_save_path", dest="model_file_path", default=None, nargs="+",
                   action=SeedModelPath,
                   help="model to run: a checkpoint (.pt), TorchScript (.ts), ONNX (.onnx) or a folder holding "
                        "<model_name>.ts/.onnx/.pt (default: models/model.pt, or the config's model_loader); "
                        "several: an ensemble (the mean of their probabilities)")
    p.add_argument("--model_name", default="model", help="base name of the model file in a folder (model, final_model)")
    p.add_argument("--folds", default=None, metavar="all|K,K",
                   help="run the cross-validation folds' models (<MMAR_CKPT_DIR>/fold_K/<model_name>.pt of "
                        "`ai4med train --fold K`) as one ensemble: the mean of their probabilities")
    p.add_argument("--model_format", default=None,
                   help="seed 004 flag; the format is read from the file itself (accepted, ignored)")
    p.add_argument("--setup", default=None, help="seed 004 flag (accepted, ignored)")
    p.add_argument("--triton_url", default=None,
                   help="run the model on a Triton server at HOST:PORT instead of locally")
    p.add_argument("--triton_model_name", default=None, help="the model's name on the Triton server")
    p.add_argument("--triton_protocol", choices=["http", "grpc"], default="http")
    p.add_argument("--amp", action="store_true",
                   help="fastest accurate mode (precision auto): bf16 autocast on AMX CPUs, fp16 on CUDA, else fp32 "
                        "through OpenVINO on CPU (with --runtime auto)")
    p.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16", "int8"], default=None,
                   help="explicit precision (overrides --amp; default fp32, or auto when the config sets use_amp); "
                        "int8 runs the INT8 export of `ai4med export --int8` on OpenVINO (CPU)")
    p.add_argument("--runtime", choices=["auto", "torch", "onnxruntime", "openvino"], default="auto",
                   help="what runs a checkpoint / TorchScript model: auto (openvino for precision auto on a CPU "
                        "without AMX, else torch), torch, or an fp32 CPU runtime the model is converted to on first "
                        "use: onnxruntime, or openvino (1.5x torch fp32 on a 2-core AVX2 CPU, after ~1.5 s of "
                        "conversion). An ONNX file runs on auto (openvino on a CPU, else ONNX Runtime), onnxruntime "
                        "or openvino")
    p.add_argument("--metric_space", choices=["label", "model"], default=None,
                   help="where metrics are computed: label (default: the label file's grid, the prediction brought "
                        "back through the pre-transforms' geometry) or model (the network's grid, against the label "
                        "sent through the same pre-transforms, as seed 004's AIAA evaluation configs do)")
    p.add_argument("--keep_largest_cc", action="store_true",
                   help="default post-processing keeps the largest connected component of each class")
    p.add_argument("--no_overwrite", action="store_true",
                   help="skip cases whose prediction file already exists (inference only)")
    p.add_argument("--no_progress", action="store_true", help="no progress bar")
    p.add_argument("--dicomweb", default=None, metavar="URL",
                   help="run the image series of a study on a DICOMweb server (WADO-RS) and store the result there "
                        "as DICOM SEG (STOW-RS); with --study UID [--series UID]")
    p.add_argument("--study", default=None, help="StudyInstanceUID (with --dicomweb)")
    p.add_argument("--series", default=None, help="SeriesInstanceUID (with --dicomweb; default: every image series)")
    p.add_argument("--no_store", action="store_true", help="with --dicomweb: keep the SEGs in -o, store nothing")
    if infer:
        p.add_argument("--validate", action="store_true",
                       help="also compute the metrics (needs labels), as `--set do_validation=true`")
    else:
        p.add_argument("--save_predictions", action="store_true",
                       help="also write the predictions, as `--set output_infer_result=true`")


def add_infer_args(p: argparse.ArgumentParser) -> None:
    """`ai4med infer`: predictions of every case of a datalist, as NIfTI with the input's geometry."""
    _add_bulk_args(p, infer=True)


def add_evaluate_args(p: argparse.ArgumentParser) -> None:
    """`ai4med evaluate`: per-case, per-class metrics (Dice) against the labels, with reports."""
    _add_bulk_args(p, infer=False)


def add_export_args(p: argparse.ArgumentParser) -> None:
    """`ai4med export`: checkpoint -> TorchScript, ONNX, Triton repository, model_config.json."""
    _add_config_args(p)
    p.add_argument("--model_file_format", default="CKPT", help="format of the source model: CKPT (a checkpoint)")
    p.add_argument("--model_file_path", default=None, action=SeedModelPath,
                   help="folder holding <model_name>.pt, or the checkpoint file (default: the MMAR's models/); "
                        "its config is <folder>/config_train.json (seed-form training writes it) or the MMAR's")
    p.add_argument("--model_name", default="model", help="base name of the checkpoint and of the exports")
    p.add_argument("--input_node_names", default="NV_MODEL_INPUT", help="name of the model input")
    p.add_argument("--output_node_names", default="NV_MODEL_OUTPUT", help="name of the model output")
    p.add_argument("-o", "--output_dir", default=None, help="folder of the exports (default: the checkpoint's)")
    p.add_argument("--formats", nargs="+", default=["ts", "onnx"], choices=["ts", "onnx"], help="what to export")
    p.add_argument("--opset", type=int, default=17, help="ONNX opset (>= 17)")
    p.add_argument("--fp16", action="store_true", help="half precision inside the exports (float32 in and out)")
    p.add_argument("--int8", action="store_true",
                   help="also an INT8 model (<model_name>_int8.xml, OpenVINO IR): NNCF post-training quantisation of "
                        "the ONNX export, calibrated on windows of the training images; kept only when its masks "
                        "match fp32's on the validation cases (see --int8_min_dice); run it with --precision int8")
    p.add_argument("--int8_windows", type=int, default=300, help="calibration windows for --int8 (default 300)")
    p.add_argument("--int8_min_dice", type=float, default=0.99,
                   help="lowest accepted mean mask Dice of INT8 vs fp32 on the validation cases (default 0.99)")
    p.add_argument("--trt_precision_mode", choices=["FP32", "FP16", "fp32", "fp16"], default=None,
                   help="seed 004 spelling of --fp16")
    p.add_argument("--network_input_size", nargs="+", default=None, metavar="N",
                   help="spatial size of the example input and of the deploy app's windows "
                        "(default: the config's roi_size, else its training crop)")
    p.add_argument("--input_channels", type=int, default=None,
                   help="input channels (default: from the network's first convolution)")
    p.add_argument("--triton_repo", default=None, help="Triton model repository folder (default: <output>/triton)")
    p.add_argument("--no_triton", action="store_true", help="write no Triton repository")
    p.add_argument("--triton_model_name", default=None, help="the model's name in the repository (default: MMAR name)")
    p.add_argument("--triton_backend", choices=["onnxruntime", "pytorch", "python"], default="onnxruntime",
                   help="onnxruntime (1/model.onnx), pytorch (1/model.pt) or python (1/model.py running the ONNX "
                        "model; what nvidia-pytriton's bundled tritonserver can serve)")
    p.add_argument("--max_batch_size", type=int, default=0,
                   help="Triton max_batch_size: 0 = batch axis in the dims, any size; > 0 = server-side batching")
    p.add_argument("--tolerance", type=float, default=None,
                   help="parity tolerance, times max(1, max |output|) (default 1e-3; 5e-2 with --fp16)")
    p.add_argument("--trtis_export", action="store_true", help="Clara 3.x flag: a Triton repository is always written")
    p.add_argument("--trtis_model_name", default=None, help="Clara 3.x spelling of --triton_model_name")
    p.add_argument("--trtis_input_shape", default=None, help='Clara 3.x: "C D H W" of the example input')
    for flag in ("--trt_min_seg_size", "--checkpoint_ext", "--meta_file_ext", "--regular_frozen_file_ext",
                 "--trt_file_ext"):
        p.add_argument(flag, default=None, help="TensorRT/TensorFlow option (accepted, ignored)")
    p.add_argument("--trt_dynamic_mode", action="store_true", help="TensorRT option (accepted, ignored)")


#: variables that name training data; a command that reads no data (export) does not demand them
DATA_VARIABLES = ("DATASET_JSON", "DATA_ROOT")


def config_candidates(args: Any) -> list[str]:
    """Where a command looks for its config when no `-c` is given, in order: the MMAR's
    config/config_train.json; beside `--model_file_path` (seed-form training saves
    config_train.json with its checkpoints) and, for an MMAR's models/ folder, the MMAR's;
    else ./config/config_train.json."""
    out = []
    if args.mmar:
        out.append(os.path.join(args.mmar, DEFAULT_CONFIG))
    model_path = getattr(args, "model_file_path", None)
    if isinstance(model_path, (list, tuple)):  # an ensemble: the first member's folder
        model_path = model_path[0] if model_path else None
    if model_path:
        folder = os.path.abspath(model_path if os.path.isdir(model_path) else os.path.dirname(model_path) or ".")
        out += [os.path.join(folder, "config_train.json"), os.path.join(os.path.dirname(folder), DEFAULT_CONFIG)]
    if not args.mmar:
        out.append(os.path.join(os.getcwd(), DEFAULT_CONFIG))
    return list(dict.fromkeys(out))


def load_command_config(args: Any, reads_data: bool = True) -> Any:
    """The WorkflowConfig named by `-m` / `-c` / `-e` / `--set` (and extra KEY=VALUE words).
    With `reads_data` false, DATASET_JSON / DATA_ROOT need not be defined (exporting reads no data)."""
    from ai4med.config.workflow_config import load_config
    from ai4med.errors import UserError

    config = args.config
    if config is None:
        looked = config_candidates(args)
        config = next((c for c in looked if os.path.isfile(c)), None)
        if config is None:
            raise UserError(f"no config: give -c CONFIG (looked for {', '.join(looked)})")
    overrides = list(getattr(args, "overrides_set", []) or []) + list(getattr(args, "overrides", []) or [])
    bad = [o for o in overrides if "=" not in o]
    if bad:
        raise UserError(f"overrides must be KEY=VALUE, got {bad}")
    defaults = None if reads_data else {k: "" for k in DATA_VARIABLES}
    cfg = load_config(config, args.environment, deploy_app_defaults(config, overrides) + overrides,
                      mmar_root=args.mmar, defaults=defaults)
    given = {o.split("=", 1)[0] for o in overrides}
    cfg.override_keys = [k for k in cfg.override_keys if k in given]  # only the user's are checked for typos
    return cfg


def deploy_app_defaults(config: str, overrides: list[str]) -> list[str]:
    """A deploy application's config (`<app>/config/config_inference.json` beside a model_config.json) runs
    in `ai4med infer` / `evaluate` too: the variables the deploy app defines for it (APP_ROOT, MODEL_DIR,
    PBTXT_PATH) get the same defaults unless given."""
    folder = os.path.dirname(os.path.abspath(config))
    if not os.path.isfile(os.path.join(folder, "model_config.json")):
        return []
    root = os.path.dirname(folder)
    given = {o.split("=", 1)[0] for o in overrides}
    defaults = {"APP_ROOT": root, "PBTXT_PATH": "", "MODEL_DIR": os.path.join(root, "models")}
    return [f"{k}={v}" for k, v in defaults.items() if k not in given]


def resolve_device(name: str | None) -> str:
    """`name`, or "cuda" when a GPU is available, else "cpu"."""
    if name:
        return name
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
