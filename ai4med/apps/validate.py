"""`ai4med validate`: the key metrics of the best checkpoint on the validation list (reports in eval/)."""

from __future__ import annotations

import argparse
import os

from ai4med.errors import UserError


def run(args: argparse.Namespace) -> int:
    from ai4med.apps.train import resolve_run

    cfg, ckpt_dir, eval_dir, _ = resolve_run(args)
    results = validate_checkpoint(cfg, ckpt_dir, eval_dir, device=args.device)
    for name, value in results.items():
        print(f"{name}\t{value:.4f}")
    print(f"reports in {eval_dir}")
    return 0


def validate_checkpoint(cfg, ckpt_dir: str, eval_dir: str, checkpoint: str = "model.pt",
                        device: str | None = None, trainer=None) -> dict[str, float]:
    """Load `checkpoint` into the config's model (or `trainer`'s, already built) and run the
    validation metrics; reports go to `eval_dir`."""
    from ai4med.workflows.handlers.checkpoint import load_weights
    from ai4med.workflows.trainer import Trainer

    path = checkpoint if os.path.isabs(checkpoint) else os.path.join(ckpt_dir, checkpoint)
    if not os.path.exists(path):
        raise UserError(f"no checkpoint to validate: {path} (train first)")
    trainer = trainer or Trainer(cfg, ckpt_dir, eval_dir, device=device)
    load_weights(trainer.module, path)
    validator = trainer.make_validator()
    if validator is None:
        raise UserError(f"{cfg.file}: /validate needs metrics and an image_pipeline")
    results = validator.run()
    validator.write_reports(eval_dir)
    return results
