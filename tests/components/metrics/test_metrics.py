"""Validation metrics: values against MONAI's DiceMetric / compute_roc_auc, reports, 2019 spellings."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.metrics import DiceMetric, compute_roc_auc

from ai4med.components.metric import Metric
from ai4med.components.metrics.catalog import REGISTRY
from ai4med.components.metrics.dice import dice_per_class


def _seg_batch(seed=0, n=3, c=3, shape=(8, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(n, c, *shape, generator=g) * 3, 1)
    label = torch.randint(0, c, (n, 1, *shape), generator=g)
    if n > 1:
        label[1][label[1] == 2] = 0  # a class absent from one case -> NaN, ignored
    return probs, label


def _monai_dice(probs, label, include_background=False):
    c = probs.shape[1]
    metric = DiceMetric(include_background=include_background, reduction="mean")
    metric(F.one_hot(probs.argmax(1), c).movedim(-1, 1), F.one_hot(label[:, 0], c).movedim(-1, 1))
    return metric.aggregate().item()


@pytest.mark.parametrize("remove_bg", [True, False])
def test_compute_average_dice_matches_monai(remove_bg, tmp_path):
    probs, label = _seg_batch()
    m = REGISTRY.get("ComputeAverageDice")(name="mean_dice", field="model", remove_bg=remove_bg,
                                          report_path=str(tmp_path), is_key_metric=True)
    assert isinstance(m, Metric) and m.is_key_metric()
    for i in range(3):  # case by case, as the validation loop does with batch size 1
        m.update_from({"model": probs[i], "label": label[i]}, case_name=f"case{i}")
    assert m.get() == pytest.approx(_monai_dice(probs, label, include_background=not remove_bg), rel=1e-6)
    raw, summary = m.write_reports()
    lines = open(raw).read().splitlines()
    assert len(lines) == 3 and lines[1].startswith("case1\t") and "nan" in lines[1]
    assert open(summary).read().startswith("mean_dice\t")
    # the same numbers from one batched update
    b = REGISTRY.get("ComputeAverageDice")(name="d", field="model", remove_bg=remove_bg)
    b.update(probs, ["a", "b", "c"], label_value=label)
    assert b.get() == pytest.approx(m.get())


def test_dice_single_channel_threshold_argmaxed_and_onehot_inputs():
    label = np.array([[[0, 1, 1, 0]]])  # (1, 1, 4) -> a 2D case of H=1, W=4
    sig = np.array([[[0.2, 0.7, 0.4, 0.9]]])
    assert dice_per_class(sig, label, logit_thresh=0.5).tolist() == pytest.approx([2 * 1 / 4])
    argmaxed = np.array([[[0, 2, 1, 1]]])
    label3 = np.array([[[0, 2, 1, 0]]])
    assert dice_per_class(argmaxed, label3).tolist() == pytest.approx([2 / 3, 1.0])
    onehot = np.eye(3)[label3[0]].transpose(2, 0, 1)
    m = REGISTRY.get("ComputeAverageDice")(name="d", field="p", is_2d=True, is_one_hot_targets=True)
    m.update_from({"p": argmaxed, "label": onehot})
    assert m.get() == pytest.approx((2 / 3 + 1.0) / 2)


def test_metric_average_from_array_dice_2019_spellings():
    probs, label = _seg_batch(seed=1, n=2)
    m = REGISTRY.get("MetricAverageFromArrayDice")(tag="mean_dice", applied_key="model", stopping_metric=True)
    assert (m.get_name(), m.get_field(), m.is_key_metric(), m.get_label_field()) == ("mean_dice", "model", True,
                                                                                       "label")
    m.update_from({"model": probs, "label": label})
    assert m.get() == pytest.approx(_monai_dice(probs, label), rel=1e-6)


def test_compute_average_negate_invalid_and_reports(tmp_path):
    m = REGISTRY.get("ComputeAverage")(name="negloss", field="loss", negate_value=True, report_path=str(tmp_path))
    assert math.isnan(m.get())  # invalid_value before any case
    m.update_from({"loss": torch.tensor(0.2)}, "a")
    m.update_from({"loss": np.array([0.4, float("nan")])}, ["b", "c"])
    assert m.get() == pytest.approx(-0.3)
    paths = m.write_reports()
    assert [p.rsplit("/", 1)[1] for p in paths] == ["negloss_raw_results.txt", "negloss_summary_results.txt"]
    assert open(paths[1]).read() == "negloss\t-0.300000\n"
    z = REGISTRY.get("ComputeAverage")(name="z", field="f", invalid_value=-1.0)
    assert z.get() == -1.0


def test_compute_auc_matches_monai():
    g = torch.Generator().manual_seed(2)
    probs = torch.rand(20, generator=g)
    labels = (torch.rand(20, generator=g) < probs).float()
    m = REGISTRY.get("ComputeAUC")(name="auc", field="p", label_field="y")
    for i in range(0, 20, 5):
        m.update_from({"p": probs[i:i + 5], "y": labels[i:i + 5]})
    assert m.get() == pytest.approx(float(compute_roc_auc(probs, labels)))
    # multi-class softmax probabilities with index labels, macro and one class
    p3 = torch.softmax(torch.randn(30, 3, generator=g), 1)
    y3 = torch.randint(0, 3, (30,), generator=g)
    oh = F.one_hot(y3, 3).float()
    macro = REGISTRY.get("ComputeAUC")(name="a", field="p", label_field="y")
    macro.update(p3, label_value=y3)
    assert macro.get() == pytest.approx(float(compute_roc_auc(p3, oh, average="macro")))
    one = REGISTRY.get("ComputeAUC")(name="a1", field="p", label_field="y", class_index=2)
    one.update(p3, label_value=y3)
    assert one.get() == pytest.approx(float(compute_roc_auc(p3[:, 2], oh[:, 2])))


def test_compute_multiclass_average_over_heads():
    g = torch.Generator().manual_seed(3)
    head_a = torch.rand(16, generator=g)[:, None]
    lab_a = (torch.rand(16, 1, generator=g) < head_a).float()
    head_b = torch.softmax(torch.randn(16, 3, generator=g), 1)
    lab_b = torch.randint(0, 3, (16,), generator=g)
    m = REGISTRY.get("ComputeMulticlassAverage")(name="mauc", field="preds", label_field="labels")
    m.update_from({"preds": [head_a[:8], head_b[:8]], "labels": [lab_a[:8], lab_b[:8]]})
    m.update_from({"preds": [head_a[8:], head_b[8:]], "labels": [lab_a[8:], lab_b[8:]]})
    auc_a = float(compute_roc_auc(head_a[:, 0], lab_a[:, 0]))
    auc_b = float(compute_roc_auc(head_b, F.one_hot(lab_b, 3).float()))
    assert m.get() == pytest.approx((auc_a + auc_b) / 2)
    only_b = REGISTRY.get("ComputeMulticlassAverage")(name="b", field="p", label_field="y", label_index=1)
    only_b.update([head_a, head_b], label_value=[lab_a, lab_b])
    assert only_b.get() == pytest.approx(auc_b)


ARGS = {
    "ComputeAverageDice": {"name": "m", "field": "model"},
    "MetricAverageFromArrayDice": {"tag": "m", "applied_key": "model"},
    "ComputeAverage": {"name": "m", "field": "model"},
    "ComputeAUC": {"name": "m", "field": "model", "label_field": "label"},
    "ComputeMulticlassAverage": {"name": "m", "field": "model", "label_field": "label"},
    "ComputeHausdorff95": {"name": "m", "field": "model"},
    "ComputeSurfaceDice": {"name": "m", "field": "model", "tolerance": 1.0},
}


@pytest.mark.parametrize("name", REGISTRY.names())
def test_every_metric_builds_from_json_and_computes(name):
    m = REGISTRY.get(name)(**ARGS[name])
    if "Dice" in name or "Hausdorff" in name:
        probs, label = _seg_batch(n=1, shape=(4, 4, 4))
        fields = {"model": probs, "label": label}
    elif name == "ComputeAverage":
        fields = {"model": 0.5}
    else:
        fields = {"model": torch.tensor([[0.2], [0.9], [0.6], [0.1]]), "label": torch.tensor([[0], [1], [1], [0]])}
    m.update_from(fields, "case")
    assert np.isfinite(m.get())
