"""str_to_dtype: config strings ("float32", "uint8", ...) to numpy dtypes."""

from __future__ import annotations

from typing import Any

import numpy as np

_ALIASES = {
    "float": np.float32, "float16": np.float16, "half": np.float16, "float32": np.float32,
    "float64": np.float64, "double": np.float64, "int": np.int32, "int8": np.int8,
    "int16": np.int16, "int32": np.int32, "int64": np.int64, "uint8": np.uint8,
    "uint16": np.uint16, "uint32": np.uint32, "uint64": np.uint64, "bool": np.bool_,
}


def str_to_dtype(dtype: Any) -> type:
    """Return the numpy scalar type named by `dtype` (a string, numpy dtype or type).

    Example:
        >>> str_to_dtype("float32")
        <class 'numpy.float32'>
    """
    if isinstance(dtype, str):
        key = dtype.strip().lower().removeprefix("np.").removeprefix("numpy.").removeprefix("tf.")
        if key not in _ALIASES:
            raise ValueError(f"unknown dtype {dtype!r}; expected one of {', '.join(sorted(_ALIASES))}")
        return _ALIASES[key]
    try:
        return np.dtype(dtype).type
    except TypeError as exc:
        raise ValueError(f"unknown dtype {dtype!r}") from exc
