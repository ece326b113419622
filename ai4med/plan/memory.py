"""Measured cost of one training step of the planned DynUnet: peak memory and seconds.

nnU-Net estimates memory from feature-map sizes against a reference calibrated on one GPU;
we run the network instead: forward + backward + Adam step at the candidate patch and batch.
On CUDA the peak is `torch.cuda.max_memory_allocated` above what was allocated before the
step. On CPU (where the process's RSS is too noisy a high-water mark: the allocator keeps
freed memory, other work shares the process) the step counts what autograd actually keeps for
the backward pass (every tensor saved during the forward pass, through
`torch.autograd.graph.saved_tensors_hooks`, each storage once) plus the output, its gradient,
and the parameters with their gradients and Adam's two moments: the terms that dominate a
training step's peak.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

__all__ = ["measure_step", "measure_steps", "net_args", "step_flops"]


def step_flops(args: dict[str, Any], patch: list[int], batch: int) -> float:
    """Multiply-adds of a DynUNet training step (3x the forward convolutions): the time model's unit.

    Per level i (voxels v_i, filters f_i, kernel k_i): encoder convs c_in*f + f*f, decoder convs
    2f*f + f*f (skip concatenation), times v_i * prod(k_i); the transposed convs and norms are
    left out (they scale alike). Deterministic, unlike a wall-clock on a shared machine.
    """
    strides = np.asarray(args["strides"], np.float64)
    kernels = [np.prod(k) if isinstance(k, (list, tuple)) else float(k) ** len(patch) for k in args["kernel_size"]]
    size = np.asarray(patch, np.float64)
    total, c_in = 0.0, float(args["in_channels"])
    for i, (st, kv, f) in enumerate(zip(strides, kernels, args["filters"])):
        size = np.ceil(size / st)
        vox = float(np.prod(size))
        total += vox * kv * (c_in * f + f * f)
        if i > 0:
            total += vox * kv * 3 * f * f
        c_in = float(f)
    return 3.0 * total * batch


def net_args(in_channels: int, num_classes: int, kernels: list, strides: list, filters: list,
             deep_supervision: bool, deep_supr_num: int) -> dict[str, Any]:
    """monai DynUNet keyword arguments of the planned network."""
    return {"spatial_dims": len(strides[0]), "in_channels": in_channels, "out_channels": num_classes,
            "kernel_size": kernels, "strides": strides, "upsample_kernel_size": strides[1:], "filters": filters,
            "norm_name": "instance", "deep_supervision": deep_supervision, "deep_supr_num": deep_supr_num}


def _one(net: Any, opt: Any, x: Any, dev: Any, count: bool = False, precision: str = "fp32") -> tuple[float, float]:
    """(seconds, bytes saved for backward + output and its gradient) of one training step."""
    import torch

    seen: dict[int, int] = {}

    def pack(t: torch.Tensor) -> torch.Tensor:
        if count:
            try:
                key, size = t.untyped_storage().data_ptr(), t.untyped_storage().nbytes()
            except (RuntimeError, NotImplementedError):
                key, size = id(t), t.numel() * t.element_size()
            seen[key] = max(seen.get(key, 0), size)
        return t

    t0 = time.perf_counter()
    opt.zero_grad(set_to_none=False)
    from ai4med.components.inferers.precision import autocast

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t), autocast(precision, dev):
        out = net(x)
    loss = out.float().square().mean()
    loss.backward()
    opt.step()
    if dev.type == "cuda":
        torch.cuda.synchronize(dev)
    secs = time.perf_counter() - t0
    return secs, float(sum(seen.values()) + 2 * out.numel() * out.element_size())


def _steps(args: dict[str, Any], shapes: list[tuple[list[int], int]], device: str,
           precision: str = "fp32") -> list[dict[str, Any]]:
    """Measure each (patch, batch) in turn."""
    import torch
    from monai.networks.nets import DynUNet

    dev = torch.device(device)
    torch.manual_seed(0)
    net = DynUNet(**args).to(dev).train()
    params = float(sum(p.numel() * p.element_size() for p in net.parameters()))
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    out = []
    for patch, batch in shapes:
        x = torch.randn(batch, args["in_channels"], *patch, device=dev)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
            torch.cuda.reset_peak_memory_stats(dev)
            base = torch.cuda.memory_allocated(dev) - params  # the parameters count in the peak
            secs = [_one(net, opt, x, dev, precision=precision)[0] for _ in range(3)]  # the first allocates Adam's state
            peak = float(torch.cuda.max_memory_allocated(dev) - base)
        else:
            _, saved = _one(net, opt, x, dev, count=True, precision=precision)
            secs = [_one(net, opt, x, dev, precision=precision)[0] for _ in range(3)]  # min of 3: contention only adds
            peak = saved + 4 * params  # parameters, gradients, Adam's two moments
        out.append({"peak_bytes": peak, "step_seconds": float(min(secs[1:] if dev.type == "cuda" else secs)),
                    "param_bytes": params, "patch": list(patch), "batch": int(batch), "device": dev.type,
                    "precision": precision})
        del x
    return out


def measure_steps(args: dict[str, Any], shapes: list[tuple[list[int], int]], device: str = "cpu",
                  precision: str = "fp32") -> list[dict]:
    """Peak bytes and seconds of a training step at each (patch, batch) (see the module docstring), the
    forward pass under `precision`'s autocast (as `use_amp` trains)."""
    import torch

    if device.startswith("cuda"):
        torch.cuda.empty_cache()
    res = _steps(args, [(list(p), int(b)) for p, b in shapes], device, precision)
    logger.debug("measured %s", res)
    return res


def measure_step(args: dict[str, Any], patch: list[int], batch: int, device: str = "cpu",
                 precision: str = "fp32") -> dict[str, Any]:
    """Peak bytes and seconds of one training step of the DynUNet `args` at `patch` x `batch`."""
    return measure_steps(args, [(patch, batch)], device, precision)[0]
