"""Unit tests of the server's pieces: points, crop, queue, sessions, wire, polygons, shutdown."""

from __future__ import annotations

import asyncio
import os
import threading
import time

import numpy as np
import pytest

from ai4med.server.engines.deepgrow import center_box
from ai4med.server.engines.dextr3d import crop_box
from ai4med.server.errors import ApiError
from ai4med.server.points import parse_point_or_list, parse_points
from ai4med.server.queue import DeviceQueues
from ai4med.server.sessions import SessionStore
from ai4med.server.wire import parse_params, sniff_suffix


def test_crop_box_matches_the_clients_worked_example():
    """aiaa_api.md §3.4 step 8: 392x392x210 at (0.8, 0.8, 1.5), pad 20 mm."""
    pts = np.array([[52, 181, 126], [137, 152, 171], [97, 113, 148], [78, 227, 115], [72, 178, 80], [97, 175, 188]])
    box = crop_box(pts, (392, 392, 210), (0.8, 0.8, 1.5), 20.0)
    assert box == [[27, 162], [88, 252], [67, 201]]
    local = (pts - [b[0] for b in box]).tolist()
    assert local[0] == [25, 93, 59]


def test_points_parsing():
    assert parse_points("[[1, 2, 3]]", "p", (4, 4, 4)).tolist() == [[1, 2, 3]]
    assert parse_points([[1.0, 2.0]], "p", (4, 4)).tolist() == [[1, 2]]
    assert parse_points([[1, 2, 0]], "p", (4, 4)).tolist() == [[1, 2]]
    assert parse_point_or_list([1, 2, 3], "c", (4, 4, 4)).tolist() == [[1, 2, 3]]
    assert parse_point_or_list([[1, 2, 3]], "c", (4, 4, 4)).tolist() == [[1, 2, 3]]
    for bad in ([[4, 0, 0]], [[float("nan"), 0, 0]], [[True, 0, 0]], [[0, 0]], "[[0", {"a": 1}, [[0, 0, "x"]]):
        with pytest.raises(ApiError) as e:
            parse_points(bad, "p", (4, 4, 4))
        assert e.value.status == 400
    with pytest.raises(ApiError):
        parse_points([[0, 0, 0]], "p", (4, 4, 4), min_count=6)


def test_center_box_stays_inside():
    assert center_box([0, 0, 0], [8, 8, 8], (10, 10, 4)) == [[0, 8], [0, 8], [0, 4]]
    assert center_box([9, 9, 3], [8, 8, 8], (10, 10, 4)) == [[2, 10], [2, 10], [0, 4]]


def test_params_and_sniffing():
    assert parse_params(None) == {} and parse_params("") == {} and parse_params('{"a": 1}') == {"a": 1}
    assert parse_params('"{\\"a\\": 1}"') == {"a": 1}
    with pytest.raises(ApiError):
        parse_params('{"a": NaN}')
    assert sniff_suffix(b"\x1f\x8b\x08") == ".nii.gz" and sniff_suffix(b"\x89PNG\r\n\x1a\n") == ".png"
    assert sniff_suffix(b"hello") == ""


def test_device_queue_serialises_and_bounds():
    q = DeviceQueues(max_waiting=100)
    active, peak = [0], [0]
    lock = threading.Lock()

    def job(i: int) -> int:
        with lock:
            active[0] += 1
            peak[0] = max(peak[0], active[0])
        time.sleep(0.01)
        with lock:
            active[0] -= 1
        return i

    async def main() -> list[int]:
        return await asyncio.gather(*(q.run("cpu", job, i) for i in range(12)))

    assert asyncio.run(main()) == list(range(12)) and peak[0] == 1
    small = DeviceQueues(max_waiting=1)
    ev = threading.Event()

    async def busy() -> None:
        first = asyncio.ensure_future(small.run("cuda", ev.wait, 5))
        await asyncio.sleep(0.05)
        with pytest.raises(ApiError) as e:
            await small.run("cuda:0", time.sleep, 0)
        assert e.value.status == 503
        ev.set()
        await first

    asyncio.run(busy())
    q.shutdown()
    small.shutdown()
    with pytest.raises(ApiError):
        asyncio.run(q.run("cpu", job, 0))


def test_session_store_expiry_and_cleanup(tmp_path):
    store = SessionStore(str(tmp_path / "s"), default_expiry=1, max_sessions=2)
    srcs = []
    for i in range(3):
        p = tmp_path / f"f{i}.nii.gz"
        p.write_bytes(b"x")
        srcs.append(str(p))
    a = store.create(srcs[0], "a.nii.gz", {}, expiry=100)
    assert a.expiry == 1  # capped at the default
    b = store.create(srcs[1], "b.nii.gz", {})
    store.create(srcs[2], "c.nii.gz", {})
    assert len(store) == 2 and not os.path.exists(a.path)  # least recently used evicted
    with pytest.raises(ApiError) as e:
        store.get(a.session_id)
    assert e.value.status == 440
    time.sleep(1.2)
    assert store.sweep() == 2 and not os.path.exists(b.path)
    assert os.listdir(tmp_path / "s") == []


def test_graceful_shutdown_finishes_in_flight_requests(tmp_path):
    from aiaa_test_client import AIAAClient
    from aiaa_test_models import build_models, write_volume
    from live_server import LiveServer

    from ai4med.server.app import create_app
    from ai4med.server.settings import ServerSettings

    pool = build_models(str(tmp_path / "m"), roi=16)
    ws = tmp_path / "ws"
    server = LiveServer(create_app(ServerSettings(engine_pool=pool, workspace=str(ws)))).start()
    vol = str(tmp_path / "v.nii.gz")
    write_volume(vol, shape=(48, 48, 32))
    client = AIAAClient(server.url)
    sid = client.create_session(vol).json()["session_id"]
    out: list[int] = []
    t = threading.Thread(target=lambda: out.append(client.segmentation("segmentation_ct_spleen", vol).status))
    t.start()
    time.sleep(0.3)
    server.stop()
    t.join(60)
    assert out == [200]
    assert not (ws / "sessions" / sid).exists() and not (ws / "tmp").exists()


@pytest.mark.parametrize(("content", "message"), [(None, "file not found"), ("[1,", "not valid JSON"),
                                                  ('"x"', "engine pool must be a list of model objects")])
def test_serve_with_a_bad_engine_pool_file_is_one_error_line(tmp_path, capsys, content, message):
    """Checked before uvicorn starts: exit 1 and the reason, not a startup traceback (and exit 3)."""
    from ai4med.cli import main

    pool = tmp_path / "engine_pool.json"
    if content is not None:
        pool.write_text(content)
    assert main(["serve", "--config", str(pool), "--port", "1"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and "Traceback" not in err
