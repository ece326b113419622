"""Inference queues per device: bounded, cancellable, and small requests never stuck behind huge ones.

Each device has two lanes, each one worker thread: "small" (work up to `small_work`
voxels: every DEXTR3D / deepgrow call, small segmentations) and "large". Within a lane
requests run one at a time (FIFO), so two requests never oversubscribe a GPU. Between
its scan windows a large job checks (`ai4med.common.cancel`) and

* waits while the small lane is busy: a small request answers as if the device were free,
* stops with 422 once it has computed longer than its time limit,
* stops when its client has gone or the server is shutting down.

A job whose client left before it started is dropped without running. A bounded number of
requests may wait per device and lane; beyond that the server answers 503 at once. The workers are
daemon threads, so a model call that never checks cannot hold the process past shutdown.

Example:
    >>> import asyncio
    >>> q = DeviceQueues(max_waiting=4)
    >>> asyncio.run(q.run("cpu", lambda: 1 + 1))
    2
    >>> q.shutdown()
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any, TypeVar

from ai4med.common.cancel import cancellation
from ai4med.server.errors import ApiError

T = TypeVar("T")
logger = logging.getLogger(__name__)

#: status of a request stopped because its client went away (nginx's "client closed request")
CLIENT_GONE = 499


@dataclass
class Job:
    """One queued call, and what may stop it."""

    fn: Callable[..., Any]
    args: tuple[Any, ...]
    work: int = 0
    time_limit: float | None = None
    cancel: threading.Event = field(default_factory=threading.Event)
    reason: str = ""
    future: Future = field(default_factory=Future)
    started: float = 0.0
    yielded: float = 0.0  # seconds spent waiting for the small lane (not counted against the limit)

    def stop(self, reason: str) -> None:
        """Ask the job to stop at its next check (or not to start)."""
        if not self.cancel.is_set():
            self.reason = reason
            self.cancel.set()


class _Lane:
    """One worker thread and its FIFO."""

    def __init__(self, name: str, device: _Device) -> None:
        self.name = name
        self.device = device
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.busy = 0  # queued + running
        self.idle = threading.Event()
        self.idle.set()
        self.current: Job | None = None
        self.thread = threading.Thread(target=self._loop, name=f"aiaa-{device.key}-{name}", daemon=True)
        self.thread.start()

    def _loop(self) -> None:
        while True:
            job = self.jobs.get()
            if job is None:
                return
            self.current = job
            try:
                ok, value = self._run(job)
            finally:
                self.current = None
                self.device.done(self)  # before the answer, so a caller never sees itself still pending
            if ok is None:
                continue
            if ok:
                job.future.set_result(value)
            else:
                job.future.set_exception(value)

    def _run(self, job: Job) -> tuple[bool | None, Any]:
        if not job.future.set_running_or_notify_cancel():
            return None, None
        if job.cancel.is_set():  # the client left (or the server stops) before the job started
            return False, self.device.stopped_error(job)
        job.started = time.monotonic()
        try:
            with cancellation(lambda: self.device.check(self, job)):
                return True, job.fn(*job.args)
        except BaseException as exc:  # handed to the awaiting request
            return False, exc


class _Device:
    """The lanes of one device and the count of its waiting requests."""

    def __init__(self, key: str, owner: DeviceQueues) -> None:
        self.key = key
        self.owner = owner
        self.small = _Lane("small", self)
        self.large = _Lane("large", self)

    def lane(self, work: int) -> _Lane:
        return self.small if 0 < work <= self.owner.small_work else self.large

    def done(self, lane: _Lane) -> None:
        with self.owner._lock:
            lane.busy -= 1
            self.owner._pending[self.key] = max(0, self.owner._pending.get(self.key, 1) - 1)
            if lane.busy == 0:
                lane.idle.set()

    def stopped_error(self, job: Job) -> ApiError:
        if job.reason == "shutdown":
            return ApiError(503, "the server is shutting down; retry later")
        if job.reason.startswith("time"):
            return ApiError(422, job.reason[len("time:"):])
        return ApiError(CLIENT_GONE, "the client closed the connection; the request was cancelled")

    def check(self, lane: _Lane, job: Job) -> None:
        """The cancellation check a job's computation calls between units of work."""
        if lane is self.large:
            t0 = time.monotonic()
            while not self.small.idle.is_set() and not job.cancel.is_set():
                self.small.idle.wait(0.05)  # let the small request have the device
            job.yielded += time.monotonic() - t0
        if job.time_limit is not None and not job.cancel.is_set():
            spent = time.monotonic() - job.started - job.yielded
            if spent > job.time_limit:
                job.stop(f"time:the request computed for {spent:.1f} s, over the limit of {job.time_limit:g} s "
                         "per request (server setting max_request_seconds: `ai4med serve --max-request-seconds`); "
                         "send a smaller image or a crop")
        if job.cancel.is_set():
            raise self.stopped_error(job)


