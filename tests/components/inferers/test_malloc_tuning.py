"""`tune_malloc` keeps freed memory in-process, measured by page faults, and respects MALLOC_* settings."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

# malloc/touch/free a 32 MiB block 8 times after one warm-up cycle; print the minor page faults
_SCRIPT = textwrap.dedent("""
    import ctypes, resource
    from ai4med.components.inferers.precision import tune_malloc
    applied = tune_malloc()
    libc = ctypes.CDLL("libc.so.6")
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, (ctypes.c_size_t,)
    libc.free.argtypes = (ctypes.c_void_p,)
    n = 32 << 20
    def cycle():
        p = libc.malloc(n)
        ctypes.memset(p, 1, n)
        libc.free(p)
    cycle()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(8):
        cycle()
    print(applied, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before)
""")
_PAGES_PER_CYCLE = (32 << 20) // 4096


def _faults(**env: str) -> tuple[str, int]:
    clean = {k: v for k, v in os.environ.items()
             if not k.startswith("MALLOC_") and k not in ("GLIBC_TUNABLES", "AI4MED_NO_MALLOC_TUNING")}
    # torch's DataLoader leaves a SIGCHLD handler in this process once an earlier test used workers;
    # with OpenVINO loaded too, a child's exit then segfaults pytest (seen under xdist): default it here
    old = signal.signal(signal.SIGCHLD, signal.SIG_DFL)
    try:
        out = subprocess.run([sys.executable, "-c", _SCRIPT], env={**clean, **env}, capture_output=True, text=True,
                             check=True, timeout=120).stdout.split()
    finally:
        signal.signal(signal.SIGCHLD, old)
    return out[0], int(out[1])


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
def test_freed_memory_is_reused_without_page_faults():
    applied, faults = _faults()
    assert applied == "True"
    # the trim threshold truncated to 0 gave a trim (and ~8192 faults) on every cycle
    assert faults < _PAGES_PER_CYCLE // 4, faults


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
@pytest.mark.parametrize("env", [{"MALLOC_TRIM_THRESHOLD_": "0"}, {"MALLOC_MMAP_MAX_": "65536"},
                                 {"MALLOC_MMAP_THRESHOLD_": "1048576"}, {"GLIBC_TUNABLES": "glibc.malloc.trim_threshold=0"},
                                 {"AI4MED_NO_MALLOC_TUNING": "1"}])
def test_user_malloc_settings_are_not_overridden(env):
    _, faults = _faults(**env)
    assert faults >= 8 * _PAGES_PER_CYCLE * 0.9, faults  # the user's trim-on-free (or glibc's mmap) stays


_HUGEPAGE_SCRIPT = textwrap.dedent("""
    try:
        from numpy._core import multiarray
    except ImportError:  # numpy < 2
        from numpy.core import multiarray
    from ai4med.components.inferers.precision import tune_malloc
    before = multiarray._get_madvise_hugepage()
    tune_malloc()
    print(before, multiarray._get_madvise_hugepage())
""")


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="glibc mallopt")
@pytest.mark.parametrize("env, want", [({}, "True False"), ({"NUMPY_MADVISE_HUGEPAGE": "1"}, "True True"),
                                       ({"AI4MED_NO_MALLOC_TUNING": "1"}, "True True")])
def test_numpy_huge_page_advice_goes_with_the_heap_unless_the_user_chose(env, want):
    # numpy advises huge pages on its big arrays; on the (now mmap-free) heap that made the first touch
    # of fresh memory wait for compaction (1.07 s vs 0.15 s for a 240 MB np.take)
    clean = {k: v for k, v in os.environ.items() if k not in ("NUMPY_MADVISE_HUGEPAGE", "AI4MED_NO_MALLOC_TUNING")}
    out = subprocess.run([sys.executable, "-c", _HUGEPAGE_SCRIPT], env={**clean, **env}, capture_output=True,
                         text=True, check=True, timeout=120).stdout.strip()
    assert out == want
