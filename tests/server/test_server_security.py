"""Token means token (issue 17 item 5), no server paths in error messages, and an error reply keeps
the keep-alive connection usable (item 2)."""

from __future__ import annotations

import gzip
import http.client
import json
import re

import pytest
from aiaa_test_client import LIMIT

from ai4med.server.errors import scrub_paths

TOKEN = {"X-Admin-Token": "s3cret"}


def _flat_routes(routes) -> list:
    """Every route object, looking inside included routers (FastAPI >= 0.120 keeps them lazy)."""
    out = []
    for r in routes:
        if hasattr(r, "effective_route_contexts"):
            out.extend(r.effective_route_contexts())
        elif hasattr(r, "path") and hasattr(r, "methods"):
            out.append(r)
        elif hasattr(r, "routes"):
            out.extend(_flat_routes(r.routes))
    return out


def _routes(app) -> list[tuple[str, str]]:
    """(method, path) of every route of the app, with `{param}` filled in."""
    out = []
    for r in _flat_routes(app.routes):
        for m in sorted(getattr(r, "methods", None) or ()):
            if m in ("HEAD", "OPTIONS"):
                continue
            out.append((m, re.sub(r"\{[^}]+\}", "segmentation_ct_spleen", r.path)))
    return out


def _request(live, method: str, path: str, headers: dict | None = None, conn=None) -> tuple[int, bytes]:
    own = conn is None
    conn = conn or http.client.HTTPConnection("127.0.0.1", live.port, timeout=60)
    body = b"" if method in ("GET", "DELETE") else b"{}"
    conn.request(method, path, body, {"Content-Type": "application/json", **(headers or {})})
    r = conn.getresponse()
    data = r.read()
    if own:
        conn.close()
    return r.status, data


def test_every_admin_and_logs_route_needs_the_token(live):
    app = live.server.config.app
    private = [(m, p) for m, p in _routes(app) if re.match(r"^(/aiaa)?/(admin|logs)(/|$)", p)]
    paths = {p for _, p in private}
    # the app really has these routes (also under the path prefix), so the loop below checks something
    assert {"/logs", "/logs/", "/admin/model", "/admin/model/segmentation_ct_spleen",
            "/aiaa/logs", "/aiaa/admin/model"} <= paths, sorted(paths)
    assert {m for m, _ in private} >= {"GET", "PUT", "DELETE"}
    for method, path in private:
        for headers in ({}, {"X-Admin-Token": "wrong"}, {"Authorization": "Bearer nope"}):
            status, data = _request(live, method, path, headers)
            assert status == 401, (method, path, headers, status, data[:200])
    # with the token the read-only ones answer (PUT/DELETE are not sent: they would change the pool)
    for method, path in private:
        if method == "GET":
            status, data = _request(live, method, path, TOKEN)
            assert status == 200, (path, status, data[:200])
    status, data = _request(live, "GET", "/logs", {"Authorization": "Bearer s3cret"})
    assert status == 200 and b"GET /logs" in data


def test_without_a_token_read_only_admin_is_open_and_changes_are_off(tmp_path):
    from starlette.testclient import TestClient

    from ai4med.server.app import create_app
    from ai4med.server.settings import ServerSettings

    with TestClient(create_app(ServerSettings(workspace=str(tmp_path / "ws")))) as c:
        assert c.get("/logs").status_code == 200
        assert c.get("/admin/model").status_code == 200
        assert c.delete("/admin/model/x").status_code == 403


def test_error_messages_carry_no_server_paths(live, tmp_path):
    ws = live.server.config.app.state.aiaa.workspace
    bad_gz = gzip.compress(b"\x00" * 100)[:30]  # a truncated gzip named .nii.gz: the NIfTI pre-check fails
    for name, payload in (("x.nii.gz", bad_gz), ("x.nii", b"\x5c\x01\x00\x00" + b"\x00" * 400), ("x.mha", b"junk")):
        body = (f'--{LIMIT}\r\nContent-Disposition: form-data; name="datapoint"; filename="{name}"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n").encode() + payload + f"\r\n--{LIMIT}--\r\n".encode()
        conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=60)
        conn.request("POST", "/v1/segmentation?model=segmentation_ct_spleen", body,
                     {"Content-Type": f"multipart/form-data; boundary={LIMIT}"})
        r = conn.getresponse()
        msg = json.loads(r.read())["error"]
        conn.close()
        assert r.status == 400 and msg, (name, r.status, msg)
        assert ws not in msg and "/tmp/" not in msg and not re.search(r"(^|\s|')/\w+/\w+", msg), msg


@pytest.mark.parametrize("text, expect", [
    ("cannot read /tmp/aiaa-1/tmp/q/upload0.nii.gz: not gzip", "cannot read upload0.nii.gz: not gzip"),
    ("File '/work/data/x.nii' is short", "File 'x.nii' is short"),
    ("POST /v1/segmentation then GET /admin/model/a", "POST /v1/segmentation then GET /admin/model/a"),
])
def test_scrub_paths(text, expect):
    assert scrub_paths(text) == expect


def test_500_reply_keeps_the_connection_usable(live, monkeypatch):
    """An unexpected exception is a JSON 500 and the same keep-alive connection serves the next request."""
    from ai4med.server.routers import models as models_router

    def boom(*a, **k):
        raise RuntimeError("simulated bug in /work/secret/place.py")

    monkeypatch.setattr(models_router, "find_engine", boom)
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=60)
    status, data = _request(live, "GET", "/v1/models?model=x", conn=conn)
    assert status == 500, data
    msg = json.loads(data)["error"]
    assert "RuntimeError" in msg and "/work/secret" not in msg and "place.py" in msg
    status, data = _request(live, "GET", "/v1/models", conn=conn)  # same socket
    assert status == 200 and isinstance(json.loads(data), list)
    status, data = _request(live, "GET", "/nope", conn=conn)  # a 404 too leaves it open
    assert status == 404
    assert _request(live, "GET", "/v1/models", conn=conn)[0] == 200
    conn.close()


def test_stale_admin_staging_folders_are_removed_at_start(tmp_path):
    import os
    import time

    from ai4med.server.settings import ServerSettings
    from ai4med.server.state import ServerState

    models = tmp_path / "ws" / "models"
    stale, fresh, model = models / ".stage-abc123", models / ".stage-new", models / "kept_model"
    for d in (stale, fresh, model):
        d.mkdir(parents=True)
        (d / "model.pt").write_bytes(b"x")
    old = time.time() - 600
    for d in (stale, model):
        os.utime(d, (old, old))
    os.utime(fresh, (time.time() + 60, time.time() + 60))  # a concurrent server's upload in progress
    state = ServerState(ServerSettings(workspace=str(tmp_path / "ws")))
    assert not stale.exists() and fresh.exists() and (model / "model.pt").exists()
    state.close()
