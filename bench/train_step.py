"""One training iteration: ai4med's loop vs a plain MONAI/PyTorch fp32 loop.

Same network (MONAI UNet 16-256, 2 residual units), batch 2 of 96^3, DiceCE, Adam. Each
side runs in its own process with its own defaults, as its users get it: MONAI as a
plain PyTorch loop; ai4med through `TrainStep` built from the component registries
(its trainer tunes glibc malloc at start-up on CPU and autocasts to bf16 where the CPU
has AMX and `use_amp` is on).

    python bench/train_step.py [--steps 5] [--size 96] [--amp]

Ends with `BENCH train_step_speedup_vs_monai <ratio>`.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time

CHANNELS, STRIDES = (16, 32, 64, 128, 256), (2, 2, 2, 2)


def _data(size: int):
    import torch

    g = torch.Generator().manual_seed(0)
    x = torch.randn(2, 1, size, size, size, generator=g)
    y = (torch.rand(2, 1, size, size, size, generator=g) > 0.7).float()
    return x, y


def run_monai(steps: int, size: int) -> list[float]:
    import torch
    from monai.losses import DiceCELoss
    from monai.networks.nets import UNet

    torch.manual_seed(0)
    net = UNet(3, 1, 2, CHANNELS, STRIDES, num_res_units=2)
    loss_fn = DiceCELoss(to_onehot_y=True, softmax=True)
    opt = torch.optim.Adam(net.parameters(), 1e-4)
    x, y = _data(size)
    times = []
    net.train()
    for _ in range(steps + 2):
        t = time.perf_counter()
        opt.zero_grad()
        loss = loss_fn(net(x), y)
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return times[2:]


def run_ai4med(steps: int, size: int, amp: bool) -> tuple[list[float], str]:
    import torch

    from ai4med.components.inferers.precision import resolve_precision, tune_malloc
    from ai4med.config.registries import get_registry
    from ai4med.workflows.engine import Engine
    from ai4med.workflows.steps import TrainStep

    tune_malloc()  # what `ai4med train` does at start-up on CPU
    torch.manual_seed(0)
    model = get_registry("models").get("Unet")(num_classes=2, channels=list(CHANNELS), strides=list(STRIDES),
                                               num_res_units=2, final_activation="softmax")
    loss = get_registry("losses").get("CrossEntropyDice")()
    opt = get_registry("optimizers").get("Adam")(learning_rate=1e-4).get_optimizer(model.net.parameters())
    precision = resolve_precision("auto", "cpu") if amp else "fp32"
    step = TrainStep(model, model.net, loss, opt, torch.device("cpu"), precision)
    engine = Engine(step)
    x, y = _data(size)
    batch = {"image": x, "label": y}
    times = []
    for _ in range(steps + 2):
        t = time.perf_counter()
        step(engine, batch)
        times.append(time.perf_counter() - t)
    return times[2:], precision


def _child(side: str, steps: int, size: int, amp: bool) -> dict:
    cmd = [sys.executable, __file__, "--child", side, "--steps", str(steps), "--size", str(size)]
    if amp:
        cmd.append("--amp")
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--size", type=int, default=96)
    p.add_argument("--amp", action="store_true", help="ai4med side with use_amp (bf16 on AMX CPUs)")
    p.add_argument("--child", choices=["monai", "ai4med"], help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child == "monai":
        print(json.dumps({"times": run_monai(a.steps, a.size), "precision": "fp32"}))
        return
    if a.child == "ai4med":
        times, precision = run_ai4med(a.steps, a.size, a.amp)
        print(json.dumps({"times": times, "precision": precision}))
        return
    rows = {side: _child(side, a.steps, a.size, a.amp) for side in ("monai", "ai4med")}
    med = {side: statistics.median(r["times"]) for side, r in rows.items()}
    print(f"training step, UNet 16-256, batch 2 x {a.size}^3, DiceCE + Adam, {a.steps} timed steps (median)")
    print(f"{'side':<10}{'precision':<11}{'median s':>10}{'min s':>10}")
    for side, r in rows.items():
        print(f"{side:<10}{r['precision']:<11}{med[side]:>10.3f}{min(r['times']):>10.3f}")
    ratio = med["monai"] / med["ai4med"]
    print(f"speed-up ai4med vs MONAI: {ratio:.2f}x")
    print(f"BENCH train_step_speedup_vs_monai {ratio:.3f}")


if __name__ == "__main__":
    main()
