"""Fingerprint values and the cache."""

from __future__ import annotations

import os
import time

import numpy as np
import pytest

from ai4med.plan import fingerprint as fpm
from ai4med.plan.dataset import read_plan_input


def test_case_fingerprint_values(ct_dataset):
    data = read_plan_input(ct_dataset)
    assert data.modalities == ["CT"] and data.labels == {0: "background", 1: "organ_a", 2: "organ_b"}
    fp = fpm.case_fingerprint(data.cases[0])
    assert fp["shape"] == [24, 24, 8]
    assert fp["spacing"] == pytest.approx([1.0, 1.0, 3.0])
    assert fp["orientation"] == "RAS"
    # class 1: 4*4*3 + 3*3*3 voxels in two components; class 2: 5*6*3 in one
    assert fp["classes"]["1"] == {"fraction": pytest.approx((48 + 27) / (24 * 24 * 8)), "components": 2}
    assert fp["classes"]["2"]["components"] == 1
    ch = fp["intensity"][0]
    # foreground = label > 0: intensities around 60 and 200, never the -1000 HU air
    assert 40 < ch["percentile_00_5"] < 70 and 190 < ch["percentile_99_5"] < 220
    assert ch["min"] > -100
    assert fp["crop_fraction"] == pytest.approx(1.0)  # air is -1000, not 0: no nonzero crop


def test_dataset_fingerprint_pools_and_caches(ct_dataset, tmp_path, monkeypatch):
    data = read_plan_input(ct_dataset)
    cache = str(tmp_path / "cache.json")
    fp = fpm.dataset_fingerprint(data.cases, cache, workers=2, progress=False)
    assert fp["num_cases"] == 4 and fp["classes"] == [1, 2] and fp["num_channels"] == 1
    pooled = fp["foreground_intensity"][0]
    assert 60 < pooled["mean"] < 200 and pooled["std"] > 30
    assert "_samples" not in fp["cases"][0]

    calls = []
    real = fpm.case_fingerprint
    monkeypatch.setattr(fpm, "_job", lambda job: calls.append(job[0]["label"]) or real(*job))
    again = fpm.dataset_fingerprint(data.cases, cache, workers=1, progress=False)
    assert calls == [] and again == fp  # every case from the cache

    time.sleep(0.01)
    os.utime(data.cases[2]["label"])  # a changed file is read again, the others are not
    fpm.dataset_fingerprint(data.cases, cache, workers=1, progress=False)
    assert calls == [data.cases[2]["label"]]


def test_label_shape_mismatch_is_a_clear_error(ct_dataset, tmp_path):
    import nibabel as nib

    data = read_plan_input(ct_dataset)
    bad = str(tmp_path / "bad.nii.gz")
    nib.save(nib.Nifti1Image(np.zeros((5, 5, 5), np.uint8), np.eye(4)), bad)
    with pytest.raises(Exception, match="label shape"):
        fpm.case_fingerprint({"image": data.cases[0]["image"], "label": bad})


def test_plan_input_forms_and_errors(ct_dataset, tmp_path):
    import json

    from ai4med.errors import UserError

    ds = json.load(open(ct_dataset))
    root = os.path.dirname(ct_dataset)
    v2 = dict(ds, channel_names={"0": "CT"}, labels={"background": 0, "organ_a": 1, "organ_b": 2})
    v2.pop("modality")
    p = os.path.join(root, "v2.json")
    json.dump(v2, open(p, "w"))
    data = read_plan_input(p)  # nnU-Net v2 spelling: channel_names, labels name -> index
    assert data.modalities == ["CT"] and data.labels == {0: "background", 1: "organ_a", 2: "organ_b"}
    assert read_plan_input(p, ["mr"]).modalities == ["MR"]  # --modality overrides the file
    unlabelled = dict(ds, training=[{"image": it["image"]} for it in ds["training"]])
    json.dump(unlabelled, open(p, "w"))
    with pytest.raises(UserError, match="/training/0 has no 'label'"):
        read_plan_input(p)
    two = dict(ds, modality={"0": "CT", "1": "MR", "2": "MR"},
               training=[{"image": [it["image"], it["image"]], "label": it["label"]} for it in ds["training"]])
    json.dump(two, open(p, "w"))
    with pytest.raises(UserError, match="3 modalities for 2 channels"):
        read_plan_input(p)
