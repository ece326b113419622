"""Fixtures: tiny models and a real uvicorn server on a loopback port (one per test module)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

pytest.importorskip("fastapi")
pytest.importorskip("uvicorn")

from live_server import LiveServer  # noqa: E402


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
