"""Planned vs hand-written vs plain MONAI: validation Dice at the same training wall time.

Two datasets built offline:
- mni152: `ai4med make-dataset mni152` (MR, 3 mm, 4 tissue classes: background, CSF, GM, WM);
- ct: a CT-like anisotropic multi-organ task built here: a body (fat, muscle, spine at 400-1000 HU)
  in air (-1000 HU), three organs (liver 60 HU, both kidneys 30 HU, spleen 45 HU, +-15 HU noise)
  whose contrast only shows in a narrow window of the -1000..1000 HU range; in-plane spacing
  0.7-0.9 mm, slices 3, 4 or 5 mm (so spacing, resampling and anisotropic kernels matter).

Each dataset is split once (the datalist's training / validation lists) and the three methods
train on the same training cases for `--budget-s` seconds of wall time each, on the CPU:
1. planned: `ai4med plan` on the training cases (`--budget cpu --time-budget-s BUDGET`), the MMAR
   trained as written;
2. hand: the demo MMAR's hand-written config (ai4med/apps/templates/demo_mmar), its epochs set so
   its cosine schedule ends within the budget (from the median of the middle epochs of a 4-epoch probe);
3. monai: a plain MONAI loop (UNet 16-128, DiceCE, Adam 1e-3, 48^3 crops 1:1 pos/neg, z-score).
Training stops when the budget is spent (mid-epoch if need be). The final weights are scored on the
validation cases with each method's own preprocessing and scan-window inference; the score is the
mean over cases of the per-case mean foreground Dice (ai4med `ComputeAverageDice`, the same
function for all three). No validation runs during training (nothing is selected on the score).

Usage (the lead runs the full budget on a quiet machine; a check: --budget-s 20 --cases 6):
    PYTHONPATH=. .venv/bin/python bench/autoconfig.py                      # 600 s per method
    PYTHONPATH=. .venv/bin/python bench/autoconfig.py --budget-s 20 --cases 6 --datasets ct

Ends with `BENCH autoconfig_dice_gain_mni152 <planned - hand>` and `BENCH autoconfig_dice_gain_ct <...>`.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


# ------------------------------------------------------------------------------------------ data
def ct_case(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """One CT-like case on its own anisotropic grid: (HU image, label 0..3, affine)."""
    fov = np.array([96.0, 96.0, 120.0])  # mm
    sp = np.array([rng.uniform(0.7, 0.9), 0.0, float(rng.choice([3.0, 4.0, 5.0]))])
    sp[1] = sp[0]
    shape = tuple(int(round(f / s)) for f, s in zip(fov / np.array([1.2, 1.2, 1.0]), sp))
    grid = np.meshgrid(*[(np.arange(n) + 0.5) * s - n * s / 2 for n, s in zip(shape, sp)], indexing="ij")
    x, y, z = grid
    c = rng.normal(0, 2.0, 3)
    body = ((x - c[0]) / 36) ** 2 + ((y - c[1]) / 28) ** 2 <= 1
    img = np.full(shape, -1000.0, np.float32)
    img[body] = -100.0  # fat
    muscle = ((x - c[0]) / 32) ** 2 + ((y - c[1]) / 24) ** 2 <= 1
    img[muscle] = 50.0
    spine = ((x - c[0]) / 6) ** 2 + ((y - c[1] - 16) / 6) ** 2 <= 1
    img[spine] = 700.0 + 300.0 * rng.random(int(spine.sum()))
    lab = np.zeros(shape, np.uint8)

    def ellipsoid(cx, cy, cz, rx, ry, rz):
        return ((x - cx) / rx) ** 2 + ((y - cy) / ry) ** 2 + ((z - cz) / rz) ** 2 <= 1

    j = lambda s: rng.normal(0, s)  # noqa: E731
    liver = ellipsoid(c[0] - 12 + j(2), c[1] - 4 + j(2), 10 + j(4), 14 + j(1.5), 11 + j(1.5), 30 + j(3))
    kidneys = (ellipsoid(c[0] - 13 + j(1.5), c[1] + 10 + j(1.5), -20 + j(4), 5 + j(0.5), 4 + j(0.5), 14 + j(1.5))
               | ellipsoid(c[0] + 13 + j(1.5), c[1] + 10 + j(1.5), -22 + j(4), 5 + j(0.5), 4 + j(0.5), 14 + j(1.5)))
    spleen = ellipsoid(c[0] + 15 + j(2), c[1] - 2 + j(2), 15 + j(4), 7 + j(1), 6 + j(1), 16 + j(2))
    for k, (mask, hu) in enumerate(((liver, 60.0), (kidneys, 30.0), (spleen, 45.0)), 1):
        mask &= muscle
        lab[mask] = k
        img[mask] = hu
    img += rng.normal(0, 15.0, shape).astype(np.float32)
    affine = np.diag([*sp, 1.0])
    return img.astype(np.float32), lab, affine


def make_ct_dataset(out: str, n: int, seed: int) -> str:
    import nibabel as nib

    from ai4med.io.datalist import write_datalist

    rng = np.random.default_rng(seed)
    os.makedirs(os.path.join(out, "imagesTr"), exist_ok=True)
    os.makedirs(os.path.join(out, "labelsTr"), exist_ok=True)
    items = []
    for i in range(n):
        img, lab, aff = ct_case(rng)
        ip, lp = os.path.join(out, "imagesTr", f"ct_{i:03d}.nii.gz"), os.path.join(out, "labelsTr", f"ct_{i:03d}.nii.gz")
        nib.save(nib.Nifti1Image(img, aff), ip)
        nib.save(nib.Nifti1Image(lab, aff), lp)
        items.append({"image": ip, "label": lp})
    n_val = max(1, n // 3)
    return write_datalist(os.path.join(out, "datalist.json"), {
        "name": "SyntheticCT", "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "liver", "2": "kidney", "3": "spleen"},
        "training": items[:-n_val], "validation": items[-n_val:]})


def make_data(name: str, root: str, n: int, seed: int) -> str:
    if name == "ct":
        return make_ct_dataset(os.path.join(root, "ct"), n, seed)
    from ai4med.datasets.mni152 import make_mni152_dataset

    return make_mni152_dataset(os.path.join(root, "mni152"), num_cases=n, seed=seed, num_validation=max(1, n // 3))


# ------------------------------------------------------------------------------------------ ai4med runs
class TimeLimit:
    """Stops training once `seconds` of wall time have passed since the first iteration began."""

    def __init__(self, seconds: float) -> None:
        self.seconds, self.t0, self.iterations = seconds, None, 0

    def attach(self, engine) -> None:
        from ai4med.workflows.engine import Events

        def start(e):
            if self.t0 is None:
                self.t0 = time.perf_counter()

        def check(e):
            self.iterations += 1
            if time.perf_counter() - self.t0 >= self.seconds:
                e.terminate()

        engine.add_handler(Events.ITERATION_STARTED, start, name="time_limit_start")
        engine.add_handler(Events.ITERATION_COMPLETED, check, name="time_limit")


def train_ai4med(config: str, env: str, overrides: dict, root: str, seconds: float) -> tuple[float, int, float]:
    """(validation mean Dice of the final weights, iterations, seconds trained)."""
    from ai4med.config.workflow_config import load_config
    from ai4med.workflows.trainer import Trainer

    no_validation = {"num_training_epoch_per_valid": 10**6, "num_training_iterations_per_valid": 0}
    cfg = load_config(config, env, {**overrides, **no_validation}, mmar_root=root)
    trainer = Trainer(cfg, os.path.join(root, "models"), os.path.join(root, "eval"), device="cpu")
    limit = TimeLimit(seconds)
    trainer.handlers.append(limit)
    trainer.run()
    trained = time.perf_counter() - limit.t0
    results = trainer.make_validator().run()
    return float(results["mean_dice"]), limit.iterations, trained


def run_planned(datalist: str, work: str, seconds: float) -> tuple[float, int, float, dict]:
    from ai4med.io.datalist import read_datalist_json

    data = read_datalist_json(datalist)
    train_only = os.path.join(os.path.dirname(datalist), "train_only.json")  # beside it: same relative paths
    with open(train_only, "w") as f:  # plan sees the training cases only
        json.dump({k: v for k, v in data.items() if k != "validation"}, f)
    mmar = os.path.join(work, "planned")
    cmd = [sys.executable, "-m", "ai4med", "plan", "-d", train_only,
           "-o", mmar, "--budget", "cpu", "--time-budget-s", str(seconds), "--no_progress",
           "--folds", str(min(5, len(data["training"])))]
    r = subprocess.run(cmd, capture_output=True, text=True, env={**os.environ, "PYTHONPATH": REPO})
    if r.returncode != 0:
        raise SystemExit(f"plan failed:\n{r.stderr[-3000:]}")
    print(r.stdout.strip().splitlines()[0])
    plans = json.load(open(os.path.join(mmar, "plans", "plans.json")))
    dice, iters, secs = train_ai4med(os.path.join(mmar, "config", "config_train.json"),
                                     os.path.join(mmar, "config", "environment.json"),
                                     {"DATASET_JSON": datalist, "DATA_ROOT": os.path.dirname(datalist)}, mmar, seconds)
    return dice, iters, secs, plans


def run_hand(datalist: str, work: str, seconds: float, num_classes: int) -> tuple[float, int, float]:
    """The demo's hand-written config; epochs from measured epochs so its schedule fits the budget."""
    from ai4med.config.workflow_config import load_config
    from ai4med.workflows.trainer import Trainer

    root = os.path.join(work, "hand")
    os.makedirs(os.path.join(root, "config"), exist_ok=True)
    with open(os.path.join(REPO, "ai4med", "apps", "templates", "demo_mmar", "config", "config_train.json")) as f:
        cfg = json.load(f)
    cfg["train"]["model"]["args"]["num_classes"] = num_classes
    config = os.path.join(root, "config", "config_train.json")
    with open(config, "w") as f:
        json.dump(cfg, f, indent=2)
    over = {"DATASET_JSON": datalist, "DATA_ROOT": os.path.dirname(datalist), "epochs": 4,
            "num_training_epoch_per_valid": 10**6}
    probe = Trainer(load_config(config, None, over, mmar_root=root), os.path.join(root, "probe"),
                    os.path.join(root, "probe_eval"), device="cpu")
    ends: list[float] = []

    class EpochClock:
        def attach(self, engine) -> None:
            from ai4med.workflows.engine import Events

            engine.add_handler(Events.EPOCH_COMPLETED, lambda e: ends.append(time.perf_counter()), name="clock")

    probe.handlers.append(EpochClock())
    probe.run()
    # the middle epochs: the first also fills the cache, the last also writes the final checkpoints
    epoch_s = float(np.median(np.diff(ends)[:-1]))
    epochs = max(1, int(seconds / epoch_s))
    print(f"hand: one epoch {epoch_s:.1f} s -> epochs {epochs} (config default {cfg['epochs']})")
    dice, iters, secs = train_ai4med(config, None, {"DATASET_JSON": datalist, "DATA_ROOT": os.path.dirname(datalist),
                                                    "epochs": epochs}, root, seconds)
    return dice, iters, secs


