"""Bad input never crashes the server: every malformed request is a 4xx with a message."""

from __future__ import annotations

import gzip
import http.client
import json
import os
import threading
import time

import pytest
from aiaa_test_client import LIMIT, AIAAClient
from aiaa_test_models import write_volume
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st


@pytest.fixture(scope="module")
def vol(tmp_path_factory) -> str:
    p = str(tmp_path_factory.mktemp("rb") / "image.nii.gz")
    write_volume(p, shape=(24, 24, 16))
    return p


def raw(live, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=60)
    conn.request(method, path, body, headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def multipart(params: str | None, filename: str | None = None, payload: bytes = b"", field: str = "datapoint"):
    body = b""
    if params is not None:
        body += f'--{LIMIT}\r\nContent-Disposition: form-data; name="params"\r\n\r\n{params}\r\n'.encode()
    if filename is not None:
        body += (f'--{LIMIT}\r\nContent-Disposition: form-data; name="{field}"; filename="{filename}"\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n").encode() + payload + b"\r\n"
    body += f"--{LIMIT}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={LIMIT}", "Content-Length": str(len(body))}


def assert_4xx(status: int, body: bytes, expect: int | None = None) -> None:
    assert 400 <= status < 500, (status, body[:300])
    if expect:
        assert status == expect, (status, body[:300])
    assert json.loads(body)["error"]


POINTS = [[2, 2, 2], [20, 2, 2], [10, 1, 2], [10, 20, 2], [10, 10, 1], [10, 10, 14]]


def test_bad_uploads_and_params(live, vol):
    good = open(vol, "rb").read()
    nii = gzip.decompress(good)
    dex = "/v1/dextr3d?model=annotation_ct_spleen"
    cases = [
        # (path, params, filename, payload, expected status or None for any 4xx)
        (dex, json.dumps({"points": POINTS}), "x.nii.gz", b"not an image at all", 400),
        (dex, json.dumps({"points": POINTS}), "x.nii.gz", good[: len(good) // 2], 400),
        (dex, json.dumps({"points": POINTS}), "x.nii", nii[:400], 400),
        (dex, json.dumps({"points": POINTS}), "x.nii.gz", b"", 400),
        (dex, json.dumps({"points": POINTS}), "x.txt", b"hello", 400),
        (dex, json.dumps({"points": POINTS}), "evil.png", b"\x89PNG\r\n\x1a\nbroken", 400),
        (dex, json.dumps({"points": POINTS}), None, b"", 400),
        (dex, "{not json", "x.nii.gz", good, 400),
        (dex, "[1, 2, 3]", "x.nii.gz", good, 400),
        (dex, json.dumps({"points": POINTS[:3]}), "x.nii.gz", good, 400),
        (dex, json.dumps({"points": [*POINTS[:5], [99, 2, 2]]}), "x.nii.gz", good, 400),
        (dex, json.dumps({"points": [*POINTS[:5], [-1, 2, 2]]}), "x.nii.gz", good, 400),
        (dex, '{"points": [[NaN, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1], [1, 1, 1]]}',
         "x.nii.gz", good, 400),
        (dex, json.dumps({"points": [["a", 1, 1]] * 6}), "x.nii.gz", good, 400),
        (dex, json.dumps({"points": [[1, 1]] * 6}), "x.nii.gz", good, 400),
        (dex, json.dumps({"points": "[[1, 2"}), "x.nii.gz", good, 400),
        (dex, json.dumps({"points": {"a": 1}}), "x.nii.gz", good, 400),
        (dex, json.dumps({"points": [[1e300, 1, 1]] * 6}), "x.nii.gz", good, 400),
        ("/v1/deepgrow?model=clara_deepgrow_3d", json.dumps({"foreground": [], "background": []}),
         "x.nii.gz", good, 400),
        ("/v1/deepgrow?model=clara_deepgrow_3d", json.dumps({"foreground": [[1, 1, 1]], "spatial_size": [0, 1]}),
         "x.nii.gz", good, 400),
        ("/v1/deepgrow?model=clara_deepgrow", json.dumps({"foreground": [[1, 1, 1]], "current_point": [1, 1, 3]}),
         "x.nii.gz", good, 400),
        ("/v1/dextr3d?model=nope", "{}", "x.nii.gz", good, 404),
        ("/v1/dextr3d?model=../../etc/passwd", "{}", "x.nii.gz", good, 400),
        ("/v1/dextr3d?model=a%2Fb", "{}", "x.nii.gz", good, 400),
        ("/v1/dextr3d", "{}", "x.nii.gz", good, 400),
        ("/v1/segmentation?model=annotation_ct_spleen", "{}", "x.nii.gz", good, 400),
        ("/v1/segmentation?model=segmentation_ct_spleen&session_id=deadbeef", "{}", None, b"", 440),
        ("/v1/mask2polygon", json.dumps({"more_points": "x"}), "x.nii.gz", good, 400),
        ("/v1/mask2polygon", json.dumps({"more_points": -5}), "x.nii.gz", good, 400),
        ("/v1/fixpolygon", json.dumps({"poly": [[[1, 1]]], "dimension": 2, "polygon_index": 5, "vertex_index": 0,
                                       "vertex_offset": [1, 1]}), "x.nii.gz", good, 400),
        ("/v1/fixpolygon", json.dumps({"poly": "garbage", "dimension": 3}), "x.nii.gz", good, 400),
        ("/v1/fixpolygon", json.dumps({"poly": [[[[1, None]]]], "dimension": 3, "slice_index": 0,
                                       "polygon_index": 0, "vertex_index": 0}), "x.nii.gz", good, 400),
    ]
    for path, params, filename, payload, expect in cases:
        body, headers = multipart(params, filename, payload)
        status, data = raw(live, "POST", path, body, headers)
        assert_4xx(status, data, expect)
    assert raw(live, "GET", "/v1/models")[0] == 200


def test_bad_bodies_sessions_and_sizes(live, vol):
    body, headers = multipart("{}", "x.nii.gz", open(vol, "rb").read())
    path = "/v1/segmentation?model=segmentation_ct_spleen"
    # boundary mismatch, garbage multipart, wrong content type, bad content-length
    bad_headers = {**headers, "Content-Type": "multipart/form-data; boundary=other"}
    assert_4xx(*raw(live, "POST", path, body, bad_headers))
    assert_4xx(*raw(live, "POST", path, b"garbage\r\n\r\n", {"Content-Type": "multipart/form-data"}))
    assert_4xx(*raw(live, "POST", path, b"abc", {"Content-Type": "text/plain"}), 415)
    assert_4xx(*raw(live, "POST", path, b"{bad", {"Content-Type": "application/json"}), 400)
    # oversize: announced, and streamed without a Content-Length (chunked)
    big = b"0" * (9 << 20)
    status, data = raw(live, "POST", path, big, {"Content-Type": "multipart/form-data; boundary=x"})
    assert_4xx(status, data, 413)
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=60)
    head = multipart("{}", "x.nii.gz", b"")[0].rsplit(f"--{LIMIT}--".encode(), 1)[0][:-2]
    conn.request("POST", path, iter([head] + [big[i:i + (1 << 20)] for i in range(0, len(big), 1 << 20)]),
                 {"Content-Type": f"multipart/form-data; boundary={LIMIT}"}, encode_chunked=True)
    r = conn.getresponse()
    assert_4xx(r.status, r.read(), 413)
    # sessions: unknown ids and odd ids are 440, bad expiry is 4xx
    for sid in ("0" * 32, "../../x", "x" * 300):
        assert raw(live, "GET", f"/session/{sid}")[0] in (404, 440)
        assert raw(live, "DELETE", f"/session/{sid}")[0] in (404, 440)
    assert_4xx(*raw(live, "PUT", "/session/?expiry=-3", *multipart(None, "x.nii.gz", open(vol, "rb").read())))
    assert_4xx(*raw(live, "PUT", "/session/", *multipart(None, "x.nii.gz", b"junk")), 400)
    assert_4xx(*raw(live, "PUT", "/session/", *multipart(None)), 400)
    # admin without a token or with a bad name
    assert_4xx(*raw(live, "DELETE", "/admin/model/segmentation_ct_spleen"), 401)
    assert raw(live, "GET", "/v1/models")[0] == 200


params_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.floats(allow_nan=True) | st.text(max_size=8),
    lambda c: st.lists(c, max_size=7) | st.dictionaries(st.text(max_size=6), c, max_size=3), max_leaves=30)


@settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck))
@given(
    endpoint=st.sampled_from(["/v1/dextr3d?model=annotation_ct_spleen", "/v1/deepgrow?model=clara_deepgrow_3d",
                              "/v1/deepgrow?model=clara_deepgrow", "/v1/fixpolygon", "/v1/mask2polygon",
                              "/v1/inference?model=segmentation_ct_spleen"]),
    key=st.sampled_from(["points", "foreground", "background", "current_point", "spatial_size", "poly",
                         "vertex_offset", "more_points", "polygon_index"]),
    value=params_values,
    payload=st.sampled_from(["good", "junk", "none"]),
)
def test_fuzz_params_and_uploads(live, vol, endpoint, key, value, payload):
    good = open(vol, "rb").read()
    params = json.dumps({key: value, "points": [[3, 3, 3]] * 6} if key != "points" else {key: value})
    data = {"good": good, "junk": os.urandom(64), "none": None}[payload]
    body, headers = multipart(params, "x.nii.gz" if data is not None else None, data or b"")
    status, out = raw(live, "POST", endpoint, body, headers)
    assert status == 200 or 400 <= status < 500, (status, out[:300])


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(blob=st.binary(max_size=600), name=st.sampled_from(["a.nii.gz", "a.nii", "a.png", "a.mha", "a.nrrd", "a"]))
def test_fuzz_random_files(live, blob, name):
    body, headers = multipart("{}", name, blob)
    status, out = raw(live, "POST", "/v1/segmentation?model=segmentation_ct_spleen", body, headers)
    assert 400 <= status < 500, (status, out[:300])


def test_concurrent_clients(live, vol):
    """8 clients at once (bounded): all answered 200, in bounded time, and the server stays up."""
    client = AIAAClient(live.url)
    results: list[int] = []
    lock = threading.Lock()

    def worker(i: int) -> None:
        for j in range(2):
            if (i + j) % 3 == 0:
                r = client.segmentation("segmentation_ct_spleen", vol)
            elif (i + j) % 3 == 1:
                r = client.dextr3d("annotation_ct_spleen", POINTS, vol)
            else:
                r = client.model_list()
            with lock:
                results.append(r.status)

    t0 = time.time()
    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert results == [200] * 16 and time.time() - t0 < 120
    assert live.server.started and raw(live, "GET", "/v1/models")[0] == 200
