"""Arguments of `ai4med serve` (argparse only: the CLI imports this for a fast --help).

Example:
    >>> import argparse
    >>> p = argparse.ArgumentParser(); add_serve_args(p)
    >>> a = p.parse_args(["--config", "engine_pool.json", "--port", "8000"])
    >>> a.host, a.port, a.workspace
    ('127.0.0.1', 8000, None)
"""

from __future__ import annotations

import argparse


def add_serve_args(p: argparse.ArgumentParser) -> None:
    """Add the `serve` options (seed 004 `start_aas.sh --config engine_pool.json`)."""
    p.add_argument("--config", required=True, help="engine_pool.json: the models to serve (seed 004 format)")
    p.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    p.add_argument("--port", type=int, default=5000, help="port to listen on (default 5000)")
    p.add_argument("--workspace", default=None,
                   help="folder for sessions, uploaded models, temp files and logs (default: a temp folder)")
    p.add_argument("--device", default="cpu", help="default device for models: cpu, cuda, cuda:1 (default cpu)")
    p.add_argument("--admin-token", default=None,
                   help="token for PUT/DELETE /admin/model/* (default: $AIAA_ADMIN_TOKEN; unset = admin API off)")
    p.add_argument("--max-upload-mb", type=float, default=1024.0, help="largest accepted request body (MiB)")
    p.add_argument("--session-expiry", type=int, default=3600, help="default and largest session lifetime (s)")
    p.add_argument("--max-queue", type=int, default=64, help="requests waiting per device and lane (small, large) before 503")
    p.add_argument("--max-work-voxels", type=int, default=None,
                   help="largest compute budget per request, in voxels the model runs on; larger requests "
                        "get 413 (default: CPU 192^3, CUDA 2x512^3; 0 = no limit)")
    p.add_argument("--max-request-seconds", type=float, default=60.0,
                   help="stop a request computing longer than this, between scan windows, with 422 (0 = no limit)")
    p.add_argument("--graceful-timeout", type=float, default=30.0,
                   help="seconds SIGTERM waits for requests in flight before stopping them (default 30)")
    p.add_argument("--dicomweb", default=None, metavar="URL",
                   help="DICOMweb root: requests may name a series (params study/series) instead of uploading, and "
                        "store_seg stores the result there as DICOM SEG")
    p.add_argument("--path-prefix", default="", help="serve every route also under this prefix (e.g. /aiaa)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
