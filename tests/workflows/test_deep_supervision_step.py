"""TrainStep with a deep-supervised DynUnet: the loss is nnU-Net's weighted sum over all heads."""

import copy

import torch

from ai4med.components.losses.catalog import REGISTRY as LOSSES
from ai4med.components.models.dynunet import DynUnet, deep_supervision_weights
from ai4med.workflows.engine import Engine
from ai4med.workflows.steps import TrainStep

ARGS = {"num_classes": 2, "kernel_size": [3, 3, 3, 3], "strides": [1, 2, 2, 2], "filters": [4, 8, 16, 32]}


def _batch():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, 32, 32, 32, generator=g)
    y = torch.zeros(2, 1, 32, 32, 32)
    y[:, :, 8:24, 8:24, 8:24] = 1
    return {"image": x, "label": y}


def _step(model, loss):
    opt = torch.optim.SGD(model.net.parameters(), lr=0.0)  # lr 0: weights stay, the loss is comparable
    step = TrainStep(model, model.net, loss, opt, torch.device("cpu"))
    return step(Engine(step), _batch())["loss"]


def test_step_loss_is_weighted_sum_over_heads():
    torch.manual_seed(0)
    model = DynUnet(**ARGS, deep_supervision=True, deep_supr_num=2)
    reference = copy.deepcopy(model)
    loss = LOSSES.get("Dice")()
    got = _step(model, loss)

    batch = _batch()
    with torch.no_grad():
        main = reference.get_predictions(batch["image"], True, None)
        heads = reference.deep_supervision_predictions()
        terms = [loss.get_loss(p, batch["label"], None) for p in [main, *heads]]
    expected = sum(w * t for w, t in zip(deep_supervision_weights(2), terms))
    assert len(heads) == 2 and len(set(round(float(t), 6) for t in terms)) == 3  # the heads differ
    assert abs(got - float(expected)) < 1e-5


def test_plain_dynunet_step_uses_the_single_loss():
    torch.manual_seed(0)
    model = DynUnet(**ARGS)
    reference = copy.deepcopy(model)
    loss = LOSSES.get("Dice")()
    got = _step(model, loss)
    batch = _batch()
    with torch.no_grad():
        expected = loss.get_loss(reference.get_predictions(batch["image"], True, None), batch["label"], None)
    assert abs(got - float(expected)) < 1e-6
