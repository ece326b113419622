"""`@in_fresh_process`: run a test's body in a new Python process, not in the pytest worker.

Why: a multi-worker DataLoader test in a pytest-xdist worker that earlier tests had filled (OpenVINO,
onnxruntime, servers, ...) failed in CI-like runs and never when run alone or in a fresh process:
once with NaNs in a worker-loaded batch, otherwise with pytest workers dying without a traceback.
Core dumps showed why (session 8): a segfault in the bytecode loop of a short-lived thread during a
multi-worker DataLoader iteration, after which faulthandler's own dump crashed too (so nothing was
printed). torch's Python SIGCHLD handler was the trigger (CPython 3.11, issue 111363); the pipelines
no longer let torch install it (`image_pipeline.skip_sigchld_handler`): 0 crashes in 9 full runs
with these bodies in the pytest workers, against 3 in 8 before. Set `AI4MED_TEST_IN_FRESH_PROCESS=1`
to run them in the pytest worker that way. The fresh process stays as insurance: a crash there fails
only the test, with its output.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

ENV = "AI4MED_TEST_IN_FRESH_PROCESS"
ROOT = Path(__file__).resolve().parents[3]


def in_fresh_process(test: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(test)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if os.environ.get(ENV):
            return test(*args, **kwargs)
        node = os.environ["PYTEST_CURRENT_TEST"].rsplit(" ", 1)[0]
        res = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:xdist", "-p", "no:cacheprovider", node],
                             cwd=ROOT, env={**os.environ, ENV: "1"}, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0 and " passed" in res.stdout, \
            f"{node} in a fresh process: rc {res.returncode}\n{res.stdout[-4000:]}\n{res.stderr[-2000:]}"
    return wrapper
