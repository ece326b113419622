"""`ai4med train/validate -m MMAR --fold K`: the overrides that point a run at fold K.

The fold's datalist (training = every other fold, validation = fold K) is written to
`<MMAR_CKPT_DIR>/fold_K/datalist.json`; checkpoints go to `<MMAR_CKPT_DIR>/fold_K/` and
reports to `<MMAR_EVAL_OUTPUT_PATH>/fold_K/`, so the folds of one MMAR never overwrite each
other and an ensemble finds its members at `models/fold_*/model.pt`.
"""

from __future__ import annotations

import os
from typing import Any

from ai4med.errors import UserError


def fold_overrides(cfg: Any, fold: int, overrides: dict[str, Any]) -> dict[str, Any]:
    """`overrides` plus DATASET_JSON / MMAR_CKPT_DIR / MMAR_EVAL_OUTPUT_PATH for fold `fold` (writes its datalist)."""
    from ai4med.io.folds import write_fold_datalist

    if fold < 0:
        raise UserError(f"--fold must be >= 0, got {fold}")
    datalist = cfg.variables.get("DATASET_JSON")
    if not datalist:
        raise UserError(f"{cfg.file}: --fold needs DATASET_JSON (the datalist with \"fold\" keys) in environment.json")
    datalist = cfg.resolve_path(str(datalist))
    root = cfg.variables.get("DATA_ROOT")
    ckpt = cfg.resolve_path(str(cfg.variables.get("MMAR_CKPT_DIR", "models")))
    evals = cfg.resolve_path(str(cfg.variables.get("MMAR_EVAL_OUTPUT_PATH", "eval")))
    fold_dir = os.path.join(ckpt, f"fold_{fold}")
    path = write_fold_datalist(datalist, fold, os.path.join(fold_dir, "datalist.json"),
                               cfg.resolve_path(str(root)) if root else None)
    out = dict(overrides)
    out["DATASET_JSON"] = path
    out["MMAR_CKPT_DIR"] = fold_dir
    out["MMAR_EVAL_OUTPUT_PATH"] = os.path.join(evals, f"fold_{fold}")
    return out


def fold_model_paths(ckpt_dir: str, folds: str | list[int] = "all", name: str = "model.pt") -> list[str]:
    """The fold checkpoints `<ckpt_dir>/fold_K/<name>` of `folds` ("all", or fold numbers), for an ensemble.

    Raises:
        UserError: no fold trained, or a requested fold without its checkpoint (named).
    """
    import glob
    import re

    found = {}
    for path in glob.glob(os.path.join(ckpt_dir, "fold_*", name)):
        m = re.fullmatch(r"fold_(\d+)", os.path.basename(os.path.dirname(path)))
        if m:
            found[int(m.group(1))] = path
    if folds == "all":
        if not found:
            raise UserError(f"no fold checkpoints {os.path.join(ckpt_dir, 'fold_*', name)}: train the folds first "
                            "(`ai4med train -m MMAR --fold K`)")
        return [found[k] for k in sorted(found)]
    missing = [k for k in folds if k not in found]
    if missing:
        raise UserError(f"fold(s) {missing} have no {name} under {ckpt_dir}/fold_K/ (trained: {sorted(found)})")
    return [found[int(k)] for k in folds]
