"""The `ai4med` command: argv -> one function in `ai4med.apps`.

Only argparse is imported here; each command imports its (heavy) implementation when
it runs, so `ai4med --help` answers in a fraction of a second.
"""

from __future__ import annotations

import argparse
import importlib
import logging
import sys
from collections.abc import Callable, Sequence

Adder = Callable[[argparse.ArgumentParser], None]


def _add_demo(p: argparse.ArgumentParser) -> None:
    p.add_argument("--output", "-o", default="demo_output", help="folder for the dataset, results and pictures")
    p.add_argument("--task", choices=["mni152", "synthetic"], default="mni152",
                   help="real anatomy (nilearn's MNI152 tissue classes) or synthetic shapes")
    p.add_argument("--cases", type=int, default=8, help="number of cases to build (a third validate)")
    p.add_argument("--epochs", type=int, default=None, help="override the demo config's epochs")
    p.add_argument("--seed", type=int, default=0)


def _add_make_dataset(p: argparse.ArgumentParser) -> None:
    p.add_argument("task", choices=["mni152", "synthetic"], help="which dataset to build")
    p.add_argument("--output", "-o", required=True, help="folder to write images, labels and datalist.json into")
    p.add_argument("--cases", type=int, default=6)
    p.add_argument("--size", type=int, default=64, help="edge length of each volume in voxels")
    p.add_argument("--seed", type=int, default=0)


def _add_dataconvert(p: argparse.ArgumentParser) -> None:
    p.add_argument("-d", "--input_dir", required=True,
                   help="folder of DICOM series (one per subfolder) or of image files")
    p.add_argument("-o", "--output_dir", required=True, help="folder for the converted files")
    p.add_argument("-s", "--src_ext", required=True, help=".dcm, .nii, .nii.gz, .mha or .mhd")
    p.add_argument("-e", "--dst_ext", required=True, help=".nii, .nii.gz, .mha or .mhd")
    p.add_argument("-r", "--resolution", type=float, nargs="+", default=None,
                   help="output spacing in mm: one value (isotropic) or three; default keeps the input's")
    p.add_argument("-l", "--label", action="store_true", help="label mode: nearest neighbour, integer type kept")
    p.add_argument("-f", "--force", action="store_true", help="overwrite existing outputs")
    p.add_argument("-j", "--jobs", type=int, default=1, help="parallel worker processes")
    p.add_argument("--pixel_type", default=None,
                   choices=["uint8", "int8", "uint16", "int16", "uint32", "int32", "float32", "float64"],
                   help="output pixel type (default: keep the input's)")
    p.add_argument("--datalist", default=None,
                   help="also write a datalist.json here (pairs images and labels by name)")


TASKS = ("segmentation", "classification", "annotation")


def _add_train_like(p: argparse.ArgumentParser) -> None:
    """Two spellings: the MMAR form (`-m MMAR -c config -e environment [KEY=VALUE ...]`, as the MMAR's
    commands/*.sh call it) and seed 004's `tlt-train segmentation -e CONFIG -d DATALIST -r OUTPUT_DIR
    [-c CHECKPOINT] [--file_root ROOT]`, long flags `--config --data_list --model_dir --checkpoint`."""
    p.add_argument("words", nargs="*", metavar="[TASK] [KEY=VALUE ...]",
                   help=f"seed-004 form: a task ({', '.join(TASKS)}), then -e is the config and -c a checkpoint; "
                        "KEY=VALUE words override config globals as --set does")
    p.add_argument("-m", "--mmar", default=None, help="MMAR root folder (MMAR form)")
    p.add_argument("-c", dest="c", default=None,
                   help="MMAR form: config file (relative to the MMAR); seed form: checkpoint to start from")
    p.add_argument("-e", dest="e", default=None,
                   help="MMAR form: environment.json (relative to the MMAR); seed form: the training config")
    p.add_argument("--config", default=None, help="the training config (both forms)")
    p.add_argument("--checkpoint", default=None,
                   help="checkpoint to start from (fine-tuning); a TF name such as model.ckpt means the .pt beside it")
    p.add_argument("-d", "--datalist", "--data_list", dest="datalist", default=None,
                   help="datalist JSON (MMAR form: replaces DATASET_JSON)")
    p.add_argument("-r", "--output", "--model_dir", dest="output", default=None,
                   help="output folder for checkpoints and logs (MMAR form: replaces MMAR_CKPT_DIR)")
    p.add_argument("--file_root", default=None, help="root of the relative paths in the datalist")
    p.add_argument("--set", nargs="*", action="extend", default=[], metavar="KEY=VALUE",
                   help="override config globals/variables (typed: numbers, true/false, JSON lists)")
    p.add_argument("--resume", action="store_true", help="continue from models/last_checkpoint.pt")
    p.add_argument("--fold", type=int, default=None,
                   help="cross-validation fold K: train on the other folds of the datalist, validate on K")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")


def _add_check_datalist(p: argparse.ArgumentParser) -> None:
    p.add_argument("datalist", help="Decathlon-style datalist JSON")
    p.add_argument("--file_root", default=None, help="root for relative paths (default: the datalist's folder)")
    p.add_argument("--key", default=None, help="only this list (training, validation, test, ...)")


