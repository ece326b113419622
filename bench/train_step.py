"""One training iteration: ai4med's loop vs a plain MONAI/PyTorch fp32 loop.

Same network (MONAI UNet 16-256, 2 residual units), batch 2 of 96^3, DiceCE, Adam. Each
side runs in its own process with its own defaults, as its users get it: MONAI as a
plain PyTorch loop; ai4med through `TrainStep` built from the component registries
(its trainer tunes glibc malloc at start-up on CPU, runs each convolution in the memory layout
that times faster (`channels_last: "auto"`, timed in the first step with a cold cache) and
autocasts to bf16 where the CPU has AMX and `use_amp` is on). `--isa avx2` times an AVX2-only CPU
on a newer one (bench/_isa.py).

`--compile` adds two ai4med rows, each in its own process: the opt-in training globals
`channels_last` alone and `compile` + `channels_last` (`nn.Module.compile()`, as the trainer
does). The first step (where compilation happens) is never timed; its time is reported.

`--device cuda` runs both sides on the GPU (each step is timed up to `torch.cuda.synchronize()`);
with `--amp` the ai4med side then autocasts to fp16 with a GradScaler, as `use_amp` does.

    python bench/train_step.py [--steps 5] [--size 96] [--amp] [--compile] [--device cuda]

Ends with `BENCH train_step_speedup_vs_monai <ratio>` (the default ai4med side vs MONAI).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from bench import _isa  # noqa: E402

CHANNELS, STRIDES = (16, 32, 64, 128, 256), (2, 2, 2, 2)


def _data(size: int):
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, size, size, size, generator=g)
    y = (torch.rand(2, 1, size, size, size, generator=g) > 0.7).float()
    return x, y


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def run_monai(steps: int, size: int, device: str = "cpu") -> tuple[list[float], float]:
    import torch
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    net = UNet(3, 1, 2, CHANNELS, STRIDES, num_res_units=2).to(device)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    x, y = (t.to(device) for t in _data(size))
    times = []
    net.train()
    for _ in range(steps + 2):
        t = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        _sync(device)
        times.append(time.perf_counter() - t)
    return times[2:], times[0]


def run_ai4med(steps: int, size: int, amp: bool, channels_last: bool = False,
               compile_net: bool = False, device: str = "cpu") -> tuple[list[float], float, str]:
    import torch

    from ai4med.components.inferers.precision import resolve_precision, tune_malloc
    from ai4med.config.registries import get_registry
    from ai4med.workflows.engine import Engine
    from ai4med.workflows.steps import TrainStep, to_channels_last

    tune_malloc()  # what `ai4med train` does at start-up on CPU
    torch.manual_seed(0)
    model = get_registry("models").get("Unet")(num_classes=2, channels=list(CHANNELS), strides=list(STRIDES),
                                               num_res_units=2, final_activation="softmax")
    model.net.to(device)
    loss = get_registry("losses").get("CrossEntropyDice")()
    opt = get_registry("optimizers").get("Adam")(learning_rate=1e-4).get_optimizer(model.net.parameters())
    precision = resolve_precision("auto", device) if amp else "fp32"
    if channels_last:  # what the trainer does for the `channels_last` / `compile` globals
        to_channels_last(model.net)
    if compile_net:
        model.net.compile()
    # the trainer's default `channels_last: "auto"` (per-convolution layouts, timed in the first step)
    layout = True if channels_last else (False if compile_net else "auto")
    step = TrainStep(model, model.net, loss, opt, torch.device(device), precision, channels_last=layout)
    engine = Engine(step)
    x, y = _data(size)
    batch = {"image": x, "label": y}
    times = []
    for _ in range(steps + 2):
        t = time.perf_counter()
        step(engine, batch)
        _sync(device)
        times.append(time.perf_counter() - t)
    return times[2:], times[0], precision


def _child(side: str, steps: int, size: int, amp: bool, *flags: str, device: str = "cpu") -> dict:
    cmd = [sys.executable, __file__, "--child", side, "--steps", str(steps), "--size", str(size),
           "--device", device, *flags]
    if amp:
        cmd.append("--amp")
    # a cold layout cache: the first step includes timing the layouts, as on a user's first run
    with tempfile.TemporaryDirectory(prefix="ai4med_bench_cache_") as cache:
        env = {**os.environ, "AI4MED_CACHE_DIR": cache}
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--amp", action="store_true", help="ai4med side with use_amp (bf16 on AMX CPUs)")
    p.add_argument("--compile", action="store_true",
                   help="also ai4med with channels_last, and with compile + channels_last")
    p.add_argument("--device", default="cpu", help="cpu (default) or cuda: where both sides run")
    _isa.add_argument(p)
    p.add_argument("--child", choices=["monai", "ai4med"], help=argparse.SUPPRESS)
    p.add_argument("--channels-last", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--compile-net", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args()
    _isa.apply(a.isa)
    if a.child == "monai":
        times, first = run_monai(a.steps, a.size, a.device)
        print(json.dumps({"times": times, "first": first, "precision": "fp32"}))
        return
    if a.child == "ai4med":
        times, first, precision = run_ai4med(a.steps, a.size, a.amp, a.channels_last, a.compile_net, a.device)
        print(json.dumps({"times": times, "first": first, "precision": precision}))
        return
    if a.device.startswith("cuda"):
        import torch

        if not torch.cuda.is_available():
            raise SystemExit("--device cuda: no CUDA device here")
    rows = {side: _child(side, a.steps, a.size, a.amp, device=a.device) for side in ("monai", "ai4med")}
    if a.compile:
        rows["ai4med +channels_last"] = _child("ai4med", a.steps, a.size, a.amp, "--channels-last", device=a.device)
        rows["ai4med +compile+channels_last"] = _child("ai4med", a.steps, a.size, a.amp, "--channels-last",
                                                       "--compile-net", device=a.device)
    med = {side: statistics.median(r["times"]) for side, r in rows.items()}
    print(_isa.describe())
    print(f"training step, UNet 16-256, batch 2 x {a.size}^3, DiceCE + Adam, {a.steps} timed steps (median; "
          "the first 2 steps untimed)")
    w = max(len(side) for side in rows) + 2
    print(f"{'side':<{w}}{'precision':<11}{'median s':>10}{'min s':>10}{'first step s':>14}{'vs MONAI':>10}")
    for side, r in rows.items():
        print(f"{side:<{w}}{r['precision']:<11}{med[side]:>10.3f}{min(r['times']):>10.3f}{r['first']:>14.2f}"
              f"{med['monai'] / med[side]:>9.2f}x")
    ratio = med["monai"] / med["ai4med"]
    print(f"speed-up ai4med vs MONAI: {ratio:.2f}x")
    print(f"BENCH train_step_speedup_vs_monai {ratio:.3f}")


if __name__ == "__main__":
    main()
