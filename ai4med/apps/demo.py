"""`ai4med demo`: the main job end to end on an embedded default.

Builds a small real-anatomy dataset (MNI152 tissue classes) or a synthetic one, lays out
an MMAR around it, trains from the MMAR's config, validates the best checkpoint (Dice
reports under eval/), infers the validation cases (NIfTI on the input grid), and writes
a training-curve PNG, a validation-slice PNG with the predicted overlay and results.json.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shutil
import time
from importlib import resources

import numpy as np

logger = logging.getLogger("ai4med.demo")


def _template(name: str) -> str:
    return str(resources.files("ai4med.apps").joinpath("templates", name))


def lay_out_mmar(root: str, task: str) -> None:
    """config/ from the demo template, commands/ scripts, empty models/ and eval/."""
    from ai4med.config.mmar import Mmar

    Mmar.create(root)
    shutil.copytree(_template("demo_mmar/config"), os.path.join(root, "config"), dirs_exist_ok=True)
    shutil.copytree(_template("commands"), os.path.join(root, "commands"), dirs_exist_ok=True)
    if task == "synthetic":  # two classes instead of four tissue classes
        path = os.path.join(root, "config", "config_train.json")
        with open(path) as fh:
            cfg = json.load(fh)
        cfg["train"]["model"]["args"]["num_classes"] = 2
        with open(path, "w") as fh:
            json.dump(cfg, fh, indent=2)


def _infer(argv: list[str]) -> int:
    """`ai4med infer ARGV`, in this process (the app, not the CLI: apps sit below the CLI)."""
    from ai4med.apps import infer
    from ai4med.apps._cli_args import add_infer_args

    parser = argparse.ArgumentParser(prog="ai4med infer")
    add_infer_args(parser)
    return infer.run(parser.parse_args(argv))


def run(args: argparse.Namespace) -> int:
    from ai4med.apps.validate import validate_checkpoint
    from ai4med.config.workflow_config import load_config
    from ai4med.workflows.trainer import Trainer

    t0 = time.perf_counter()
    root = os.path.abspath(args.output)
    lay_out_mmar(root, args.task)
    data_dir = os.path.join(root, "data")
    if args.task == "synthetic":
        from ai4med.datasets.synthetic import make_synthetic_dataset

        make_synthetic_dataset(data_dir, num_cases=args.cases, size=48, seed=args.seed)
    else:
        from ai4med.datasets.mni152 import make_mni152_dataset

        make_mni152_dataset(data_dir, num_cases=args.cases, seed=args.seed)
    logger.info("dataset ready in %s (%.1f s)", data_dir, time.perf_counter() - t0)

    cfg_path = os.path.join(root, "config", "config_train.json")
    env_path = os.path.join(root, "config", "environment.json")
    overrides = {"epochs": args.epochs} if getattr(args, "epochs", None) else None
    cfg = load_config(cfg_path, env_path, overrides, mmar_root=root)
    ckpt_dir, eval_dir = os.path.join(root, "models"), os.path.join(root, "eval")
    t_train = time.perf_counter()
    trainer = Trainer(cfg, ckpt_dir, eval_dir)
    engine = trainer.run()
    train_s = time.perf_counter() - t_train

    results = validate_checkpoint(cfg, ckpt_dir, eval_dir, trainer=trainer)
    pred_dir = os.path.join(eval_dir, "predictions")
    if _infer(["-m", root, "-o", pred_dir, "--no_progress"]) != 0:
        raise RuntimeError("ai4med infer failed on the demo's validation cases")
    predictions = collect_predictions(trainer.val_pipeline.get_data_list(), pred_dir)
    pictures = [plot_training_curve(trainer.history, os.path.join(root, "training_curve.png")),
                plot_overlay(predictions[0], os.path.join(root, "validation_slice.png")) if predictions else None]
    summary = {
        "task": args.task, "cases": args.cases, "epochs": engine.state.epoch,
        "best_epoch": engine.state.best_epoch, "best_val_mean_dice": engine.state.best_metric,
        "validation": results, "train_seconds": round(train_s, 1),
        "total_seconds": round(time.perf_counter() - t0, 1),
        "predictions": [p["output"] for p in predictions], "pictures": [p for p in pictures if p],
    }
    from ai4med.io.atomic import atomic_write_text

    atomic_write_text(os.path.join(root, "results.json"), json.dumps(summary, indent=2))
    print(json.dumps({k: summary[k] for k in ("best_val_mean_dice", "validation", "train_seconds", "total_seconds")}))
    print(f"results: {os.path.join(root, 'results.json')}; pictures: {', '.join(summary['pictures'])}")
    return 0


def collect_predictions(items: list[dict], pred_dir: str) -> list[dict]:
    """The `ai4med infer` outputs of the validation items, with their images and labels (for pictures)."""
    from ai4med.io.image_io import read_image

    out = []
    for item in items:
        stem = os.path.basename(str(item["image"])).split(".")[0]  # case_006.nii.gz -> case_006
        path = os.path.join(pred_dir, stem, f"{stem}_model.nii.gz")
        if not os.path.exists(path):
            continue
        out.append({
            "output": path,
            "image": read_image(item["image"]).get_data(),
            "pred": read_image(path).get_data().astype(np.uint8),
            "label": read_image(item["label"]).get_data().astype(np.uint8) if "label" in item else None,
        })
    return out


def plot_training_curve(history: list[dict], path: str) -> str:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    epochs = [h["epoch"] for h in history]
    ax.plot(epochs, [h.get("train_loss", np.nan) for h in history], label="train loss")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    val = [(h["epoch"], h["val_mean_dice"]) for h in history if "val_mean_dice" in h]
    if val:
        ax2 = ax.twinx()
        ax2.plot(*zip(*val), "o-", color="tab:green", label="validation mean Dice")
        ax2.set_ylabel("validation mean Dice")
        ax2.set_ylim(0, 1)
        ax2.legend(loc="lower right")
    ax.legend(loc="upper right")
    ax.set_title("ai4med demo: training curve")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def plot_overlay(case: dict, path: str) -> str:
    """Middle axial slice: image, ground truth and prediction overlays side by side."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = case["image"].shape[2] // 2
    img = np.rot90(case["image"][:, :, k])
    panels = [("image", None), ("ground truth", case["label"]), ("prediction", case["pred"])]
    fig, axes = plt.subplots(1, 3, figsize=(10, 4))
    for ax, (title, lab) in zip(axes, panels):
        ax.imshow(img, cmap="gray")
        if lab is not None:
            ax.imshow(np.ma.masked_equal(np.rot90(lab[:, :, k]), 0), cmap="jet", alpha=0.45, vmin=0, vmax=3,
                      interpolation="nearest")
        ax.set_title(title)
        ax.axis("off")
    fig.suptitle(os.path.basename(case["output"]))
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
