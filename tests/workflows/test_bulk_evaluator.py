"""BulkEvaluator: per-case Dice equals a Dice computed here; predictions keep the input geometry;
label-less items, a bad case and the original-grid restore."""

from __future__ import annotations

import json
import os

import nibabel as nib
import numpy as np
import pytest
import torch

from ai4med.components.inferers.torch_inferers import TorchScanWindowInferer
from ai4med.components.inferers.torch_predictor import TorchInferenceContext
from ai4med.components.metrics.dice import ComputeAverageDice
from ai4med.components.transforms.channels import ConvertToChannelsFirst
from ai4med.components.transforms.io import LoadNifti
from ai4med.components.transforms.spatial import ScaleByResolution
from ai4med.datasets.synthetic import make_synthetic_dataset
from ai4med.workflows.bulk_evaluator import BulkEvaluator, load_items


def threshold_net(k: float = 20.0) -> torch.nn.Module:
    """Two-class logits whose argmax is `image > 0.5`."""
    conv = torch.nn.Conv3d(1, 2, 1)
    with torch.no_grad():
        conv.weight[:] = torch.tensor([-k, k]).view(2, 1, 1, 1, 1)
        conv.bias[:] = torch.tensor([0.5 * k, -0.5 * k])
    return conv.eval()


def dice(pred: np.ndarray, label: np.ndarray) -> float:
    p, t = pred > 0, label > 0
    return 2.0 * np.logical_and(p, t).sum() / (p.sum() + t.sum())


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> str:
    return make_synthetic_dataset(str(tmp_path_factory.mktemp("syn")), num_cases=3, size=32, num_validation=2)


def _evaluator(items, out, **kw) -> BulkEvaluator:
    ctx = TorchInferenceContext(threshold_net(), precision="fp32", runtime="torch")
    pre = kw.pop("pre", [LoadNifti(["image", "label"]), ConvertToChannelsFirst(["image", "label"])])
    return BulkEvaluator(items, ctx, TorchScanWindowInferer([16, 16, 16], 2), pre, output_dir=out, progress=False,
                         **kw)


def test_dice_reports_and_predictions_match_a_direct_computation(dataset, tmp_path) -> None:
    items = load_items(dataset, "validation")
    metric = ComputeAverageDice("mean_dice", "model")
    res = _evaluator(items, str(tmp_path), val_metrics=[metric]).run()
    assert not res.failed and len(res.written) == 2
    raw = (tmp_path / "mean_dice_raw_results.txt").read_text().splitlines()
    expected = []
    for item, line, path in zip(items, raw, res.written):
        image, label = nib.load(item["image"]), nib.load(item["label"])
        written = nib.load(path)
        assert written.shape == image.shape and np.allclose(written.affine, image.affine)
        pred = np.asarray(written.dataobj)
        np.testing.assert_array_equal(pred, (np.asarray(image.dataobj) > 0.5).astype(np.uint8))
        d = dice(pred, np.asarray(label.dataobj))
        name, value = line.split("\t")
        assert name == os.path.basename(item["image"]) and abs(float(value) - d) < 1e-6
        expected.append(d)
    assert 0.2 < np.mean(expected) < 1.0
    name, summary = (tmp_path / "mean_dice_summary_results.txt").read_text().split()
    assert name == "mean_dice" and abs(float(summary) - np.mean(expected)) < 1e-6
    assert abs(res.metrics["mean_dice"] - np.mean(expected)) < 1e-9


def test_resampled_prediction_returns_to_the_input_grid(dataset, tmp_path) -> None:
    items = load_items(dataset, "validation")[:1]
    pre = [LoadNifti(["image", "label"]), ConvertToChannelsFirst(["image", "label"]),
           ScaleByResolution(["image", "label"], target_resolution=[2.0, 2.0, 2.0])]
    metric = ComputeAverageDice("dice", "model")
    res = _evaluator(items, str(tmp_path), pre=pre, val_metrics=[metric]).run()
    assert not res.failed
    src, out = nib.load(items[0]["image"]), nib.load(res.written[0])
    assert out.shape == src.shape == (32, 32, 32) and np.allclose(out.affine, src.affine)
    pred, label = np.asarray(out.dataobj), np.asarray(nib.load(items[0]["label"]).dataobj)
    assert abs(res.metrics["dice"] - dice(pred, label)) < 1e-9 and res.metrics["dice"] > 0.2


def test_items_without_label_and_a_bad_case(dataset, tmp_path) -> None:
    items = [{"image": it["image"]} for key in ("training", "validation") for it in load_items(dataset, key)][:2]
    bad = tmp_path / "broken.nii.gz"
    bad.write_bytes(b"not a nifti")
    items.insert(1, {"image": str(bad)})
    res = _evaluator(items, str(tmp_path / "out"), do_validation=False).run()
    assert [c.error is not None for c in res.cases] == [False, True, False]
    assert "broken.nii.gz" in res.failed[0].name and len(res.written) == 2
    assert all(os.path.exists(p) for p in res.written)


def test_no_overwrite_skips_existing_outputs(dataset, tmp_path) -> None:
    items = [{"image": it["image"]} for it in load_items(dataset, "validation")]
    first = _evaluator(items, str(tmp_path), do_validation=False).run()
    again = _evaluator(items, str(tmp_path), do_validation=False, overwrite_previous_result=False).run()
    assert len(first.written) == 2 and again.cases == []
    assert json.loads(json.dumps(first.metrics)) == {}
