"""Bounded work per request (issue 17 item 1): budget (413), time limit (422), small lane, cancellation
of requests whose client left, bounded shutdown. Measured end to end by `bench/bounded_work.py`."""

from __future__ import annotations

import asyncio
import http.client
import json
import socket
import threading
import time

import pytest
from aiaa_test_client import LIMIT
from aiaa_test_models import build_models, write_volume
from live_server import LiveServer

from ai4med.common.cancel import check_cancelled
from ai4med.server.budget import work_voxels
from ai4med.server.errors import ApiError
from ai4med.server.queue import CLIENT_GONE, DeviceQueues


def slow_job(seconds: float, log: list | None = None, step: float = 0.01) -> int:
    """A model call of `seconds` that checks for cancellation between its 'windows'."""
    n = 0
    t_end = time.monotonic() + seconds
    while time.monotonic() < t_end:
        check_cancelled()
        t0 = time.monotonic()
        time.sleep(step)
        if log is not None:
            log.append((t0, time.monotonic()))
        n += 1
    return n


def test_small_request_is_not_stuck_behind_a_large_one():
    q = DeviceQueues(max_waiting=8, small_work=1000)
    large_windows: list = []
    small_span: list = []

    def small() -> str:
        t0 = time.monotonic()
        time.sleep(0.05)
        small_span.append((t0, time.monotonic()))
        return "small"

    async def main():
        big = asyncio.ensure_future(q.run("cpu", slow_job, 3.0, large_windows, work=10**9))
        await asyncio.sleep(0.3)
        t0 = time.monotonic()
        out = await q.run("cpu", small, work=500)
        dt = time.monotonic() - t0
        big.cancel()
        with pytest.raises(asyncio.CancelledError):
            await big
        return out, dt

    out, dt = asyncio.run(main())
    assert out == "small" and dt < 0.5, dt  # not the 3 s of the large job
    (s0, s1), = small_span
    # the large job paused between its windows while the small one ran: no window started during it
    # (the one in progress when the small job arrived finishes: a window is never interrupted)
    assert not [w for w in large_windows if s0 < w[0] < s1], (s0, s1)
    assert len(large_windows) > 5
    time.sleep(0.2)
    assert q.pending() == {"cpu": 0}  # the cancelled large job stopped at its next check
    q.shutdown()


def test_a_full_large_lane_does_not_turn_small_requests_away():
    q = DeviceQueues(max_waiting=2, small_work=1000)
    release = threading.Event()
    big = [q.submit("cpu", release.wait, 10, work=10**6) for _ in range(2)]
    with pytest.raises(ApiError) as e:
        q.submit("cpu", release.wait, 10, work=10**6)
    assert e.value.status == 503 and "large" in e.value.message
    assert q.submit("cpu", lambda: "small", work=10).future.result(timeout=5) == "small"
    release.set()
    assert [j.future.result(timeout=5) for j in big] == [True, True]
    q.shutdown()


def test_time_limit_and_disconnected_clients():
    q = DeviceQueues()
    counts: list[int] = []

    def counted(seconds: float) -> int:
        n = slow_job(seconds)
        counts.append(n)
        return n

    async def main():
        with pytest.raises(ApiError) as e:
            await q.run("cpu", counted, 10.0, time_limit=0.3)
        assert e.value.status == 422 and "--max-request-seconds" in e.value.message

        gone = {"v": False}

        async def disconnected() -> bool:
            return gone["v"]

        t0 = time.monotonic()
        first = asyncio.ensure_future(q.run("cpu", slow_job, 10.0, disconnected=disconnected))
        queued: list[int] = []
        second = asyncio.ensure_future(q.run("cpu", lambda: queued.append(1), disconnected=disconnected))
        await asyncio.sleep(0.3)
        gone["v"] = True  # both clients leave: the running job stops, the queued one never starts
        for fut in (first, second):
            with pytest.raises(ApiError) as e:
                await fut
            assert e.value.status == CLIENT_GONE
        assert time.monotonic() - t0 < 2.0 and queued == []

    asyncio.run(main())
    assert counts == []  # the 422 job never returned
    q.shutdown()


