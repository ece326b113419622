"""ServerSettings: everything the app needs, passed to `create_app` (no globals, no os.environ)."""

from __future__ import annotations

import argparse
import os
from dataclasses import dataclass, field


@dataclass
class ServerSettings:
    """Settings of one annotation server.

    Args:
        engine_pool: path of engine_pool.json (None: start with no models).
        workspace: folder for sessions, admin-uploaded models, temp files and the log
            file (None: a fresh temp folder, removed at shutdown).
        device: default device of models ("cpu", "cuda", "cuda:1").
        admin_token: token required by the admin API; None disables PUT/DELETE.
        max_upload_bytes: largest accepted request body (413 above).
        max_image_voxels: largest image (voxels x channels) read from an upload (413 above).
        max_work_voxels: largest compute budget of one request, in voxels the model runs on
            (`ai4med.server.budget`; 413 above). None: by the model's device (CPU 192^3,
            CUDA 2 x 512^3), sized so a request finishes in seconds; 0: no limit.
        max_request_seconds: a request computing longer is stopped between its scan
            windows and answered 422 (0: no limit).
        small_work_voxels: requests of at most this work take the device's small-request
            lane, which large requests yield to between their windows.
        graceful_timeout: seconds a shutdown (SIGTERM) waits for requests in flight.
        session_expiry: default and largest session lifetime in seconds.
        session_sweep_s: how often expired sessions are removed.
        max_queue: requests waiting per device (and per small / large lane) before 503.
        path_prefix: also serve every route under this prefix (the Python client keeps
            the path of its server URL, e.g. `http://host:5000/aiaa`).
        log_lines: lines kept in memory for `/logs`.
        dicomweb: a DICOMweb root whose series requests may name instead of uploading, and where
            `store_seg` stores results (`ai4med.server.dicomweb_source`).

    Example:
        >>> ServerSettings(max_upload_bytes=10).max_upload_bytes
        10
    """

    engine_pool: str | None = None
    workspace: str | None = None
    dicomweb: str | None = None
    device: str = "cpu"
    admin_token: str | None = None
    max_upload_bytes: int = 1 << 30
    max_image_voxels: int = 512 * 512 * 1024
    max_work_voxels: int | None = None
    max_request_seconds: float = 60.0
    small_work_voxels: int = 128**3
    graceful_timeout: float = 30.0
    session_expiry: int = 3600
    session_sweep_s: float = 30.0
    max_queue: int = 64
    path_prefix: str = ""
    log_lines: int = 2000
    extra: dict = field(default_factory=dict)

    def work_limit(self, device: str) -> int:
        """`max_work_voxels` for a model on `device` (0: none)."""
        from ai4med.server.budget import default_work_limit

        return default_work_limit(device) if self.max_work_voxels is None else max(0, int(self.max_work_voxels))

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ServerSettings:
        """Settings from `ai4med serve` arguments (see `cli_args.add_serve_args`)."""
        token = args.admin_token if args.admin_token is not None else os.environ.get("AIAA_ADMIN_TOKEN")
        return cls(
            engine_pool=args.config,
            workspace=args.workspace,
            device=args.device,
            admin_token=token or None,
            max_upload_bytes=int(args.max_upload_mb * (1 << 20)),
            session_expiry=args.session_expiry,
            max_queue=args.max_queue,
            path_prefix=args.path_prefix,
            max_work_voxels=getattr(args, "max_work_voxels", None),
            max_request_seconds=float(getattr(args, "max_request_seconds", 60.0)),
            graceful_timeout=float(getattr(args, "graceful_timeout", 30.0)),
            dicomweb=getattr(args, "dicomweb", None),
        )
