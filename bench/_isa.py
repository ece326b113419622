"""`--isa avx2`: time an AVX2-only CPU (no AVX-512, VNNI or AMX) on a newer one.

The project's speed goals are set for a 2-core AVX2 CPU; the machine at hand may have AVX-512 and
AMX. Every maths library in the path has a documented cap on the instructions it dispatches to, so
one process (and its children, which inherit the environment) can run the AVX2 code paths:
ATen's vectorised kernels (`ATEN_CPU_CAPABILITY`), oneDNN's convolutions in torch and OpenVINO
(`ONEDNN_MAX_CPU_ISA`; bf16 then becomes emulated, as on a real AVX2 CPU, and `precision="auto"`
picks fp32) and MKL's GEMMs (`MKL_ENABLE_INSTRUCTIONS`). What it does not emulate: the clock, the
caches and the memory bandwidth stay this CPU's, so the figures approximate an AVX2 machine.
Nor does the cap reach OpenVINO's own kernels (those not from oneDNN): its per-layer counters show
instance norm (MVN) and FakeQuantize as `jit_avx512_*` under the cap, while its convolutions are
`brgconv_avx2_*` / `jit_avx2_I8`. OpenVINO reads a cap for them (OV_CPU_MAX_ISA) only in its
debug builds. Those nodes took 13 % of an fp32 and 15 % of an INT8 batch of the bench UNet (AVX2
cap, 2026-12), so the capped OpenVINO rows are somewhat optimistic for a real AVX2 CPU.

torch.compile's on-disk cache does not key its kernels by the capped ISA: a kernel built for
AVX-512 by an earlier native run was served to an AVX2-capped run, and a compiled UNet's output
was then off by 9.8 (a fresh cache: 3e-6). So a capped run gets a cache folder of its own.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile

AVX2_ENV = {"ATEN_CPU_CAPABILITY": "avx2", "ONEDNN_MAX_CPU_ISA": "AVX2", "MKL_ENABLE_INSTRUCTIONS": "AVX2"}


def add_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--isa", choices=["native", "avx2"], default="native",
                        help="avx2: cap torch, oneDNN (also OpenVINO's) and MKL at AVX2, to time an "
                             "AVX2-only CPU on this one (see bench/_isa.py)")


def apply(isa: str) -> None:
    """Re-run this process with the caps set when --isa avx2 asks for them and they are not yet
    in force (they must be set before torch, MKL or OpenVINO load)."""
    if isa == "avx2" and any(os.environ.get(k) != v for k, v in AVX2_ENV.items()):
        env = {**os.environ, **AVX2_ENV}
        user = os.getuid() if hasattr(os, "getuid") else "user"  # getpass.getuser() fails without a passwd entry
        env.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"torchinductor_{user}_avx2"))
        os.execve(sys.executable, [sys.executable, *sys.argv], env)


def describe() -> str:
    """One line on the instruction sets in force, for a benchmark's header."""
    import torch

    caps = {k: os.environ[k] for k in AVX2_ENV if k in os.environ}
    model = "unknown CPU"
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            model = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    capped = (f"; capped by {' '.join(f'{k}={v}' for k, v in caps.items())} (AVX2 emulated: this CPU's "
              "clock, caches and memory bandwidth)") if caps else ""
    return f"CPU: {model}, {os.cpu_count()} logical CPUs, torch kernels {torch.backends.cpu.get_cpu_capability()}{capped}"
