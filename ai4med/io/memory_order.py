"""Arrays in the memory order image files store them: x fastest (Fortran order of an (x, y, z) array).

Why: NIfTI and MetaImage store voxels x-fastest, so a C-ordered (x, y, z) array is transposed on its
way out. numpy's transposing copy of a uint8 volume is slow (512x512x120: 0.19 s; nibabel's own
slice-by-slice write of it 0.25 s more than of a Fortran-ordered one); torch's permuting copy is
blocked and threaded (0.10 s).

Example:
    >>> import numpy as np
    >>> a = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    >>> f = fortran_order(a)
    >>> bool(f.flags.f_contiguous), bool((f == a).all())
    (True, True)
"""

from __future__ import annotations

import numpy as np

__all__ = ["fortran_order"]


def fortran_order(data: np.ndarray) -> np.ndarray:
    """`data` itself when it is Fortran-contiguous, else a Fortran-ordered copy (same shape, dtype, values)."""
    if data.flags.f_contiguous:
        return data
    if data.flags.c_contiguous and data.dtype.isnative:
        import torch

        try:
            t = torch.from_numpy(data)
        except TypeError:  # a dtype torch lacks
            return np.asfortranarray(data)
        rev = tuple(range(data.ndim - 1, -1, -1))
        return t.permute(rev).contiguous().numpy().transpose(rev)
    return np.asfortranarray(data)
