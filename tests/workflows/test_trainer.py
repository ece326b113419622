"""Training from configs: MMAR and seed forms, BYOC, checkpoints, kill -9 + resume, DDP."""

import json
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
import torch
from trainer_fixtures import tiny_config, write_mmar

from ai4med.cli import main


def _train(root, *extra):
    return main(["train", "-m", str(root), "-c", "config/config_train.json", "-e", "config/environment.json", *extra])


def _history(root):
    with open(os.path.join(root, "models", "training_history.json")) as fh:
        return json.load(fh)


def test_mmar_training_writes_checkpoints_history_and_reports(tmp_path, synthetic_data, capsys):
    root = write_mmar(tmp_path / "mmar", tiny_config(epochs=3), synthetic_data)
    assert _train(root, "--set", "epochs=4", "num_training_epoch_per_valid=2") == 0  # --set wins over the config
    hist = _history(root)
    assert [h["epoch"] for h in hist] == [1, 2, 3, 4]
    assert ["val_mean_dice" in h for h in hist] == [False, True, False, True]  # validated every 2nd epoch
    assert all(0.0 <= h["val_mean_dice"] <= 1.0 for h in hist if "val_mean_dice" in h)
    assert all("train_neg_loss" in h and h["train_neg_loss"] == pytest.approx(-h["train_loss"], rel=1e-4)
               for h in hist)
    best = torch.load(os.path.join(root, "models", "model.pt"), weights_only=False)
    assert best["metrics"]["val_mean_dice"] == max(h["val_mean_dice"] for h in hist if "val_mean_dice" in h)
    final = torch.load(os.path.join(root, "models", "final_model.pt"), weights_only=False)
    assert final["epoch"] == 4
    assert any(f.startswith("events.out.tfevents") for f in os.listdir(os.path.join(root, "models")))
    raw = open(os.path.join(root, "eval", "mean_dice_raw_results.txt")).read().splitlines()
    assert sorted(ln.split("\t")[0] for ln in raw) == ["case_002.nii.gz", "case_003.nii.gz"]
    assert "trained 4 epochs" in capsys.readouterr().out


def test_validate_command_reports_best_checkpoint_metric(tmp_path, synthetic_data, capsys):
    root = write_mmar(tmp_path / "mmar", tiny_config(epochs=2), synthetic_data)
    assert _train(root) == 0
    best = torch.load(os.path.join(root, "models", "model.pt"), weights_only=False)
    capsys.readouterr()
    assert main(["validate", "-m", root, "-c", "config/config_train.json", "-e", "config/environment.json"]) == 0
    line = [ln for ln in capsys.readouterr().out.splitlines() if ln.startswith("mean_dice")][0]
    assert float(line.split()[1]) == pytest.approx(best["metrics"]["val_mean_dice"], abs=1e-4)


def test_seed_form_and_finetune_from_checkpoint(tmp_path, synthetic_data):
    cfg_path = tmp_path / "train.json"
    cfg = tiny_config(epochs=1)
    cfg_path.write_text(json.dumps(cfg))
    out = tmp_path / "out"
    datalist = str(synthetic_data / "datalist.json")
    assert main(["train", "segmentation", "-e", str(cfg_path), "-d", datalist, "-r", str(out)]) == 0
    assert (out / "model.pt").exists()
    out2 = tmp_path / "out2"
    assert main(["train", "segmentation", "-e", str(cfg_path), "-d", datalist, "-r", str(out2),
                 "-c", str(out / "final_model.pt"), "--set", "learning_rate=0"]) == 0
    a = torch.load(out / "final_model.pt", weights_only=False)["model"]
    b = torch.load(out2 / "final_model.pt", weights_only=False)["model"]
    for k in a:  # lr 0 from the checkpoint keeps the weights (BN running stats aside)
        if "running" not in k and "num_batches" not in k:
            torch.testing.assert_close(a[k], b[k])


def test_byoc_model_loss_and_transform_by_path(tmp_path, synthetic_data):
    cfg = tiny_config(epochs=2)
    cfg["train"]["model"] = {"path": "my_components.TinyNet", "args": {"num_classes": 2}}
    cfg["train"]["loss"] = {"path": "my_components.MyDice", "args": {}}
    cfg["train"]["pre_transforms"].insert(2, {"path": "my_components.AddConstant", "args": {"fields": ["image"],
                                                                                             "value": 0.5}})
    root = write_mmar(tmp_path / "mmar", cfg, synthetic_data)
    (tmp_path / "mmar" / "custom" / "my_components.py").write_text(textwrap.dedent('''
        import torch
        from ai4med.components.losses.loss import Loss
        from ai4med.components.models.model import Model
        from ai4med.components.transforms.multi_field_transformer import MultiFieldTransformer

        class TinyNet(Model):
            def __init__(self, num_classes):
                Model.__init__(self)
                self.model = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3, padding=1), torch.nn.ReLU(),
                                                 torch.nn.Conv3d(4, num_classes, 1))
            def get_predictions(self, inputs, is_training, build_ctx=None):
                self.model.train(bool(is_training))
                return torch.softmax(self.model(inputs), 1)

        class MyDice(Loss):
            def get_loss(self, predictions, targets, build_ctx=None):
                onehot = torch.nn.functional.one_hot(targets[:, 0].long(), predictions.shape[1])
                onehot = onehot.movedim(-1, 1).float()
                inter = (predictions * onehot).sum()
                return 1 - 2 * inter / (predictions.sum() + onehot.sum())

        class AddConstant(MultiFieldTransformer):
            def __init__(self, fields, value):
                MultiFieldTransformer.__init__(self, fields)
                self.value = value
            def transform(self, transform_ctx):
                for f in self.fields:
                    img = transform_ctx.get_image(f)
                    transform_ctx.set_image(f, img.new_image(img.get_data() + self.value))
                return transform_ctx
    '''))
    assert _train(root) == 0
    hist = _history(root)
    assert len(hist) == 2 and hist[1]["train_loss"] < hist[0]["train_loss"] + 0.05


