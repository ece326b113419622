"""Iteration budgets, validation every N iterations, checkpoint intervals, mid-epoch resume."""

from __future__ import annotations

import json
import logging
import os

import pytest
import torch
from trainer_fixtures import tiny_config, write_mmar

from ai4med.cli import main
from ai4med.workflows.engine import Engine, Events
from ai4med.workflows.handlers import checkpoint as ckpt_mod
from ai4med.workflows.handlers.checkpoint import LAST_NAME, CheckpointHandler
from ai4med.workflows.handlers.validation import ValidationHandler

EPOCH = [10, 20, 30]  # batches of every epoch


def _batches(engine):
    """Epoch e yields its batches (tagged by epoch), skipping those done before a mid-epoch resume."""
    def fn(epoch):
        skip = engine.state.epoch_iteration
        return [epoch * 100 + b for b in EPOCH][skip:]
    return fn


def _engine(seen):
    eng = Engine(lambda e, b: seen.append(b) or {"loss": 0.0})
    epochs = []
    eng.add_handler(Events.EPOCH_COMPLETED, lambda e: epochs.append(e.state.epoch))
    return eng, epochs


def test_budget_cuts_the_last_epoch_and_an_exact_budget_completes_it():
    seen = []
    eng, epochs = _engine(seen)
    state = eng.run(_batches(eng), max_epochs=100, max_iterations=7)
    assert state.iteration == 7 and seen == [10, 20, 30, 110, 120, 130, 210]
    assert state.epoch == 2 and epochs == [1, 2]  # the cut third epoch does not count
    seen2 = []
    eng2, epochs2 = _engine(seen2)
    assert eng2.run(_batches(eng2), max_epochs=100, max_iterations=6).epoch == 2 and epochs2 == [1, 2]
    assert len(seen2) == 6


def test_validation_every_n_iterations_and_at_the_end_of_the_budget():
    seen, at = [], []
    eng, _ = _engine(seen)
    ValidationHandler(lambda: at.append(eng.state.iteration) or {"dice": 0.5}, "dice", every_iterations=2).attach(eng)
    eng.run(_batches(eng), max_epochs=100, max_iterations=7)
    assert at == [2, 4, 6, 7]
    # per epoch (as before), with the end of an iteration budget validated too
    seen, at = [], []
    eng, _ = _engine(seen)
    ValidationHandler(lambda: at.append(eng.state.iteration) or {"dice": 0.5}, "dice", every=2).attach(eng)
    eng.run(_batches(eng), max_epochs=100, max_iterations=10)
    assert at == [6, 10]


def _record_saves(monkeypatch):
    saves = []
    real = ckpt_mod.atomic_torch_save

    def spy(obj, path):
        saves.append((os.path.basename(path), obj.get("engine", {}).get("iteration", obj.get("iteration"))))
        real(obj, path)

    monkeypatch.setattr(ckpt_mod, "atomic_torch_save", spy)
    return saves


def test_checkpoint_intervals_in_epochs_and_iterations(tmp_path, monkeypatch):
    saves = _record_saves(monkeypatch)
    net = torch.nn.Linear(1, 1)
    for save_every, want in ((2, [6, 12, 15]), (0, [15])):
        saves.clear()
        eng, _ = _engine([])
        CheckpointHandler(str(tmp_path / f"e{save_every}"), net, save_every=save_every).attach(eng)
        eng.run(_batches(eng), max_epochs=5)
        assert [it for name, it in saves if name == LAST_NAME] == want
    saves.clear()
    eng, _ = _engine([])
    CheckpointHandler(str(tmp_path / "i"), net, save_every=0, every_iterations=4).attach(eng)
    eng.run(_batches(eng), max_epochs=100, max_iterations=10)
    assert [it for name, it in saves if name == LAST_NAME] == [4, 8, 10]
    # a new best writes model.pt and the resumable checkpoint, whatever the interval
    saves.clear()
    values = iter([0.1, 0.5, 0.3, 0.9])
    eng, _ = _engine([])
    ValidationHandler(lambda: {"dice": next(values)}, "dice", every_iterations=2).attach(eng)
    CheckpointHandler(str(tmp_path / "b"), net, save_every=0, every_iterations=100).attach(eng)
    eng.run(_batches(eng), max_epochs=100, max_iterations=7)
    assert saves == [("model.pt", 2), (LAST_NAME, 2), ("model.pt", 4), (LAST_NAME, 4),
                     ("model.pt", 7), (LAST_NAME, 7), ("final_model.pt", 7)]


