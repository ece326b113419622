"""Serve a Triton model repository with the tritonserver bundled in nvidia-pytriton (no Docker).

`ai4med export --triton_backend python` writes a repository this server can serve (its
Python backend runs the ONNX export). The Python-backend stub links the system
libpython3.11, so run it from a virtual environment made with Debian's /usr/bin/python3.11.
Install nvidia-pytriton with `pip install --no-deps nvidia-pytriton` (its dependencies
would downgrade numpy).

    python -m ai4med.deploy.triton_local --model_repository my_export/triton --http_port 8000 --grpc_port 8001

blocks until Ctrl-C; `start_triton(...)` is the same from Python (used by the tests).

Example (needs nvidia-pytriton):
    >>> with start_triton("export/triton") as server:  # doctest: +SKIP
    ...     server.http, server.grpc
    ('127.0.0.1:8000', '127.0.0.1:8001')
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import signal
import socket
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["start_triton", "free_ports", "TritonHandle", "main"]

logger = logging.getLogger(__name__)


def free_ports(n: int, host: str = "127.0.0.1") -> list[int]:
    """`n` ports free on `host` now."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind((host, 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


@dataclass
class TritonHandle:
    """A running server: its HTTP and gRPC addresses ("host:port")."""

    http: str
    grpc: str
    triton: Any


def _ready(url: str, models: Sequence[str]) -> bool:
    import tritonclient.http as httpclient

    try:
        client = httpclient.InferenceServerClient(url, connection_timeout=2.0, network_timeout=2.0)
        try:
            return bool(client.is_server_ready()) and all(client.is_model_ready(m) for m in models)
        finally:
            client.close()
    except Exception:
        return False


@contextlib.contextmanager
def start_triton(model_repository: str, models: Sequence[str] = (), host: str = "127.0.0.1",
                 http_port: int | None = None, grpc_port: int | None = None, metrics_port: int | None = None,
                 ready_timeout: float = 60.0) -> Iterator[TritonHandle]:
    """Start the bundled tritonserver on `model_repository`; stop it on exit.

    Args:
        models: model names to wait for (within `ready_timeout` seconds after the server answers).
        http_port / grpc_port / metrics_port: None picks free ports.

    Raises:
        RuntimeError: nvidia-pytriton missing, the server did not start, or a model not ready in time.
    """
    try:
        from pytriton.triton import Triton, TritonConfig
    except ImportError as e:
        raise RuntimeError(f"nvidia-pytriton is not installed (pip install --no-deps nvidia-pytriton): {e}") from e
    ports = free_ports(3, host)
    http_port, grpc_port, metrics_port = http_port or ports[0], grpc_port or ports[1], metrics_port or ports[2]
    config = TritonConfig(model_repository=str(model_repository), http_address=host, grpc_address=host,
                          http_port=http_port, grpc_port=grpc_port, metrics_port=metrics_port, exit_timeout_secs=2)
    triton = Triton(config=config)
    try:
        try:
            triton.run()  # returns once the server answers (pytriton's own start-up timeout)
        except Exception as e:
            raise RuntimeError(f"Triton server did not start: {type(e).__name__}: {e}") from e
        http = f"{host}:{http_port}"
        deadline = time.monotonic() + ready_timeout
        while not _ready(http, models):
            if time.monotonic() > deadline:
                raise RuntimeError(f"Triton model(s) {list(models)} not ready within {ready_timeout:g} s (the "
                                   "Python-backend stub needs the system libpython3.11)")
            time.sleep(0.2)
        yield TritonHandle(http, f"{host}:{grpc_port}", triton)
    finally:
        triton.stop()


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m ai4med.deploy.triton_local",
                                description="serve a Triton model repository with nvidia-pytriton's tritonserver")
    p.add_argument("--model_repository", required=True, help="e.g. the triton/ folder of `ai4med export`")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--http_port", type=int, default=8000)
    p.add_argument("--grpc_port", type=int, default=8001)
    p.add_argument("--metrics_port", type=int, default=8002)
    p.add_argument("--ready_timeout", type=float, default=60.0)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Ctrl-C, SIGINT (also when started in the background, where it is ignored) and SIGTERM stop the server
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    try:
        with start_triton(args.model_repository, (), args.host, args.http_port, args.grpc_port, args.metrics_port,
                          args.ready_timeout) as server:
            print(f"Triton serving {args.model_repository}: http {server.http}, grpc {server.grpc} (Ctrl-C stops)",
                  flush=True)
            while True:
                time.sleep(3600)
    except KeyboardInterrupt:
        return 0
    except RuntimeError as e:
        print(f"error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
