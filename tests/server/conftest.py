"""Fixtures: tiny models and a real uvicorn server on a loopback port (one per test module)."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")


class LiveServer:
    """uvicorn serving `app` on 127.0.0.1:<free port> in a thread."""

    def __init__(self, app) -> None:
        import uvicorn

        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        cfg = uvicorn.Config(app, log_level="warning", lifespan="on", timeout_graceful_shutdown=10)
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)

    def start(self, timeout: float = 60) -> LiveServer:
        self.thread.start()
        t0 = time.time()
        while not self.server.started:
            if not self.thread.is_alive() or time.time() - t0 > timeout:
                raise RuntimeError("server did not start")
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(30)
        self.sock.close()


@pytest.fixture(scope="session")
def model_root(tmp_path_factory) -> str:
    from aiaa_test_models import build_models

    root = tmp_path_factory.mktemp("models")
    build_models(str(root))
    return str(root)


@pytest.fixture(scope="session")
def live(model_root, tmp_path_factory) -> Iterator[LiveServer]:
    import os

    from ai4med.server.app import create_app
    from ai4med.server.settings import ServerSettings

    ws = tmp_path_factory.mktemp("workspace")
    settings = ServerSettings(engine_pool=os.path.join(model_root, "engine_pool.json"), workspace=str(ws),
                              admin_token="s3cret", max_upload_bytes=8 << 20, path_prefix="/aiaa",
                              session_expiry=600)
    server = LiveServer(create_app(settings)).start()
    yield server
    server.stop()
