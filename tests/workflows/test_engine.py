"""The engine loop, its events, and the checkpoint / validation / early-stopping handlers."""

import os

import pytest
import torch

from ai4med.workflows.engine import Engine, Events
from ai4med.workflows.handlers.checkpoint import BEST_NAME, FINAL_NAME, LAST_NAME, CheckpointHandler, load_weights
from ai4med.workflows.handlers.early_stopping import EarlyStopping
from ai4med.workflows.handlers.validation import ValidationHandler


def test_events_fire_in_order_and_every_filters():
    log = []
    eng = Engine(lambda e, b: b)
    for ev in Events:
        if ev is not Events.EXCEPTION_RAISED:
            eng.add_handler(ev, lambda e, ev=ev: log.append(ev.value))
    eng.add_handler(Events.ITERATION_COMPLETED, lambda e: log.append(f"every2:{e.state.iteration}"), every=2)
    state = eng.run(lambda epoch: [10, 20, 30], max_epochs=1)
    assert state.epoch == 1 and state.iteration == 3 and state.output == 30
    assert log[:2] == ["started", "epoch_started"]
    assert log.count("iteration_completed") == 3 and "every2:2" in log and "every2:1" not in log
    assert log[-2:] == ["epoch_completed", "completed"]


def test_exception_event_fires_and_reraises():
    seen = []
    eng = Engine(lambda e, b: 1 / 0)
    eng.add_handler(Events.EXCEPTION_RAISED, lambda e: seen.append(type(e.state.extra["exception"])))
    with pytest.raises(ZeroDivisionError):
        eng.run(lambda epoch: [1], max_epochs=1)
    assert seen == [ZeroDivisionError]


def _setup(tmp_path, seed=0):
    torch.manual_seed(seed)
    net = torch.nn.Linear(3, 1)
    opt = torch.optim.SGD(net.parameters(), lr=0.1)
    x = torch.linspace(-1, 1, 24).reshape(8, 3)
    y = x.sum(1, keepdim=True) * 0.5

    def step(engine, idx):
        opt.zero_grad()
        loss = torch.nn.functional.mse_loss(net(x[idx : idx + 2]), y[idx : idx + 2])
        loss.backward()
        opt.step()
        return {"loss": loss.item()}

    eng = Engine(step)
    ckpt = CheckpointHandler(str(tmp_path), net, opt)

    def evaluate():
        with torch.no_grad():
            return {"neg_mse": -torch.nn.functional.mse_loss(net(x), y).item()}

    ValidationHandler(evaluate, "neg_mse", every=1).attach(eng)
    ckpt.attach(eng)
    return net, eng, ckpt


def test_checkpoints_best_final_and_resume_equals_uninterrupted(tmp_path):
    batches = lambda epoch: [0, 2, 4, 6]  # noqa: E731
    net_a, eng_a, _ = _setup(tmp_path / "a")
    eng_a.run(batches, max_epochs=4)
    for name in (BEST_NAME, FINAL_NAME, LAST_NAME):
        assert os.path.exists(tmp_path / "a" / name)
    assert eng_a.state.best_epoch >= 1
    assert eng_a.state.best_metric == max(eng_a.state.best_metric, eng_a.state.metrics["val_neg_mse"])

    # interrupted after 2 epochs, then resumed in a fresh process-like setup
    net_b, eng_b, _ = _setup(tmp_path / "b")
    eng_b.run(batches, max_epochs=2)
    net_c, eng_c, ckpt_c = _setup(tmp_path / "b", seed=123)  # different init: must be overwritten by resume
    assert ckpt_c.resume(eng_c)
    assert eng_c.state.epoch == 2 and eng_c.state.iteration == 8
    eng_c.run(batches, max_epochs=4)
    assert eng_c.state.epoch == 4
    for pa, pc in zip(net_a.parameters(), net_c.parameters()):
        torch.testing.assert_close(pa, pc)
    final = torch.nn.Linear(3, 1)
    load_weights(final, str(tmp_path / "b" / FINAL_NAME))
    torch.testing.assert_close(final.weight, net_a.weight)


def test_best_model_tracks_key_metric(tmp_path):
    values = iter([0.5, 0.9, 0.7])
    eng = Engine(lambda e, b: {"loss": 0.0})
    net = torch.nn.Linear(1, 1)
    ValidationHandler(lambda: {"dice": next(values)}, "dice").attach(eng)
    CheckpointHandler(str(tmp_path), net).attach(eng)
    eng.run(lambda epoch: [0], max_epochs=3)
    assert eng.state.best_metric == 0.9 and eng.state.best_epoch == 2
    saved = torch.load(tmp_path / BEST_NAME, weights_only=False)
    assert saved["epoch"] == 2 and saved["metrics"]["val_dice"] == 0.9


def test_early_stopping_terminates_after_patience():
    values = iter([0.5, 0.6, 0.6, 0.55, 0.9, 0.9])
    eng = Engine(lambda e, b: None)
    ValidationHandler(lambda: {"dice": next(values)}, "dice").attach(eng)
    EarlyStopping(patience=2).attach(eng)
    state = eng.run(lambda epoch: [0], max_epochs=6)
    assert state.epoch == 4  # 0.6 at epoch 2, no improvement at 3 and 4
    with pytest.raises(ValueError, match="patience must be >= 1"):
        EarlyStopping(patience=0)


def test_overlay_slice_colours_prediction_and_outlines_label():
    import numpy as np

    from ai4med.workflows.validator import overlay_slice

    image = np.zeros((1, 8, 8, 5), np.float32)
    image[0, :, :4] = 1.0
    pred = np.zeros((2, 8, 8, 5), np.float32)
    pred[0] = 1.0
    pred[0, 2:5, 2:5], pred[1, 2:5, 2:5] = 0.0, 1.0  # class 1 in a 3x3 block
    label = np.zeros((1, 8, 8, 5), np.uint8)
    label[0, 2:5, 2:5] = 1
    rgb = overlay_slice(image, pred, label)
    assert rgb.shape == (8, 8, 3) and rgb.dtype == np.uint8
    unrot = np.rot90(rgb, -1)
    assert (unrot[3, 3] != unrot[3, 3][0]).any()  # coloured (not grey) where class 1 is predicted
    assert (unrot[7, 7] == unrot[7, 7][0]).all()  # grey background
    assert (unrot[2, 3] == 255).all()  # label outline in white



def test_resume_restores_persisted_run_values(tmp_path):
    net = torch.nn.Linear(1, 1)
    eng = Engine(lambda e, b: None)
    eng.state.extra["persist"] = {"pipeline_seed": 1234}
    CheckpointHandler(str(tmp_path), net).attach(eng)
    eng.run(lambda epoch: [0], max_epochs=1)
    fresh = Engine(lambda e, b: None)
    fresh.state.extra["persist"] = {"pipeline_seed": 99}  # what a new process would draw
    assert CheckpointHandler(str(tmp_path), net).resume(fresh)
    assert fresh.state.extra["persist"]["pipeline_seed"] == 1234 and fresh.state.epoch == 1
