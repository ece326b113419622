"""Multi-worker pipelines leave SIGCHLD alone (torch's Python SIGCHLD handler crashed CPython 3.11
processes, see `image_pipeline.skip_sigchld_handler`), and a worker that dies is still reported.

Each check runs in its own Python process: the handler is per process, and a killed worker must not
take a pytest worker with it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

SCRIPT = textwrap.dedent("""
    import os, signal, sys
    import numpy as np
    from ai4med.common.medical_image import MedicalImage
    from ai4med.components.data.image_pipeline import SegmentationImagePipeline

    class Load:
        def transform(self, ctx):
            if ctx["image"] == 3.0 and sys.argv[1] == "die":
                os.kill(os.getpid(), signal.SIGKILL)  # a worker killed (e.g. by the OOM killer)
            ctx["image"] = MedicalImage(np.full((1, 4, 4), ctx["image"], np.float32), "CHW")
            return ctx

    p = SegmentationImagePipeline(data_list=[{"image": float(i)} for i in range(6)], transforms=[Load()],
                                  output_crop_size=[4, 4], output_batch_size=2, num_workers=2, shuffle=False,
                                  seed=0)
    try:
        values = sorted(float(v) for b in p for v in b["image"][:, 0, 0, 0])
    except RuntimeError as e:
        print("reported:", str(e).splitlines()[0])
        sys.exit(3)
    print("values", values, "SIGCHLD", signal.getsignal(signal.SIGCHLD) == signal.SIG_DFL)
""")


def run(mode: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", SCRIPT, mode], capture_output=True, text=True, timeout=120)


def test_two_workers_load_everything_and_install_no_sigchld_handler():
    res = run("ok")
    assert res.returncode == 0, res.stderr[-3000:]
    assert res.stdout.strip() == "values [0.0, 1.0, 2.0, 3.0, 4.0, 5.0] SIGCHLD True"


def test_a_killed_worker_is_still_reported():
    res = run("die")
    assert res.returncode == 3, (res.stdout, res.stderr[-3000:])
    assert "reported: DataLoader worker (pid" in res.stdout and "exited unexpectedly" in res.stdout
