"""Built-in models: each registry name builds from JSON args and predicts on a tiny input."""

import sys
from pathlib import Path

import pytest
import torch

from ai4med.common.build_ctx import BuildContext
from ai4med.components.models.catalog import REGISTRY
from ai4med.components.models.torch_model import TorchModel, apply_final_activation, find_module
from ai4med.config.registry import import_object

# name -> (json args, input shape, output shape)
CASES = {
    "SegAhnet": ({"num_classes": 2, "layers": [1, 1, 1, 1]}, (1, 1, 32, 32, 32), (1, 2, 32, 32, 32)),
    "SegmAhnet3D": ({"num_classes": 2, "n_spatial_dim": 2, "layers": "1,1,1,1"}, (1, 1, 32, 32), (1, 2, 32, 32)),
    "SegResnet": ({"num_classes": 3, "blocks_down": "1,1", "blocks_up": "1", "init_filters": 4, "use_group_normG": 2},
                  (1, 1, 16, 16, 16), (1, 3, 16, 16, 16)),
    "Unet": ({"num_classes": 2, "channels": [4, 8, 16], "num_res_units": 1}, (2, 1, 16, 16, 16), (2, 2, 16, 16, 16)),
    "DenseNet121": ({"num_classes": 3, "n_spatial_dim": 2, "block_config": [1, 1, 1, 1], "init_features": 8,
                     "growth_rate": 4}, (2, 1, 32, 32), (2, 3)),
    "Alexnet": ({"num_classes": 2, "num_feat": 2, "num_hidden": 8, "spatial_dims": 3}, (2, 1, 32, 32, 32), (2, 2)),
    "DynUnet": ({"num_classes": 2, "kernel_size": [3, 3, 3], "strides": [1, 2, 2], "filters": [4, 8, 16]},
                (1, 1, 16, 16, 16), (1, 2, 16, 16, 16)),
}


def test_every_registered_model_has_a_case():
    assert sorted(CASES) == REGISTRY.names()


@pytest.mark.parametrize("name", sorted(CASES))
def test_model_builds_from_json_and_predicts(name):
    args, in_shape, out_shape = CASES[name]
    torch.manual_seed(0)
    model = REGISTRY.get(name)(**args)
    ctx = BuildContext({BuildContext.KEY_MODEL_INPUT: torch.randn(in_shape), BuildContext.KEY_IS_TRAIN: False})
    out = model.build(ctx)
    assert tuple(out.shape) == out_shape
    assert torch.isfinite(out).all()
    module = find_module(model)
    assert not module.training  # is_training=False switched to eval mode
    if out.ndim > 2 and model.final_activation == "softmax":
        torch.testing.assert_close(out.sum(1), torch.ones_like(out.sum(1)))
    # the prediction equals the module's raw output after the final activation
    torch.testing.assert_close(out, apply_final_activation(module(ctx[BuildContext.KEY_MODEL_INPUT]),
                                                           model.final_activation))
    assert sum(p.numel() for p in model.parameters()) > 0
    assert set(model.state_dict()) == set(module.state_dict())


def test_final_activation_values_and_error():
    x = torch.tensor([[1.0, 2.0, 0.5]])
    torch.testing.assert_close(apply_final_activation(x, "softmax"), torch.softmax(x, 1))
    torch.testing.assert_close(apply_final_activation(x, "Sigmoid"), torch.sigmoid(x))
    assert apply_final_activation(x, "linear") is x
    with pytest.raises(ValueError, match="final_activation"):
        apply_final_activation(x, "relu")
    with pytest.raises(ValueError, match="final_activation"):
        TorchModel(torch.nn.Identity(), final_activation="tanh")


def test_channels_last_matches_channels_first():
    torch.manual_seed(0)
    first = REGISTRY.get("Unet")(num_classes=2, channels=[4, 8], n_spatial_dim=2, num_res_units=0)
    last = REGISTRY.get("Unet")(num_classes=2, channels=[4, 8], n_spatial_dim=2, num_res_units=0,
                                data_format="channels_last")
    last.load_state_dict(first.state_dict())
    x = torch.randn(1, 1, 16, 16)
    y_first = first.get_predictions(x, False, None)
    y_last = last.get_predictions(x.permute(0, 2, 3, 1), False, None)
    torch.testing.assert_close(y_last, y_first.permute(0, 2, 3, 1))


def test_segresnet_vae_adds_loss_in_training():
    torch.manual_seed(0)
    m = REGISTRY.get("SegResnet")(num_classes=2, blocks_down="1,1", blocks_up="1", init_filters=8, use_vae=True,
                                  input_image_size=[16, 16, 16], reg_weight=1e-3)
    m.get_predictions(torch.randn(1, 1, 16, 16, 16), True, None)
    extra = m.get_loss()
    l2 = 1e-3 * sum(p.pow(2).sum() for n, p in m.net.named_parameters() if n.endswith("weight") and p.ndim > 1)
    assert float(extra.detach()) > float(l2.detach()) > 0  # the VAE term is positive


def test_alexnet_mil_takes_max_over_instances():
    torch.manual_seed(0)
    m = REGISTRY.get("Alexnet")(num_classes=2, num_feat=2, num_hidden=8, mil=True, dropout_prob=0.0)
    bags = torch.randn(2, 3, 1, 32, 32)
    out = m.get_predictions(bags, False, None)
    per_instance = m.net.classifier(torch.flatten(m.net.pool(m.net.features(bags.flatten(0, 1))), 1))
    torch.testing.assert_close(out, per_instance.view(2, 3, 2).amax(1))


def test_seed_custom_network_by_path_trains(monkeypatch):
    monkeypatch.syspath_prepend(str(Path(__file__).parent))
    sys.modules.pop("custom_network", None)
    cls = import_object("custom_network.CustomNetwork")
    torch.manual_seed(0)
    model = cls(num_classes=2, factor=4, final_activation="softmax")
    module = find_module(model)
    opt = torch.optim.Adam(module.parameters(), lr=1e-2)
    x = torch.randn(2, 1, 8, 8, 8)
    y = (x > 0).long()
    losses = []
    for _ in range(20):
        pred = model.get_predictions(x, True, None)
        loss = torch.nn.functional.nll_loss(torch.log(pred + 1e-7), y[:, 0]) + model.get_loss()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert pred.shape == (2, 2, 8, 8, 8)
    assert losses[-1] < 0.6 * losses[0]
