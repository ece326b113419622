"""`channels_last` in training configs: "auto" (default) times each convolution's layout once per machine."""

import json
import logging
import os

import pytest
from trainer_fixtures import tiny_config, write_mmar

from ai4med.cli import main
from ai4med.config.errors import ConfigError


def _train(root):
    return main(["train", "-m", str(root), "-c", "config/config_train.json", "-e", "config/environment.json"])


def test_auto_layouts_are_timed_cached_and_leave_validation_channels_first(tmp_path, synthetic_data, monkeypatch,
                                                                           caplog, capsys):
    monkeypatch.setenv("AI4MED_CACHE_DIR", str(tmp_path / "cache"))
    root = write_mmar(tmp_path / "mmar", tiny_config(epochs=2), synthetic_data)
    with caplog.at_level(logging.INFO, logger="ai4med"):
        assert _train(root) == 0
    assert any("conv layouts:" in r.getMessage() and "3 timed now" in r.getMessage() for r in caplog.records)
    entries = json.loads((tmp_path / "cache" / "conv_layouts.json").read_text())
    assert len(entries) == 3 and all("fwd+bwd" in k for k in entries)  # UNet 4-8: three convolutions
    with open(os.path.join(root, "models", "training_history.json")) as fh:
        trained = json.load(fh)[-1]["val_mean_dice"]
    # validation during training ran channels-first: `validate` on the final weights gives the same Dice
    from ai4med.apps.validate import validate_checkpoint
    from ai4med.config.workflow_config import load_config

    cfg = load_config(os.path.join(root, "config", "config_train.json"),
                      os.path.join(root, "config", "environment.json"), mmar_root=root)
    got = validate_checkpoint(cfg, os.path.join(root, "models"), str(tmp_path / "eval"), "final_model.pt")
    assert got["mean_dice"] == pytest.approx(trained, abs=1e-6)

    caplog.clear()  # a second run on this machine times nothing
    root2 = write_mmar(tmp_path / "mmar2", tiny_config(epochs=1), synthetic_data)
    with caplog.at_level(logging.INFO, logger="ai4med"):
        assert _train(root2) == 0
    assert any("conv layouts:" in r.getMessage() and "timed now" not in r.getMessage() for r in caplog.records)


def test_channels_last_false_times_nothing(tmp_path, synthetic_data, monkeypatch):
    monkeypatch.setenv("AI4MED_CACHE_DIR", str(tmp_path / "cache"))
    root = write_mmar(tmp_path / "mmar", tiny_config(epochs=1, channels_last=False), synthetic_data)
    assert _train(root) == 0
    assert not (tmp_path / "cache").exists()


def test_a_bad_channels_last_value_names_the_key(tmp_path, synthetic_data):
    from ai4med.config.workflow_config import load_config
    from ai4med.workflows.trainer import TrainSettings

    root = write_mmar(tmp_path / "mmar", tiny_config(epochs=1, channels_last="sometimes"), synthetic_data)
    cfg = load_config(os.path.join(root, "config", "config_train.json"),
                      os.path.join(root, "config", "environment.json"), mmar_root=root)
    with pytest.raises(ConfigError, match="channels_last must be") as e:
        TrainSettings.from_config(cfg)
    assert "/channels_last" in str(e.value)