def test_kill_9_then_resume_finishes_all_epochs_with_valid_checkpoints(tmp_path, synthetic_data):
    epochs = 8
    root_a = write_mmar(tmp_path / "a", tiny_config(epochs=epochs), synthetic_data)
    root_b = write_mmar(tmp_path / "b", tiny_config(epochs=epochs), synthetic_data)
    cmd = [sys.executable, "-m", "ai4med", "train", "-m", root_b, "-c", "config/config_train.json",
           "-e", "config/environment.json"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    last = os.path.join(root_b, "models", "last_checkpoint.pt")
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if os.path.exists(last) and torch.load(last, weights_only=False)["engine"]["epoch"] >= 2:
            break
        time.sleep(0.05)
    if proc.poll() is None:  # a reaped process's group id may be re-used already (PIDs wrap within a run)
        os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    killed_at = torch.load(last, weights_only=False)["engine"]["epoch"]
    assert 1 <= killed_at < epochs, "the run must be killed mid-way for this test to mean something"
    torch.load(os.path.join(root_b, "models", "model.pt"), weights_only=False)  # never corrupt
    # a kill during a save may leave its temporary beside the intact final files; the resumed run (a new
    # process, as a user resumes) removes it. One is planted, named as the killed process would have named
    # it, so that this is checked every time
    planted = os.path.join(root_b, "models", f".tmp-deadbeef.{proc.pid}-training_history.json")
    with open(planted, "w") as f:
        f.write("[")
    # the resumed process starts after every temporary was last written (a process's start time is known to
    # about a second: /proc's boot time is whole seconds, and a temporary not older than that is left alone)
    time.sleep(1.5)
    resumed = subprocess.run(cmd + ["--resume"], capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert not [f for f in os.listdir(os.path.join(root_b, "models")) if f.startswith(".tmp")]
    assert [h["epoch"] for h in _history(root_b)] == list(range(1, epochs + 1))
    # the same run without interruption ends with the same weights
    assert _train(root_a) == 0
    wa = torch.load(os.path.join(root_a, "models", "final_model.pt"), weights_only=False)["model"]
    wb = torch.load(os.path.join(root_b, "models", "final_model.pt"), weights_only=False)["model"]
    for k in wa:
        torch.testing.assert_close(wa[k], wb[k], rtol=1e-4, atol=1e-5)


def test_ddp_two_gloo_processes_match_single_process_validation(tmp_path, synthetic_data):
    cfg = tiny_config(epochs=2, multi_gpu=True)
    root = write_mmar(tmp_path / "mmar", cfg, synthetic_data)
    env = dict(os.environ, OMP_NUM_THREADS="1")
    res = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "ai4med",
         "train", "-m", root, "-c", "config/config_train.json", "-e", "config/environment.json", "--device", "cpu"],
        capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-3000:]
    ddp_metric = _history(root)[-1]["val_mean_dice"]
    # the same final weights validated in one process give the same metric (cross-rank reduction is exact)
    from ai4med.apps.validate import validate_checkpoint
    from ai4med.config.workflow_config import load_config

    single = load_config(os.path.join(root, "config", "config_train.json"),
                         os.path.join(root, "config", "environment.json"), {"multi_gpu": False}, mmar_root=root)
    got = validate_checkpoint(single, os.path.join(root, "models"), str(tmp_path / "eval"), "final_model.pt")
    assert got["mean_dice"] == pytest.approx(ddp_metric, abs=1e-6)


def test_a_launcher_started_several_processes_but_multi_gpu_is_false(tmp_path, synthetic_data, monkeypatch, capsys):
    """torchrun without multi_gpu=true: each process would train alone into the same files; refused."""
    root = write_mmar(tmp_path / "mmar", tiny_config(epochs=1), synthetic_data)
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert _train(root, "--device", "cpu") != 0
    err = capsys.readouterr().err
    assert "multi_gpu is false, but a launcher started 2 processes" in err and "/multi_gpu" in err
    assert not os.path.exists(os.path.join(root, "models", "model.pt"))


