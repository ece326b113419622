"""Fixtures shared by every test folder."""

from __future__ import annotations

import atexit
import contextlib
import faulthandler
import os
import shutil
import signal
import subprocess
import tempfile
from collections.abc import Callable, Iterator

import pytest

# a pytest worker ended by SIGTERM prints where every thread was, then ends as before (a test that sets its
# own SIGTERM handler replaces this one): a worker that vanished under xdist left no trace
# (see tests/components/data/fresh_process.py)
faulthandler.register(signal.SIGTERM, all_threads=True, chain=True)

# timed convolution layouts (`channels_last: "auto"`) are cached here, not in the user's ~/.cache;
# a folder made for this run is removed when the run ends
if "AI4MED_CACHE_DIR" not in os.environ:
    _cache = tempfile.mkdtemp(prefix="ai4med-test-cache-")
    os.environ["AI4MED_CACHE_DIR"] = _cache
    atexit.register(shutil.rmtree, _cache, ignore_errors=True)

# torch.compile's on-disk cache does not key kernels by a capped ISA (ATEN_CPU_CAPABILITY, as
# bench/_isa.py sets to run as an AVX2 CPU): a run capped that way gets a cache of its own, or it is
# served kernels built for the uncapped CPU (a compiled UNet was then off by 9.8)
if os.environ.get("ATEN_CPU_CAPABILITY") and "TORCHINDUCTOR_CACHE_DIR" not in os.environ:
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = os.path.join(
        tempfile.gettempdir(), f"torchinductor_{os.getuid()}_{os.environ['ATEN_CPU_CAPABILITY']}")


@pytest.fixture()
def small_tmpfs(tmp_path) -> Iterator[Callable[[str], str]]:
    """`mount(size)` -> a folder on a fresh tmpfs of `size` ("1m", "64k"): a disk that fills up.

    Mounting needs root (CAP_SYS_ADMIN); elsewhere the test is skipped with the reason.
    Every mount is removed at the end of the test.
    """
    mounts: list[str] = []

    def mount(size: str) -> str:
        if os.geteuid() != 0:
            pytest.skip("mounting a small tmpfs (a full disk) needs root")
        point = str(tmp_path / f"tmpfs{len(mounts)}")
        os.makedirs(point)
        r = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", point],
                           capture_output=True, text=True)
        if r.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {r.stderr.strip() or r.returncode}")
        mounts.append(point)
        return point

    yield mount
    for point in reversed(mounts):
        with contextlib.suppress(Exception):
            subprocess.run(["umount", "-l", point], capture_output=True)
