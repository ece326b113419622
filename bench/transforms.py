"""Transform-chain benchmark: ai4med vs MONAI on the same synthetic CT volumes.

The chain (MONAI's typical 3D segmentation training chain): load .nii.gz image + label,
channel-first, resample to 1.5 x 1.5 x 2 mm, intensity window, crop foreground, 4
pos/neg-balanced 96^3 crops, random flips on each axis, random rot90, random intensity
shift. Each side runs in its own subprocess, single process as users get it by default
(no worker processes), uncached: every volume is read from disk every epoch.

Usage:
    .venv/bin/python bench/transforms.py [--volumes 4] [--epochs 2] [--rounds 2] [--shape 256 256 128]

Prints a table of samples/s (one sample = one 96^3 crop pair) for both and ends with
`BENCH transforms_speedup_vs_monai <ratio>`.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

SPACING_IN = (0.8, 0.8, 2.5)
PIXDIM = (1.5, 1.5, 2.0)
CROP = (96, 96, 96)
NUM_CROPS = 4
A_MIN, A_MAX = -175.0, 250.0


# --------------------------------------------------------------------------------------
# data
# --------------------------------------------------------------------------------------
def make_volumes(folder: str, n: int, shape: tuple[int, int, int], seed: int = 0) -> list[dict[str, str]]:
    """Write `n` synthetic CT-like volumes (int16, noisy body ellipse, organs) and labels (uint8)."""
    import nibabel as nib
    import numpy as np

    rng = np.random.default_rng(seed)
    affine = np.diag([-SPACING_IN[0], -SPACING_IN[1], SPACING_IN[2], 1.0])
    affine[:3, 3] = [100.0, 120.0, -200.0]
    grid = np.meshgrid(*[np.arange(s, dtype=np.float32) for s in shape], indexing="ij")
    items = []
    for i in range(n):
        c = np.array(shape, dtype=np.float32) / 2
        body = ((grid[0] - c[0]) / (0.42 * shape[0])) ** 2 + ((grid[1] - c[1]) / (0.36 * shape[1])) ** 2 < 1
        img = np.where(body, 40.0, -1000.0).astype(np.float32)
        img += rng.normal(0, 25, shape).astype(np.float32)  # scanner noise everywhere (as real CT)
        centre = c + rng.uniform(-0.15, 0.15, 3) * np.array(shape)
        radius = rng.uniform(18, 28)
        organ = ((grid[0] - centre[0]) ** 2 + (grid[1] - centre[1]) ** 2 + ((grid[2] - centre[2]) * 3.1) ** 2) < radius**2
        img[organ] += 80
        lab = organ.astype(np.uint8)
        ip, lp = os.path.join(folder, f"img_{i}.nii.gz"), os.path.join(folder, f"lab_{i}.nii.gz")
        nib.save(nib.Nifti1Image(img.astype(np.int16), affine), ip)
        nib.save(nib.Nifti1Image(lab, affine), lp)
        items.append({"image": ip, "label": lp})
    return items


# --------------------------------------------------------------------------------------
# the two chains
# --------------------------------------------------------------------------------------
def monai_chain():
    from monai.transforms import (
        Compose,
        CropForegroundd,
        EnsureChannelFirstd,
        LoadImaged,
        RandCropByPosNegLabeld,
        RandFlipd,
        RandRotate90d,
        RandShiftIntensityd,
        ScaleIntensityRanged,
        Spacingd,
    )

    keys = ["image", "label"]
    return Compose([
        LoadImaged(keys=keys),
        EnsureChannelFirstd(keys=keys),
        Spacingd(keys=keys, pixdim=PIXDIM, mode=("bilinear", "nearest")),
        ScaleIntensityRanged(keys=["image"], a_min=A_MIN, a_max=A_MAX, b_min=0.0, b_max=1.0, clip=True),
        CropForegroundd(keys=keys, source_key="image", allow_smaller=True),
        RandCropByPosNegLabeld(keys=keys, label_key="label", spatial_size=CROP, pos=1, neg=1,
                               num_samples=NUM_CROPS, image_key="image", image_threshold=0),
        RandFlipd(keys=keys, spatial_axis=[0], prob=0.5),
        RandFlipd(keys=keys, spatial_axis=[1], prob=0.5),
        RandFlipd(keys=keys, spatial_axis=[2], prob=0.5),
        RandRotate90d(keys=keys, prob=0.5, max_k=3),
        RandShiftIntensityd(keys=["image"], offsets=0.1, prob=0.5),
    ])


def _foreground_crop_transform():
    """Crop image and label to the bounding box of image > 0 (MONAI CropForegroundd's default)."""
    from ai4med.components.transforms.crop import crop_or_pad, foreground_bbox
    from ai4med.components.transforms.utils import affine_after_crop, set_spatial_geometry

    class CropForegroundBox:
        """Bench stand-in: ai4med's CropForegroundObject crops to the *label* object and resizes."""

        def __call__(self, ctx):
            img = ctx.get_image("image")
            mask = (img.get_data() > 0).any(axis=0)
            start, stop = foreground_bbox(mask)
            size = [b - a for a, b in zip(start, stop)]
            for f in ("image", "label"):
                im = ctx.get_image(f)
                out = im.new_image(crop_or_pad(im.get_data(), (1, 2, 3), start, size))
                set_spatial_geometry(out, lambda a: affine_after_crop(a, start))
                ctx.set_image(f, out)
            return ctx

    return CropForegroundBox()


def ai4med_chain():
    from ai4med.components.transforms.channels import ConvertToChannelsFirst
    from ai4med.components.transforms.intensity import ScaleIntensityRange, ScaleShiftIntensity
    from ai4med.components.transforms.io import LoadNifti
    from ai4med.components.transforms.spatial import NPRandomRot90_XY, RandomSpatialFlip, ScaleByResolution

    try:
        from ai4med.components.transforms.crop import FastCropByPosNegRatio as PosNeg
    except ImportError:  # pragma: no cover - the crop module is written in parallel
        PosNeg = None
    keys = ["image", "label"]
    pre = [
        LoadNifti(keys),
        ConvertToChannelsFirst(keys),
        ScaleByResolution(keys, target_resolution=list(PIXDIM)),
        ScaleIntensityRange("image", a_min=A_MIN, a_max=A_MAX, b_min=0.0, b_max=1.0, clip=True),
        _foreground_crop_transform(),
        PosNeg(list(CROP), keys, "label", pos=1, neg=1, batch_size=NUM_CROPS, image_field="image",
               image_threshold=0),
    ]
    post = [
        RandomSpatialFlip(keys, probability=0.5, spatial_axis=[0]),
        RandomSpatialFlip(keys, probability=0.5, spatial_axis=[1]),
        RandomSpatialFlip(keys, probability=0.5, spatial_axis=[2]),
        NPRandomRot90_XY(keys, probability=0.5),
        ScaleShiftIntensity("image", shift=0.1, probability=0.5),
    ]
    return pre, post


def run_ai4med(items, epochs, seed=0):
    import numpy as np

    from ai4med.common.transform_ctx import TransformContext

    pre, post = ai4med_chain()
    rng = np.random.default_rng(seed)
    out = []

    def one(item):
        ctx = TransformContext(dict(item), rng=rng)
        for t in pre:
            ctx = t(ctx)
        img, lab = ctx.get_image("image"), ctx.get_image("label")
        samples = []
        for i in range(img.shape[0]):  # one sample per crop, like MONAI's list of dicts
            s = TransformContext({"image": img.new_image(img.get_data()[i], "CDHW"),
                                  "label": lab.new_image(lab.get_data()[i], "CDHW")}, rng=rng)
            for t in post:
                s = t(s)
            samples.append(s)
        return samples

    return _timed(one, items, epochs, out)


def run_monai(items, epochs, seed=0):
    chain = monai_chain()
    chain.set_random_state(seed=seed)
    return _timed(lambda item: chain(dict(item)), items, epochs, [])


def _timed(fn, items, epochs, _):
    fn(items[0])  # warm-up (lazy imports, thread pools); not timed
    n = 0
    t0, c0 = time.perf_counter(), time.process_time()
    for _e in range(epochs):
        for item in items:
            samples = fn(item)
            n += len(samples)
            for s in samples:
                assert tuple(s["image"].shape[-3:]) == CROP, s["image"].shape
    dt, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"samples": n, "seconds": dt, "cpu_seconds": cpu, "samples_per_s": n / dt,
            "volumes_per_s": len(items) * epochs / dt}


