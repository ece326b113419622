"""DynUnet deep supervision: heads kept aside in training, none in eval, nnU-Net weights."""

import pytest
import torch

from ai4med.components.models.dynunet import DynUnet, deep_supervision_weights

ARGS = {"num_classes": 3, "kernel_size": [3, 3, 3, 3], "strides": [1, 2, 2, 2], "filters": [4, 8, 16, 32]}


def test_training_forward_returns_main_output_and_keeps_activated_heads():
    torch.manual_seed(0)
    model = DynUnet(**ARGS, deep_supervision=True, deep_supr_num=2)
    x = torch.randn(2, 1, 32, 32, 32)
    pred = model.get_predictions(x, True, None)
    heads = model.deep_supervision_predictions()
    assert pred.shape == (2, 3, 32, 32, 32)
    assert [tuple(h.shape) for h in heads] == [(2, 3, 32, 32, 32)] * 2
    for h in [pred, *heads]:  # softmax over channels on every output
        torch.testing.assert_close(h.sum(1), torch.ones(2, 32, 32, 32))
    # the main output is MONAI's first stacked output, the heads the next ones
    raw = model.net(x)
    torch.testing.assert_close(pred, torch.softmax(raw[:, 0], 1))
    torch.testing.assert_close(heads[1], torch.softmax(raw[:, 2], 1))
    assert not torch.allclose(heads[0], pred)


def test_eval_forward_has_no_heads_and_equals_plain_network_weights():
    torch.manual_seed(0)
    ds = DynUnet(**ARGS, deep_supervision=True, deep_supr_num=1)
    plain = DynUnet(**ARGS)
    missing, unexpected = plain.net.load_state_dict(ds.net.state_dict(), strict=False)
    assert not missing and unexpected  # the heads' weights only
    assert all("deep_supervision_heads" in k or "super_head" in k for k in unexpected)
    x = torch.randn(1, 1, 32, 32, 32)
    ds.get_predictions(x, True, None)
    out = ds.get_predictions(x, False, None)
    assert ds.deep_supervision_predictions() == []
    torch.testing.assert_close(out, plain.get_predictions(x, False, None))


def test_channels_last_heads():
    model = DynUnet(**ARGS, deep_supervision=True, data_format="channels_last")
    pred = model.get_predictions(torch.randn(1, 16, 16, 16, 1), True, None)
    assert pred.shape == (1, 16, 16, 16, 3)
    assert [tuple(h.shape) for h in model.deep_supervision_predictions()] == [(1, 16, 16, 16, 3)]


def test_weights_and_bad_head_count():
    assert deep_supervision_weights(0) == [1.0]
    w = deep_supervision_weights(3)
    assert sum(w) == pytest.approx(1.0) and w[0] == pytest.approx(2 * w[1]) == pytest.approx(8 * w[3])
    with pytest.raises(ValueError, match=r"deep_supr_num must be in 1\.\.2"):
        DynUnet(**ARGS, deep_supervision=True, deep_supr_num=3)
