"""Opt-in `channels_last` and `compile` training globals: same training, plain checkpoints."""

import logging
import os

import pytest
import torch
from trainer_fixtures import tiny_config, write_mmar

from ai4med.config.errors import ConfigError
from ai4med.config.registries import get_registry
from ai4med.config.workflow_config import load_config
from ai4med.workflows.trainer import Trainer, TrainSettings


def _trainer(root, overrides=None):
    cfg = load_config(os.path.join(root, "config", "config_train.json"),
                      os.path.join(root, "config", "environment.json"), overrides or {}, mmar_root=root)
    return Trainer(cfg, os.path.join(root, "models"), os.path.join(root, "eval"), device="cpu")


def _fresh_net():
    """The tiny config's network, built plainly (never compiled, default memory format)."""
    args = tiny_config()["train"]["model"]["args"]
    return get_registry("models").get("Unet")(**args).net


def _losses(trainer):
    return [h["train_loss"] for h in trainer.history]


def _load_strict(path):
    state = torch.load(path, weights_only=False)["model"]
    net = _fresh_net()
    net.load_state_dict(state, strict=True)
    assert sorted(state) == sorted(net.state_dict())
    return state


def test_settings_default_off_and_read_like_use_amp(tmp_path, synthetic_data):
    root = write_mmar(tmp_path / "mmar", tiny_config(epochs=1, channels_last="true"), synthetic_data)
    cfg = load_config(os.path.join(root, "config", "config_train.json"), None, ["compile=1"], mmar_root=root)
    s = TrainSettings.from_config(cfg)
    assert s.channels_last is True and s.compile is True
    plain = load_config(os.path.join(root, "config", "config_train.json"), None, ["channels_last=false"],
                        mmar_root=root)
    s = TrainSettings.from_config(plain)
    assert s.channels_last is False and s.compile is False


def test_channels_last_trains_like_default_and_saves_plain_checkpoints(tmp_path, synthetic_data):
    ref = _trainer(write_mmar(tmp_path / "ref", tiny_config(epochs=3), synthetic_data))
    ref.run()
    root = write_mmar(tmp_path / "cl", tiny_config(epochs=3, channels_last=True), synthetic_data)
    cl = _trainer(root)
    convs = [m.weight for m in cl.module.modules() if isinstance(m, (torch.nn.Conv3d, torch.nn.ConvTranspose3d))]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last_3d) for w in convs)
    assert any(not w.is_contiguous() for w in convs)  # (1-channel kernels are both formats at once)
    cl.run()
    assert _losses(cl) == pytest.approx(_losses(ref), rel=1e-4)
    for name in ("model.pt", "final_model.pt"):
        state = _load_strict(os.path.join(root, "models", name))
        assert sorted(state) == sorted(ref.module.state_dict())


def test_compile_trains_validates_and_saves_uncompiled_state_dict(tmp_path, synthetic_data, caplog):
    ref = _trainer(write_mmar(tmp_path / "ref", tiny_config(epochs=1), synthetic_data))
    ref.run()
    root = write_mmar(tmp_path / "compiled", tiny_config(epochs=1), synthetic_data)
    with caplog.at_level(logging.INFO, logger="ai4med.train"):
        tr = _trainer(root, ["compile=true"])
    assert any("compiled with torch.compile on the first training step" in r.getMessage() for r in caplog.records)
    assert getattr(tr.module, "_compiled_call_impl", None) is not None  # compiled in place, not wrapped
    engine = tr.run()
    # torch.compile reorders floating-point work: close, not bit-exact (a near-tie voxel may flip its
    # argmax, so the validation Dice of this one-epoch net gets a little room; a failed run did)
    assert _losses(tr) == pytest.approx(_losses(ref), rel=5e-3)
    assert engine.state.metrics["val_mean_dice"] == pytest.approx(ref.history[-1]["val_mean_dice"], abs=1e-2)
    state = _load_strict(os.path.join(root, "models", "model.pt"))
    assert sorted(state) == sorted(_fresh_net().state_dict()) == sorted(tr.module.state_dict())
    assert os.path.exists(os.path.join(root, "eval", "mean_dice_raw_results.txt"))


def test_compile_unavailable_is_a_config_error_naming_the_key(tmp_path, synthetic_data, monkeypatch):
    import torch._dynamo

    monkeypatch.setattr(torch._dynamo, "is_dynamo_supported", lambda: False)
    root = write_mmar(tmp_path / "mmar", tiny_config(epochs=1, compile=True), synthetic_data)
    with pytest.raises(ConfigError) as err:
        _trainer(root)
    assert err.value.pointer == "/compile" and "compile=false" in str(err.value)
