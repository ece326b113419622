"""Losses: seed-002 dice_loss (numpy port) and MONAI's losses where they are the same function."""

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from monai.losses import DiceCELoss, DiceLoss, FocalLoss

from ai4med.common.build_ctx import BuildContext
from ai4med.components.losses.catalog import REGISTRY
from ai4med.components.losses.dice import dice_loss


def seed_dice_loss_np(predictions, targets, data_format="channels_first", skip_background=False, squared_pred=False,
                      jaccard=False, smooth=1e-5, top_smooth=0.0, is_onehot_targets=False):
    """Seed 002's TF dice_loss, transcribed to numpy."""
    is_channels_first = data_format == "channels_first"
    ch_axis = 1 if is_channels_first else -1
    n_channels_pred = predictions.shape[ch_axis]
    n_len = predictions.ndim
    if not is_onehot_targets:
        targets = np.squeeze(targets, axis=ch_axis).astype(np.int32)
        targets = np.moveaxis(np.eye(n_channels_pred, dtype=np.float32)[targets], -1, ch_axis)
    if skip_background:
        targets = targets[:, 1:] if is_channels_first else targets[..., 1:]
        predictions = predictions[:, 1:] if is_channels_first else predictions[..., 1:]
    reduce_axis = tuple(range(2, n_len)) if is_channels_first else tuple(range(1, n_len - 1))
    intersection = np.sum(targets * predictions, axis=reduce_axis)
    if squared_pred:
        targets, predictions = targets**2, predictions**2
    denominator = np.sum(targets, axis=reduce_axis) + np.sum(predictions, axis=reduce_axis)
    if jaccard:
        denominator = denominator - intersection
    f = (2.0 * intersection + top_smooth) / (denominator + smooth)
    return 1 - np.mean(f)


def _data(seed=0, n=2, c=3, shape=(8, 8, 8)):
    g = torch.Generator().manual_seed(seed)
    logits = torch.randn(n, c, *shape, generator=g) * 2
    labels = torch.randint(0, c, (n, 1, *shape), generator=g)
    return logits, torch.softmax(logits, 1), labels


DICE_VARIANTS = [
    {},
    {"skip_background": True},
    {"squared_pred": True, "jaccard": True},
    {"smooth": 1e-3, "top_smooth": 1e-2},
    {"skip_background": True, "squared_pred": True, "top_smooth": 1.0},
]


@pytest.mark.parametrize("args", DICE_VARIANTS)
def test_dice_matches_seed_numpy_and_monai(args):
    _, probs, labels = _data()
    ours = REGISTRY.get("Dice")(**args).get_loss(probs, labels)
    ref = seed_dice_loss_np(probs.numpy(), labels.numpy(), **args)
    np.testing.assert_allclose(ours.item(), ref, rtol=1e-5)
    monai = DiceLoss(to_onehot_y=True, softmax=False, include_background=not args.get("skip_background", False),
                     squared_pred=args.get("squared_pred", False), jaccard=args.get("jaccard", False),
                     smooth_nr=args.get("top_smooth", 0.0), smooth_dr=args.get("smooth", 1e-5))(probs, labels)
    if args.get("jaccard"):
        # the seed's Jaccard is 2I / (S - I) = 2 * IoU; MONAI's is IoU = 2I / (2 (S - I))
        np.testing.assert_allclose(1 - ours.item(), 2 * (1 - monai.item()), rtol=1e-4)
    else:
        np.testing.assert_allclose(ours.item(), monai.item(), rtol=1e-5)


def test_dice_channels_last_and_onehot_targets():
    _, probs, labels = _data(seed=1)
    ref = seed_dice_loss_np(probs.numpy(), labels.numpy())
    last = dice_loss(torch.movedim(probs, 1, -1), torch.movedim(labels, 1, -1), data_format="channels_last")
    onehot = torch.movedim(F.one_hot(labels[:, 0], 3), -1, 1)
    oh = REGISTRY.get("dice_loss")(is_onehot_targets=True).get_loss(probs, onehot)
    np.testing.assert_allclose([last.item(), oh.item()], [ref, ref], rtol=1e-5)
    # float labels (as loaded from NIfTI) work too
    np.testing.assert_allclose(dice_loss(probs, labels.float()).item(), ref, rtol=1e-5)


def test_dice_perfect_prediction_is_zero_and_build_reads_context():
    _, _, labels = _data(seed=2)
    perfect = torch.movedim(F.one_hot(labels[:, 0], 3), -1, 1).float()
    ctx = BuildContext({BuildContext.KEY_PREDICTIONS: perfect, BuildContext.KEY_LABEL_INPUT: labels})
    assert REGISTRY.get("Dice")().build(ctx).item() == pytest.approx(0.0, abs=1e-6)


