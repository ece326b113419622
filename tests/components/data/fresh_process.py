"""`@in_fresh_process`: run a test's body in a new Python process, not in the pytest worker.

Why: a multi-worker DataLoader test in a pytest-xdist worker that earlier tests had filled (OpenVINO,
onnxruntime, servers, ...) failed twice in CI-like runs and never when run alone or in a fresh
process: once with NaNs in a worker-loaded batch, once with three pytest workers dying one after
the other without a Python traceback (SIGTERM or SIGKILL, not a segfault, which faulthandler would
have printed). Earlier sessions saw the pytest worker die when torch's DataLoader SIGCHLD handler
met a process with OpenVINO loaded (tests/components/data/conftest.py). The cause is not found; a
fresh process tests the pipelines themselves, and a crash there fails only the test, with its output.
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
