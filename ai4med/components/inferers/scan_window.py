"""Scan-window kernels: pad -> grid of window positions -> batches -> blend -> crop.

Each step is a small function so it can be tested alone; `sliding_window` chains them.
Positions, padding and weights follow MONAI's `sliding_window_inference`, so the fp32
result equals MONAI's.

Example:
    >>> scan_intervals((192, 192, 128), (96, 96, 96), 0.25)
    (72, 72, 72)
    >>> window_starts(128, 96, 72)
    [0, 32]
    >>> len(window_grid((192, 192, 128), (96, 96, 96), (72, 72, 72)))
    18
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Iterator, Sequence
from typing import TypeVar

import torch
import torch.nn.functional as F

from ai4med.common.cancel import check_cancelled

T = TypeVar("T")
Size = tuple[int, ...]
# runs the model on a batch of windows: input name -> (B, C, *roi) tensor => output name -> tensor
WindowFn = Callable[[dict[str, torch.Tensor]], dict[str, torch.Tensor]]

BLEND_MODES = ("constant", "gaussian")


def resolve_roi(roi_size: Sequence[int | None] | int | None, image_size: Sequence[int]) -> Size:
    """The window size: None or non-positive entries take the image's size on that axis."""
    if roi_size is None:
        return tuple(image_size)
    if isinstance(roi_size, int):
        roi_size = [roi_size] * len(image_size)
    if len(roi_size) != len(image_size):
        raise ValueError(f"roi_size {list(roi_size)} has {len(roi_size)} axes, the image {len(image_size)}")
    return tuple(int(r) if r is not None and r > 0 else int(s) for r, s in zip(roi_size, image_size))


def scan_intervals(image_size: Sequence[int], roi_size: Sequence[int], overlap: float) -> Size:
    """Step between windows per axis: `roi * (1 - overlap)` (at least 1; `roi` when it fills the axis)."""
    if not 0.0 <= overlap < 1.0:
        raise ValueError(f"overlap must be in [0, 1), got {overlap}")
    return tuple(r if r == s else max(int(r * (1 - overlap)), 1) for s, r in zip(image_size, roi_size))


def window_starts(image_len: int, roi_len: int, interval: int) -> list[int]:
    """Start offsets along one axis; the last window is shifted back to end at the border."""
    roi_len = min(roi_len, image_len)
    count = next((d + 1 for d in range(math.ceil(image_len / interval)) if d * interval + roi_len >= image_len), 1)
    return [i * interval - max(i * interval + roi_len - image_len, 0) for i in range(count)]


def window_grid(image_size: Sequence[int], roi_size: Sequence[int], intervals: Sequence[int]) -> list[Size]:
    """All window start positions, last axis fastest."""
    per_axis = [window_starts(s, r, i) for s, r, i in zip(image_size, roi_size, intervals)]
    return list(itertools.product(*per_axis))


def batched(items: Sequence[T], batch_size: int) -> Iterator[list[T]]:
    """Consecutive chunks of at most `batch_size` items."""
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    for i in range(0, len(items), batch_size):
        yield list(items[i : i + batch_size])


def importance_map(
    roi_size: Sequence[int], mode: str = "constant", sigma_scale: float = 0.125, device: torch.device | str = "cpu"
) -> torch.Tensor:
    """Blend weight of one window: ones, or a separable Gaussian (sigma = sigma_scale * roi) clamped >= 1e-3."""
    if mode == "constant":
        return torch.ones(tuple(roi_size), device=device)
    if mode != "gaussian":
        raise ValueError(f"blend mode must be one of {BLEND_MODES}, got {mode!r}")
    weight = torch.ones((), device=device)
    for i, r in enumerate(roi_size):
        x = torch.arange(-(r - 1) / 2.0, (r - 1) / 2.0 + 1, dtype=torch.float, device=device)
        g = torch.exp(x**2 / (-2 * (r * sigma_scale) ** 2))
        weight = weight.unsqueeze(-1) * g if i else g
    return weight.clamp(min=max(weight.min().item(), 1e-3))


