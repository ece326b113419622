"""Array layout helpers shared by predictors and inferers.

Networks take `N C *spatial` arrays; callers hand arrays in any seed `ShapeFormat`.
`to_nc` brings an array to the network layout; `from_nc` brings an output back to
`output_format(fmt)`: the caller's layout with a channel axis (first unless the input is
channel-last) and a batch axis only if the input had one.

Example:
    >>> import numpy as np
    >>> to_nc(np.zeros((4, 5, 6)), ShapeFormat("DHW")).shape
    (1, 1, 4, 5, 6)
    >>> from_nc(np.zeros((1, 2, 4, 5, 6)), ShapeFormat("DHWC")).shape
    (4, 5, 6, 2)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ai4med.common.shape_format import ShapeFormat


def as_shape_format(fmt: ShapeFormat | str) -> ShapeFormat:
    return fmt if isinstance(fmt, ShapeFormat) else ShapeFormat(fmt)


def _movedim(x: Any, src: int, dst: int) -> Any:
    if isinstance(x, np.ndarray):
        return np.moveaxis(x, src, dst)
    return x.movedim(src, dst)


def to_nc(x: Any, fmt: ShapeFormat) -> Any:
    """`x` (numpy array or tensor laid out as `fmt`) in `N C *spatial` order."""
    if x.ndim != fmt.get_number_of_dims():
        raise ValueError(f"input of shape {tuple(x.shape)} does not match shape format {fmt}")
    if not fmt.has_batch():
        x = x[None]
        fmt = fmt.with_batch()
    if not fmt.has_channel():
        return x[:, None]
    return _movedim(x, fmt.get_channel_axis(), 1)


def output_format(fmt: ShapeFormat) -> ShapeFormat:
    """The layout of prediction arrays for an input laid out as `fmt`."""
    return fmt.with_channel(first=not fmt.is_channels_last())


def from_nc(y: Any, fmt: ShapeFormat) -> Any:
    """`y` (`N C *spatial`) laid out as `output_format(fmt)`."""
    if fmt.is_channels_last():
        y = _movedim(y, 1, -1)
    if not fmt.has_batch():
        if y.shape[0] != 1:
            raise ValueError(f"format {fmt} has no batch axis but the output has batch size {y.shape[0]}")
        y = y[0]
    return y


def to_numpy(x: Any) -> np.ndarray:
    """A numpy array from a numpy array, a tensor (bf16/fp16 become float32) or a scalar."""
    if isinstance(x, np.ndarray):
        return x
    if hasattr(x, "detach"):
        x = x.detach()
        if x.dtype.is_floating_point and x.dtype.itemsize < 4:
            x = x.float()
        return x.cpu().numpy()
    return np.asarray(x)
