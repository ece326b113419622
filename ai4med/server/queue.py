"""One inference queue per device: a single worker thread runs every model call on that device.

Requests for the same device are served one at a time (FIFO), so two requests never
oversubscribe a GPU (or the CPU cores torch already spreads one call over). A bounded
number of requests may wait; beyond that the server answers 503 at once.

Example:
    >>> import asyncio
    >>> q = DeviceQueues(max_waiting=4)
    >>> asyncio.run(q.run("cpu", lambda: 1 + 1))
    2
    >>> q.shutdown()
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from ai4med.server.errors import ApiError

T = TypeVar("T")


class DeviceQueues:
    """Device name -> a one-thread executor, created on first use.

    Args:
        max_waiting: requests queued or running per device before `run` answers 503.
    """

    def __init__(self, max_waiting: int = 64) -> None:
        self.max_waiting = max(1, int(max_waiting))
        self._executors: dict[str, ThreadPoolExecutor] = {}
        self._pending: dict[str, int] = {}
        self._lock = threading.Lock()
        self._closed = False

    @staticmethod
    def key(device: str) -> str:
        """Queue key of a device: "cuda" and "cuda:0" share one queue."""
        d = str(device or "cpu").lower()
        return "cuda:0" if d == "cuda" else d

    def _executor(self, key: str) -> ThreadPoolExecutor:
        with self._lock:
            if self._closed:
                raise ApiError(503, "the server is shutting down")
            ex = self._executors.get(key)
            if ex is None:
                ex = ThreadPoolExecutor(max_workers=1, thread_name_prefix=f"aiaa-{key}")
                self._executors[key] = ex
            n = self._pending.get(key, 0)
            if n >= self.max_waiting:
                raise ApiError(503, f"device {key} is busy ({n} requests waiting); retry later")
            self._pending[key] = n + 1
            return ex

    def _done(self, key: str) -> None:
        with self._lock:
            self._pending[key] = max(0, self._pending.get(key, 1) - 1)

    async def run(self, device: str, fn: Callable[..., T], *args: Any) -> T:
        """Run `fn(*args)` on `device`'s worker thread and await its result."""
        key = self.key(device)
        ex = self._executor(key)
        try:
            fut = ex.submit(fn, *args)
        except RuntimeError:
            self._done(key)
            raise ApiError(503, "the server is shutting down") from None
        fut.add_done_callback(lambda _f: self._done(key))
        return await asyncio.wrap_future(fut)

    def run_sync(self, device: str, fn: Callable[..., T], *args: Any) -> T:
        """Blocking form of `run` (model loading from a non-async context)."""
        key = self.key(device)
        ex = self._executor(key)
        fut = ex.submit(fn, *args)
        fut.add_done_callback(lambda _f: self._done(key))
        return fut.result()

    def pending(self) -> dict[str, int]:
        with self._lock:
            return dict(self._pending)

    def shutdown(self, wait: bool = True) -> None:
        """Finish queued work (wait=True) and stop the workers."""
        with self._lock:
            self._closed = True
            executors = list(self._executors.values())
        for ex in executors:
            ex.shutdown(wait=wait, cancel_futures=not wait)