def pad_to_roi(x: torch.Tensor, roi_size: Sequence[int], mode: str = "constant", value: float = 0.0):
    """Pad `x` (N C *spatial) symmetrically up to `roi_size` where smaller; returns (x, pad_before)."""
    before, pads = [], []
    for s, r in zip(x.shape[2:], roi_size):
        diff = max(r - s, 0)
        before.append(diff // 2)
        pads.append((diff // 2, diff - diff // 2))
    if any(sum(p) for p in pads):
        flat = [v for p in reversed(pads) for v in p]  # F.pad wants the last axis first
        x = F.pad(x, flat, mode=mode, value=value) if mode == "constant" else F.pad(x, flat, mode=mode)
    return x, tuple(before)


def crop(x: torch.Tensor, start: Sequence[int], size: Sequence[int]) -> torch.Tensor:
    """`x[..., start:start+size]` over the trailing spatial axes."""
    return x[(..., *(slice(b, b + s) for b, s in zip(start, size)))]


def gather_windows(x: torch.Tensor, positions: Sequence[tuple[int, Size]], roi_size: Sequence[int]) -> torch.Tensor:
    """Stack the windows `(batch index, start)` of `x` (N C *spatial) into one (B, C, *roi) tensor."""
    return torch.cat([crop(x[n : n + 1], start, roi_size) for n, start in positions])


def blend_window(out: torch.Tensor, patch: torch.Tensor, n: int, start: Size, weight: torch.Tensor | None) -> None:
    """`out[n, :, window] += patch * weight` in place (weight None means 1)."""
    if weight is not None:
        patch = patch * weight
    crop(out[n], start, patch.shape[1:]).add_(patch)


def weight_sum(
    image_size: Sequence[int], starts: Sequence[Size], weight: torch.Tensor, constant: bool | None = None
) -> torch.Tensor:
    """Sum of the window weights covering each voxel, shape (1, 1, *image_size).

    Constant weights on a grid of windows (what `window_grid` makes) are separable: the count of windows
    covering a voxel is the product of the per-axis counts, exact in float, built in one pass over the
    volume instead of one add per window (the stitcher's largest cost after the blend itself).
    """
    grid = _grid_axes(starts)
    if grid is not None and (constant if constant is not None else bool((weight == 1).all())):
        total = None
        for axis in reversed(range(len(image_size))):
            count = torch.zeros(image_size[axis], dtype=weight.dtype, device=weight.device)
            for st in grid[axis]:
                count[st:st + weight.shape[axis]] += 1
            # the outer product grows by one leading axis at a time (contiguous inner block: fast broadcast),
            # so the full-size tensor is written once, at the end
            total = count if total is None else count.view(-1, *([1] * total.ndim)) * total
        return total.reshape((1, 1, *image_size))
    total = torch.zeros((1, 1, *image_size), dtype=weight.dtype, device=weight.device)
    for start in starts:
        crop(total[0, 0], start, weight.shape).add_(weight)
    return total


def _grid_axes(starts: Sequence[Size]) -> list[list[int]] | None:
    """The per-axis starts when `starts` is their full product (a grid), else None."""
    if not starts:
        return None
    axes = [sorted({s[a] for s in starts}) for a in range(len(starts[0]))]
    return axes if math.prod(len(a) for a in axes) == len(set(starts)) == len(starts) else None


def sliding_window(
    inputs: dict[str, torch.Tensor],
    roi_size: Sequence[int],
    intervals: Sequence[int],
    batch_size: int,
    run: WindowFn,
    weight: torch.Tensor,
    padding_mode: str = "constant",
    cval: float = 0.0,
    output_device: torch.device | str | None = None,
) -> dict[str, torch.Tensor]:
    """Window every input (N C *spatial, same spatial size), run the windows in batches, blend, crop.

    `output_device` keeps the blended outputs on another device than the network's (a GPU network,
    CPU stitching for a volume whose outputs do not fit the GPU); each batch of window outputs is moved
    there before blending. The input is padded (one copy) only where it is smaller than the window.
    """
    first = next(iter(inputs.values()))
    image_size = tuple(first.shape[2:])
    padded = {k: pad_to_roi(v, roi_size, padding_mode, cval) for k, v in inputs.items()}
    pad_before = next(iter(padded.values()))[1]
    size = tuple(max(s, r) for s, r in zip(image_size, roi_size))
    starts = window_grid(size, roi_size, intervals)
    constant = bool((weight == 1).all())
    blend = None if constant else weight
    outputs: dict[str, torch.Tensor] = {}
    for chunk in batched([(n, s) for n in range(first.shape[0]) for s in starts], batch_size):
        check_cancelled()  # a served request may be stopped (client gone, time limit) between batches
        preds = run({k: gather_windows(v, chunk, roi_size) for k, (v, _) in padded.items()})
        for name, pred in preds.items():
            if tuple(pred.shape[2:]) != tuple(roi_size):
                raise ValueError(f"output {name!r} window shape {tuple(pred.shape[2:])} != roi {tuple(roi_size)}")
            if output_device is not None:
                pred = pred.to(output_device, non_blocking=False)
            if name not in outputs:
                outputs[name] = torch.zeros((first.shape[0], pred.shape[1], *size), device=pred.device)
            w = blend.to(pred.device) if blend is not None and blend.device != pred.device else blend
            for patch, (n, start) in zip(pred, chunk):
                blend_window(outputs[name], patch.float(), n, start, w)
    total = weight_sum(size, starts, weight if output_device is None else weight.to(output_device), constant)
    return {k: crop(v.div_(total.to(v.device)), pad_before, image_size) for k, v in outputs.items()}
