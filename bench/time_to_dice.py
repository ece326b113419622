"""Time to accuracy: ai4med's default training (the demo MMAR) vs a MONAI tutorial-style loop.

The demo's task (`ai4med make-dataset mni152`: nilearn's MNI152 template under random
rigid+scale transforms, bias field and noise; 4 tissue classes) is built once; then, each in
its own process, in one run:

- ai4med: the demo's MMAR config as shipped (`ai4med/apps/templates/demo_mmar`, trained by
  `ai4med.workflows.trainer.Trainer` as `ai4med train` / `ai4med demo` do), with only
  `num_training_epoch_per_valid` set so that it validates every --val-every iterations;
- MONAI: the tutorial loop (CacheDataset of LoadImaged, EnsureChannelFirstd,
  NormalizeIntensityd(nonzero) + random RandCropByPosNegLabeld(48^3, pos 3, neg 1, 2 samples),
  RandAxisFlipd(0.5), RandScaleIntensityd / RandShiftIntensityd(0.1, 0.5); DataLoader(shuffle,
  the config's output_batch_size volumes x 2 crops, num_workers=min(4, CPUs), persistent); the
  same network (MONAI UNet 8-16-32-64, 1 residual unit, batch norm), DiceCELoss(softmax), Adam
  lr 3e-3 with the config's cosine decay per epoch, sliding_window_inference(48^3, sw_batch 4) + DiceMetric(include_background=False) on the
  same validation cases every --val-every iterations).

Reported: wall time from process start until the mean validation Dice first reaches --target
(default 0.78), both capped at --cap seconds; the best Dice each reached otherwise. Two validation
cases make the Dice curve noisy (it moves by +-0.05 between validations), so which validation first
reads 0.78 is partly luck: each side runs --seeds times (seeds 0..N-1, sides alternating) and the
ratio is of the median times. The ai4med side starts each run with an empty cache of timed
convolution layouts (`channels_last: "auto"`), so its figure includes timing them, as a first run
on a machine does. `--isa avx2` times an AVX2-only CPU on a newer one (bench/_isa.py).

Full run (the lead runs it on a quiet machine):
    .venv/bin/python bench/time_to_dice.py
Quick check:
    .venv/bin/python bench/time_to_dice.py --cases 3 --val-every 2 --cap 60 --target 0.2 --seeds 1

Ends with `BENCH time_to_dice_speedup_vs_monai <MONAI s / ai4med s>` (or, when a side never
reaches the target within the cap, a line saying so and no ratio).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from importlib import resources
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import _isa  # noqa: E402


def _demo_config() -> dict:
    path = resources.files("ai4med.apps").joinpath("templates", "demo_mmar", "config", "config_train.json")
    return json.loads(path.read_text())


class Progress:
    """Validation points as JSON lines (survive a killed process)."""

    def __init__(self, path: Path, t0: float, target: float, cap: float) -> None:
        self.path, self.t0, self.target, self.cap = path, t0, target, cap
        self.path.write_text("")

    def elapsed(self) -> float:
        return time.time() - self.t0

    def record(self, iteration: int, dice: float) -> bool:
        """Log a validation; True when training should stop (target reached or cap passed)."""
        t = self.elapsed()
        with open(self.path, "a") as fh:
            fh.write(json.dumps({"iteration": iteration, "seconds": t, "dice": dice}) + "\n")
        print(f"iteration {iteration}: mean Dice {dice:.4f} at {t:.1f} s", flush=True)
        return dice >= self.target or t > self.cap


# --- ai4med side --------------------------------------------------------------------------------
def run_ai4med(work: Path, data: Path, progress: Progress, val_every: int, seed: int = 0) -> None:
    from ai4med.apps.demo import lay_out_mmar
    from ai4med.config.workflow_config import load_config
    from ai4med.workflows.trainer import Trainer

    root = work / "ai4med_mmar"
    shutil.rmtree(root, ignore_errors=True)
    lay_out_mmar(str(root), "mni152")
    os.symlink(data, root / "data")
    cfg = load_config(str(root / "config" / "config_train.json"), str(root / "config" / "environment.json"),
                      {"determinism": {"random_seed": seed}}, mmar_root=str(root))

    class TimedTrainer(Trainer):
        def _record_history(self, engine) -> None:
            super()._record_history(engine)
            dice = self.history[-1].get("val_mean_dice")
            if dice is not None and progress.record(engine.state.iteration, float(dice)):
                engine.terminate()
            elif progress.elapsed() > progress.cap:
                engine.terminate()

    trainer = TimedTrainer(cfg, str(root / "models"), str(root / "eval"))
    per_epoch = len(trainer.train_pipeline)
    if val_every % per_epoch:
        raise SystemExit(f"--val-every {val_every} is not a whole number of epochs ({per_epoch} iterations each)")
    trainer.settings.num_training_epoch_per_valid = val_every // per_epoch
    step = trainer.step

    def first_batch_logged(engine, batch):
        if engine.state.iteration == 0:
            print(f"first training batch: image {tuple(batch['image'].shape)}", flush=True)
        return step(engine, batch)

    trainer.step = first_batch_logged
    trainer.run()


# --- MONAI side ---------------------------------------------------------------------------------
def run_monai(work: Path, data: Path, progress: Progress, val_every: int, workers: int, seed: int = 0) -> None:
    import torch
    from monai.data import CacheDataset, DataLoader, decollate_batch
    from monai.inferers import sliding_window_inference
    from monai.losses import DiceCELoss
    from monai.metrics import DiceMetric
    from monai.networks.nets import UNet
    from monai.transforms import (
        AsDiscrete,
        Compose,
        EnsureChannelFirstd,
        LoadImaged,
        NormalizeIntensityd,
        RandAxisFlipd,
        RandCropByPosNegLabeld,
        RandScaleIntensityd,
        RandShiftIntensityd,
    )
    from monai.utils import set_determinism

    cfg = _demo_config()
    margs, crop = cfg["train"]["model"]["args"], [48, 48, 48]
    set_determinism(seed=seed)
    datalist = json.loads((data / "datalist.json").read_text())
    files = {k: [{key: str(data / v) if not os.path.isabs(v) else v for key, v in item.items()} for item in datalist[k]]
             for k in ("training", "validation")}
    keys = ["image", "label"]
    base = [LoadImaged(keys), EnsureChannelFirstd(keys), NormalizeIntensityd("image", nonzero=True)]
    train_tf = Compose(base + [
        RandCropByPosNegLabeld(keys, label_key="label", spatial_size=crop, pos=3, neg=1, num_samples=2),
        RandAxisFlipd(keys, prob=0.5),
        RandScaleIntensityd("image", factors=0.1, prob=0.5), RandShiftIntensityd("image", offsets=0.1, prob=0.5),
    ])
    train_ds = CacheDataset(files["training"], train_tf, cache_rate=1.0, num_workers=workers)
    val_ds = CacheDataset(files["validation"], Compose(base), cache_rate=1.0, num_workers=workers)
    # the config's output_batch_size volumes per iteration, 2 crops each (as its batching crop)
    volumes = cfg["train"]["image_pipeline"]["args"]["output_batch_size"]
    # persistent workers: this task's epochs are 1-3 iterations, and a worker start per epoch (which the
    # tutorial's longer epochs hide) would be charged to MONAI; kept off the baseline
    train_loader = DataLoader(train_ds, batch_size=volumes, shuffle=True, num_workers=workers,
                              persistent_workers=workers > 0)
    val_loader = DataLoader(val_ds, batch_size=1, num_workers=workers, persistent_workers=workers > 0)
    n_cls = margs["num_classes"]
    net = UNet(spatial_dims=3, in_channels=1, out_channels=n_cls, channels=margs["channels"],
               strides=margs["strides"], num_res_units=margs["num_res_units"], norm="batch")
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    lr0, epochs = cfg["learning_rate"], cfg["epochs"]
    opt = torch.optim.Adam(net.parameters(), lr0)
    metric = DiceMetric(include_background=False, reduction="mean")
    post_pred, post_label = AsDiscrete(argmax=True, to_onehot=n_cls), AsDiscrete(to_onehot=n_cls)
    iteration = 0
    for epoch in range(epochs):
        for g in opt.param_groups:  # the config's ReduceCosine(rate 0.5) per epoch
            g["lr"] = lr0 * 0.5 * (1 + math.cos(math.pi * epoch / epochs))
        net.train()
        for batch in train_loader:
            if iteration == 0:
                print(f"first training batch: image {tuple(batch['image'].shape)}", flush=True)
            opt.zero_grad()
            loss = loss_fn(net(batch["image"]), batch["label"])
            loss.backward()
            opt.step()
            iteration += 1
            if iteration % val_every == 0:
                net.eval()
                with torch.no_grad():
                    for vb in val_loader:
                        out = sliding_window_inference(vb["image"], crop, 4, net)
                        metric(y_pred=[post_pred(o) for o in decollate_batch(out)],
                               y=[post_label(y) for y in decollate_batch(vb["label"])])
                dice = float(metric.aggregate().item())
                metric.reset()
                net.train()
                if progress.record(iteration, dice):
                    return
            if progress.elapsed() > progress.cap:
                return


# --- driver -------------------------------------------------------------------------------------
def summarise(path: Path, target: float) -> dict:
    points = [json.loads(line) for line in path.read_text().splitlines() if line.strip()] if path.exists() else []
    hit = next((p for p in points if p["dice"] >= target), None)
    best = max(points, key=lambda p: p["dice"]) if points else None
    return {"points": points, "hit": hit, "best": best}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=8, help="MNI152 cases (a third validate), as `ai4med demo`")
    p.add_argument("--target", type=float, default=0.78, help="mean validation Dice (tissue classes) to reach")
    p.add_argument("--val-every", type=int, default=None,
                   help="validate every N iterations (default: the demo config's 10 epochs)")
    p.add_argument("--cap", type=float, default=1800.0, help="wall-time cap per side, seconds")
    p.add_argument("--monai-workers", type=int, default=min(4, os.cpu_count() or 1))
    p.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "ai4med_bench_time_to_dice"))
    _isa.add_argument(p)
    p.add_argument("--worker", choices=["ai4med", "monai"], help=argparse.SUPPRESS)
    p.add_argument("--seeds", type=int, default=3,
                   help="runs per side, seeds 0..N-1, alternating sides; the ratio is of the medians")
    p.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--t0", type=float, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    _isa.apply(args.isa)

    work = Path(args.work)
    data = work / f"mni152_{args.cases}"
    if not (data / "datalist.json").exists():
        from ai4med.datasets.mni152 import make_mni152_dataset

        make_mni152_dataset(str(data), num_cases=args.cases, seed=0)
    n_train = len(json.loads((data / "datalist.json").read_text())["training"])
    demo = _demo_config()  # an epoch is ceil(training cases / output_batch_size) iterations
    per_epoch = -(-n_train // demo["train"]["image_pipeline"]["args"]["output_batch_size"])
    val_every = args.val_every or demo["num_training_epoch_per_valid"] * per_epoch
    if args.worker:
        import logging

        logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
        progress = Progress(work / f"{args.worker}_seed{args.seed}.jsonl", args.t0, args.target, args.cap)
        if args.worker == "ai4med":
            run_ai4med(work, data, progress, val_every, args.seed)
        else:
            run_monai(work, data, progress, val_every, args.monai_workers, args.seed)
        return 0

    me = os.path.abspath(__file__)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([os.path.dirname(os.path.dirname(me)),
                                                         os.environ.get("PYTHONPATH", "")])}
    cache = work / "ai4med_cache"
    env["AI4MED_CACHE_DIR"] = str(cache)
    labels = {"ai4med": "ai4med (demo MMAR config)", "monai": "MONAI tutorial-style loop"}
    runs: dict[str, list[dict]] = {"ai4med": [], "monai": []}
    for seed in range(args.seeds):  # the sides alternate, so a drifting machine affects both alike
        for side in ("ai4med", "monai"):
            if side == "ai4med":  # a cold cache of timed convolution layouts: each figure includes timing them
                shutil.rmtree(cache, ignore_errors=True)
            tag = f"{side}_seed{seed}"
            t0 = time.time()
            cmd = [sys.executable, me, "--worker", side, "--cases", str(args.cases), "--target", str(args.target),
                   "--val-every", str(val_every), "--cap", str(args.cap), "--monai-workers", str(args.monai_workers),
                   "--work", str(work), "--t0", repr(t0), "--seed", str(seed)]
            with open(work / f"{tag}.log", "w") as log:
                try:
                    rc = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, env=env,
                                        timeout=args.cap + 300).returncode
                except subprocess.TimeoutExpired:
                    rc = "killed at the cap + 300 s"
            if rc != 0:
                sys.stderr.write((work / f"{tag}.log").read_text()[-3000:])
                print(f"{tag} exited with {rc}; log {work / f'{tag}.log'}")
            r = summarise(work / f"{tag}.jsonl", args.target)
            r["wall"], r["seed"] = time.time() - t0, seed
            runs[side].append(r)
            hit = r["hit"]
            print(f"seed {seed} {labels[side]}: " + (f"mean Dice {hit['dice']:.4f} at iteration {hit['iteration']}, "
                  f"{hit['seconds']:.1f} s" if hit else "target not reached"), flush=True)

    print(f"\n{_isa.describe()}")
    print(f"MNI152 tissue task, {args.cases} cases ({n_train} training), validated every {val_every} iterations, "
          f"target mean Dice {args.target}, cap {args.cap:.0f} s, {os.cpu_count()} CPUs, seeds 0-{args.seeds - 1}")
    print(f"{'side':<34}{'seed':>5}{'s to target':>12}{'iterations':>12}{'s/iteration':>12}{'best Dice':>11}"
          f"{'process s':>11}")
    medians = {}
    for side, rs in runs.items():
        for r in rs:
            hit, best = r["hit"], r["best"]
            reached = f"{hit['seconds']:.1f}" if hit else "not reached"
            its = hit["iteration"] if hit else (r["points"][-1]["iteration"] if r["points"] else 0)
            pts = r["points"]  # seconds per iteration between the first and the last validation (startup excluded)
            per_it = ((pts[-1]["seconds"] - pts[0]["seconds"]) / (pts[-1]["iteration"] - pts[0]["iteration"])
                      if len(pts) > 1 else float("nan"))
            best_dice = best["dice"] if best else float("nan")
            print(f"{labels[side]:<34}{r['seed']:>5}{reached:>12}{its:>12}{per_it:>12.3f}{best_dice:>11.4f}"
                  f"{r['wall']:>11.1f}")
        # a run that never reached the target counts as the cap (a lower bound), so the median stays honest
        medians[side] = statistics.median(r["hit"]["seconds"] if r["hit"] else math.inf for r in rs)
    for side in runs:
        print(f"median {labels[side]}: " + (f"{medians[side]:.1f} s" if math.isfinite(medians[side])
                                            else f"not reached within {args.cap:.0f} s"))
    if all(math.isfinite(v) for v in medians.values()):
        print(f"BENCH time_to_dice_speedup_vs_monai {medians['monai'] / medians['ai4med']:.3f}")
    else:
        missing = [labels[s] for s in medians if not math.isfinite(medians[s])]
        print(f"no time_to_dice ratio: {', '.join(missing)} did not reach mean Dice {args.target} within "
              f"{args.cap:.0f} s in most runs (best Dice above)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