# --------------------------------------------------------------------------------------
# driver
# --------------------------------------------------------------------------------------
def _side(args):
    import warnings

    warnings.filterwarnings("ignore")
    with open(args.items) as f:
        items = json.load(f)
    res = run_monai(items, args.epochs) if args.side == "monai" else run_ai4med(items, args.epochs)
    print("RESULT " + json.dumps(res))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--volumes", type=int, default=4)
    p.add_argument("--epochs", type=int, default=2)
    p.add_argument("--shape", type=int, nargs=3, default=[256, 256, 128])
    p.add_argument("--rounds", type=int, default=2, help="alternating runs per side; the best is reported")
    p.add_argument("--data", help="folder for the synthetic files (default: a temporary one)")
    p.add_argument("--side", choices=["monai", "ai4med"], help=argparse.SUPPRESS)
    p.add_argument("--items", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.side:
        return _side(args)

    with tempfile.TemporaryDirectory() as tmp:
        folder = args.data or tmp
        os.makedirs(folder, exist_ok=True)
        t0 = time.perf_counter()
        items = make_volumes(folder, args.volumes, tuple(args.shape))
        print(f"wrote {args.volumes} volumes {tuple(args.shape)} in {time.perf_counter() - t0:.1f}s to {folder}")
        items_path = os.path.join(folder, "items.json")
        with open(items_path, "w") as f:
            json.dump(items, f)
        results: dict[str, dict] = {}
        for _round in range(args.rounds):  # alternate the sides; keep each side's best round
            for side in ("monai", "ai4med"):
                cmd = [sys.executable, os.path.abspath(__file__), "--side", side, "--items", items_path,
                       "--epochs", str(args.epochs)]
                proc = subprocess.run(cmd, capture_output=True, text=True)
                line = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
                if proc.returncode != 0 or not line:
                    sys.stderr.write(proc.stdout + proc.stderr)
                    raise SystemExit(f"{side} run failed (exit {proc.returncode})")
                res = json.loads(line[-1][len("RESULT "):])
                if side not in results or res["samples_per_s"] > results[side]["samples_per_s"]:
                    results[side] = res
    m, a = results["monai"], results["ai4med"]
    ratio = a["samples_per_s"] / m["samples_per_s"]
    import torch

    print(f"torch threads: {torch.get_num_threads()}, cpus: {os.cpu_count()}, best of {args.rounds} rounds")
    print(f"{'chain':<8} {'samples':>8} {'seconds':>8} {'cpu s':>8} {'samples/s':>10} {'volumes/s':>10}")
    for name, r in (("monai", m), ("ai4med", a)):
        print(f"{name:<8} {r['samples']:>8d} {r['seconds']:>8.2f} {r['cpu_seconds']:>8.2f} "
              f"{r['samples_per_s']:>10.2f} {r['volumes_per_s']:>10.2f}")
    print(f"speed-up ai4med / monai: {ratio:.2f}x wall, {m['cpu_seconds'] / a['cpu_seconds']:.2f}x cpu time "
          f"(1-min load average now {os.getloadavg()[0]:.1f}; a busy machine slows multi-threaded MONAI more)")
    print(f"BENCH transforms_speedup_vs_monai {ratio:.2f}")


if __name__ == "__main__":
    main()
