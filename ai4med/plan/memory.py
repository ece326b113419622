"""Measured cost of one training step of the planned DynUnet: peak memory and seconds.

nnU-Net estimates memory from feature-map sizes against a reference calibrated on one GPU;
we run the network instead: a forward + backward + Adam step at the candidate patch and batch.
On CUDA the peak is `torch.cuda.max_memory_allocated` above what was allocated before the
step; on CPU the step runs in a fresh spawned process and the peak is the rise of its
`ru_maxrss` (the kernel's high-water mark of resident memory: allocations freed before the
end still count, which an RSS sample taken afterwards would miss).
"""

from __future__ import annotations

import logging
import multiprocessing as mp
import time
from concurrent.futures import ProcessPoolExecutor
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["measure_step", "measure_steps", "net_args"]


def net_args(in_channels: int, num_classes: int, kernels: list, strides: list, filters: list,
             deep_supervision: bool, deep_supr_num: int) -> dict[str, Any]:
    """monai DynUNet keyword arguments of the planned network."""
    return {"spatial_dims": len(strides[0]), "in_channels": in_channels, "out_channels": num_classes,
            "kernel_size": kernels, "strides": strides, "upsample_kernel_size": strides[1:], "filters": filters,
            "norm_name": "instance", "deep_supervision": deep_supervision, "deep_supr_num": deep_supr_num}


def _one(net: Any, opt: Any, x: Any, dev: Any) -> float:
    import torch

    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=False)
    out = net(x)
    loss = out.float().square().mean()
    loss.backward()
    opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    return time.perf_counter() - t0


def _steps(args: dict[str, Any], shapes: list[tuple[list[int], int]], device: str,
           threads: int | None) -> list[dict[str, Any]]:
    """Measure each (patch, batch) in turn, smallest first (the CPU high-water mark only rises)."""
    import resource

    import torch
    from monai.networks.nets import DynUNet

    if threads:
        torch.set_num_threads(threads)
    dev = torch.device(device)
    net = DynUNet(**args).to(dev).train()
    params = sum(p.numel() * p.element_size() for p in net.parameters())
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    out = []
    for patch, batch in shapes:
        x = torch.randn(batch, args["in_channels"], *patch, device=dev)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            base = torch.cuda.memory_allocated(dev)
        else:
            base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 if not out else out[0]["_base"]
        times = [_one(net, opt, x, dev) for _ in range(3)]  # the first also allocates Adam's state
        if dev.type == "cuda":
            peak = torch.cuda.max_memory_allocated(dev) - base
        else:
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 - base
        out.append({"peak_bytes": float(max(peak, 0)), "step_seconds": float(min(times[1:])), "param_bytes": float(params),
                    "patch": list(patch), "batch": int(batch), "device": dev.type, "_base": base})
        del x
    for r in out:
        r.pop("_base")
    return out


def measure_steps(args: dict[str, Any], shapes: list[tuple[list[int], int]], device: str = "cpu") -> list[dict]:
    """Peak bytes and seconds of a training step at each (patch, batch), smallest first; CPU in a child process."""
    import torch

    shapes = sorted(((list(p), int(b)) for p, b in shapes), key=lambda pb: float(np.prod(pb[0])) * pb[1])
    if device.startswith("cuda"):
        torch.cuda.empty_cache()
        return _steps(args, shapes, device, None)
    with ProcessPoolExecutor(1, mp_context=mp.get_context("spawn")) as pool:
        res = pool.submit(_steps, args, shapes, "cpu", torch.get_num_threads()).result()
    logger.debug("measured %s", res)
    return res


def measure_step(args: dict[str, Any], patch: list[int], batch: int, device: str = "cpu") -> dict[str, Any]:
    """Peak bytes and seconds of one training step of the DynUNet `args` at `patch` x `batch`."""
    return measure_steps(args, [(patch, batch)], device)[0]