# ------------------------------------------------------------------------------------------ plain MONAI
def run_monai(datalist: str, seconds: float, num_classes: int, seed: int) -> tuple[float, int, float]:
    import torch
    from monai import transforms as mt
    from monai.data import CacheDataset, DataLoader
    from monai.inferers import sliding_window_inference
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet

    from ai4med.components.metrics.dice import dice_per_class
    from ai4med.io.datalist import load_datalist

    torch.manual_seed(seed)
    base = [mt.LoadImaged(["image", "label"]), mt.EnsureChannelFirstd(["image", "label"]),
            mt.NormalizeIntensityd("image", nonzero=True)]
    train_t = mt.Compose(base + [
        mt.SpatialPadd(["image", "label"], (48, 48, 48)),
        mt.RandCropByPosNegLabeld(["image", "label"], "label", (48, 48, 48), pos=1, neg=1, num_samples=2),
        mt.RandFlipd(["image", "label"], prob=0.5, spatial_axis=0)])
    train = CacheDataset(load_datalist(datalist, "training"), train_t, progress=False)
    loader = DataLoader(train, batch_size=2, shuffle=True, num_workers=0)
    net = UNet(3, 1, num_classes, (16, 32, 64, 128), (2, 2, 2), num_res_units=2)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    t0, iters = time.perf_counter(), 0
    while time.perf_counter() - t0 < seconds:
        for batch in loader:
            opt.zero_grad()
            loss = loss_fn(net(batch["image"]), batch["label"])
            loss.backward()
            opt.step()
            iters += 1
            if time.perf_counter() - t0 >= seconds:
                break
    trained = time.perf_counter() - t0
    net.eval()
    scores = []
    val_t = mt.Compose(base)
    with torch.no_grad():
        for item in load_datalist(datalist, "validation"):
            d = val_t(item)
            prob = torch.softmax(sliding_window_inference(d["image"][None], (48, 48, 48), 4, net), 1)[0]
            per_class = dice_per_class(prob.numpy(), np.asarray(d["label"]))
            if not np.all(np.isnan(per_class)):
                scores.append(float(np.nanmean(per_class)))
    return float(np.mean(scores)), iters, trained