class DeviceQueues:
    """Device name -> its lanes, created on first use.

    Args:
        max_waiting: requests queued or running per device and lane before `run` answers 503.
        small_work: jobs of at most this many voxels of work take the small lane.
    """

    def __init__(self, max_waiting: int = 64, small_work: int = 128**3) -> None:
        self.max_waiting = max(1, int(max_waiting))
        self.small_work = int(small_work)
        self._devices: dict[str, _Device] = {}
        self._pending: dict[str, int] = {}
        self._lock = threading.Lock()
        self._closed = False

    @staticmethod
    def key(device: str) -> str:
        """Queue key of a device: "cuda" and "cuda:0" share one queue."""
        d = str(device or "cpu").lower()
        return "cuda:0" if d == "cuda" else d

    def submit(self, device: str, fn: Callable[..., T], *args: Any, work: int = 0,
               time_limit: float | None = None) -> Job:
        """Queue `fn(*args)` on `device` (503 when full or closing); the job's future gives the result."""
        key = self.key(device)
        job = Job(fn, args, int(work), time_limit)
        with self._lock:
            if self._closed:
                raise ApiError(503, "the server is shutting down")
            dev = self._devices.get(key)
            if dev is None:
                dev = self._devices[key] = _Device(key, self)
            lane = dev.lane(job.work)
            if lane.busy >= self.max_waiting:  # per lane: a flood of large requests never turns small ones away
                raise ApiError(503, f"device {key} is busy ({lane.busy} {lane.name} requests waiting); retry later")
            self._pending[key] = self._pending.get(key, 0) + 1
            lane.busy += 1
            lane.idle.clear()
            lane.jobs.put(job)
        return job

    async def run(self, device: str, fn: Callable[..., T], *args: Any, work: int = 0,
                  time_limit: float | None = None, disconnected: Callable[[], Any] | None = None) -> T:
        """Run `fn(*args)` on `device`'s worker and await its result.

        Args:
            work: voxels the call computes on (decides the lane; 0 = large lane).
            time_limit: seconds of computation after which the job stops at its next check (422).
            disconnected: an async callable, true once the client has gone; polled while the
                job waits or runs, and the job is cancelled (before it starts, or at its
                next check) when it turns true.
        """
        job = self.submit(device, fn, *args, work=work, time_limit=time_limit)
        watcher = asyncio.ensure_future(_watch(disconnected, job)) if disconnected is not None else None
        wrapped = asyncio.wrap_future(job.future)
        try:
            return await asyncio.shield(wrapped)
        except asyncio.CancelledError:  # the request task itself was cancelled (shutdown, disconnect)
            job.stop("client")
            wrapped.add_done_callback(lambda f: f.cancelled() or f.exception())  # nobody awaits it any more
            raise
        finally:
            if watcher is not None:
                watcher.cancel()

    def run_sync(self, device: str, fn: Callable[..., T], *args: Any) -> T:
        """Blocking form of `run` (model loading from a non-async context)."""
        return self.submit(device, fn, *args).future.result()

    def pending(self) -> dict[str, int]:
        with self._lock:
            return dict(self._pending)

    def shutdown(self, wait: bool = True, timeout: float | None = None) -> None:
        """Stop accepting; drop queued jobs (503), stop running ones at their next check, stop the workers.

        Args:
            wait: wait for the workers to finish (at most `timeout` seconds in all).
            timeout: None waits without limit; a running call that never checks is left to
                its daemon thread after that.
        """
        with self._lock:
            self._closed = True
            devices = list(self._devices.values())
        for dev in devices:
            for lane in (dev.small, dev.large):
                _drain_stop(lane)  # queued jobs: answered 503 now
                current = lane.current
                if current is not None:
                    current.stop("shutdown")
                lane.jobs.put(None)
        if not wait:
            return
        deadline = None if timeout is None else time.monotonic() + timeout
        for dev in devices:
            for lane in (dev.small, dev.large):
                left = None if deadline is None else max(0.0, deadline - time.monotonic())
                lane.thread.join(left)
                if lane.thread.is_alive():
                    logger.warning("the %s worker of %s is still in a model call; not waiting for it", lane.name,
                                   dev.key)


def _drain_stop(lane: _Lane) -> None:
    """Answer every job still queued in `lane` 503 at once (its worker may be stuck in a call)."""
    while True:
        try:
            job = lane.jobs.get_nowait()
        except queue.Empty:
            return
        if job is None:
            continue
        job.stop("shutdown")
        lane.device.done(lane)
        if job.future.set_running_or_notify_cancel():
            job.future.set_exception(lane.device.stopped_error(job))


async def _watch(disconnected: Callable[[], Any], job: Job, every: float = 0.2) -> None:
    while not job.future.done():
        try:
            gone = await disconnected()
        except Exception:  # pragma: no cover - a transport error counts as gone
            gone = True
        if gone:
            job.stop("client")
            return
        await asyncio.sleep(every)
