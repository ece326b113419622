"""End-to-end folder inference: `ai4med infer` vs a MONAI bundle-style pipeline vs nnU-Net v2.

What users feel: a folder of CT studies in, masks out. A folder of CT-like int16 .nii.gz
volumes (default 8 x 512x512x120 at 0.75x0.75x2.5 mm, `bench/_e2e_data.py`, built offline
and cached under --work) goes through, each side in its own process, in one run:

(a) `python -m ai4med infer` with an MMAR config (LoadNifti, ConvertToChannelsFirst,
    ScaleBySpacing to 1.5x1.5x2.5 mm, ScaleIntensityRange window, TorchScanWindowInferer, default
    post-processing, NIfTI out on the input grid): its default (exact fp32 torch) and `--amp`
    (the fast path: OpenVINO fp32 on a CPU without AMX);
(b) the same network and weights in a MONAI bundle-style pipeline as a bundle's inference.json
    builds it (LoadImaged, EnsureChannelFirstd, Orientationd RAS, Spacingd, ScaleIntensityRanged,
    Dataset + DataLoader(num_workers=min(4, CPUs)), SlidingWindowInferer with MONAI's defaults
    except roi_size / sw_batch_size, Activationsd softmax, Invertd, AsDiscreted argmax, SaveImaged);
(c) nnU-Net v2 (`nnUNetv2_predict_from_modelfolder`, i.e. `nnUNetPredictor` with the CLI's
    defaults: step 0.5, Gaussian blending, 3 preprocessing / 3 export workers) on a model folder
    made here for the same patch and a network of comparable size (PlainConvUNet 16-32-64-128,
    CTNormalization): TTA on (its default), and TTA off (`--disable_tta`). Its weights are random
    (timing only: nnU-Net's cost does not depend on the weights; its masks are not compared).

The network of (a) and (b) is a MONAI UNet (16-32-64-128, strides 2, 2 residual units) trained
here briefly on the same synthetic task (crops at the target spacing, a plain torch loop), so
the masks are meaningful: the Dice of (a)'s masks vs (b)'s is printed (expected >= 0.99), and
each against the ground-truth labels. Wall time per side is process start to exit (after the
last file is written); s/case is that over the number of cases.

Full run (the lead runs it on a quiet machine):
    .venv/bin/python bench/end_to_end.py
Quick check:
    .venv/bin/python bench/end_to_end.py --cases 2 --size 128 128 40 --train-iterations 20
As an AVX2-only CPU would run it (torch, oneDNN, OpenVINO and MKL capped; bench/_isa.py):
    .venv/bin/python bench/end_to_end.py --isa avx2

Ends with `BENCH e2e_speedup_vs_monai <MONAI s / ai4med default s>` and
`BENCH e2e_speedup_vs_nnunet_notta <nnU-Net TTA-off s / ai4med default s>`.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import _isa  # noqa: E402
from bench._e2e_data import SCAN_SPACING, TARGET_SPACING, WINDOW, build_scan_folder, phantom  # noqa: E402

UNET = {"spatial_dims": 3, "in_channels": 1, "out_channels": 2, "channels": [16, 32, 64, 128],
        "strides": [2, 2, 2], "num_res_units": 2}
SW_BATCH = 4


# --- training (its own process) -------------------------------------------------------------
def train(work: Path, extent: list[float], roi: list[int], iterations: int, seed: int) -> dict:
    """A few hundred crops of training phantoms at the target spacing -> models/model.pt."""
    import torch
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet

    torch.manual_seed(seed)
    rng = np.random.default_rng(seed)
    vols = []
    for i in range(8):  # training cases: other seeds than the benchmark's folder
        img, lab, _ = phantom(10_000 + seed + i, extent, TARGET_SPACING)
        x = np.clip((img.astype(np.float32) - WINDOW[0]) / (WINDOW[1] - WINDOW[0]), 0.0, 1.0)
        pad = [(0, max(0, r - s)) for r, s in zip(roi, x.shape)]
        vols.append((np.pad(x, pad), np.pad(lab, pad)))
    net = UNet(**UNET)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    t0, losses = time.perf_counter(), []
    for _ in range(iterations):
        xs, ys = [], []
        for _ in range(2):
            x, y = vols[rng.integers(len(vols))]
            if rng.random() < 0.67:  # centred on the organ (pos:neg 2:1)
                fg = np.argwhere(y > 0)
                c = fg[rng.integers(len(fg))]
                start = [int(np.clip(ci - r // 2, 0, s - r)) for ci, r, s in zip(c, roi, x.shape)]
            else:
                start = [int(rng.integers(0, s - r + 1)) for r, s in zip(roi, x.shape)]
            sl = tuple(slice(s, s + r) for s, r in zip(start, roi))
            xs.append(x[sl][None])
            ys.append(y[sl][None].astype(np.int64))
        xb, yb = torch.from_numpy(np.stack(xs)), torch.from_numpy(np.stack(ys))
        opt.zero_grad()
        loss = loss_fn(net(xb), yb)
        loss.backward()
        opt.step()
        losses.append(float(loss.detach()))
    (work / "models").mkdir(parents=True, exist_ok=True)
    torch.save({"model": net.state_dict()}, work / "models" / "model.pt.part")
    os.replace(work / "models" / "model.pt.part", work / "models" / "model.pt")
    return {"seconds": time.perf_counter() - t0, "first_loss": losses[0], "last_loss": float(np.mean(losses[-10:]))}


# --- (b) MONAI bundle-style pipeline (its own process) ----------------------------------------
def run_monai(index: dict, out: str, roi: list[int], workers: int) -> None:
    import torch
    from monai.data import DataLoader, Dataset, decollate_batch
    from monai.inferers import SlidingWindowInferer
    from monai.networks.nets import UNet
    from monai.transforms import (
        Activationsd,
        AsDiscreted,
        Compose,
        EnsureChannelFirstd,
        EnsureTyped,
        Invertd,
        LoadImaged,
        Orientationd,
        SaveImaged,
        ScaleIntensityRanged,
        Spacingd,
    )

    work = Path(out).parent.parent
    net = UNet(**UNET)
    net.load_state_dict(torch.load(work / "models" / "model.pt", weights_only=True)["model"])
    net.eval()
    pre = Compose([
        LoadImaged(keys="image"), EnsureChannelFirstd(keys="image"), Orientationd(keys="image", axcodes="RAS"),
        Spacingd(keys="image", pixdim=TARGET_SPACING, mode="bilinear"),
        ScaleIntensityRanged(keys="image", a_min=WINDOW[0], a_max=WINDOW[1], b_min=0.0, b_max=1.0, clip=True),
        EnsureTyped(keys="image"),
    ])
    post = Compose([
        Activationsd(keys="pred", softmax=True),
        Invertd(keys="pred", transform=pre, orig_keys="image", nearest_interp=False, to_tensor=True),
        AsDiscreted(keys="pred", argmax=True),
        SaveImaged(keys="pred", output_dir=out, output_postfix="seg", resample=False, output_dtype=np.uint8),
    ])
    loader = DataLoader(Dataset([{"image": it["image"]} for it in index["items"]], transform=pre), batch_size=1,
                        shuffle=False, num_workers=workers)
    inferer = SlidingWindowInferer(roi_size=roi, sw_batch_size=SW_BATCH)
    with torch.no_grad():
        for batch in loader:
            batch["pred"] = inferer(batch["image"], net)
            for item in decollate_batch(batch):
                post(item)


# --- (a) ai4med MMAR and (c) nnU-Net model folder -----------------------------------------------
def write_mmar(work: Path, index: dict, roi: list[int]) -> Path:
    mmar = work / "mmar"
    (mmar / "config").mkdir(parents=True, exist_ok=True)
    (mmar / "models").mkdir(exist_ok=True)
    shutil.copy(work / "models" / "model.pt", mmar / "models" / "model.pt")
    datalist = {"validation": [{"image": it["image"]} for it in index["items"]]}
    (mmar / "config" / "datalist.json").write_text(json.dumps(datalist, indent=1))
    (mmar / "config" / "environment.json").write_text(json.dumps({
        "DATA_ROOT": str(work), "DATASET_JSON": "{MMAR_ROOT}/config/datalist.json",
        "MMAR_CKPT_DIR": "{MMAR_ROOT}/models", "MMAR_EVAL_OUTPUT_PATH": "{MMAR_ROOT}/eval"}))
    pre = [
        {"name": "LoadNifti", "args": {"fields": "image"}},
        {"name": "ConvertToChannelsFirst", "args": {"fields": "image"}},
        {"name": "ScaleBySpacing", "args": {"fields": "image", "target_spacing": list(TARGET_SPACING)}},
        {"name": "ScaleIntensityRange", "args": {"fields": "image", "a_min": WINDOW[0], "a_max": WINDOW[1],
                                                 "b_min": 0.0, "b_max": 1.0, "clip": True}},
    ]
    config = {
        "train": {"model": {"path": "monai.networks.nets.UNet", "args": UNET}},
        "validate": {
            "pre_transforms": pre,
            "image_pipeline": {"name": "SegmentationImagePipeline", "args": {
                "data_list_file_path": "{DATASET_JSON}", "data_file_base_dir": "{DATA_ROOT}",
                "data_list_key": "validation", "output_crop_size": [-1, -1, -1], "output_batch_size": 1}},
            "inferer": {"name": "TorchScanWindowInferer", "args": {"roi_size": roi, "batch_size": SW_BATCH}},
        },
    }
    (mmar / "config" / "config_inference.json").write_text(json.dumps(config, indent=1))
    return mmar


def write_nnunet(work: Path, index: dict, roi: list[int]) -> tuple[Path, Path]:
    """nnU-Net v2 model folder (dataset.json, plans.json, fold_0/checkpoint_final.pth) + renamed inputs."""
    import torch
    from dynamic_network_architectures.architectures.unet import PlainConvUNet

    root = work / "nnunet"
    model_dir = root / "Dataset999_E2EBench" / "nnUNetTrainer__nnUNetPlans__3d_fullres"
    (model_dir / "fold_0").mkdir(parents=True, exist_ok=True)
    inputs = root / "imagesTs"
    inputs.mkdir(exist_ok=True)
    for it in index["items"]:
        dst = inputs / f"{it['name']}_0000.nii.gz"
        if not dst.exists():
            os.link(it["image"], dst) if os.stat(it["image"]).st_dev == os.stat(inputs).st_dev else shutil.copy(
                it["image"], dst)
    (model_dir / "dataset.json").write_text(json.dumps({
        "channel_names": {"0": "CT"}, "labels": {"background": 0, "organ": 1},
        "numTraining": len(index["items"]), "file_ending": ".nii.gz"}, indent=1))
    zyx = lambda v: [v[2], v[1], v[0]]  # noqa: E731  (SimpleITK reads (z, y, x))
    arch = {
        "network_class_name": "dynamic_network_architectures.architectures.unet.PlainConvUNet",
        "arch_kwargs": {"n_stages": 4, "features_per_stage": [16, 32, 64, 128], "conv_op": "torch.nn.modules.conv.Conv3d",
                        "kernel_sizes": [[3, 3, 3]] * 4, "strides": [[1, 1, 1], [2, 2, 2], [2, 2, 2], [2, 2, 2]],
                        "n_conv_per_stage": [2, 2, 2, 2], "n_conv_per_stage_decoder": [2, 2, 2], "conv_bias": True,
                        "norm_op": "torch.nn.modules.instancenorm.InstanceNorm3d",
                        "norm_op_kwargs": {"eps": 1e-5, "affine": True}, "dropout_op": None,
                        "dropout_op_kwargs": None, "nonlin": "torch.nn.LeakyReLU", "nonlin_kwargs": {"inplace": True}},
        "_kw_requires_import": ["conv_op", "norm_op", "dropout_op", "nonlin"],
    }
    size = index["size"]
    target_shape = [round(s * a / b) for s, a, b in zip(size, index["spacing"], TARGET_SPACING)]
    resample = lambda seg, order: {"is_seg": seg, "order": order, "order_z": 0, "force_separate_z": None}  # noqa: E731
    plans = {
        "dataset_name": "Dataset999_E2EBench", "plans_name": "nnUNetPlans",
        "original_median_spacing_after_transp": zyx(index["spacing"]),
        "original_median_shape_after_transp": zyx(size), "image_reader_writer": "SimpleITKIO",
        "transpose_forward": [0, 1, 2], "transpose_backward": [0, 1, 2],
        "configurations": {"3d_fullres": {
            "data_identifier": "nnUNetPlans_3d_fullres", "preprocessor_name": "DefaultPreprocessor",
            "batch_size": 2, "patch_size": zyx(roi), "median_image_size_in_voxels": zyx(target_shape),
            "spacing": zyx(list(TARGET_SPACING)), "normalization_schemes": ["CTNormalization"],
            "use_mask_for_norm": [False], "resampling_fn_data": "resample_data_or_seg_to_shape",
            "resampling_fn_seg": "resample_data_or_seg_to_shape",
            "resampling_fn_data_kwargs": resample(False, 3), "resampling_fn_seg_kwargs": resample(True, 1),
            "resampling_fn_probabilities": "resample_data_or_seg_to_shape",
            "resampling_fn_probabilities_kwargs": resample(False, 1), "architecture": arch, "batch_dice": False}},
        "experiment_planner_used": "ExperimentPlanner", "label_manager": "LabelManager",
        "foreground_intensity_properties_per_channel": {"0": {
            "max": 240.0, "mean": 100.0, "median": 100.0, "min": -40.0, "percentile_00_5": 40.0,
            "percentile_99_5": 160.0, "std": 25.0}},
    }
    (model_dir / "plans.json").write_text(json.dumps(plans, indent=1))
    torch.manual_seed(0)
    kw = dict(arch["arch_kwargs"])
    for key in ("conv_op", "norm_op", "nonlin"):
        module, _, name = kw[key].rpartition(".")
        kw[key] = getattr(__import__(module, fromlist=[name]), name)
    net = PlainConvUNet(input_channels=1, num_classes=2, deep_supervision=False, **kw)
    torch.save({"network_weights": net.state_dict(), "trainer_name": "nnUNetTrainer",
                "init_args": {"plans": plans, "configuration": "3d_fullres", "fold": 0,
                              "dataset_json": json.loads((model_dir / "dataset.json").read_text())},
                "inference_allowed_mirroring_axes": (0, 1, 2)}, model_dir / "fold_0" / "checkpoint_final.pth")
    return model_dir, inputs


# --- driver -----------------------------------------------------------------------------------
def timed(name: str, cmd: list[str], log: Path, env: dict | None = None) -> float:
    t0 = time.perf_counter()
    with open(log, "w") as fh:
        proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, env={**os.environ, **(env or {})})
    seconds = time.perf_counter() - t0
    if proc.returncode != 0:
        sys.stderr.write(log.read_text()[-4000:])
        raise SystemExit(f"{name} failed (exit {proc.returncode}); log {log}")
    return seconds


def ran_with(log: Path) -> str:
    """The runtime and precision `ai4med infer` logged for its model (what `--amp` resolved to here)."""
    import re

    m = re.search(r"runtime (\S+) precision (\S+)", log.read_text())
    return f"{m.group(2)} {m.group(1)} here" if m else "see its log"


def dice(a: np.ndarray, b: np.ndarray) -> float:
    a, b = a > 0, b > 0
    total = a.sum() + b.sum()
    return 1.0 if total == 0 else float(2.0 * np.logical_and(a, b).sum() / total)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cases", type=int, default=8)
    p.add_argument("--size", type=int, nargs=3, default=[512, 512, 120], help="scan size (x y z) at 0.75x0.75x2.5 mm")
    p.add_argument("--roi", type=int, nargs=3, default=[96, 96, 48], help="window / patch (x y z), all sides")
    p.add_argument("--train-iterations", type=int, default=200)
    p.add_argument("--train-crop", type=int, nargs=3, default=[64, 64, 32], help="training crop (x y z), batch 2")
    p.add_argument("--work", default=os.path.join(tempfile.gettempdir(), "ai4med_bench_e2e"),
                   help="cache folder (data, trained weights) and outputs")
    p.add_argument("--monai-workers", type=int, default=min(4, os.cpu_count() or 1),
                   help="DataLoader workers of the MONAI side (a bundle's inference.json uses 4)")
    p.add_argument("--skip-nnunet", action="store_true")
    p.add_argument("--skip-nnunet-tta", action="store_true",
                   help="leave out the nnU-Net TTA-on row (8 mirrorings: ~7 min per 512x512x120 case on 2 cores)")
    p.add_argument("--seed", type=int, default=0)
    _isa.add_argument(p)
    p.add_argument("--worker", choices=["train", "monai"], help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    _isa.apply(args.isa)

    extent = [s * sp for s, sp in zip(args.size, SCAN_SPACING)]
    # a window no larger than the resampled scan (rounded down to the network's multiple of 8)
    target_shape = [round(e / t) for e, t in zip(extent, TARGET_SPACING)]
    args.roi = [max(8, min(r, s // 8 * 8)) for r, s in zip(args.roi, target_shape)]
    crop = [min(c, r) for c, r in zip(args.train_crop, args.roi)]
    key = hashlib.sha1(json.dumps([args.cases, args.size, args.seed]).encode()).hexdigest()[:10]
    work = Path(args.work) / f"{args.cases}x{'x'.join(map(str, args.size))}_{key}"
    model_key = f"unet_{args.train_iterations}it_{'x'.join(map(str, crop))}"
    if args.worker == "train":
        print(json.dumps(train(work / model_key, extent, crop, args.train_iterations, args.seed)))
        return 0
    index = build_scan_folder(str(work / "data"), args.cases, args.size, SCAN_SPACING, args.seed)
    if args.worker == "monai":
        run_monai(index, args.out, args.roi, args.monai_workers)
        return 0

    py, me = sys.executable, os.path.abspath(__file__)
    common = ["--cases", str(args.cases), "--size", *map(str, args.size), "--roi", *map(str, args.roi),
              "--train-iterations", str(args.train_iterations), "--train-crop", *map(str, args.train_crop), "--work", args.work, "--seed", str(args.seed)]
    model_dir = work / model_key
    if not (model_dir / "models" / "model.pt").exists():
        t = time.perf_counter()
        subprocess.run([py, me, "--worker", "train", *common], check=True, stdout=subprocess.PIPE)
        print(f"trained the UNet for {args.train_iterations} iterations (crops {crop}, batch 2) in "
              f"{time.perf_counter() - t:.1f} s")
    runs = model_dir / "runs"
    shutil.rmtree(runs, ignore_errors=True)
    runs.mkdir()
    mmar = write_mmar(model_dir, index, args.roi)
    env = {"PYTHONPATH": os.pathsep.join([os.path.dirname(os.path.dirname(me)), os.environ.get("PYTHONPATH", "")])}
    rows: dict[str, float] = {}
    ai4med_cmd = [py, "-m", "ai4med", "infer", "-m", str(mmar), "-c", str(mmar / "config" / "config_inference.json"),
                  "--no_progress", "--device", "cpu"]
    rows["ai4med infer (default: fp32 torch)"] = timed(
        "ai4med", [*ai4med_cmd, "-o", str(runs / "ai4med")], runs / "ai4med.log", env)
    amp_s = timed("ai4med --amp", [*ai4med_cmd, "--amp", "-o", str(runs / "ai4med_amp")], runs / "ai4med_amp.log", env)
    rows[f"ai4med infer --amp ({ran_with(runs / 'ai4med_amp.log')})"] = amp_s
    rows["MONAI bundle-style pipeline"] = timed(
        "monai", [py, me, "--worker", "monai", *common, "--out", str(runs / "monai")], runs / "monai.log", env)
    if not args.skip_nnunet:
        nn_dir, nn_in = write_nnunet(model_dir, index, args.roi)
        nn_env = {k: str(model_dir / "nnunet" / k) for k in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results")}
        nn_cmd = [py, "-c", "import sys; from nnunetv2.inference.predict_from_raw_data import "
                  "predict_entry_point_modelfolder as m; sys.argv[0] = 'nnUNetv2_predict_from_modelfolder'; m()",
                  "-i", str(nn_in), "-m", str(nn_dir), "-f", "0", "-device", "cpu", "--disable_progress_bar"]
        if not args.skip_nnunet_tta:
            rows["nnU-Net v2 predictor (defaults, TTA on)"] = timed(
                "nnunet", [*nn_cmd, "-o", str(runs / "nnunet_tta")], runs / "nnunet_tta.log", nn_env)
        rows["nnU-Net v2 predictor, TTA off"] = timed(
            "nnunet notta", [*nn_cmd, "--disable_tta", "-o", str(runs / "nnunet_notta")], runs / "nnunet_notta.log",
            nn_env)

    # masks: (a) vs (b), and each vs the labels
    import nibabel as nib
    from scipy import ndimage

    d_ab, d_amp, d_a_gt, d_b_gt, n_diff, n_band = [], [], [], [], 0, 0
    for it in index["items"]:
        n = it["name"]
        a = np.asarray(nib.load(runs / "ai4med" / n / f"{n}_model.nii.gz").dataobj)
        amp = np.asarray(nib.load(runs / "ai4med_amp" / n / f"{n}_model.nii.gz").dataobj)
        b = np.asarray(nib.load(runs / "monai" / n / f"{n}_seg.nii.gz").dataobj).squeeze()
        gt = np.asarray(nib.load(it["label"]).dataobj)
        assert a.shape == b.shape == gt.shape, (n, a.shape, b.shape, gt.shape)
        d_ab.append(dice(a, b))
        # where do they disagree? within 2 voxels of MONAI's mask boundary = resampling conventions
        # (ai4med: argmax on the network grid, then nearest back; Invertd: probabilities interpolated, then argmax)
        diff = (a > 0) != (b > 0)
        band = ndimage.binary_dilation(b > 0, iterations=2) & ~ndimage.binary_erosion(b > 0, iterations=2)
        n_diff, n_band = n_diff + int(diff.sum()), n_band + int((diff & band).sum())
        d_amp.append(dice(a, amp))
        d_a_gt.append(dice(a, gt))
        d_b_gt.append(dice(b, gt))

    n = args.cases
    print(f"\n{n} cases of {'x'.join(map(str, args.size))} at {'x'.join(map(str, SCAN_SPACING))} mm (int16 .nii.gz), "
          f"target spacing {'x'.join(map(str, TARGET_SPACING))} mm, window/patch {args.roi} (x y z), "
          f"windows per batch {SW_BATCH}, {os.cpu_count()} CPUs")
    ref = rows["ai4med infer (default: fp32 torch)"]
    print(f"{'side':<44}{'wall s':>9}{'s/case':>9}{'vs ai4med default':>19}")
    for name, s in rows.items():
        print(f"{name:<44}{s:>9.1f}{s / n:>9.2f}{s / ref:>18.2f}x")
    print(f"\nmask Dice ai4med vs MONAI (per case): min {min(d_ab):.4f}, mean {np.mean(d_ab):.4f}")
    print(f"voxels where they disagree: {n_diff}, {100.0 * n_band / max(n_diff, 1):.1f}% of them within 2 voxels of "
          "MONAI's mask boundary")
    print(f"mask Dice ai4med default vs --amp: min {min(d_amp):.4f}")
    print(f"Dice vs ground-truth labels: ai4med mean {np.mean(d_a_gt):.4f}, MONAI mean {np.mean(d_b_gt):.4f}")
    if not args.skip_nnunet:
        print("nnU-Net rows: random weights (timing only; its cost does not depend on the weights)")
    if min(d_ab) < 0.99:
        print(f"WARNING: ai4med vs MONAI mask Dice {min(d_ab):.4f} < 0.99 (why: bench/e2e_conventions.py with the "
              "same flags)")
    print(f"ai4med --amp speedup vs MONAI: {rows['MONAI bundle-style pipeline'] / rows[list(rows)[1]]:.2f}")
    print(f"BENCH e2e_speedup_vs_monai {rows['MONAI bundle-style pipeline'] / ref:.3f}")
    if not args.skip_nnunet:
        print(f"ai4med --amp speedup vs nnU-Net TTA off: {rows['nnU-Net v2 predictor, TTA off'] / rows[list(rows)[1]]:.2f}")
        print(f"BENCH e2e_speedup_vs_nnunet_notta {rows['nnU-Net v2 predictor, TTA off'] / ref:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