# ------------------------------------------------------------------------------------------ main
def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--budget-s", type=float, default=600.0, help="training wall time per method (s)")
    ap.add_argument("--cases", type=int, default=12, help="cases per dataset (a third validate)")
    ap.add_argument("--datasets", nargs="+", default=["mni152", "ct"], choices=["mni152", "ct"])
    ap.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--output", default=None, help="work folder (default: a temporary one, removed)")
    ap.add_argument("--methods", nargs="+", default=["planned", "hand", "monai"], choices=["planned", "hand", "monai"],
                    help="which methods to run (the BENCH lines need planned and hand)")
    args = ap.parse_args(argv)

    import logging

    import torch

    torch.set_num_threads(args.threads)
    logging.basicConfig(level=logging.WARNING)
    work = args.output or tempfile.mkdtemp(prefix="ai4med_autoconfig_")
    gains = {}
    try:
        for name in args.datasets:
            dl = make_data(name, work, args.cases, args.seed)
            n_cls = 4
            print(f"== {name}: {args.cases} cases, {args.budget_s:.0f} s per method, {args.threads} threads")
            rows = {}
            if "planned" in args.methods:
                d, it, s, plans = run_planned(dl, os.path.join(work, f"{name}_runs"), args.budget_s)
                rows["planned"] = (d, it, s)
                print(f"planned: patch {plans['patch_size']} batch {plans['batch_size']} spacing "
                      f"{plans['target_spacing']} norm {plans['normalization'][0]['scheme']} "
                      f"levels {len(plans['network']['strides'])}")
            if "hand" in args.methods:
                rows["hand"] = run_hand(dl, os.path.join(work, f"{name}_runs"), args.budget_s, n_cls)
            if "monai" in args.methods:
                rows["monai"] = run_monai(dl, args.budget_s, n_cls, args.seed)
            for k, (d, it, s) in rows.items():
                print(f"{name:7s} {k:8s} dice {d:.4f}  ({it} iterations in {s:.0f} s)", flush=True)
            if "planned" in rows and "hand" in rows:
                gains[name] = rows["planned"][0] - rows["hand"][0]
    finally:
        if args.output is None:
            shutil.rmtree(work, ignore_errors=True)
    for name, g in gains.items():
        print(f"BENCH autoconfig_dice_gain_{name} {g:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
