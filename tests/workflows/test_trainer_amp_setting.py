"""`use_amp`: a boolean (the machine's mode) or an explicit autocast type, "bf16" / "fp16"."""

import os

import pytest
import torch
from trainer_fixtures import tiny_config, write_mmar

from ai4med.components.inferers.precision import resolve_precision
from ai4med.config.errors import ConfigError
from ai4med.config.workflow_config import load_config
from ai4med.workflows.trainer import Trainer, TrainSettings, _amp_precision


def _cfg(root, overrides):
    return load_config(os.path.join(root, "config", "config_train.json"), None, overrides, mmar_root=root)


def test_use_amp_values(tmp_path, synthetic_data):
    root = write_mmar(tmp_path / "mmar", tiny_config(epochs=1), synthetic_data)
    for value, expected in (("true", True), ("false", False), ("BF16", "bf16"), ("fp16", "fp16"), ("1", True)):
        assert TrainSettings.from_config(_cfg(root, [f"use_amp={value}"])).use_amp == expected
    with pytest.raises(ConfigError, match=r"use_amp must be true, false, \"bf16\" or \"fp16\", got 'fp8'") as e:
        TrainSettings.from_config(_cfg(root, ["use_amp=fp8"]))
    assert "/use_amp" in str(e.value)


def test_amp_precision_per_device():
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert _amp_precision(False, cpu) == "fp32"
    assert _amp_precision(True, cpu) == resolve_precision("auto", cpu)  # bf16 on AMX CPUs, else fp32
    assert _amp_precision(True, cuda) == "fp16"
    assert _amp_precision("bf16", cuda) == "bf16" and _amp_precision("bf16", cpu) == "bf16"
    assert _amp_precision("fp16", cuda) == "fp16"


def test_explicit_bf16_trains_under_bf16_autocast(tmp_path, synthetic_data):
    root = write_mmar(tmp_path / "mmar", tiny_config(epochs=1, use_amp="bf16"), synthetic_data)
    trainer = Trainer(_cfg(root, []), os.path.join(root, "models"), os.path.join(root, "eval"), device="cpu")
    assert trainer.precision == "bf16" and trainer.step.precision == "bf16"
    trainer.run()
    loss = trainer.history[-1]["train_loss"]
    assert 0.0 < loss < 10.0
    assert os.path.exists(os.path.join(root, "models", "model.pt"))


def test_infer_and_evaluate_follow_the_configs_use_amp():
    from ai4med.apps.evaluate import precision_of_use_amp

    assert [precision_of_use_amp(v) for v in (None, False, "false", True, "true", "BF16", "fp16")] == [
        "fp32", "fp32", "fp32", "auto", "auto", "bf16", "fp16"]