def test_train_names_a_set_that_nothing_reads(tmp_path, synthetic_data, caplog):
    root = write_mmar(tmp_path / "mmar", tiny_config(epochs=3), synthetic_data)
    with caplog.at_level("WARNING", logger="ai4med.train"):
        assert _train(root, "--device", "cpu", "--set", "epochs=1", "learning_rat=0.5") == 0
    err = caplog.text
    assert "--set learning_rat: nothing in" in err and "did you mean 'learning_rate'?" in err, err[-2000:]
    assert "--set epochs" not in err
    assert [h["epoch"] for h in _history(root)] == [1]


def test_a_case_whose_label_does_not_match_its_image_is_named(tmp_path, synthetic_data, capsys):
    """Not a traceback ending in "shapes (24, 24, 24) and (20, 24, 24)": which case, its files, what."""
    import shutil

    import nibabel as nib
    import numpy as np

    data = tmp_path / "data"
    shutil.copytree(synthetic_data, data)
    datalist = json.loads((data / "datalist.json").read_text())
    bad = datalist["training"][1]["label"]
    img = nib.load(data / bad)
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj)[:-4], img.affine), data / bad)
    root = write_mmar(tmp_path / "mmar", tiny_config(epochs=1), data)
    assert _train(root, "--device", "cpu") == 1
    err = capsys.readouterr().err
    assert err.startswith("error: datalist item 1 (") and bad in err and "Traceback" not in err, err[-2000:]
    assert "must share a spatial shape" in err


def test_a_label_with_another_affine_is_warned_about_before_training(tmp_path, synthetic_data, caplog):
    """Same shape, origin moved 5 mm: it trains without error on misaligned voxels; said before the first step."""
    import shutil

    import nibabel as nib
    import numpy as np

    data = tmp_path / "data"
    shutil.copytree(synthetic_data, data)
    bad = json.loads((data / "datalist.json").read_text())["training"][0]["label"]
    img = nib.load(data / bad)
    moved = img.affine.copy()
    moved[0, 3] += 5.0
    nib.save(nib.Nifti1Image(np.asarray(img.dataobj), moved), data / bad)
    root = write_mmar(tmp_path / "mmar", tiny_config(epochs=1), data)
    with caplog.at_level("WARNING", logger="ai4med.train"):
        assert _train(root, "--device", "cpu") == 0
    assert "1 training case(s) of 2 have a label off the image's grid (item 0: label affine differs from image's " \
           "by up to 5 mm" in caplog.text
    assert "validation case" not in caplog.text


def test_reduce_on_plateau_still_fires_when_early_stopping_is_on(tmp_path, synthetic_data):
    # a learning rate too small to move the validation metric: every validation is a plateau
    cfg = tiny_config(epochs=3, learning_rate=1e-12, early_stopping_patience=10)
    cfg["train"]["lr_policy"] = {"name": "ReduceOnPlateau",
                                 "args": {"plateau_count_trigger": 1, "reduction_rate": 0.5}}
    root = write_mmar(tmp_path / "mmar", cfg, synthetic_data)
    assert _train(root) == 0
    lrs = [h["learning_rate"] for h in _history(root)]
    assert lrs[0] == pytest.approx(1e-12) and lrs[-1] < lrs[0], lrs


def test_a_crash_right_after_a_new_best_resumes_without_losing_an_epoch(tmp_path, synthetic_data):
    """The resumable state of a new best is written after the epoch's history: a crash between the two (here
    raised by a handler that runs after the checkpoint handler's best-model save) cannot leave a checkpoint
    newer than the history, whose resume would skip the epoch in `training_history.json`."""
    from ai4med.config.workflow_config import load_config
    from ai4med.workflows.engine import Events
    from ai4med.workflows.trainer import Trainer

    root = write_mmar(tmp_path / "mmar", tiny_config(epochs=4, checkpoint_interval=10), synthetic_data)
    models = os.path.join(root, "models")

    class Crash:
        def attach(self, engine):
            def on_validation(e):
                if e.state.epoch == 2:
                    raise RuntimeError("simulated crash")
            engine.add_handler(Events.VALIDATION_COMPLETED, on_validation, name="crash")

    def trainer():
        return Trainer(load_config(os.path.join(root, "config", "config_train.json"), None, mmar_root=root),
                       models, os.path.join(root, "eval"), device="cpu")

    crashing = trainer()
    crashing.handlers.append(Crash())
    with pytest.raises(RuntimeError, match="simulated crash"):
        crashing.run()
    saved = torch.load(os.path.join(models, "last_checkpoint.pt"), weights_only=True)["engine"]["epoch"]
    assert [h["epoch"] for h in _history(root)] == list(range(1, saved + 1))  # never newer than the history
    trainer().run(resume=True)
    assert [h["epoch"] for h in _history(root)] == [1, 2, 3, 4]