def test_shutdown_is_bounded_even_for_a_call_that_never_checks():
    q = DeviceQueues()
    never_checks = threading.Event()
    fut = q.submit("cpu", never_checks.wait, 30).future
    checks = q.submit("cpu", slow_job, 30.0, work=10).future  # small lane
    queued = q.submit("cpu", slow_job, 30.0).future  # behind the blocked large lane
    time.sleep(0.2)
    t0 = time.monotonic()
    q.shutdown(wait=True, timeout=1.0)
    assert time.monotonic() - t0 < 2.0
    for f in (checks, queued):
        with pytest.raises(ApiError) as e:
            f.result(timeout=2)
        assert e.value.status == 503
    never_checks.set()
    assert fut.result(timeout=2) is True


def test_work_voxels_by_model_type():
    assert work_voxels("segmentation", {"roi": [16, 16, 16]}, (8, 40, 40)) == 16 * 40 * 40
    assert work_voxels("segmentation", {"roi": [16] * 3, "spatial_size": [32] * 3}, (400, 400, 400)) == 32**3
    assert work_voxels("annotation", {"roi": [24] * 3}, (512, 512, 512)) == 24**3
    assert work_voxels("deepgrow", {"dimension": 2, "spatial_size": [64, 64]}, (512, 512, 90)) == 64 * 64
    assert work_voxels("classification", {}, (30, 40)) == 1200


# --- over HTTP ----------------------------------------------------------------------------------
def _body(path: str, params: dict) -> bytes:
    return (f'--{LIMIT}\r\nContent-Disposition: form-data; name="params"\r\n\r\n{json.dumps(params)}\r\n'
            f'--{LIMIT}\r\nContent-Disposition: form-data; name="datapoint"; filename="x.nii.gz"\r\n'
            "Content-Type: application/octet-stream\r\n\r\n").encode() + open(path, "rb").read() + \
        f"\r\n--{LIMIT}--\r\n".encode()


def _post(port: int, path: str, body: bytes) -> tuple[int, dict | bytes, float]:
    t0 = time.monotonic()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", path, body, {"Content-Type": f"multipart/form-data; boundary={LIMIT}"})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, (json.loads(data) if r.status != 200 else data), time.monotonic() - t0


@pytest.fixture(scope="module")
def bounded(tmp_path_factory):
    """A server with a small budget and time limit; its segmentation model is slowed (it checks
    between 'windows' as the scan-window inferer does)."""
    from ai4med.server.app import create_app
    from ai4med.server.settings import ServerSettings

    root = tmp_path_factory.mktemp("bounded")
    pool = build_models(str(root / "m"), roi=16)
    settings = ServerSettings(engine_pool=pool, workspace=str(root / "ws"), max_work_voxels=40**3,
                              max_request_seconds=1.0, small_work_voxels=32**3)
    app = create_app(settings)
    server = LiveServer(app).start()
    seg = app.state.aiaa.pool.get("segmentation_ct_spleen")
    real_predict = seg.pipeline.predict  # the model call of the engine's case pipeline

    def slow_predict(ctx):
        slow_job(float(seg.config.get("_test_seconds", 0)), step=0.02)
        return real_predict(ctx)

    seg.pipeline.predict = slow_predict
    vols = {}
    for n in (24, 48):
        vols[n] = str(root / f"v{n}.nii.gz")
        write_volume(vols[n], shape=(n, n, n))
    yield server, seg, vols
    server.stop()


def test_over_budget_is_413_naming_the_setting(bounded):
    server, seg, vols = bounded
    seg.config["_test_seconds"] = 0
    status, err, _ = _post(server.port, "/v1/segmentation?model=segmentation_ct_spleen", _body(vols[48], {}))
    assert status == 413 and "--max-work-voxels" in err["error"] and "110592" in err["error"], err
    status, _, _ = _post(server.port, "/v1/segmentation?model=segmentation_ct_spleen", _body(vols[24], {}))
    assert status == 200


