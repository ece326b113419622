"""CPU/GPU execution settings for torch inference: precision choice and malloc tuning.

`precision="auto"` picks bf16 autocast on CPUs with AMX-BF16 (where bf16 convolutions run
in hardware), fp16 autocast on CUDA, and exact fp32 elsewhere; "fp32" is always exact.

Example:
    >>> resolve_precision("fp32", "cpu")
    'fp32'
    >>> resolve_precision("auto", "cuda")
    'fp16'
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import logging
import os
from collections.abc import Iterator

import torch

logger = logging.getLogger(__name__)

PRECISIONS = ("auto", "fp32", "bf16", "fp16")
_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16}
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4  # glibc mallopt parameters


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU feature flags of /proc/cpuinfo (empty where unavailable)."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("flags"):
                    return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def onednn_isa_cap() -> str | None:
    """The instruction-set cap a user put on oneDNN (`ONEDNN_MAX_CPU_ISA`, or its older name
    `DNNL_MAX_CPU_ISA`), upper-cased; None when unset. torch's and OpenVINO's oneDNN both obey it."""
    for name in ("ONEDNN_MAX_CPU_ISA", "DNNL_MAX_CPU_ISA"):
        value = os.environ.get(name, "").strip()
        if value:
            return value.upper()
    return None


def cpu_has_amx_bf16() -> bool:
    """True when the CPU runs bf16 matrix maths in hardware (Intel AMX-BF16) and oneDNN may use it.

    A oneDNN ISA cap below AMX (e.g. `ONEDNN_MAX_CPU_ISA=AVX2`, as when timing an AVX2 machine on
    a newer CPU) makes bf16 convolutions emulated and ~100x slower than fp32, so it counts as no AMX.
    """
    cap = onednn_isa_cap()
    if cap is not None and cap not in ("ALL", "DEFAULT") and "AMX" not in cap:
        return False
    probe = getattr(getattr(torch._C, "_cpu", None), "_is_amx_tile_supported", None)
    if probe is not None:
        try:
            if probe():
                return True
        except RuntimeError:
            pass
    return "amx_bf16" in cpu_flags()


def resolve_precision(precision: str, device: str | torch.device) -> str:
    """"auto" -> the fastest accurate mode for `device`; other values are checked and returned."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    if precision != "auto":
        return precision
    kind = torch.device(device).type
    if kind == "cuda":
        return "fp16"
    if kind == "cpu" and cpu_has_amx_bf16() and torch.backends.mkldnn.is_available():
        return "bf16"
    return "fp32"


def autocast(precision: str, device: str | torch.device) -> contextlib.AbstractContextManager:
    """The autocast context for a resolved precision (a no-op for fp32)."""
    if precision == "fp32":
        return contextlib.nullcontext()
    return torch.autocast(torch.device(device).type, dtype=_DTYPES[precision])


# mallopt takes a C int: 1 << 36 would be truncated to 0 (a trim on every free).
_TRIM_THRESHOLD = (1 << 31) - 1
# each mallopt parameter -> the environment settings with which the user already chose it
# (a user's mmap threshold is a choice about mmap too: then mmap stays on)
_USER_SETTINGS = {
    _M_MMAP_MAX: (("MALLOC_MMAP_MAX_", "glibc.malloc.mmap_max"), ("MALLOC_MMAP_THRESHOLD_", "glibc.malloc.mmap_threshold")),
    _M_TRIM_THRESHOLD: (("MALLOC_TRIM_THRESHOLD_", "glibc.malloc.trim_threshold"),),
}


def _user_set(param: int) -> bool:
    """True when MALLOC_* or GLIBC_TUNABLES already sets this mallopt parameter."""
    tunables = os.environ.get("GLIBC_TUNABLES", "")
    return any(env in os.environ or f"{tunable}=" in tunables for env, tunable in _USER_SETTINGS[param])


@functools.lru_cache(maxsize=1)
def tune_malloc() -> bool:
    """Keep freed memory in the process (glibc): no mmap for big blocks, no trimming.

    Tensor buffers freed and re-allocated every window or step otherwise cost page faults
    (measured up to half of a CPU forward pass). Same as
    `MALLOC_MMAP_MAX_=0 MALLOC_TRIM_THRESHOLD_=2147483647`; a parameter the user set through
    MALLOC_* or GLIBC_TUNABLES is left alone, and AI4MED_NO_MALLOC_TUNING disables both. numpy's
    huge-page advice is turned off with it (`_numpy_heap_without_hugepage_advice`).
    Returns True when every parameter not set by the user was applied.
    """
    if os.environ.get("AI4MED_NO_MALLOC_TUNING"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = (ctypes.c_int, ctypes.c_int), ctypes.c_int
    ok = True
    for param, value in ((_M_MMAP_MAX, 0), (_M_TRIM_THRESHOLD, _TRIM_THRESHOLD)):
        if _user_set(param):
            logger.debug("mallopt(%d) left to the user's environment", param)
            continue
        ok = mallopt(param, value) == 1 and ok
    logger.debug("glibc malloc tuned: %s", ok)
    _numpy_heap_without_hugepage_advice()
    return ok


def _numpy_heap_without_hugepage_advice() -> None:
    """Stop numpy's `madvise(MADV_HUGEPAGE)` on its large arrays, now that they live on the heap.

    Why: numpy advises huge pages for every array of 4 MB or more. With mmap off, those arrays are
    carved from the brk heap, and where the kernel's THP defrag setting is "madvise" (a common
    default) each first touch of a fresh heap region waits for memory compaction: restoring one
    512x512x120 two-channel prediction (np.take into 240 MB) took 1.07 s the first time against
    0.15 s without the advice, and 0.05 s once the memory is re-used either way. The advice gains
    nothing after that here (equal times), so it is turned off; NUMPY_MADVISE_HUGEPAGE, when the user
    set it, is their choice and stays.
    """
    if "NUMPY_MADVISE_HUGEPAGE" in os.environ:
        return
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray  # type: ignore[no-redef]
    setter = getattr(multiarray, "_set_madvise_hugepage", None)
    if setter is not None:
        setter(False)


@contextlib.contextmanager
def num_threads(n: int | None) -> Iterator[None]:
    """Run with `n` intra-op threads (unchanged when None)."""
    if n is None:
        yield
        return
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)
