"""Every commands/*.sh of a generated MMAR, run with the usage its header documents (train.sh
epochs=5 style KEY=VALUE words), in the order a user runs them, as one chain (each script needs
the model the first one trains; one test so that pytest-xdist trains it once). Also: `-d` / `-r`
given to the MMAR form are honoured. The demo MMAR is shrunk to 32^3 crops for speed."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nibabel as nib
import pytest
import torch
from seed_helpers import REPO

from ai4med.apps.demo import lay_out_mmar
from ai4med.datasets.synthetic import make_synthetic_dataset

FAST = ["epochs=1", "num_training_epoch_per_valid=1"]


def sh(mmar: Path, script: str, *argv: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = dict(os.environ, PYTHONPATH=str(REPO), OMP_NUM_THREADS="1",
                   PATH=str(Path(sys.executable).parent) + os.pathsep + os.environ.get("PATH", ""), **(env or {}))
    proc = subprocess.run(["bash", str(mmar / "commands" / script), *argv], cwd=mmar.parent, env=environ,
                          capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, f"{script} {argv}: exit {proc.returncode}\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}"
    return proc


def make_mmar(root: Path) -> Path:
    lay_out_mmar(str(root), "synthetic")
    make_synthetic_dataset(str(root / "data"), num_cases=3, size=32, seed=0)
    cfg_path = root / "config" / "config_train.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["train"]["image_pipeline"]["args"].update(num_cache_objects=2, output_crop_size=[32, 32, 32])
    cfg["train"]["pre_transforms"][3]["args"]["size"] = [32, 32, 32]
    cfg["train"]["model"]["args"]["channels"] = [4, 8, 16, 32]
    cfg["validate"]["inferer"]["args"]["roi_size"] = [32, 32, 32]
    cfg_path.write_text(json.dumps(cfg))
    return root


@pytest.fixture
def mmar(tmp_path) -> Path:
    return make_mmar(tmp_path / "mmar")


def test_every_script_is_run(mmar):
    documented = {p.name for p in (mmar / "commands").glob("*.sh")}
    assert documented == {"set_env.sh", "train.sh", "train_finetune.sh", "train_multi_gpu.sh", "validate.sh",
                          "infer.sh", "export.sh"}, "a new script needs a test below"


def test_set_env(mmar):
    proc = subprocess.run(["bash", "-c", f'source "{mmar}/commands/set_env.sh"; echo "$MMAR_ROOT|$PYTHONPATH"'],
                          capture_output=True, text=True, env=dict(os.environ, PYTHONPATH=""))
    root, path = proc.stdout.strip().split("|")
    assert root == str(mmar) and path.split(os.pathsep)[-1] == str(mmar / "custom")


def test_the_scripts_in_a_users_order(mmar, tmp_path):
    proc = sh(mmar, "train.sh", *FAST)  # its usage line: ./train.sh epochs=5
    assert "trained 1 epochs" in proc.stdout
    history = json.loads((mmar / "models" / "training_history.json").read_text())
    assert [h["epoch"] for h in history] == [1] and "val_mean_dice" in history[0]
    check_train_finetune(mmar, tmp_path)
    check_train_multi_gpu_two_processes_log_once(mmar, tmp_path)
    check_validate(mmar, tmp_path)
    check_infer(mmar, tmp_path)
    check_export(mmar, tmp_path)
    check_mmar_form_honours_datalist_and_output(mmar, tmp_path)


def check_train_finetune(mmar, tmp_path):
    before = torch.load(mmar / "models" / "model.pt", map_location="cpu", weights_only=False)
    # the user's --set flags must not replace the script's --set MMAR_CKPT (it trained from scratch before)
    proc = sh(mmar, "train_finetune.sh", *(w for kv in FAST for w in ("--set", kv)), "-r", str(tmp_path / "ft"))
    assert f"initialised the model from {mmar / 'models' / 'model.pt'}" in proc.stderr
    after = torch.load(tmp_path / "ft" / "model.pt", map_location="cpu", weights_only=False)
    assert before["epoch"] == after["epoch"] == 1
    assert any(not torch.equal(before["model"][k], after["model"][k]) for k in before["model"])


def check_train_multi_gpu_two_processes_log_once(mmar, tmp_path):
    """torchrun with 2 CPU (gloo) processes; rank 0 alone prints the progress lines. The user's own
    `--set` flags come after the script's `--set multi_gpu=true` and must not replace it."""
    out = tmp_path / "ddp"
    proc = sh(mmar, "train_multi_gpu.sh", *(w for kv in FAST for w in ("--set", kv)), "-r", str(out),
              env={"NPROC": "2"})
    log = proc.stdout + proc.stderr
    assert "2 processes" in log
    assert log.count("train epoch 1/1") == 1, log[-3000:]
    assert log.count("trained 1 epochs") == 1
    assert (out / "model.pt").is_file()


def check_validate(mmar, tmp_path):
    proc = sh(mmar, "validate.sh")
    value = float(next(x for x in proc.stdout.splitlines() if x.startswith("mean_dice\t")).split()[1])
    assert 0.0 <= value <= 1.0
    assert float((mmar / "eval" / "mean_dice_summary_results.txt").read_text().split()[1]) == pytest.approx(
        value, abs=1e-4)


def check_infer(mmar, tmp_path):
    sh(mmar, "infer.sh", "--no_progress")
    datalist = json.loads((mmar / "data" / "datalist.json").read_text())
    name = Path(datalist["validation"][0]["image"]).name
    preds = list((mmar / "eval").rglob(name.replace(".nii.gz", "") + "*.nii.gz"))
    assert preds, sorted(str(p) for p in (mmar / "eval").rglob("*"))
    assert nib.load(preds[0]).shape == nib.load(mmar / "data" / datalist["validation"][0]["image"]).shape


def check_export(mmar, tmp_path):
    proc = sh(mmar, "export.sh")
    assert (mmar / "models" / "model.ts").is_file() and (mmar / "models" / "model.onnx").is_file()
    assert "ok" in proc.stdout


def check_mmar_form_honours_datalist_and_output(mmar, tmp_path):
    """`-d` and `-r` in MMAR form: another datalist and another output folder, models/ untouched."""
    datalist = json.loads((mmar / "data" / "datalist.json").read_text())
    one = {"training": datalist["training"][:1], "validation": datalist["validation"]}
    other = tmp_path / "one_case.json"
    other.write_text(json.dumps(one))
    stamp = (mmar / "models" / "model.pt").stat().st_mtime_ns
    proc = sh(mmar, "train.sh", *FAST, "-d", str(other), "--file_root", str(mmar / "data"), "-r", str(tmp_path / "o"))
    assert (tmp_path / "o" / "model.pt").is_file()
    assert (mmar / "models" / "model.pt").stat().st_mtime_ns == stamp
    assert "1 training batches per epoch" in proc.stderr  # one case (2 crops of it in one batch)
