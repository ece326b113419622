"""Per-convolution memory layout, chosen by timing each layer (`channels_last: "auto"`).

Why: oneDNN's convolutions are fast in channels-last layout for layers with few channels and slow
in channels-first (a UNet's 4->4 channel 3x3x3 convolution on 4 x 48^3: forward + backward 73 ms
channels-first, 26 ms channels-last on an AVX2 CPU), while the norms, activations and losses
around them are often slower in channels-last (batch norm on 4 channels: 7x). Converting the whole
network therefore gains little or loses; converting only the convolutions that win, with the
copies in and out counted, gains 25-45 % a training step (UNet 8-64, 4 x 48^3: 170 -> 126 ms on
AVX2 fp32, 195 -> 110 ms on AVX-512 fp32; `bench/time_to_dice.py`).

Like `torch.backends.cudnn.benchmark`, the choice is measured on this machine, for the layer's
real input shape and autocast type, forward and (for training) backward. Choices are cached on
disk (`$AI4MED_CACHE_DIR`, else `$XDG_CACHE_HOME/ai4med`, else `~/.cache/ai4med`), keyed by CPU or
GPU, instruction-set caps, torch version, layer and shape, so later runs on the machine make the
same choices without timing and train the same way. A layer runs channels-last only when that is
at least `MARGIN` faster, so noise does not flip choices. Only strides change: values, parameters
and state_dict keys stay as they are, and the choice is undone by `clear_conv_layouts`.
"""

from __future__ import annotations

import copy
import json
import logging
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass
from pathlib import Path

import torch

logger = logging.getLogger(__name__)

MARGIN = 0.9  # channels-last must take at most 90 % of the channels-first time
_CONVS = (torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)
_HOOKS = "_ai4med_layout_hooks"
_ISA_ENV = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS")


@dataclass
class LayoutChoice:
    """One convolution's timed layouts (milliseconds, forward [+ backward]) and the pick."""

    name: str
    signature: str
    first_ms: float
    last_ms: float
    channels_last: bool
    cached: bool = False


def channels_last_format(ndim: int) -> torch.memory_format | None:
    """The channels-last memory format of an `ndim` tensor (5-D: 3d, 4-D: 2d), else None."""
    return {5: torch.channels_last_3d, 4: torch.channels_last}.get(ndim)


def _to_last(module: torch.nn.Module, args: tuple) -> tuple | None:
    """Training only: evaluation keeps channels-first, so a validation during training computes
    exactly what `validate`, `infer` and the server compute from the same weights."""
    fmt = channels_last_format(args[0].ndim) if module.training else None
    return None if fmt is None else (args[0].contiguous(memory_format=fmt), *args[1:])


def _to_first(module: torch.nn.Module, _args: tuple, out: torch.Tensor) -> torch.Tensor | None:
    return out.contiguous() if module.training else None


def clear_conv_layouts(module: torch.nn.Module) -> None:
    """Undo `apply_conv_layouts` / `tune_conv_layouts` (every convolution channels-first again)."""
    for m in module.modules():
        for handle in getattr(m, _HOOKS, ()):
            handle.remove()
        if hasattr(m, _HOOKS):
            delattr(m, _HOOKS)


def apply_conv_layouts(module: torch.nn.Module, names: set[str]) -> int:
    """Run the named convolutions channels-last in training mode (input converted in, output converted
    back out); in eval mode they stay channels-first."""
    clear_conv_layouts(module)
    count = 0
    for name, m in module.named_modules():
        if name in names and isinstance(m, _CONVS):
            setattr(m, _HOOKS, (m.register_forward_pre_hook(_to_last), m.register_forward_hook(_to_first)))
            count += 1
    return count


def channels_last_convs(module: torch.nn.Module) -> list[str]:
    """Names of the convolutions currently running channels-last."""
    return [name for name, m in module.named_modules() if getattr(m, _HOOKS, None)]