# name -> (implementation "module:function", help, argument adder, aliases); an adder given as
# "module:function" lives beside its command and must import only argparse.
COMMANDS: dict[str, tuple[str, str, Adder | str, tuple[str, ...]]] = {
    "demo": ("ai4med.apps.demo:run", "build a demo dataset and run the main job end to end", _add_demo, ()),
    "make-dataset": ("ai4med.apps.make_dataset:run", "build a synthetic or MNI152 dataset with a datalist",
                     _add_make_dataset, ()),
    "dataconvert": ("ai4med.apps.dataconvert:run", "convert/resample DICOM, NIfTI and MetaImage data",
                    _add_dataconvert, ("tlt-dataconvert",)),
    "train": ("ai4med.apps.train:run", "train a model from a config (MMAR or seed-004 form)",
              _add_train_like, ("tlt-train",)),
    "validate": ("ai4med.apps.validate:run", "compute the key metrics of a trained model on the validation list",
                 _add_train_like, ()),
    "infer": ("ai4med.apps.infer:run", "predictions for every case of a datalist (NIfTI with the input's geometry)",
              "ai4med.apps._cli_args:add_infer_args", ("tlt-infer",)),
    "evaluate": ("ai4med.apps.evaluate:run", "per-case, per-class Dice of a model on a datalist, with reports",
                 "ai4med.apps._cli_args:add_evaluate_args", ("tlt-evaluate",)),
    "export": ("ai4med.apps.export:run", "checkpoint -> TorchScript, ONNX, Triton repository, model_config.json",
               "ai4med.apps._cli_args:add_export_args", ("tlt-export",)),
    "serve": ("ai4med.server.app:run", "start the AI-assisted annotation server (AIAA REST API)",
              "ai4med.server.cli_args:add_serve_args", ("start_aas",)),
    "deploy": ("ai4med.deploy.app:run", "base inference application: input folder -> segmentations + render files",
               "ai4med.deploy.cli_args:add_deploy_args", ()),
    "plan": ("ai4med.apps.plan:run", "fingerprint a dataset and write a tuned MMAR (nnU-Net-style planning)",
             "ai4med.apps.plan:add_plan_args", ()),
    "check-datalist": ("ai4med.apps.check_datalist:run", "validate a datalist and every file it names",
                       _add_check_datalist, ()),
}


def build_parser() -> argparse.ArgumentParser:
    from ai4med import __version__

    parser = argparse.ArgumentParser(prog="ai4med", description="ai4med: medical-imaging AI on PyTorch.")
    parser.add_argument("--version", action="version", version=f"ai4med {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, (target, help_text, adder, aliases) in COMMANDS.items():
        p = sub.add_parser(name, help=help_text, description=help_text, aliases=list(aliases))
        if isinstance(adder, str):
            module_name, _, func_name = adder.partition(":")
            adder = getattr(importlib.import_module(module_name), func_name)
        adder(p)
        p.set_defaults(_target=target)
    return parser


#: (variable torch.distributed reads, what Open MPI's / MPICH's mpirun sets instead)
MPI_ENV = (("RANK", ("OMPI_COMM_WORLD_RANK", "PMI_RANK")),
           ("WORLD_SIZE", ("OMPI_COMM_WORLD_SIZE", "PMI_SIZE")),
           ("LOCAL_RANK", ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID")))


def mpi_to_torch_env(environ: dict[str, str] | None = None) -> bool:
    """Seed 004 §6.2 starts multi-GPU training with `mpirun -np N ... tlt-train ...`: map the MPI
    launcher's rank variables to torch.distributed's (RANK, WORLD_SIZE, LOCAL_RANK; MASTER_ADDR
    127.0.0.1 and MASTER_PORT 29500 unless set, as for the seed's `-H localhost:N`). Nothing
    changes under torchrun or without MPI; returns whether it mapped."""
    import os

    env = os.environ if environ is None else environ
    if "RANK" in env:
        return False
    found = {}
    for name, sources in MPI_ENV:
        value = next((env[s] for s in sources if s in env), None)
        if value is not None:
            found[name] = value
    if "RANK" not in found or "WORLD_SIZE" not in found:
        return False
    found.setdefault("LOCAL_RANK", found["RANK"])
    env.update(found)
    env.setdefault("MASTER_ADDR", "127.0.0.1")
    env.setdefault("MASTER_PORT", "29500")
    return True


def log_level(verbose: bool = False) -> int:
    """DEBUG with -v, else INFO; on the non-zero ranks of a multi-process run (torchrun's RANK)
    WARNING, so each line is printed once, by rank 0, and only problems by the others."""
    import os

    rank = os.environ.get("RANK", "0").strip() or "0"
    if rank != "0":
        return logging.WARNING
    return logging.DEBUG if verbose else logging.INFO


def main(argv: Sequence[str] | None = None) -> int:
    mpi_to_torch_env()
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "_target", None):
        parser.print_help()
        return 2
    logging.basicConfig(
        level=log_level(args.verbose),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    module_name, _, func_name = args._target.partition(":")
    func = getattr(importlib.import_module(module_name), func_name)
    try:
        return int(func(args) or 0)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # user-facing errors carry their location in the message
        from ai4med.errors import UserError, user_message

        if isinstance(exc, UserError):
            print(f"error: {user_message(exc)}", file=sys.stderr)
            return 1
        raise


def tlt_dataconvert() -> int:
    """The seed's stand-alone `tlt-dataconvert` spelling."""
    return main(["dataconvert", *sys.argv[1:]])


def tlt_train() -> int:
    """The seed's `tlt-train segmentation -e CONFIG -d DATALIST -r OUTPUT [-c CHECKPOINT]`."""
    return main(["train", *sys.argv[1:]])


def tlt_infer() -> int:
    """The seed's `tlt-infer --model_save_path ... --config ... --data_file ... --output_path ...`."""
    return main(["infer", *sys.argv[1:]])


def tlt_evaluate() -> int:
    """The seed's `tlt-evaluate` (per-case, per-class Dice reports)."""
    return main(["evaluate", *sys.argv[1:]])


def tlt_export() -> int:
    """The seed's `tlt-export --model_file_path DIR --model_name model ...`."""
    return main(["export", *sys.argv[1:]])


if __name__ == "__main__":
    raise SystemExit(main())
