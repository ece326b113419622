"""Cross-validation folds: disjoint, complete, balanced; the per-fold datalist."""

from __future__ import annotations

import json
import os

import pytest

from ai4med.errors import UserError
from ai4med.io.folds import assign_folds, fold_items, split_fold, write_fold_datalist


@pytest.mark.parametrize("n,k", [(5, 5), (11, 5), (7, 3), (4, 2)])
def test_folds_are_disjoint_complete_and_balanced(n, k):
    items = [{"image": f"img_{i}.nii.gz", "label": f"lab_{i}.nii.gz"} for i in range(n)]
    folded = assign_folds(items, k, seed=3)
    sizes = [sum(it["fold"] == f for it in folded) for f in range(k)]
    assert max(sizes) - min(sizes) <= 1 and sum(sizes) == n
    all_val = []
    for f in range(k):
        train, val = split_fold(folded, f)
        t_img, v_img = {it["image"] for it in train}, {it["image"] for it in val}
        assert not t_img & v_img  # disjoint
        assert t_img | v_img == {it["image"] for it in items}  # complete
        all_val.extend(v_img)
    assert sorted(all_val) == sorted(it["image"] for it in items)  # every case validated exactly once
    assert assign_folds(items, k, seed=3) == folded  # deterministic


def test_fold_errors():
    with pytest.raises(UserError, match="at least 2 folds"):
        assign_folds([{"image": "a"}] * 3, 1)
    with pytest.raises(UserError, match="cannot make 5 folds"):
        assign_folds([{"image": "a"}] * 3, 5)
    with pytest.raises(UserError, match="fold 7 not found"):
        split_fold(assign_folds([{"image": str(i)} for i in range(4)], 2), 7)
    with pytest.raises(UserError, match='no item has a "fold"'):
        fold_items({"training": [{"image": "a"}]})
    with pytest.raises(UserError, match="/training/0/fold must be an integer"):
        fold_items({"training": [{"image": "a", "fold": "x"}]})


def test_write_fold_datalist_joins_lists_and_resolves_paths(tmp_path):
    data_root = tmp_path / "data"
    data_root.mkdir()
    items = assign_folds([{"image": f"im{i}.nii.gz", "label": f"lb{i}.nii.gz"} for i in range(6)], 3, seed=0)
    src = tmp_path / "cfg" / "datalist.json"
    src.parent.mkdir()
    src.write_text(json.dumps({"labels": {"0": "bg", "1": "fg"},
                               "training": [it for it in items if it["fold"] != 0],
                               "validation": [it for it in items if it["fold"] == 0]}))
    out = write_fold_datalist(str(src), 2, str(tmp_path / "models" / "fold_2" / "datalist.json"), str(data_root))
    d = json.load(open(out))
    assert d["fold"] == 2 and d["labels"] == {"0": "bg", "1": "fg"}
    assert {it["fold"] for it in d["validation"]} == {2} and len(d["validation"]) == 2
    assert {it["fold"] for it in d["training"]} == {0, 1} and len(d["training"]) == 4
    assert all(it["image"] == os.path.join(str(data_root), os.path.basename(it["image"])) for it in d["training"])


def test_fold_model_paths(tmp_path):
    from ai4med.apps._folds import fold_model_paths

    with pytest.raises(UserError, match="train the folds first"):
        fold_model_paths(str(tmp_path))
    for k in (0, 2, 10):
        (tmp_path / f"fold_{k}").mkdir()
        (tmp_path / f"fold_{k}" / "model.pt").write_bytes(b"x")
    (tmp_path / "fold_x").mkdir()
    assert fold_model_paths(str(tmp_path)) == [str(tmp_path / f"fold_{k}" / "model.pt") for k in (0, 2, 10)]
    assert fold_model_paths(str(tmp_path), [2]) == [str(tmp_path / "fold_2" / "model.pt")]
    with pytest.raises(UserError, match=r"fold\(s\) \[1\] have no model.pt"):
        fold_model_paths(str(tmp_path), [0, 1])
