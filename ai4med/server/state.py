"""ServerState: what one app instance owns (pool, queues, sessions, logs, folders).

Created by `create_app` and stored on `app.state.aiaa`; endpoints reach it through
`get_state(request)`. Nothing here is module-level, so several apps can live in one
process (tests do this).
"""

from __future__ import annotations

import collections
import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from collections.abc import Iterator

from starlette.requests import Request

from ai4med.server.engines.pool import EnginePool
from ai4med.server.queue import DeviceQueues
from ai4med.server.sessions import SessionStore
from ai4med.server.settings import ServerSettings


class RingLogHandler(logging.Handler):
    """Keeps the last `capacity` formatted log lines in memory (served at `/logs`)."""

    def __init__(self, capacity: int = 2000) -> None:
        super().__init__(logging.INFO)
        self.lines: collections.deque[str] = collections.deque(maxlen=max(10, capacity))
        self._lines_lock = threading.Lock()
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%Y-%m-%d %H:%M:%S"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            line = self.format(record)
        except Exception:  # pragma: no cover
            return
        with self._lines_lock:
            self.lines.append(line)

    def tail(self, n: int) -> list[str]:
        with self._lines_lock:
            return list(self.lines)[-n:] if n > 0 else []


class ServerState:
    """The resources of one server; `close()` releases all of them."""

    LOGGERS = ("ai4med", "uvicorn.error")

    def __init__(self, settings: ServerSettings) -> None:
        self.settings = settings
        self.own_workspace = settings.workspace is None
        self.workspace = os.path.abspath(settings.workspace or tempfile.mkdtemp(prefix="aiaa-"))
        os.makedirs(self.workspace, exist_ok=True)
        self.tmp_root = os.path.join(self.workspace, "tmp")
        self.models_root = os.path.join(self.workspace, "models")
        shutil.rmtree(self.tmp_root, ignore_errors=True)  # leftovers of a killed run
        os.makedirs(self.tmp_root, exist_ok=True)
        os.makedirs(self.models_root, exist_ok=True)
        self._remove_stale_stages()
        self.pool = EnginePool(settings.device)
        self.queues = DeviceQueues(settings.max_queue, small_work=settings.small_work_voxels)
        self.sessions = SessionStore(os.path.join(self.workspace, "sessions"), settings.session_expiry)
        self.log = RingLogHandler(settings.log_lines)
        self.started = time.time()
        self.accepting = True
        self.admin_lock = threading.Lock()

    def _remove_stale_stages(self) -> None:
        """Staging folders of admin uploads a killed server left (older than this process)."""
        from ai4med.io.atomic import process_start_time, remove_stale_temporaries

        started = process_start_time()
        for name in os.listdir(self.models_root):
            p = os.path.join(self.models_root, name)
            with contextlib.suppress(OSError):
                if name.startswith(".stage-") and os.path.isdir(p) and os.path.getmtime(p) < started:
                    shutil.rmtree(p, ignore_errors=True)
        remove_stale_temporaries(self.models_root)

    def attach_logging(self) -> None:
        for name in self.LOGGERS:
            lg = logging.getLogger(name)
            lg.addHandler(self.log)
            if lg.level == logging.NOTSET or lg.level > logging.INFO:
                lg.setLevel(logging.INFO)

    def detach_logging(self) -> None:
        for name in self.LOGGERS:
            logging.getLogger(name).removeHandler(self.log)

    @contextlib.contextmanager
    def request_dir(self) -> Iterator[str]:
        """A temp folder for one request, removed when the request ends."""
        path = tempfile.mkdtemp(dir=self.tmp_root)
        try:
            yield path
        finally:
            shutil.rmtree(path, ignore_errors=True)

    def sweep_tmp(self, older_than_s: float = 3600.0) -> None:
        """Remove request folders left behind (e.g. by a cancelled request)."""
        now = time.time()
        for name in os.listdir(self.tmp_root):
            p = os.path.join(self.tmp_root, name)
            try:
                if now - os.path.getmtime(p) > older_than_s:
                    shutil.rmtree(p, ignore_errors=True)
            except OSError:
                pass

    def close(self) -> None:
        self.accepting = False
        self.queues.shutdown(wait=True, timeout=max(1.0, float(self.settings.graceful_timeout)))
        self.pool.close()
        self.sessions.close()
        shutil.rmtree(self.tmp_root, ignore_errors=True)
        if self.own_workspace:
            shutil.rmtree(self.workspace, ignore_errors=True)
        self.detach_logging()


def get_state(request: Request) -> ServerState:
    return request.app.state.aiaa