def test_mid_epoch_resume_continues_with_the_next_batch(tmp_path):
    net = torch.nn.Linear(1, 1)
    straight = []
    eng, _ = _engine(straight)
    eng.run(_batches(eng), max_epochs=100, max_iterations=8)
    first = []
    eng_a, _ = _engine(first)
    CheckpointHandler(str(tmp_path), net, save_every=0).attach(eng_a)
    eng_a.run(_batches(eng_a), max_epochs=100, max_iterations=4)  # ends one batch into epoch 2
    rest = []
    eng_b, epochs_b = _engine(rest)
    assert CheckpointHandler(str(tmp_path), net).resume(eng_b)
    assert (eng_b.state.epoch, eng_b.state.iteration, eng_b.state.resume_epoch_iteration) == (1, 4, 1)
    eng_b.run(_batches(eng_b), max_epochs=100, max_iterations=8)
    assert first + rest == straight and epochs_b == [2]


# --- through `ai4med train` ----------------------------------------------------------------
def _train(root, *extra):
    return main(["train", "-m", str(root), "-c", "config/config_train.json", "-e", "config/environment.json", *extra])


def _small(**kw):
    cfg = tiny_config(epochs=1, **kw)
    cfg["train"]["image_pipeline"]["args"]["output_batch_size"] = 1  # 2 training cases: 2 batches per epoch
    return cfg


def test_train_with_an_iteration_budget_validating_every_n_iterations(tmp_path, synthetic_data, caplog):
    root = write_mmar(tmp_path / "m", _small(iterations=5, num_training_iterations_per_valid=2,
                                             checkpoint_interval=0), synthetic_data)
    with caplog.at_level(logging.INFO, logger="ai4med.validate"):
        assert _train(root) == 0
    validated = [r.getMessage().split(" iteration ")[1].split(":")[0] for r in caplog.records
                 if r.name == "ai4med.validate" and r.getMessage().startswith("validation epoch")]
    assert validated == ["2", "4", "5"]
    with open(os.path.join(root, "models", "training_history.json")) as fh:
        hist = json.load(fh)
    assert [(h["epoch"], h["iteration"]) for h in hist] == [(1, 2), (2, 4), (3, 5)]
    assert all("val_mean_dice" in h for h in hist)
    last = torch.load(os.path.join(root, "models", LAST_NAME), weights_only=False)["engine"]
    assert (last["epoch"], last["iteration"], last["epoch_iteration"]) == (2, 5, 1)  # one batch into epoch 3
    assert torch.load(os.path.join(root, "models", "final_model.pt"), weights_only=False)["iteration"] == 5


def test_resume_mid_epoch_matches_an_uninterrupted_run(tmp_path, synthetic_data):
    root_a = write_mmar(tmp_path / "a", _small(iterations=5), synthetic_data)
    root_b = write_mmar(tmp_path / "b", _small(iterations=3), synthetic_data)
    assert _train(root_a) == 0
    assert _train(root_b) == 0  # stops one batch into epoch 2
    assert _train(root_b, "--resume", "--set", "iterations=5") == 0
    wa = torch.load(os.path.join(root_a, "models", "final_model.pt"), weights_only=False)
    wb = torch.load(os.path.join(root_b, "models", "final_model.pt"), weights_only=False)
    assert wa["iteration"] == wb["iteration"] == 5
    for k in wa["model"]:
        torch.testing.assert_close(wa["model"][k], wb["model"][k], rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("key,value", [("iterations", -1), ("checkpoint_interval", "often"),
                                       ("num_training_iterations_per_valid", 1.5)])
def test_bad_budget_settings_name_the_key(tmp_path, synthetic_data, key, value):
    from ai4med.config.errors import ConfigError
    from ai4med.config.workflow_config import load_config
    from ai4med.workflows.trainer import TrainSettings

    root = write_mmar(tmp_path / "m", _small(**{key: value}), synthetic_data)
    cfg = load_config(os.path.join(root, "config", "config_train.json"),
                      os.path.join(root, "config", "environment.json"), mmar_root=root)
    with pytest.raises(ConfigError, match=f"/{key}: {key} must be a whole number"):
        TrainSettings.from_config(cfg)
