"""Aux-ops of seed 001 and the MetricAccumulator: values from a BuildContext."""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.metrics import compute_dice, compute_iou

from ai4med.common.build_ctx import BuildContext
from ai4med.components.aux_ops.accumulator import MetricAccumulator
from ai4med.components.aux_ops.aux_op import AuxiliaryOperation
from ai4med.components.aux_ops.catalog import REGISTRY


def _ctx(pred, label, loss=None):
    items = {BuildContext.KEY_PREDICTIONS: pred, BuildContext.KEY_LABEL_INPUT: label}
    if loss is not None:
        items[BuildContext.KEY_LOSS] = loss
    return BuildContext(items)


def _seg(seed=0, n=2, c=3, shape=(8, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    probs = torch.softmax(torch.randn(n, c, *shape, generator=g) * 3, 1)
    label = torch.randint(0, c, (n, 1, *shape), generator=g)
    label[1][label[1] == 2] = 0  # class 2 absent from the second case
    return probs, label


def test_compute_dice_matches_monai_and_stores_outputs_in_context():
    probs, label = _seg()
    onehot_pred = F.one_hot(probs.argmax(1), 3).movedim(-1, 1).float()
    onehot_lab = F.one_hot(label[:, 0], 3).movedim(-1, 1).float()
    ref = compute_dice(onehot_pred, onehot_lab, include_background=False)  # NaN where label is empty
    ctx = _ctx(probs, label)
    out = REGISTRY.get("ComputeDice")(tag="dice", mask_tag="dice_mask", skip_background=True).build(ctx)
    assert out["dice"].item() == pytest.approx(float(torch.nanmean(ref)), rel=1e-6)
    assert out["dice_mask"].tolist() == [[1.0, 1.0], [1.0, 0.0]]
    assert ctx.must_get("dice") is out["dice"]  # later aux-ops can read it
    iou = REGISTRY.get("ComputeDice")(tag="iou", jaccard=True).build(ctx)["iou"]
    ref_iou = compute_iou(onehot_pred, onehot_lab, include_background=True)
    assert iou.item() == pytest.approx(float(torch.nanmean(ref_iou)), rel=1e-6)


def test_dice_independent_predictions_and_onehot_targets():
    pred = torch.stack([torch.tensor([0.9, 0.6, 0.2, 0.1]), torch.tensor([0.2, 0.7, 0.8, 0.1])])[None]
    lab = torch.stack([torch.tensor([1.0, 1.0, 1.0, 0.0]), torch.tensor([0.0, 0.0, 1.0, 0.0])])[None]
    out = REGISTRY.get("ComputeDice")(tag="d", is_independent_predictions=True, is_onehot_targets=True,
                                      threshold=0.5).get_output_tensors(pred, lab, BuildContext())
    # channel 0: pred {0,1}, label {0,1,2} -> 2*2/5; channel 1: pred {1,2}, label {2} -> 2*1/3
    assert out["d"].item() == pytest.approx((0.8 + 2 / 3) / 2)


def test_dice_masked_output_per_class_nan_for_absent_class():
    probs, label = _seg(seed=1)
    label[:, :][label == 2] = 0  # class 2 absent everywhere
    out = REGISTRY.get("DiceMaskedOutput")(tags=["mean", "c1", "c2"], skip_background=True).build(_ctx(probs, label))
    onehot_pred = F.one_hot(probs.argmax(1), 3).movedim(-1, 1).float()
    onehot_lab = F.one_hot(label[:, 0], 3).movedim(-1, 1).float()
    ref = compute_dice(onehot_pred, onehot_lab, include_background=False)
    assert out["c1"].item() == pytest.approx(float(ref[:, 0].mean()), rel=1e-6)
    assert math.isnan(out["c2"].item())
    assert out["mean"].item() == pytest.approx(out["c1"].item())


def test_neg_loss_and_reduce_mean_masked():
    out = REGISTRY.get("NegLoss")(tag="negloss").build(_ctx(None, None, loss=torch.tensor(0.3, requires_grad=True)))
    assert out["negloss"].item() == pytest.approx(-0.3) and not out["negloss"].requires_grad
    values = torch.tensor([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    mask = torch.tensor([[1, 0, 1], [0, 0, 0]])
    op = REGISTRY.get("ReduceMeanMasked")(tag="m", mask_tag="mm", axis=1)
    out = op.build(_ctx(values, mask))
    assert out["m"][0].item() == 2.0 and math.isnan(out["m"][1].item())
    assert out["mm"].tolist() == [1.0, 0.0]
    assert REGISTRY.get("ReduceMeanMasked")(tag="all").build(_ctx(values, mask))["all"].item() == 2.0


def test_classification_accuracy_and_preds():
    logits = torch.tensor([[2.0, -1.0, 0.0], [0.0, 1.0, 3.0], [0.5, 2.0, 0.0], [1.0, 0.0, -1.0]])
    labels = torch.tensor([0, 2, 0, 0])
    acc = REGISTRY.get("ComputeAccuracy")(tag="acc").build(_ctx(logits, labels[:, None]))["acc"]
    assert acc.item() == 0.75
    onehot = F.one_hot(labels, 3)
    assert REGISTRY.get("ComputeAccuracy")(tag="a").build(_ctx(logits, onehot))["a"].item() == 0.75
    bin_logits = torch.tensor([[2.0], [-1.0], [0.3], [-0.2]])
    bin_labels = torch.tensor([[1], [0], [0], [0]])
    assert REGISTRY.get("ComputeAccuracy")(tag="b", use_sigmoid=True).build(
        _ctx(bin_logits, bin_labels))["b"].item() == 0.75
    out = REGISTRY.get("ComputeBinaryPreds")().build(_ctx(bin_logits, bin_labels))
    torch.testing.assert_close(out["binary_preds"], torch.sigmoid(bin_logits[:, 0]))
    assert out["binary_labels"].tolist() == [1.0, 0.0, 0.0, 0.0]
    mp = REGISTRY.get("ComputeMulticlassPreds")().build(_ctx([logits, bin_logits], [labels, bin_labels]))
    torch.testing.assert_close(mp["preds"][0], torch.softmax(logits, 1))
    torch.testing.assert_close(mp["preds"][1], torch.sigmoid(bin_logits))
    macc = REGISTRY.get("ComputeMulticlassAccuracy")(tag="ma").build(_ctx([logits, bin_logits], [labels, bin_labels]))
    assert macc["ma"].item() == pytest.approx(0.75)
    multilabel = torch.tensor([[1, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]])
    ml = REGISTRY.get("ComputeMulticlassAccuracy")(tag="ml", use_sigmoid_for_accuracy=True).build(
        _ctx(logits, multilabel))["ml"]
    assert ml.item() == pytest.approx(((logits > 0).long() == multilabel).float().mean().item())


ARGS = {
    "ComputeAccuracy": {"tag": "t"}, "ComputeMulticlassAccuracy": {"tag": "t"}, "NegLoss": {"tag": "t"},
    "ComputeDice": {"tag": "t"}, "DiceMaskedOutput": {"tags": ["t", "t1", "t2"]}, "ReduceMeanMasked": {"tag": "t"},
    "ComputeBinaryPreds": {}, "ComputeMulticlassPreds": {},
}


@pytest.mark.parametrize("name", REGISTRY.names())
def test_every_aux_op_builds_from_json_and_computes(name):
    op = REGISTRY.get(name)(**ARGS[name])
    assert isinstance(op, AuxiliaryOperation)
    if name in ("ComputeDice", "DiceMaskedOutput", "ReduceMeanMasked"):
        probs, label = _seg(shape=(4, 4))
        ctx = _ctx(probs, label, loss=torch.tensor(1.0))
    else:
        ctx = _ctx(torch.tensor([[0.3], [-0.4]]), torch.tensor([[1], [0]]), loss=torch.tensor(1.0))
    out = op.build(ctx)
    assert out and all(k in ctx for k in out)
    if "t" in out:
        assert np.isfinite(float(out["t"]))


class _Writer:
    def __init__(self):
        self.scalars = []

    def add_scalar(self, tag, value, step=None):
        self.scalars.append((tag, value, step))


def test_metric_accumulator_summary_print_and_nan():
    writer, lines = _Writer(), []
    acc = MetricAccumulator(summary_writer=writer, print_fn=lines.append, prefix="train/")
    printed_only = REGISTRY.get("NegLoss")(tag="negloss", do_summary=False)
    summary_only = REGISTRY.get("ComputeAccuracy")(tag="acc", do_print=False)
    for loss, a, d in [(0.5, 0.2, float("nan")), (0.3, 0.4, 0.6)]:
        acc.add_aux_op(printed_only, {"negloss": torch.tensor(-loss)})
        acc.add_aux_op(summary_only, {"acc": np.array([a])})
        acc.update({"dice": d, "mask": torch.ones(2, 2)})  # non-scalar "mask" is skipped
    means = acc.report(step=7, epoch=1)
    assert means == pytest.approx({"negloss": -0.4, "acc": 0.3, "dice": 0.6})
    assert sorted(writer.scalars) == sorted([("train/acc", pytest.approx(0.3), 7), ("train/dice", 0.6, 7)])
    assert len(lines) == 1 and "negloss: -0.4000" in lines[0] and "acc" not in lines[0] and "epoch 1" in lines[0]
    assert acc.means() == {}  # reset after report
