"""OpenVINO graph rewrites applied before compiling: thin transposed convolutions as sub-pixel convolutions.

Why: a segmentation network's last up-sampling layer is a strided transposed convolution with as few
output channels as classes (MONAI's UNet: 32 -> 2 channels, 48^3 -> 96^3). OpenVINO's CPU kernels run
it far below their speed on wider layers (the output channels fill a fraction of a vector register),
and in INT8 it is not quantised at all (it stays fp32 between FakeQuantize nodes on AVX2 CPUs). The
same layer is exactly a stride-1 convolution with `stride^dims * out` output channels, one group per
output phase, followed by DepthToSpace ("sub-pixel convolution"); that convolution is wide enough
to run fast and is quantised like the others. Measured on bench/inference.py's scan (MONAI UNet
16-256, 2 output channels, 18 windows of 96^3; 2-core Sapphire Rapids, the two models alternating in
one process): capped to AVX2 (bench/_isa.py), fp32 1.362 -> 1.281 s and INT8 1.045 -> 0.902 s;
natively, fp32 1.320 -> 1.203 s and INT8 unchanged (OpenVINO quantises the transposed convolution
itself on VNNI/AMX CPUs). On one batch of four windows the gain shrinks as the layer widens: 2
output channels -7 to -20 %, 3 channels -5 to -9 %, 4 channels -4 to +4 %, 8 channels +15 to +21 %
(torch's own kernels gain nothing, so only OpenVINO graphs are rewritten). Hence `MAX_OUT_CHANNELS`.

Only strides that are equal on every axis (DepthToSpace's one block size), dilation 1, weights that
are constants and explicit padding are rewritten; anything else is left as it is. Outputs equal the
original layer's up to float rounding (the sums run in another order).

Per axis, with stride s, kernel K, pads p (begin) / q (end) and output padding a, the transposed
convolution computes `out[s*m + r] = sum_t x[m + t] * w[p + r - s*t]` over the taps t where the
kernel index is in [0, K): phase r of output block m reads input m + t. So the phase convolution has
taps t_min..t_max, pads (-t_min, delta + t_max) where `delta = ceil((K - p - q + a) / s) - 1`, gives
M = L + delta blocks of s outputs, and the DepthToSpace result is cropped to the layer's length.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

logger = logging.getLogger(__name__)

#: a transposed convolution with at most this many output channels is rewritten (measured above)
MAX_OUT_CHANNELS = 3


def _ops() -> Any:
    try:
        import openvino.opset13 as ops
    except ImportError:  # openvino < 2024.2 keeps the opsets under openvino.runtime
        from openvino.runtime import opset13 as ops
    return ops


def _axis_plan(s: int, k: int, p: int, q: int, a: int) -> tuple[int, int, int, int] | None:
    """(t_min, t_max, pad_end, crop_end) of one axis, or None when the phase form does not apply."""
    t_min, t_max = math.ceil((p - k + 1) / s), (p + s - 1) // s
    extra = k - p - q + a  # output length minus s * (input length - 1)
    blocks = math.ceil(extra / s)  # delta + 1 (module docstring)
    pad_end = blocks - 1 + t_max
    if t_min > 0 or pad_end < 0:  # would need a crop of the input: not a layer networks have
        return None
    return t_min, t_max, pad_end, s * blocks - extra


def phase_weights(w: np.ndarray, s: int, pads: list[int], plans: list[tuple[int, int, int, int]]) -> np.ndarray:
    """The phase convolution's weights (s^d * C_out, C_in, T...) from a transposed convolution's
    (C_in, C_out, K...); output channel `phase * C_out + c` with the phase's axes first-slowest, as
    DepthToSpace's blocks_first mode reads them."""
    c_in, c_out, *ks = w.shape
    d = len(ks)
    taps = [t_max - t_min + 1 for t_min, t_max, _, _ in plans]
    out = np.zeros((*([s] * d), c_out, c_in, *taps), dtype=w.dtype)
    wt = np.swapaxes(w, 0, 1)  # (C_out, C_in, K...)
    for phase in np.ndindex(*([s] * d)):
        for tap in np.ndindex(*taps):
            kidx = [p + r - s * (t + plan[0]) for p, r, t, plan in zip(pads, phase, tap, plans)]
            if all(0 <= k < kk for k, kk in zip(kidx, ks)):
                out[(*phase, slice(None), slice(None), *tap)] = wt[(slice(None), slice(None), *kidx)]
    return out.reshape(s ** d * c_out, c_in, *taps)


def _rewrite_node(node: Any, ops: Any) -> bool:
    """Replace one ConvolutionBackpropData by Convolution + DepthToSpace (+ Slice); False when it does
    not qualify."""
    attrs = node.get_attributes()
    if node.get_input_size() != 2 or str(attrs.get("auto_pad", "explicit")).lower() not in ("explicit", "notset"):
        return False
    weights = node.input_value(1).get_node()
    if weights.get_type_name() != "Constant":
        return False
    w = weights.get_data()
    c_out, ks = w.shape[1], list(w.shape[2:])
    strides, dil = list(attrs["strides"]), list(attrs["dilations"])
    if c_out > MAX_OUT_CHANNELS or len(set(strides)) != 1 or strides[0] < 2 or any(x != 1 for x in dil):
        return False
    s = strides[0]
    pads, pads_end = list(attrs["pads_begin"]), list(attrs["pads_end"])
    out_pad = list(attrs.get("output_padding") or [0] * len(ks))
    plans = [_axis_plan(s, k, p, q, a) for k, p, q, a in zip(ks, pads, pads_end, out_pad)]
    if any(plan is None for plan in plans):
        return False
    conv = ops.convolution(node.input_value(0), ops.constant(phase_weights(w, s, pads, plans)),
                           strides=[1] * len(ks), pads_begin=[-p[0] for p in plans],
                           pads_end=[p[2] for p in plans], dilations=[1] * len(ks))
    out = ops.depth_to_space(conv, "blocks_first", s)
    crops = [p[3] for p in plans]
    if any(crops):  # the last block overshoots the layer's length on these axes
        axes = [2 + i for i, c in enumerate(crops) if c]
        out = ops.slice(out, np.zeros(len(axes), np.int64), np.array([-crops[a - 2] for a in axes], np.int64),
                        np.ones(len(axes), np.int64), np.array(axes, np.int64))
    names = node.get_output_tensor(0).get_names()  # a model output keeps its name
    node.get_output_tensor(0).set_names(set())
    out.get_output_tensor(0).set_names(names)
    out.set_friendly_name(node.get_friendly_name())
    node.output(0).replace(out.output(0))
    return True


def split_thin_transposed_convs(model: Any) -> int:
    """Rewrite, in place, the model's transposed convolutions with at most `MAX_OUT_CHANNELS` output
    channels as sub-pixel convolutions (see the module docstring); returns how many were rewritten."""
    ops = _ops()
    done = 0
    for node in list(model.get_ordered_ops()):
        if node.get_type_name() == "ConvolutionBackpropData":
            try:
                done += _rewrite_node(node, ops)
            except Exception as e:  # noqa: BLE001 - a layer the rewrite cannot express keeps its own form
                logger.debug("transposed convolution %s kept (%s)", node.get_friendly_name(), e)
    if done:
        model.validate_nodes_and_infer_types()
        logger.debug("%d thin transposed convolution(s) run as sub-pixel convolutions", done)
    return done
