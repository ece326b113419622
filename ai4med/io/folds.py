"""Cross-validation folds of a datalist: assign, split, and write the per-fold datalist.

`ai4med plan` tags every labelled case with `"fold": k` (the MONAI Auto3DSeg spelling);
the planned datalist keeps fold 0 under `validation` and the rest under `training`, so a
plain `ai4med train -m MMAR` trains fold 0. `ai4med train -m MMAR --fold K` joins every
list, then trains on the cases whose fold is not K and validates on fold K.

Example:
    >>> items = [{"image": f"{i}.nii.gz"} for i in range(5)]
    >>> [it["fold"] for it in assign_folds(items, 2, seed=0)]
    [1, 0, 0, 0, 1]
    >>> tr, va = split_fold(assign_folds(items, 2, seed=0), 1)
    >>> len(tr), len(va)
    (3, 2)
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from typing import Any

import numpy as np

from ai4med.errors import UserError

__all__ = ["assign_folds", "split_fold", "fold_items", "write_fold_datalist"]


def assign_folds(items: Sequence[dict[str, Any]], num_folds: int = 5, seed: int = 0) -> list[dict[str, Any]]:
    """Copies of `items` with `"fold"` set: a seeded shuffle dealt round-robin (sizes differ by <= 1)."""
    if num_folds < 2:
        raise UserError(f"cross-validation needs at least 2 folds, got {num_folds}")
    if len(items) < num_folds:
        raise UserError(f"{len(items)} labelled cases cannot make {num_folds} folds (give --folds <= {len(items)})")
    order = np.random.default_rng(seed).permutation(len(items))
    out = [dict(it) for it in items]
    for rank, idx in enumerate(order):
        out[int(idx)]["fold"] = rank % num_folds
    return out


def _key(item: dict[str, Any]) -> str:
    image = item.get("image")
    return repr(image)


def fold_items(sections: dict[str, Any], where: str = "datalist") -> list[dict[str, Any]]:
    """Every item of every list that carries a `"fold"`, once each (by image path), in file order."""
    seen: dict[str, dict[str, Any]] = {}
    for key, value in sections.items():
        if not isinstance(value, list):
            continue
        for i, item in enumerate(value):
            if isinstance(item, dict) and "fold" in item:
                if not isinstance(item["fold"], int) or isinstance(item["fold"], bool) or item["fold"] < 0:
                    raise UserError(f"{where}: /{key}/{i}/fold must be an integer >= 0, got {item['fold']!r}")
                seen.setdefault(_key(item), item)
    if not seen:
        raise UserError(f"{where}: no item has a \"fold\" key; `ai4med plan` writes them "
                        "(or add \"fold\": k to each training item)")
    return list(seen.values())


def split_fold(items: Sequence[dict[str, Any]], fold: int, where: str = "datalist") -> tuple[list, list]:
    """(training, validation): the items whose fold is not `fold`, and those whose fold is."""
    folds = sorted({int(it["fold"]) for it in items})
    if fold not in folds:
        raise UserError(f"{where}: fold {fold} not found; the datalist has folds {folds}")
    train = [it for it in items if it["fold"] != fold]
    val = [it for it in items if it["fold"] == fold]
    if not train:
        raise UserError(f"{where}: fold {fold} holds every case; nothing is left to train on")
    return train, val


def write_fold_datalist(datalist: str, fold: int, out_path: str, base_dir: str | None = None) -> str:
    """Write the fold-`fold` datalist of `datalist` to `out_path`, with absolute paths.

    Relative paths are resolved against `base_dir` (the config's DATA_ROOT) when given, else the
    datalist's folder, as the image pipeline would; absolute paths stay valid whatever base the
    pipeline reading the new file is given.
    """
    import json

    from ai4med.io.atomic import atomic_write_text
    from ai4med.io.datalist import load_datalists, read_datalist_json

    data = read_datalist_json(datalist)
    keys = [k for k, v in data.items() if isinstance(v, list) and any(isinstance(i, dict) and "fold" in i for i in v)]
    items = fold_items({k: data[k] for k in keys}, datalist)
    resolved = load_datalists(datalist, keys, base_dir=base_dir, check_files=False, path_keys=("image", "label"))
    by_key: dict[str, dict[str, Any]] = {}
    for k in keys:
        for raw, full in zip(data[k], resolved[k]):
            if isinstance(raw, dict) and "fold" in raw:
                by_key.setdefault(_key(raw), full)
    train, val = split_fold([by_key[_key(it)] for it in items], fold, datalist)
    meta = {k: v for k, v in data.items() if not isinstance(v, list)}
    meta.update({"fold": fold, "source_datalist": os.path.abspath(datalist)})
    out = {**meta, "training": train, "validation": val}
    return atomic_write_text(os.path.abspath(out_path), json.dumps(out, indent=2) + "\n")
