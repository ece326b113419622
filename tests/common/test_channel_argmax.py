"""channel_argmax equals Tensor.argmax (ties: first index), and the Dice aux-op's confusion path equals
the one-hot path for every label layout."""

import pytest
import torch

from ai4med.components.aux_ops.dice import hard_dice_per_class
from ai4med.utils.arrays import channel_argmax


@pytest.mark.parametrize("dim,keepdim", [(0, False), (1, True), (-1, False)])
def test_channel_argmax_equals_argmax_with_ties(dim, keepdim):
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 3, (3, 4, 5, 6), generator=g).float()  # many ties
    assert torch.equal(channel_argmax(x, dim, keepdim), x.argmax(dim, keepdim=keepdim))
    y = torch.randn(2, 20, 7, generator=g)  # more channels than the loop handles: argmax itself
    assert torch.equal(channel_argmax(y, 1), y.argmax(1))
    assert channel_argmax(x, 1).dtype == torch.int64
    small = channel_argmax(x, dim, keepdim, dtype=torch.uint8)  # the Dice aux-op's form
    assert small.dtype == torch.uint8 and torch.equal(small.long(), x.argmax(dim, keepdim=keepdim))
    bf = torch.randn(2, 5, 9, 9, generator=g).to(torch.bfloat16)  # a bf16 autocast output
    assert torch.equal(channel_argmax(bf, 1), bf.argmax(1))


@pytest.mark.parametrize("layout", ["index_channel", "index_no_channel", "channels_last"])
def test_dice_confusion_path_equals_onehot_path(layout):
    g = torch.Generator().manual_seed(1)
    probs = torch.softmax(torch.randn(3, 4, 6, 7, 5, generator=g), 1)
    label = torch.randint(0, 4, (3, 1, 6, 7, 5), generator=g)
    label[2][label[2] == 3] = 0  # class 3 absent from case 2: NaN there
    onehot = torch.nn.functional.one_hot(label[:, 0], 4).movedim(-1, 1).float()
    ref, ref_present = hard_dice_per_class(probs, onehot, is_onehot_targets=True, skip_background=True)
    if layout == "index_channel":
        got, present = hard_dice_per_class(probs, label.float(), skip_background=True)
    elif layout == "index_no_channel":
        got, present = hard_dice_per_class(probs, label[:, 0], skip_background=True)
    else:
        got, present = hard_dice_per_class(probs.movedim(1, -1), label.movedim(1, -1), data_format="channels_last",
                                           skip_background=True)
    assert torch.allclose(got, ref, equal_nan=True) and torch.equal(present, ref_present)
    assert torch.isnan(got[2, 2]) and not torch.isnan(got[:2]).any()
    with pytest.raises(ValueError, match="label values must lie in"):
        hard_dice_per_class(probs, label + 4)


def test_dice_confusion_path_with_many_classes():
    # 20 classes: argmax past the loop's channel limit, and codes past uint8
    g = torch.Generator().manual_seed(2)
    probs = torch.softmax(3 * torch.randn(2, 20, 6, 6, 4, generator=g), 1)
    label = torch.randint(0, 20, (2, 1, 6, 6, 4), generator=g)
    onehot = torch.nn.functional.one_hot(label[:, 0], 20).movedim(-1, 1).float()
    ref, _ = hard_dice_per_class(probs, onehot, is_onehot_targets=True)
    got, _ = hard_dice_per_class(probs, label)
    assert torch.allclose(got, ref, equal_nan=True) and (got > 0).any()
