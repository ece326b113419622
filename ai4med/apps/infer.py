"""`ai4med infer` (Clara `infer.sh`, seed 004 `tlt-infer`): predictions for every case of a datalist.

One NIfTI per case, `<output>/<case>/<case>_model.nii.gz` (default output: the MMAR's
eval/), a label map with the input file's geometry (affine and shape), written
atomically. The model is the config's network with the best checkpoint, or an exported
TorchScript / ONNX file (`--model_file_path`), or a model on a Triton server
(`--triton_url`). `--amp` picks the fastest accurate precision; `--runtime openvino` runs a
checkpoint / TorchScript model through OpenVINO on CPU (fp32). See `ai4med.apps.evaluate`.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run"]


def run(args: Any) -> int:
    """The `infer` command (arguments: `ai4med.apps._cli_args.add_infer_args`)."""
    from ai4med.apps.evaluate import run_bulk

    return run_bulk(args, "infer")
