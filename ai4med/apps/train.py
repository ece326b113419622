"""`ai4med train`: the MMAR form and the seed-004 (`tlt-train segmentation`) form."""

from __future__ import annotations

import argparse
import logging
import os

from ai4med.errors import UserError

logger = logging.getLogger("ai4med.train")


def resolve_run(args: argparse.Namespace, default_config: str = "config/config_train.json"):
    """(WorkflowConfig, ckpt_dir, eval_dir, pretrained checkpoint) from either CLI form."""
    from ai4med.config.variables import parse_overrides
    from ai4med.config.workflow_config import load_config

    overrides = parse_overrides(args.set or [])
    if args.task and getattr(args, "fold", None) is not None:
        raise UserError("--fold needs the MMAR form (-m MMAR)")
    if args.task:  # seed 004: train segmentation -e CONFIG -d DATALIST -r OUTPUT [-c CKPT] [--file_root ROOT]
        if not args.e:
            raise UserError("the seed form needs -e TRAIN_CONFIG (e.g. `ai4med train segmentation -e config.json "
                            "-d datalist.json -r output_dir`)")
        if not args.datalist or not args.output:
            raise UserError("the seed form needs -d DATALIST and -r OUTPUT_DIR")
        output = os.path.abspath(args.output)
        overrides.setdefault("DATASET_JSON", os.path.abspath(args.datalist))
        overrides.setdefault("DATA_ROOT", os.path.abspath(args.file_root or os.path.dirname(args.datalist)))
        overrides.setdefault("MMAR_CKPT_DIR", output)
        overrides.setdefault("MMAR_EVAL_OUTPUT_PATH", os.path.join(output, "eval"))
        cfg = load_config(args.e, None, overrides)
        pretrained = args.c
        return cfg, output, os.path.join(output, "eval"), pretrained
    if not args.mmar:
        raise UserError("give -m MMAR_ROOT (MMAR form) or a task (`ai4med train segmentation -e CONFIG ...`)")
    root = os.path.abspath(args.mmar)
    if not os.path.isdir(root):
        raise UserError(f"MMAR folder not found: {root}")
    config = os.path.join(root, args.c or default_config)
    env = os.path.join(root, args.e) if args.e else None
    if args.file_root:
        overrides.setdefault("DATA_ROOT", os.path.abspath(args.file_root))
    cfg = load_config(config, env, overrides, mmar_root=root)
    if getattr(args, "fold", None) is not None:  # cross-validation: see apps/_folds.py
        from ai4med.apps._folds import fold_overrides

        cfg = load_config(config, env, fold_overrides(cfg, int(args.fold), overrides), mmar_root=root)
    ckpt_dir = cfg.resolve_path(str(cfg.variables.get("MMAR_CKPT_DIR", "models")))
    eval_dir = cfg.resolve_path(str(cfg.variables.get("MMAR_EVAL_OUTPUT_PATH", "eval")))
    pretrained = cfg.variables.get("MMAR_CKPT")
    return cfg, ckpt_dir, eval_dir, (cfg.resolve_path(str(pretrained)) if pretrained else None)


def run(args: argparse.Namespace) -> int:
    from ai4med.workflows import distributed
    from ai4med.workflows.trainer import Trainer

    cfg, ckpt_dir, eval_dir, pretrained = resolve_run(args)
    trainer = Trainer(cfg, ckpt_dir, eval_dir, device=args.device, pretrained=pretrained)
    try:
        engine = trainer.run(resume=args.resume)
    finally:
        distributed.cleanup()
    s = engine.state
    if distributed.is_main_process():
        best = f", best key metric {s.best_metric:.4f} at epoch {s.best_epoch}" if s.best_epoch >= 0 else ""
        print(f"trained {s.epoch} epochs ({s.iteration} iterations){best}; checkpoints in {ckpt_dir}")
    return 0
