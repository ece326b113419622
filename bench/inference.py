"""Scan-window inference speed: ai4med `ScanWindowInferer` vs MONAI `sliding_window_inference`.

Same MONAI UNet (3D, 1 -> 2 channels, 16-256, 2 residual units), same volume
(192x192x128), roi 96^3, batch 4, overlap 0.25. Every measured configuration runs in its
own subprocess with its own defaults (MONAI: plain torch under `no_grad`; ai4med: its
`TorchInferenceContext` defaults, i.e. precision="auto" and malloc tuning). Candidates for
the default CPU path are measured first (the OpenVINO row's first call includes the model's
conversion), then MONAI and ai4med are timed alternately over several rounds; medians are reported.

Where a CUDA device is present, GPU rows (MONAI fp32, ai4med fp32/fp16/bf16 autocast, ONNX
Runtime's TensorRT provider in fp16 when onnxruntime-gpu has it) are measured too; their "vs MONAI"
column is against MONAI fp32 on the same GPU. Elsewhere they are listed as skipped.

The UNet is first trained briefly on the volume (`--train-steps`, blobs > 0.5) so that the masks,
and the INT8 row's mask Dice against fp32, mean something. The INT8 row runs what `ai4med export
--int8` writes (NNCF post-training quantisation of the ONNX export, on OpenVINO). GFLOP/s is the
scan's convolution work (windows x FLOPs of one window, `torch.utils.flop_counter`) per second,
beside this CPU's sgemm ceiling. "stitch %" is the scan's time outside the network calls (padding,
window gathering, blending, normalising, cropping) as a share of the network's time.

Usage:
    .venv/bin/python bench/inference.py                  # full benchmark
    .venv/bin/python bench/inference.py --compile        # also time torch.compile (+ channels_last_3d)
    .venv/bin/python bench/inference.py --isa avx2       # as an AVX2-only CPU would (bench/_isa.py)
    .venv/bin/python bench/inference.py --size 96 96 64 --rounds 1 --repeats 1 --train-steps 2 --int8-windows 4
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import _isa  # noqa: E402

ROI, BATCH, OVERLAP = (96, 96, 96), 4, 0.25
UNET = {"spatial_dims": 3, "in_channels": 1, "out_channels": 2, "channels": (16, 32, 64, 128, 256),
        "strides": (2, 2, 2, 2), "num_res_units": 2}
# name -> (worker side, context options, extra environment)
CANDIDATES = {
    "ai4med fp32 (torch, exact)": ("ai4med", {"precision": "fp32"}, {}),
    "ai4med fp32, no malloc tuning": ("ai4med", {"precision": "fp32"}, {"AI4MED_NO_MALLOC_TUNING": "1"}),
    "ai4med fp32 channels_last_3d": ("ai4med", {"precision": "fp32", "channels_last": True}, {}),
    "ai4med bf16 autocast": ("ai4med", {"precision": "bf16"}, {}),
    "ai4med OnnxInferenceContext (.onnx file)": ("onnx", {}, {}),
    "ai4med OpenVinoInferenceContext (.onnx file)": ("onnx", {"openvino": True}, {}),
    "ai4med OpenVINO runtime": ("ai4med", {"precision": "fp32", "runtime": "openvino"}, {}),
    "ai4med INT8 (NNCF, OpenVINO)": ("int8", {}, {}),
    "ai4med torch.compile": ("ai4med", {"precision": "fp32", "compile": True}, {}),
    "ai4med torch.compile + channels_last_3d": ("ai4med", {"precision": "fp32", "compile": True,
                                                           "channels_last": True}, {}),
    # GPU rows: measured where a CUDA device is present, listed as skipped elsewhere
    "MONAI fp32 (cuda)": ("monai", {"device": "cuda"}, {}),
    "ai4med fp32 (cuda)": ("ai4med", {"precision": "fp32", "device": "cuda"}, {}),
    "ai4med fp16 autocast (cuda)": ("ai4med", {"precision": "fp16", "device": "cuda"}, {}),
    "ai4med bf16 autocast (cuda)": ("ai4med", {"precision": "bf16", "device": "cuda"}, {}),
    "ai4med ORT TensorRT EP fp16 (cuda)": ("onnx", {"tensorrt": True}, {}),
}
GPU_ROWS = [name for name, (_, options, _) in CANDIDATES.items() if options.get("device") == "cuda"
            or options.get("tensorrt")]


FP32 = "ai4med fp32 (torch, exact)"


# --- worker side (one configuration per process) -------------------------------------------
def build_net(work: Path):
    import torch
    from monai.networks.nets import UNet

    net = UNet(**UNET).eval()
    net.load_state_dict(torch.load(work / "unet.pt", weights_only=True))
    return net


def run_worker(side: str, options: dict, work: Path, repeats: int, out: Path | None) -> dict:
    """Warm up once, time `repeats` runs of the whole volume; save the output; return timings."""
    import torch

    image = np.load(work / "image.npy")
    net = build_net(work)
    if side == "monai":
        from monai.inferers import sliding_window_inference

        device = torch.device(options.get("device", "cpu"))
        net = net.to(device)
        x = torch.from_numpy(image).to(device)

        def infer():  # .cpu() waits for the device, so GPU timings are complete
            with torch.no_grad():
                return sliding_window_inference(x, ROI, BATCH, net, overlap=OVERLAP).cpu().numpy()
    else:
        from ai4med.components.inferers.torch_inferers import TorchScanWindowInferer

        if side == "int8":  # what `ai4med export --int8` writes and `--precision int8` runs
            from ai4med.components.inferers.openvino_predictor import OpenVinoInferenceContext

            ctx = OpenVinoInferenceContext(str(work / "unet_int8.xml"))
        elif side == "onnx":
            from ai4med.components.inferers.onnx_predictor import OnnxInferenceContext

            if options.get("tensorrt"):
                trt = ("TensorrtExecutionProvider", {"trt_fp16_enable": True, "trt_engine_cache_enable": True,
                                                     "trt_engine_cache_path": str(work / "trt_cache")})
                ctx = OnnxInferenceContext(export_onnx(net, work), providers=[trt, "CUDAExecutionProvider",
                                                                              "CPUExecutionProvider"])
            elif options.get("openvino"):  # the .onnx file on OpenVINO (infer/deploy's CPU default)
                from ai4med.components.inferers.openvino_predictor import OpenVinoInferenceContext

                ctx = OpenVinoInferenceContext(export_onnx(net, work))
            else:
                ctx = OnnxInferenceContext(export_onnx(net, work), device="cpu")
        else:
            from ai4med.components.inferers.torch_predictor import TorchInferenceContext

            ctx = TorchInferenceContext(net, **options)
        inferer = TorchScanWindowInferer(ROI, BATCH, overlap=OVERLAP)
        network_s = [0.0]  # seconds inside the predictor (the network): the rest of a scan is the stitcher's
        predict = inferer.predictor.predict

        def timed_predict(*args, **kwargs):
            start = time.perf_counter()
            try:
                return predict(*args, **kwargs)
            finally:
                network_s[0] += time.perf_counter() - start

        inferer.predictor.predict = timed_predict

        def infer():
            network_s[0] = 0.0
            return inferer.infer({"image": image}, "NCDHW", ctx)["pred"]

    start = time.perf_counter()
    result = infer()
    warmup = time.perf_counter() - start
    times, network = [], []
    for _ in range(repeats):  # the saved output is the last timed run's
        start = time.perf_counter()
        result = infer()
        times.append(time.perf_counter() - start)
        if side != "monai":
            network.append(network_s[0])
    if out is not None:
        np.save(out, result.astype(np.float32))
    info = {"times": times, "network": network, "warmup": warmup, "threads": torch.get_num_threads()}
    if side == "ai4med":
        info["precision"] = f"{ctx.runtime} {ctx.precision}"
    return info


def window_probe(work: Path) -> dict:
    """Seconds of one 96^3 window (batch 1) forward in fp32 and bf16 autocast; its FLOPs; the machine's sgemm
    GFLOP/s (4096^2 matmul: this CPU's fp32 ceiling)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from ai4med.components.inferers.precision import cpu_has_amx_bf16, tune_malloc

    tune_malloc()
    net, x = build_net(work), torch.randn(1, 1, *ROI)
    res = {"amx_bf16": cpu_has_amx_bf16(), "mkldnn": torch.backends.mkldnn.is_available(),
           "cpu_capability": torch.backends.cpu.get_cpu_capability(), "cuda": torch.cuda.is_available(),
           "tensorrt_ep": _has_tensorrt_ep()}
    with torch.inference_mode(), FlopCounterMode(display=False) as fc:
        net(x)
    res["window_flops"] = float(fc.get_total_flops())
    a, b = torch.randn(4096, 4096), torch.randn(4096, 4096)
    a @ b
    start = time.perf_counter()
    for _ in range(3):
        a @ b
    res["sgemm_gflops"] = 3 * 2 * 4096**3 / (time.perf_counter() - start) / 1e9
    with torch.inference_mode():
        for name, dtype in (("fp32", None), ("bf16", torch.bfloat16)):
            if dtype is not None and not res["amx_bf16"]:
                res[name] = None  # emulated without AMX (minutes a window under an AVX2 cap): not timed
                continue
            with torch.autocast("cpu", dtype=dtype or torch.bfloat16, enabled=dtype is not None):
                net(x)
                start = time.perf_counter()
                net(x)
                res[name] = time.perf_counter() - start
    return res


def _has_tensorrt_ep() -> bool:
    try:
        import onnxruntime as ort
    except ImportError:
        return False
    return "TensorrtExecutionProvider" in ort.get_available_providers()


def export_onnx(net, work: Path) -> Path:
    import torch

    path = work / "unet.onnx"
    if not path.exists():
        torch.onnx.export(net, torch.zeros(1, 1, *ROI), str(path), input_names=["image"], output_names=["pred"],
                          dynamic_axes={"image": {0: "n"}, "pred": {0: "n"}}, dynamo=False)
    return path


# --- driver ---------------------------------------------------------------------------------
def spawn(args: list[str], env: dict | None = None) -> dict:
    """Run this script as a worker; its last stdout line is a JSON result."""
    proc = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True,
                          env={**os.environ, **(env or {})})
    if proc.returncode != 0:
        raise RuntimeError(f"worker {args} failed:\n{proc.stderr[-3000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def measure(name: str, work: Path, repeats: int, save: bool = True) -> dict:
    side, options, env = CANDIDATES.get(name, (name, {}, {}))
    out = work / (name.replace(" ", "_").replace(",", "") + ".npy")
    args = ["--worker", side, "--options", json.dumps(options), "--work", str(work), "--repeats", str(repeats)]
    res = spawn(args + (["--out", str(out)] if save else []), env)
    res["out"] = str(out)
    return res


def dice_fg(a: np.ndarray, b: np.ndarray) -> float:
    """Dice of the foreground (argmax == 1) masks of two (N, 2, ...) outputs."""
    ma, mb = a.argmax(1) == 1, b.argmax(1) == 1
    denom = ma.sum() + mb.sum()
    return 1.0 if denom == 0 else float(2 * (ma & mb).sum() / denom)


def stitch_share(row: dict) -> str:
    """Median over runs of (scan seconds - network seconds) / network seconds, as a percentage."""
    pairs = [(t, n) for t, n in zip(row.get("times", []), row.get("network", [])) if n > 0]
    return f"{100 * statistics.median((t - n) / n for t, n in pairs):.1f}" if pairs else ""


def n_windows(size: tuple[int, ...]) -> int:
    """Windows of the scan (MONAI's grid: steps of roi * (1 - overlap), the last one flush with the end)."""
    n = 1
    for s, r in zip(size, ROI):
        step = max(1, int(r * (1 - OVERLAP)))
        n *= 1 if s <= r else -(-(s - r) // step) + 1
    return n


def train_briefly(work: Path, steps: int) -> None:
    """A few Adam steps of the UNet on 96^3 crops of the blob volume (target: blob > 0.5), so masks mean
    something (the INT8 mask Dice is then a real check); 0 steps keeps the seeded random weights."""
    import torch
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    net = UNet(**UNET)
    if steps > 0:
        vol = torch.from_numpy(np.load(work / "image.npy"))
        target = (vol[:, 0] > 0.5).long()
        opt = torch.optim.Adam(net.parameters(), 1e-3)
        rng = np.random.default_rng(1)
        t0 = time.perf_counter()
        crop = [min(r, d) for d, r in zip(vol.shape[2:], ROI)]
        for _ in range(steps):
            st = [int(rng.integers(0, d - r + 1)) for d, r in zip(vol.shape[2:], crop)]
            sl = tuple(slice(a, a + r) for a, r in zip(st, crop))
            loss = torch.nn.functional.cross_entropy(net(vol[(slice(None), slice(None), *sl)]),
                                                     target[(slice(None), *sl)])
            opt.zero_grad()
            loss.backward()
            opt.step()
        print(f"trained the UNet {steps} steps in {time.perf_counter() - t0:.0f} s (last loss {loss.item():.3f})",
              flush=True)
    torch.save(net.eval().state_dict(), work / "unet.pt")


def quantize_int8(work: Path, windows: int) -> dict:
    """NNCF INT8 of the ONNX export on `windows` random windows of the volume (`ai4med.inference.int8`)."""
    from ai4med.inference.int8 import quantize, windows_of

    image = np.load(work / "image.npy")[0]
    calib = windows_of(image, ROI, windows, np.random.default_rng(2))
    start = time.perf_counter()
    quantize(str(export_onnx(build_net(work), work)), calib, str(work / "unet_int8.xml"))
    return {"seconds": time.perf_counter() - start, "windows": windows}


def make_inputs(work: Path, size: tuple[int, int, int], train_steps: int = 0) -> None:
    """A smooth blob volume (1, 1, *size) and the UNet's weights (seeded, then `train_steps` of training)."""
    rng = np.random.default_rng(0)
    grid = np.stack(np.meshgrid(*[np.arange(s, dtype=np.float32) for s in size], indexing="ij"))
    vol = 0.1 * rng.standard_normal(size).astype(np.float32)
    for _ in range(12):
        centre = rng.uniform(0, 1, 3)[:, None, None, None] * np.array(size)[:, None, None, None]
        vol += np.exp(-((grid - centre) ** 2).sum(0) / (2 * rng.uniform(6, 20) ** 2)).astype(np.float32)
    np.save(work / "image.npy", vol[None, None])
    train_briefly(work, train_steps)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--size", type=int, nargs=3, default=(192, 192, 128))
    p.add_argument("--rounds", type=int, default=3, help="alternating MONAI / ai4med rounds")
    p.add_argument("--repeats", type=int, default=2, help="timed runs per process (after one warm-up)")
    p.add_argument("--compile", action="store_true", help="also measure torch.compile (slow to compile)")
    p.add_argument("--train-steps", type=int, default=150,
                   help="train the UNet this many steps first so masks are meaningful (0: random weights)")
    p.add_argument("--int8-windows", type=int, default=64, help="NNCF calibration windows of the INT8 row")
    _isa.add_argument(p)
    p.add_argument("--worker", help=argparse.SUPPRESS)
    p.add_argument("--options", default="{}", help=argparse.SUPPRESS)
    p.add_argument("--work", help=argparse.SUPPRESS)
    p.add_argument("--out", help=argparse.SUPPRESS)
    a = p.parse_args()
    _isa.apply(a.isa)
    if a.worker == "probe":
        print(json.dumps(window_probe(Path(a.work))))
        return
    if a.worker == "quantize":
        print(json.dumps(quantize_int8(Path(a.work), a.int8_windows)))
        return
    if a.worker:
        out = Path(a.out) if a.out else None
        print(json.dumps(run_worker(a.worker, json.loads(a.options), Path(a.work), a.repeats, out)))
        return

    work = Path(tempfile.mkdtemp(prefix="ai4med_bench_"))
    make_inputs(work, tuple(a.size), a.train_steps)
    probe = spawn(["--worker", "probe", "--work", str(work)])
    print(_isa.describe())
    print(f"CPU: amx_bf16={probe['amx_bf16']} capability={probe['cpu_capability']} mkldnn={probe['mkldnn']}; "
          f"one 96^3 window: fp32 {probe['fp32']:.3f} s, bf16 autocast "
          f"{'not timed (no AMX)' if probe['bf16'] is None else format(probe['bf16'], '.3f') + ' s'}; "
          f"{probe['window_flops'] / 1e9:.2f} GFLOP per window; sgemm ceiling {probe['sgemm_gflops']:.0f} GFLOP/s",
          flush=True)
    gflop = n_windows(tuple(a.size)) * probe["window_flops"] / 1e9  # work of one whole-volume scan
    nncf_ok = importlib.util.find_spec("nncf") is not None and importlib.util.find_spec("openvino") is not None
    if nncf_ok:
        q = spawn(["--worker", "quantize", "--work", str(work), "--int8-windows", str(a.int8_windows)])
        print(f"INT8: NNCF quantisation on {q['windows']} windows in {q['seconds']:.0f} s", flush=True)

    # 1. candidates for the default CPU path (one process each)
    rows: dict[str, dict] = {}
    for name in CANDIDATES:
        if name == "ai4med bf16 autocast" and (probe["bf16"] is None or probe["bf16"] > probe["fp32"]):
            why = "not timed" if probe["bf16"] is None else f"{probe['bf16']:.2f} s > fp32 {probe['fp32']:.2f} s"
            rows[name] = {"skip": f"bf16 window {why} (no AMX: bf16 is emulated)"}
            continue
        if "torch.compile" in name and not a.compile:
            rows[name] = {"skip": "not measured (pass --compile)"}
            continue
        if name in GPU_ROWS and not probe["cuda"]:
            rows[name] = {"skip": "no CUDA device"}
            continue
        if "TensorRT" in name and not probe["tensorrt_ep"]:
            rows[name] = {"skip": "onnxruntime has no TensorrtExecutionProvider (onnxruntime-gpu + TensorRT)"}
            continue
        if "openvino" in name.lower() and importlib.util.find_spec("openvino") is None:
            rows[name] = {"skip": "openvino not installed (pip install openvino)"}
            continue
        if "INT8" in name and not nncf_ok:
            rows[name] = {"skip": "nncf not installed (pip install 'ai4med[int8]')"}
            continue
        rows[name] = measure(name, work, a.repeats)
        print(f"  measured {name}: {statistics.median(rows[name]['times']):.2f} s", flush=True)

    # 2. MONAI vs ai4med default (and INT8), alternately: the headline ratios are medians over these rounds
    monai_t, default_t = [], []
    default_rows = {"times": [], "network": []}
    int8_name = "ai4med INT8 (NNCF, OpenVINO)"
    int8 = rows.get(int8_name, {})
    for r in range(a.rounds):
        monai = measure("monai", work, a.repeats, save=r == 0)
        default = measure("ai4med", work, a.repeats, save=r == 0)
        monai_t += monai["times"]
        default_t += default["times"]
        default_rows["times"] += default["times"]
        default_rows["network"] += default["network"]
        if r == 0:
            monai_out, default_out, default_precision = monai["out"], default["out"], default["precision"]
        line = (f"  round {r + 1}: MONAI {statistics.median(monai['times']):.2f} s, "
                f"ai4med default {statistics.median(default['times']):.2f} s")
        if "times" in int8:
            more = measure(int8_name, work, a.repeats, save=False)
            int8["times"] += more["times"]
            int8["network"] += more["network"]
            line += f", INT8 {statistics.median(more['times']):.2f} s"
        print(line, flush=True)

    ref, fp32 = np.load(monai_out), np.load(rows[FP32]["out"])
    default_arr = np.load(default_out)
    diff = float(np.abs(fp32 - ref).max())
    monai_med, default_med = statistics.median(monai_t), statistics.median(default_t)

    print(f"\nvolume {tuple(a.size)}, roi {ROI}, batch {BATCH}, overlap {OVERLAP}, torch threads "
          f"{rows[FP32]['threads']}; medians over runs")
    print(f"{n_windows(tuple(a.size))} windows = {gflop:.0f} GFLOP per scan; the machine's sgemm ceiling "
          f"{probe['sgemm_gflops']:.0f} GFLOP/s")
    print(f"{'configuration':40s} {'median s':>9s} {'vs MONAI':>9s} {'GFLOP/s':>8s} {'max|d| fp32':>12s} "
          f"{'Dice vs fp32':>13s} {'stitch %':>9s}")
    print(f"{'MONAI sliding_window_inference (fp32)':40s} {monai_med:9.3f} {1.0:9.2f} {gflop / monai_med:8.1f} "
          f"{'':>12s} {'':>13s}")
    gpu_monai = rows.get("MONAI fp32 (cuda)", {})
    gpu_base = statistics.median(gpu_monai["times"]) if "times" in gpu_monai else None
    for name, row in rows.items():
        if "skip" in row:
            print(f"{name:40s} {'-':>9s} {'':9s} {'':12s} {'':13s} {row['skip']}")
            continue
        out = np.load(row["out"])
        med = statistics.median(row["times"])
        extra = f" (first call {row['warmup']:.1f} s)"
        base = gpu_base if name in GPU_ROWS and gpu_base else monai_med  # GPU rows: vs MONAI on the GPU
        print(f"{name:40s} {med:9.3f} {base / med:9.2f} {gflop / med:8.1f} {float(np.abs(out - fp32).max()):12.2e} "
              f"{dice_fg(out, fp32):13.4f} {stitch_share(row):9s}{extra}")
    print(f"{'ai4med default (auto: ' + default_precision + ')':40s} {default_med:9.3f} "
          f"{monai_med / default_med:9.2f} {gflop / default_med:8.1f} {float(np.abs(default_arr - fp32).max()):12.2e} "
          f"{dice_fg(default_arr, fp32):13.4f} {stitch_share(default_rows):9s}")
    print("stitch %: the scan's time outside the network calls (pad, window gather, blend, normalise, crop) as a "
          "share of the network's time, median over runs")
    fg = float((fp32.argmax(1) == 1).mean())
    print(f"foreground of the fp32 mask: {100 * fg:.1f} % of the voxels ({a.train_steps} training steps)")
    print(f"\nBENCH scan_window_fp32_max_abs_diff {diff:.3e}")
    print(f"BENCH scan_window_speedup_vs_monai {monai_med / default_med:.3f}")
    print(f"BENCH scan_window_mask_dice_vs_fp32 {dice_fg(default_arr, fp32):.4f}")
    if "times" in int8:
        print(f"BENCH scan_window_int8_speedup_vs_monai {monai_med / statistics.median(int8['times']):.3f}")
        print(f"BENCH scan_window_int8_mask_dice_vs_fp32 {dice_fg(np.load(int8['out']), fp32):.4f}")


if __name__ == "__main__":
    main()
