"""`ai4med train`: the MMAR form and the seed-004 (`tlt-train segmentation`) form."""

from __future__ import annotations

import argparse
import logging
import os

from ai4med.errors import UserError

logger = logging.getLogger("ai4med.train")


TASKS = ("segmentation", "classification", "annotation")


def split_words(args: argparse.Namespace) -> tuple[str | None, list[str]]:
    """(task, KEY=VALUE overrides) from the positional words: an optional seed-004 task first,
    then overrides as commands/train.sh passes them (`./train.sh epochs=5`)."""
    words = list(getattr(args, "words", None) or [])
    task = words.pop(0) if words and words[0] in TASKS else None
    bad = [w for w in words if "=" not in w]
    if bad:
        raise UserError(f"unexpected argument {bad[0]!r}: positional words are a task ({', '.join(TASKS)}) "
                        "and KEY=VALUE overrides (e.g. epochs=5)")
    return task, words


def seed_checkpoint(path: str | None) -> str | None:
    """A checkpoint as the seed names it: TF's `model.ckpt` (a file prefix, not a file) means the
    `model.pt` beside it when no such file exists."""
    if not path:
        return path
    stem, ext = os.path.splitext(path)
    if ext in (".ckpt", ".pb") and not os.path.exists(path):
        stem = stem[: -len(".trt")] if stem.endswith((".trt", ".fzn")) else stem
        for candidate in (stem + ".pt", os.path.join(os.path.dirname(path), "model.pt")):
            if os.path.isfile(candidate):
                logger.info("checkpoint %s (TensorFlow name) -> %s", path, candidate)
                return candidate
    return path


def resolve_run(args: argparse.Namespace, default_config: str = "config/config_train.json"):
    """(WorkflowConfig, ckpt_dir, eval_dir, pretrained checkpoint) from either CLI form."""
    from ai4med.config.variables import parse_overrides
    from ai4med.config.workflow_config import load_config

    task, words = split_words(args)
    overrides = parse_overrides(list(args.set or []) + words)
    checkpoint = getattr(args, "checkpoint", None)
    if (task or (not args.mmar and args.output)) and getattr(args, "fold", None) is not None:
        raise UserError("--fold needs the MMAR form (-m MMAR)")
    if task or (not args.mmar and args.output):
        # seed 004: train segmentation -e CONFIG -d DATALIST -r OUTPUT [-c CKPT] [--file_root ROOT]
        config = args.config or args.e
        if not config:
            raise UserError("the seed form needs -e TRAIN_CONFIG (e.g. `tlt-train segmentation -e config.json "
                            "-d datalist.json -r output_dir`)")
        if not args.datalist or not args.output:
            raise UserError("the seed form needs -d DATALIST and -r OUTPUT_DIR (--data_list, --model_dir)")
        output = os.path.abspath(args.output)
        overrides.setdefault("DATASET_JSON", os.path.abspath(args.datalist))
        overrides.setdefault("DATA_ROOT", os.path.abspath(args.file_root or os.path.dirname(args.datalist)))
        overrides.setdefault("MMAR_CKPT_DIR", output)
        overrides.setdefault("MMAR_EVAL_OUTPUT_PATH", os.path.join(output, "eval"))
        cfg = load_config(config, None, overrides)
        return cfg, output, os.path.join(output, "eval"), seed_checkpoint(checkpoint or args.c)
    if not args.mmar:
        raise UserError("give -m MMAR_ROOT (MMAR form) or a task (`tlt-train segmentation -e CONFIG -d DATALIST "
                        "-r OUTPUT_DIR`)")
    root = os.path.abspath(args.mmar)
    if not os.path.isdir(root):
        raise UserError(f"MMAR folder not found: {root}")
    config = os.path.join(root, args.config or args.c or default_config)
    env = os.path.join(root, args.e) if args.e else None
    if args.file_root:
        overrides.setdefault("DATA_ROOT", os.path.abspath(args.file_root))
    if args.datalist:
        overrides.setdefault("DATASET_JSON", os.path.abspath(args.datalist))
    if args.output:
        overrides.setdefault("MMAR_CKPT_DIR", os.path.abspath(args.output))
    if checkpoint:
        overrides.setdefault("MMAR_CKPT", os.path.abspath(checkpoint))
    cfg = load_config(config, env, overrides, mmar_root=root)
    if getattr(args, "fold", None) is not None:  # cross-validation: see apps/_folds.py
        from ai4med.apps._folds import fold_overrides

        cfg = load_config(config, env, fold_overrides(cfg, int(args.fold), overrides), mmar_root=root)
    ckpt_dir = cfg.resolve_path(str(cfg.variables.get("MMAR_CKPT_DIR", "models")))
    eval_dir = cfg.resolve_path(str(cfg.variables.get("MMAR_EVAL_OUTPUT_PATH", "eval")))
    pretrained = cfg.variables.get("MMAR_CKPT")
    return cfg, ckpt_dir, eval_dir, (seed_checkpoint(cfg.resolve_path(str(pretrained))) if pretrained else None)


def save_config_copy(cfg, ckpt_dir: str) -> str:
    """`<ckpt_dir>/config_train.json`: the config as trained (overrides applied, 2019 form rewritten),
    so `tlt-export --model_file_path <ckpt_dir>` rebuilds the same network without the MMAR."""
    import json

    from ai4med.io.atomic import atomic_write_text

    path = os.path.join(ckpt_dir, "config_train.json")
    os.makedirs(ckpt_dir, exist_ok=True)
    atomic_write_text(path, json.dumps(cfg.data, indent=2) + "\n")
    return path


def run(args: argparse.Namespace) -> int:
    from ai4med.workflows import distributed
    from ai4med.workflows.trainer import Trainer

    cfg, ckpt_dir, eval_dir, pretrained = resolve_run(args)
    trainer = Trainer(cfg, ckpt_dir, eval_dir, device=args.device, pretrained=pretrained)
    try:
        engine = trainer.run(resume=args.resume)
        main = distributed.is_main_process()  # asked before cleanup ends the process group
        # every rank done before any tears its group down: in one run of the two-rank test, a rank that
        # destroyed its gloo group while the other was still finishing aborted at exit ("terminate called
        # without an active exception"); only on success (a failed rank's peer may be mid-collective)
        distributed.barrier()
    finally:
        distributed.cleanup()
    s = engine.state
    if main:
        if not args.mmar:  # seed form: no MMAR to find the config in later
            save_config_copy(cfg, ckpt_dir)
        best = f", best key metric {s.best_metric:.4f} at epoch {s.best_epoch}" if s.best_epoch >= 0 else ""
        print(f"trained {s.epoch} epochs ({s.iteration} iterations){best}; checkpoints in {ckpt_dir}")
    return 0