def test_dice_sanity_errors():
    probs = torch.rand(1, 1, 4, 4)
    with pytest.raises(ValueError, match="only 1 single channel in the predicted output"):
        dice_loss(probs, torch.zeros(1, 1, 4, 4), skip_background=True)
    with pytest.raises(ValueError, match="only 1 single channel in the true output"):
        dice_loss(torch.rand(1, 2, 4, 4), torch.zeros(1, 1, 4, 4), skip_background=True, is_onehot_targets=True)
    with pytest.raises(ValueError, match="must be equal to use is_onehot_true"):
        dice_loss(torch.rand(1, 3, 4, 4), torch.zeros(1, 2, 4, 4), is_onehot_targets=True)


def test_cross_entropy_matches_torch_and_dice_ce_matches_monai():
    logits, probs, labels = _data(seed=3)
    ce = REGISTRY.get("CrossEntropy")().get_loss(probs, labels)
    np.testing.assert_allclose(ce.item(), F.cross_entropy(logits, labels[:, 0]).item(), rtol=1e-5)
    for name in ("CrossEntropyDice", "DiceCE"):
        ours = REGISTRY.get(name)(skip_background=True).get_loss(probs, labels)
        ref = DiceCELoss(to_onehot_y=True, softmax=True, include_background=False, smooth_nr=0.0)(logits, labels)
        np.testing.assert_allclose(ours.item(), ref.item(), rtol=1e-5)


@pytest.mark.parametrize("alpha", [None, 0.25, [0.2, 0.3, 0.5]])
def test_focal_matches_monai_softmax_focal(alpha):
    logits, probs, labels = _data(seed=4)
    ours = REGISTRY.get("Focal")(gamma=2.0, alpha=alpha).get_loss(probs, labels)
    ref = FocalLoss(to_onehot_y=True, use_softmax=True, gamma=2.0, alpha=alpha)(logits, labels)
    np.testing.assert_allclose(ours.item(), ref.item(), rtol=1e-4)
    fd = REGISTRY.get("FocalDice")(alpha=alpha, lambda_focal=0.5).get_loss(probs, labels)
    dice = DiceLoss(to_onehot_y=True, smooth_nr=0.0)(probs, labels)
    np.testing.assert_allclose(fd.item(), dice.item() + 0.5 * ref.item(), rtol=1e-4)


def test_classification_losses():
    g = torch.Generator().manual_seed(5)
    logits = torch.randn(6, 1, generator=g)
    y = torch.randint(0, 2, (6, 1), generator=g).float()
    bce = REGISTRY.get("BinaryClassificationLoss")().get_loss(logits, y)
    p = torch.sigmoid(logits)
    ref = -(y * torch.log(p) + (1 - y) * torch.log(1 - p)).mean()
    np.testing.assert_allclose(bce.item(), ref.item(), rtol=1e-5)
    np.testing.assert_allclose(
        REGISTRY.get("BinaryClassificationLoss")(from_logits=False).get_loss(p, y).item(), ref.item(), rtol=1e-4)

    logits = torch.randn(6, 3, generator=g)
    idx = torch.tensor([0, 1, 2, 2, 1, 0])
    ce = REGISTRY.get("MulticlassClassificationLoss")().get_loss(logits, idx[:, None])
    np.testing.assert_allclose(ce.item(), F.cross_entropy(logits, idx).item(), rtol=1e-6)
    onehot = F.one_hot(idx, 3)
    np.testing.assert_allclose(
        REGISTRY.get("MulticlassClassificationLoss")().get_loss(logits, onehot).item(), ce.item(), rtol=1e-6)

    w = [1.0, 2.0, 0.0]
    wl = REGISTRY.get("WeightedMulticlassClassificationLoss")(class_weights=w).get_loss(logits, idx)
    per = F.cross_entropy(logits, idx, reduction="none")
    wt = torch.tensor(w)[idx]
    np.testing.assert_allclose(wl.item(), ((wt * per).sum() / (wt != 0).sum()).item(), rtol=1e-6)
    unweighted = REGISTRY.get("WeightedMulticlassClassificationLoss")().get_loss(logits, idx)
    np.testing.assert_allclose(unweighted.item(), ce.item(), rtol=1e-6)


SEG = {"Dice", "dice_loss", "CrossEntropy", "CrossEntropyDice", "DiceCE", "Focal", "FocalDice"}


@pytest.mark.parametrize("name", REGISTRY.names())
def test_every_loss_builds_from_json_and_backpropagates(name):
    logits, _, labels = _data(seed=6, shape=(4, 4))
    if name not in SEG:
        logits, labels = logits[:, :, 0, 0], labels[:, :, 0, 0]
        if name == "BinaryClassificationLoss":
            logits, labels = logits[:, :1], labels.clamp_max(1)
    logits.requires_grad_(True)
    preds = torch.softmax(logits, 1) if name in SEG else logits
    loss = REGISTRY.get(name)(**{}).get_loss(preds, labels, BuildContext())
    assert loss.ndim == 0 and torch.isfinite(loss) and loss.item() > 0
    loss.backward()
    assert logits.grad is not None and torch.isfinite(logits.grad).all()
