"""`bench/_isa.py`: `--isa avx2` re-runs the process with the caps and its own torch.compile cache."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
SCRIPT = f"""
import json, os, sys
sys.path.insert(0, {str(BENCH)!r})
import _isa
_isa.apply("avx2")
print(json.dumps({{k: os.environ.get(k) for k in [*_isa.AVX2_ENV, "TORCHINDUCTOR_CACHE_DIR"]}}))
"""


def _run(env: dict[str, str], folder: Path) -> dict[str, str | None]:
    script = folder / "show_caps.py"  # a file: the re-run repeats sys.argv
    script.write_text(SCRIPT)
    out = subprocess.run([sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=60, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def test_avx2_caps_and_a_compile_cache_of_its_own(tmp_path):
    env = {k: v for k, v in os.environ.items() if k not in ("TORCHINDUCTOR_CACHE_DIR", "ATEN_CPU_CAPABILITY")}
    seen = _run(env, tmp_path)
    assert seen["ATEN_CPU_CAPABILITY"] == "avx2" and seen["ONEDNN_MAX_CPU_ISA"] == "AVX2"
    assert seen["MKL_ENABLE_INSTRUCTIONS"] == "AVX2"
    assert seen["TORCHINDUCTOR_CACHE_DIR"] and seen["TORCHINDUCTOR_CACHE_DIR"].endswith("_avx2")


def test_a_users_compile_cache_folder_is_kept(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "ATEN_CPU_CAPABILITY"}
    env["TORCHINDUCTOR_CACHE_DIR"] = str(tmp_path / "mine")
    assert _run(env, tmp_path)["TORCHINDUCTOR_CACHE_DIR"] == str(tmp_path / "mine")