# --- the disk cache ------------------------------------------------------------------------------
def cache_path() -> Path:
    root = os.environ.get("AI4MED_CACHE_DIR") or os.path.join(
        os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache"), "ai4med")
    return Path(root) / "conv_layouts.json"


def _machine(device: torch.device) -> str:
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        name = "cpu"
        try:
            with open("/proc/cpuinfo", encoding="utf-8") as f:
                name = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), name)
        except OSError:
            pass
        name += f" x{torch.get_num_threads()} threads"
    caps = ",".join(f"{k}={os.environ[k]}" for k in _ISA_ENV if os.environ.get(k))
    return f"{name}|{caps}|torch {torch.__version__}"


def _load_cache() -> dict[str, dict]:
    try:
        data = json.loads(cache_path().read_text())
        return data if isinstance(data, dict) else {}
    except (OSError, ValueError):
        return {}


def _save_cache(entries: dict[str, dict]) -> None:
    """Merge `entries` into the cache file atomically (concurrent writers lose nothing they need:
    a lost entry is timed again next run)."""
    path = cache_path()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        data = {**_load_cache(), **entries}
        fd, tmp = tempfile.mkstemp(prefix=".tmp-", dir=path.parent)
        with os.fdopen(fd, "w") as f:
            json.dump(data, f, indent=0, sort_keys=True)
        os.replace(tmp, path)
    except OSError as e:  # a read-only home: choices are still applied, only not remembered
        logger.debug("conv layouts not cached (%s)", e)


# --- timing ---------------------------------------------------------------------------------------
@dataclass
class _Site:
    shape: tuple[int, ...]
    dtype: torch.dtype  # the input's; the convolution itself runs in `amp`'s type
    amp: str  # the autocast type in force ("none" without autocast)
    needs_grad: bool


def _capture(module: torch.nn.Module, example: torch.Tensor, amp: AbstractContextManager) -> dict[str, _Site]:
    """Each convolution's input shape, dtype (under autocast) and whether its input needs a gradient
    (all but the network's own input, when any parameter trains), from one forward in eval mode
    without autograd (no batch-norm statistics are updated, no activations are kept)."""
    trains = any(p.requires_grad for p in module.parameters())
    sites: dict[str, _Site] = {}
    handles = []
    for name, m in module.named_modules():
        if isinstance(m, _CONVS):
            def record(_m: torch.nn.Module, args: tuple, name: str = name) -> None:
                x = args[0]
                if name not in sites and torch.is_tensor(x) and x.ndim in (4, 5):
                    kind = x.device.type
                    amp_type = (str(torch.get_autocast_dtype(kind)).replace("torch.", "")
                                if torch.is_autocast_enabled(kind) else "none")
                    own_input = x.data_ptr() == example.data_ptr() and x.shape == example.shape
                    sites[name] = _Site(tuple(x.shape), x.dtype, amp_type, trains and not own_input)
            handles.append(m.register_forward_pre_hook(record))
    was_training = module.training
    try:
        module.eval()
        with torch.no_grad(), amp:
            module(example)
    finally:
        module.train(was_training)
        for h in handles:
            h.remove()
    return sites


def _signature(m: torch.nn.Module, site: _Site, backward: bool) -> str:
    kind = type(m).__name__
    extra = f" op{tuple(m.output_padding)}" if isinstance(m, (torch.nn.ConvTranspose2d, torch.nn.ConvTranspose3d)) else ""
    return (f"{kind} {m.in_channels}->{m.out_channels} k{tuple(m.kernel_size)} s{tuple(m.stride)} "
            f"p{m.padding} d{tuple(m.dilation)} g{m.groups}{extra} bias={m.bias is not None} "
            f"in{site.shape} {str(site.dtype).replace('torch.', '')} amp={site.amp} "
            f"{'fwd+bwd' if backward else 'fwd'}{' +gin' if site.needs_grad else ''}")


