"""SessionStore: uploaded images kept server-side for later `?session_id=` calls.

Each session is a folder under the store's root holding the image file; it expires
`expiry` seconds after its last use (`min(requested, default)`, 0 = default). Expired
sessions are removed by `sweep()` (the app runs it periodically) and on access; an
unknown or expired id is answered with HTTP 440 (AIAA's "session expired").

Example:
    >>> import os, tempfile
    >>> store = SessionStore(tempfile.mkdtemp(), default_expiry=60)
    >>> src = os.path.join(tempfile.mkdtemp(), "x.nii.gz"); _ = open(src, "wb").write(b"x")
    >>> s = store.create(src, "x.nii.gz", {"shape": [1]}, expiry=0)
    >>> store.get(s.session_id).expiry, store.delete(s.session_id)
    (60, True)
"""

from __future__ import annotations

import os
import re
import shutil
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from ai4med.server.errors import SESSION_EXPIRED, ApiError

_ID = re.compile(r"^[0-9a-f]{32}$")


@dataclass
class Session:
    session_id: str
    path: str
    name: str
    expiry: int
    create_ts: float
    last_access_ts: float
    meta: dict[str, Any] = field(default_factory=dict)

    def expired(self, now: float) -> bool:
        return now - self.last_access_ts > self.expiry

    def info(self) -> dict[str, Any]:
        return {
            "session_id": self.session_id,
            "name": self.name,
            "expiry": self.expiry,
            "create_ts": int(self.create_ts),
            "last_access_ts": int(self.last_access_ts),
            "expires_in": max(0, int(self.last_access_ts + self.expiry - time.time())),
            **self.meta,
        }


class SessionStore:
    """Thread-safe session folders under `root` with expiry.

    Args:
        root: folder for the session folders (created).
        default_expiry: lifetime for `expiry=0` and the largest allowed (seconds).
        max_sessions: sessions kept at once; creating one more evicts the least recently used.
    """

    def __init__(self, root: str, default_expiry: int = 3600, max_sessions: int = 256) -> None:
        self.root = root
        self.default_expiry = max(1, int(default_expiry))
        self.max_sessions = max(1, int(max_sessions))
        os.makedirs(root, exist_ok=True)
        self._sessions: dict[str, Session] = {}
        self._lock = threading.Lock()

    def create(self, src_path: str, name: str, meta: dict[str, Any], expiry: int = 0) -> Session:
        """Move `src_path` into a new session folder."""
        expiry = int(expiry or 0)
        if expiry < 0:
            raise ApiError(400, f"expiry must be >= 0 seconds, got {expiry}")
        expiry = self.default_expiry if expiry == 0 else min(expiry, self.default_expiry)
        sid = uuid.uuid4().hex
        folder = os.path.join(self.root, sid)
        os.makedirs(folder)
        dst = os.path.join(folder, "image" + _suffix(src_path))
        shutil.move(src_path, dst)
        now = time.time()
        s = Session(sid, dst, name, expiry, now, now, dict(meta))
        with self._lock:
            self._sessions[sid] = s
            evict = sorted(self._sessions.values(), key=lambda x: x.last_access_ts)
            evict = evict[: max(0, len(evict) - self.max_sessions)]
            for old in evict:
                self._sessions.pop(old.session_id, None)
        for old in evict:
            self._remove(old)
        return s

    def get(self, session_id: str | None, touch: bool = True) -> Session:
        """The live session `session_id` (its expiry clock restarts); 440 if unknown or expired."""
        sid = str(session_id or "")
        now = time.time()
        with self._lock:
            s = self._sessions.get(sid) if _ID.match(sid) else None
            if s is not None and s.expired(now):
                self._sessions.pop(sid, None)
                dead, s = s, None
            else:
                dead = None
            if s is not None and touch:
                s.last_access_ts = now
        if dead is not None:
            self._remove(dead)
        if s is None:
            raise ApiError(SESSION_EXPIRED, f"session {sid[:64]!r} is unknown or has expired")
        return s

    def delete(self, session_id: str) -> bool:
        with self._lock:
            s = self._sessions.pop(str(session_id), None)
        if s is None:
            return False
        self._remove(s)
        return True

    def sweep(self) -> int:
        """Remove expired sessions; returns how many."""
        now = time.time()
        with self._lock:
            dead = [s for s in self._sessions.values() if s.expired(now)]
            for s in dead:
                self._sessions.pop(s.session_id, None)
        for s in dead:
            self._remove(s)
        return len(dead)

    def close(self) -> None:
        """Remove every session (shutdown)."""
        with self._lock:
            dead = list(self._sessions.values())
            self._sessions.clear()
        for s in dead:
            self._remove(s)

    def __len__(self) -> int:
        with self._lock:
            return len(self._sessions)

    def _remove(self, s: Session) -> None:
        shutil.rmtree(os.path.dirname(s.path), ignore_errors=True)


def _suffix(path: str) -> str:
    low = path.lower()
    if low.endswith(".nii.gz"):
        return ".nii.gz"
    return os.path.splitext(low)[1]