def test_long_request_stops_at_the_time_limit_and_small_ones_pass_it(bounded):
    server, seg, vols = bounded
    seg.config["_test_seconds"] = 30  # would compute 30 s
    out: dict = {}
    seg_path = "/v1/segmentation?model=segmentation_ct_spleen"
    big = threading.Thread(target=lambda: out.setdefault("big", _post(server.port, seg_path, _body(vols[24], {}))))
    big.start()
    time.sleep(0.3)
    points = [[2, 12, 12], [21, 12, 12], [12, 2, 12], [12, 21, 12], [12, 12, 2], [12, 12, 21]]
    status, _, dt = _post(server.port, "/v1/dextr3d?model=annotation_ct_spleen", _body(vols[24], {"points": points}))
    assert status == 200 and dt < 2.0, dt  # the small lane: not behind the 30 s request
    big.join(20)
    status, err, dt = out["big"]
    assert status == 422 and "max-request-seconds" in err["error"] and dt < 10, (status, err, dt)
    seg.config["_test_seconds"] = 0


def test_a_request_whose_client_left_is_stopped(bounded):
    server, seg, vols = bounded
    seg.config["_test_seconds"] = 0.8  # under the time limit: only the disconnect can stop it early
    stats0 = dict(seg.stats)
    sock = socket.create_connection(("127.0.0.1", server.port))
    body = _body(vols[24], {})
    head = (f"POST /v1/segmentation?model=segmentation_ct_spleen HTTP/1.1\r\nHost: x\r\n"
            f"Content-Type: multipart/form-data; boundary={LIMIT}\r\nContent-Length: {len(body)}\r\n\r\n").encode()
    sock.sendall(head + body)
    time.sleep(0.3)
    sock.close()  # the client leaves mid-computation
    t0 = time.monotonic()
    while server.server.config.app.state.aiaa.queues.pending().get("cpu", 0) and time.monotonic() - t0 < 5:
        time.sleep(0.02)
    assert seg.stats["errors"] == stats0["errors"] + 1  # stopped (an error), not completed
    seg.config["_test_seconds"] = 0


def test_sigterm_exits_within_the_graceful_timeout(tmp_path):
    """`ai4med serve` killed with SIGTERM during a long request exits after --graceful-timeout, not after
    the request (the old queue waited for the model call: 253 s in the issue)."""
    import os
    import signal
    import subprocess
    import sys

    pool = build_models(str(tmp_path / "m"), roi=16)
    vol = str(tmp_path / "big.nii.gz")
    write_volume(vol, shape=(288, 288, 288))  # 5832+ windows of 16^3 (and a 288^3 stitch): seconds on CPU
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    env = {**os.environ, "PYTHONPATH": os.getcwd() + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "ai4med", "serve", "--config", pool, "--port", str(port),
                             "--workspace", str(tmp_path / "ws"), "--max-work-voxels", "0",
                             "--max-request-seconds", "0", "--graceful-timeout", "2", "--log-level", "warning"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        t0 = time.monotonic()
        while True:
            try:
                c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
                c.request("GET", "/")
                if c.getresponse().status == 200:
                    break
            except OSError:
                assert proc.poll() is None and time.monotonic() - t0 < 90, "server did not start"
                time.sleep(0.2)
        out: dict = {}
        seg_path = "/v1/segmentation?model=segmentation_ct_spleen"
        t = threading.Thread(target=lambda: out.setdefault("r", _post(port, seg_path, _body(vol, {}))))
        t.start()
        time.sleep(2.5)
        assert not out, out  # still computing
        t0 = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        proc.wait(60)
        took = time.monotonic() - t0
        t.join(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert took < 2 + 4, took  # the graceful timeout plus the stop at the next window
    assert out["r"][0] == 503, out["r"][:2]