def _time_layer(m: torch.nn.Module, site: _Site, device: torch.device, amp: Callable[[], AbstractContextManager],
                backward: bool, repeats: int) -> tuple[float, float]:
    """Best-of-`repeats` milliseconds of the layer channels-first and channels-last (with the copies).

    A copy of the layer is timed, so no hook (e.g. DistributedDataParallel's) sees these calls."""
    m = copy.deepcopy(m)
    x = torch.randn(site.shape, device=device, dtype=torch.float32).to(site.dtype)
    x.requires_grad_(backward and site.needs_grad)
    params = [p for p in m.parameters(recurse=False) if p.requires_grad] if backward else []
    inputs = ([x] if x.requires_grad else []) + params
    fmt = channels_last_format(x.ndim)
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    grad_out: torch.Tensor | None = None

    m.train()

    def run(last: bool) -> float:
        nonlocal grad_out
        sync()
        start = time.perf_counter()
        with amp():
            y = m(x.contiguous(memory_format=fmt)).contiguous() if last else m(x)
        if backward and inputs:
            if grad_out is None:
                grad_out = torch.randn_like(y)
            torch.autograd.grad(y, inputs, grad_out)
        sync()
        return time.perf_counter() - start

    with torch.enable_grad() if backward else torch.no_grad():
        run(False)
        run(True)
        first, last = float("inf"), float("inf")
        for i in range(repeats):
            first = min(first, run(False))
            last = min(last, run(True))
            # decided (clearly apart), or slow enough that one timing is well above the noise
            if (i or first > 0.02) and not 0.8 * first < last < 1.05 * first:
                break
    return first * 1e3, last * 1e3


def tune_conv_layouts(module: torch.nn.Module, example: torch.Tensor, *, backward: bool = True,
                      amp: Callable[[], AbstractContextManager] = nullcontext, repeats: int = 3,
                      use_cache: bool = True) -> list[LayoutChoice]:
    """Time every 2D/3D convolution of `module` channels-first and channels-last on its input from
    `example` (a batch as training or inference sees it), forward and, with `backward`, backward,
    under `amp` (an autocast context factory); run the ones where channels-last wins by `MARGIN`
    channels-last. Returns the choices (also logged). `module`'s parameters and values are unchanged."""
    clear_conv_layouts(module)
    device = example.device
    sites = _capture(module, example, amp())
    machine = _machine(device)
    cache = _load_cache() if use_cache else {}
    fresh: dict[str, dict] = {}
    choices: list[LayoutChoice] = []
    named = dict(module.named_modules())
    for name, site in sites.items():
        m = named[name]
        sig = _signature(m, site, backward)
        key = f"{machine}|{sig}"
        hit = cache.get(key)
        if hit is not None:
            choices.append(LayoutChoice(name, sig, hit["first_ms"], hit["last_ms"], bool(hit["channels_last"]), True))
            continue
        try:
            first, last = _time_layer(m, site, device, amp, backward, repeats)
        except torch.OutOfMemoryError:  # a GPU near its limit: leave this layer as it is
            logger.warning("conv layouts: out of memory timing %s; it stays channels-first", name)
            if device.type == "cuda":
                torch.cuda.empty_cache()
            continue
        pick = last <= MARGIN * first
        fresh[key] = {"first_ms": round(first, 4), "last_ms": round(last, 4), "channels_last": pick}
        choices.append(LayoutChoice(name, sig, first, last, pick))
    if fresh and use_cache:
        _save_cache(fresh)
    apply_conv_layouts(module, {c.name for c in choices if c.channels_last})
    _log(choices)
    return choices


def _log(choices: list[LayoutChoice]) -> None:
    if not choices:
        return
    picked = [c for c in choices if c.channels_last]
    before = sum(c.first_ms for c in choices)
    after = sum(c.last_ms if c.channels_last else c.first_ms for c in choices)
    timed = sum(not c.cached for c in choices)
    logger.info("conv layouts: %d of %d convolutions run channels-last (their time %.1f -> %.1f ms; %s)",
                len(picked), len(choices), before, after,
                f"{timed} timed now, {len(choices) - timed} from {cache_path()}" if timed else f"from {cache_path()}")


def iter_choices(choices: list[LayoutChoice]) -> Iterator[str]:
    """Human-readable lines, one per convolution (for `--verbose` output and docs)."""
    for c in choices:
        yield (f"{c.name:40s} {c.signature:90s} first {c.first_ms:8.2f} ms  last {c.last_ms:8.2f} ms  "
               f"-> {'channels-last' if c.channels_last else 'channels-first'}{' (cached)' if c.cached else ''}")
