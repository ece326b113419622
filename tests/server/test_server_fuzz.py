"""Property-based fuzz of every endpoint (issue 17 item 2): mutate a valid request (its params,
its image, its query / path values) and assert the server never answers 5xx.

Each endpoint starts from a request that succeeds; hypothesis (derandomized: the same examples
every run) replaces a key, a nested value (huge ints, NaN, wrong types), drops keys, sends
non-JSON, or damages the image (truncated, bytes flipped, NIfTI header fields rewritten,
another file name). A 4xx must carry a JSON `error`. The server is a private one (its own
workspace and token), so admin mutations never touch the shared test server.
"""

from __future__ import annotations

import copy
import gzip
import http.client
import json
import math
import os
import struct
import urllib.parse

import pytest
from aiaa_test_client import LIMIT
from aiaa_test_models import build_models, write_mask_volume, write_png, write_volume
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from live_server import LiveServer

TOKEN = "fuzz-token"
EXAMPLES = 40

EDGE_NUMBERS = [2**64, 10**400, -(10**400), 2**63 - 1, -1, 0, 1e308, -1e308, 1e-320, math.nan, math.inf]
scalars = (st.none() | st.booleans() | st.integers() | st.integers(-3, 40) | st.sampled_from(EDGE_NUMBERS)
           | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=8))
json_values = st.recursive(scalars, lambda c: st.lists(c, max_size=6) | st.dictionaries(st.text(max_size=8), c,
                                                                                        max_size=4), max_leaves=24)
NUMBER_TWEAKS = [lambda v: v + 1, lambda v: -v - 1, lambda v: v * 1000, lambda v: 2**64, lambda v: 10**400,
                 lambda v: -(2**63), lambda v: 0.5, lambda v: math.nan, lambda v: math.inf, lambda v: "1",
                 lambda v: None, lambda v: [v], lambda v: True]


@pytest.fixture(scope="module")
def fuzz(tmp_path_factory):
    from ai4med.server.app import create_app
    from ai4med.server.settings import ServerSettings

    root = tmp_path_factory.mktemp("fuzz")
    pool = build_models(str(root / "m"), roi=16)
    files = {k: str(root / n) for k, n in (("vol", "v.nii.gz"), ("mask", "m.nii.gz"), ("png", "p.png"),
                                           ("slice", "s.png"))}
    write_volume(files["vol"], shape=(24, 24, 16))
    write_mask_volume(files["mask"])
    write_png(files["png"], shape=(32, 32))
    write_png(files["slice"], shape=(30, 40), value=0)
    blobs = {k: open(p, "rb").read() for k, p in files.items()}
    blobs["model"] = open(os.path.join(root, "m", "models", "segmentation.pt"), "rb").read()
    seg_cfg = json.load(open(os.path.join(root, "m", "segmentation_ct_spleen.json")))
    settings_ = ServerSettings(engine_pool=pool, workspace=str(root / "ws"), admin_token=TOKEN,
                               max_upload_bytes=4 << 20, max_image_voxels=64**3 * 4, max_work_voxels=64**3,
                               max_request_seconds=20)
    server = LiveServer(create_app(settings_)).start()
    yield server, blobs, seg_cfg
    server.stop()


def request(port: int, method: str, path: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    conn.request(method, path, body, headers or {})
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, data


def multipart(fields: dict[str, str | None], files: list[tuple[str, str, bytes]]) -> tuple[bytes, dict]:
    body = b""
    for k, v in fields.items():
        if v is not None:
            body += f'--{LIMIT}\r\nContent-Disposition: form-data; name="{k}"\r\n\r\n'.encode() + v.encode() + b"\r\n"
    for field, name, data in files:
        body += (f'--{LIMIT}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n").encode() + data + b"\r\n"
    body += f"--{LIMIT}--\r\n".encode()
    return body, {"Content-Type": f"multipart/form-data; boundary={LIMIT}"}


def check(status: int, data: bytes, what: str) -> None:
    assert status < 500, (what, status, data[:400])
    if 400 <= status < 500:
        assert json.loads(data).get("error"), (what, status, data[:200])


# --- mutations ------------------------------------------------------------------------------------
def _leaves(obj, path=()):
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _leaves(v, (*path, k))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _leaves(v, (*path, i))
    yield path


def _set(obj, path, value):
    if not path:
        return value
    cur = obj
    for p in path[:-1]:
        cur = cur[p]
    cur[path[-1]] = value
    return obj


@st.composite
def mutated_params(draw, valid: dict, keys: tuple[str, ...] = ()) -> str | None:
    """The `params` text of a mutated valid params object (or None: the field absent)."""
    p = copy.deepcopy(valid)
    op = draw(st.sampled_from(["leaf"] * 3 + ["number"] * 4 + ["key", "drop", "add", "whole", "text", "none"]))
    paths = [q for q in _leaves(p) if q]
    if op in ("leaf", "number") and paths:
        path = draw(st.sampled_from(paths))
        cur = p
        for q in path:
            cur = cur[q]
        if op == "number" and isinstance(cur, (int, float)) and not isinstance(cur, bool):
            p = _set(p, path, draw(st.sampled_from(NUMBER_TWEAKS))(cur))
        else:
            p = _set(p, path, draw(json_values))
    elif op == "key" and p:
        p[draw(st.sampled_from(sorted(p)))] = draw(json_values)
    elif op == "drop" and p:
        p.pop(draw(st.sampled_from(sorted(p))))
    elif op == "add":
        p[draw(st.sampled_from(list(keys) or ["x"]) | st.text(max_size=6))] = draw(json_values)
    elif op == "whole":
        return json.dumps(draw(json_values))
    elif op == "text":
        return draw(st.text(max_size=40))
    elif op == "none":
        return None
    return json.dumps(p)


NIFTI_FIELDS = [(40, "h", 8), (70, "h", 1), (72, "h", 1), (76, "f", 8), (108, "f", 1), (112, "f", 2),
                (252, "h", 2), (344, "4s", 1), (0, "i", 1)]


@st.composite
def mutated_image(draw, valid: bytes, name: str) -> tuple[str, bytes]:
    op = draw(st.sampled_from(["valid", "truncate", "flip", "header", "header", "junk", "rename", "empty"]))
    data = valid
    if op == "truncate":
        data = valid[: draw(st.integers(0, len(valid) - 1))]
    elif op == "flip":
        b = bytearray(valid)
        for _ in range(draw(st.integers(1, 8))):
            i = draw(st.integers(0, len(b) - 1))
            b[i] = draw(st.integers(0, 255))
        data = bytes(b)
    elif op == "header" and name.endswith(".nii.gz"):
        raw = bytearray(gzip.decompress(valid))
        off, fmt, n = draw(st.sampled_from(NIFTI_FIELDS))
        k = draw(st.integers(0, n - 1))
        size = struct.calcsize(fmt)
        if fmt == "f":
            val = struct.pack("<f", draw(st.floats(width=32, allow_nan=True, allow_infinity=True)))
        elif fmt == "4s":
            val = draw(st.binary(min_size=4, max_size=4))
        else:
            lim = 2 ** (8 * size - 1)
            val = struct.pack("<" + fmt, draw(st.integers(-lim, lim - 1)))
        raw[off + k * size: off + (k + 1) * size] = val
        data = gzip.compress(bytes(raw))
    elif op == "header":  # PNG: width / height / depth / colour type
        b = bytearray(valid)
        b[16 + draw(st.integers(0, 9))] = draw(st.integers(0, 255))
        data = bytes(b)
    elif op == "junk":
        data = draw(st.binary(max_size=64)) + valid[: draw(st.integers(0, 600))]
    elif op == "rename":
        name = draw(st.sampled_from(["x.png", "x.nii", "x.mha", "x.nrrd", "x", "x.zip", "../../x.nii.gz"]))
    elif op == "empty":
        data = b""
    return name, data


def text_value():
    return st.text(max_size=20) | st.integers().map(str) | st.sampled_from(["..", "../etc", "a" * 300, "%00", ""])


# --- one property per endpoint ------------------------------------------------------------------
POINTS = [[2, 12, 8], [21, 12, 8], [12, 2, 8], [12, 21, 8], [12, 12, 1], [12, 12, 14]]
INFER = {
    "segmentation": ("/v1/segmentation", "segmentation_ct_spleen", {}, "vol"),
    "dextr3d": ("/v1/dextr3d", "annotation_ct_spleen", {"points": POINTS}, "vol"),
    "deepgrow3d": ("/v1/deepgrow", "clara_deepgrow_3d",
                   {"foreground": [[12, 12, 8]], "background": [[3, 3, 3]], "current_point": [12, 12, 8],
                    "spatial_size": [16, 16, 16]}, "vol"),
    "deepgrow2d": ("/v1/deepgrow", "clara_deepgrow", {"foreground": [[10, 10]], "background": []}, "png"),
    "inference": ("/v1/inference", "clara_xray_classification_chest_amp", {}, "png"),
    "mask2polygon": ("/v1/mask2polygon", None, {"more_points": 10}, "mask"),
    "fixpolygon2d": ("/v1/fixpolygon", None, {"poly": [[[5, 5], [20, 5], [20, 15], [5, 15]]], "dimension": 2,
                                              "vertex_offset": [4, 2], "polygon_index": 0, "vertex_index": 2,
                                              "propagate_neighbor": 1}, "slice"),
    "fixpolygon3d": ("/v1/fixpolygon", None, {"poly": [[], [[[4, 5], [11, 5], [11, 14], [4, 14]]], [], [], [], []],
                                              "dimension": 3, "vertex_offset": [1, 1], "slice_index": 1,
                                              "polygon_index": 0, "vertex_index": 0, "propagate_neighbor_3d": 1},
                     "mask"),
    "fixpolygon2019": ("/v1/fixpolygon", None, {"poly": [[[5, 5], [5, 20], [19, 24], [15, 5]]],
                                                "prev_poly": [[[5, 5], [5, 20], [15, 20], [15, 5]]],
                                                "polygonIndex": 0, "vertexIndex": 2, "propagate_neighbor": 1},
                       "slice"),
}
SUFFIX = {"vol": "x.nii.gz", "mask": "m.nii.gz", "png": "x.png", "slice": "s.png"}


@pytest.mark.parametrize("case", sorted(INFER))
@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzz_inference_and_polygon_endpoints(fuzz, case, data):
    server, blobs, _ = fuzz
    path, model, valid, image = INFER[case]
    # one thing is mutated per example (the rest stays valid), so mutations reach deep code paths
    what = data.draw(st.sampled_from(["params"] * 6 + ["image"] * 3 + ["query", "file"]), "mutate")
    params = data.draw(mutated_params(valid, tuple(valid)), "params") if what == "params" else json.dumps(valid)
    name, payload = (data.draw(mutated_image(blobs[image], SUFFIX[image]), "image") if what == "image"
                     else (SUFFIX[image], blobs[image]))
    field = data.draw(st.sampled_from(["datapoint", "image"]), "field")
    query = {"model": model} if model else {}
    if what == "query":
        query[data.draw(st.sampled_from(["model", "session_id"]), "key")] = data.draw(text_value(), "value")
    files = [] if what == "file" else [(field, name, payload)]
    body, headers = multipart({"params": params}, files)
    url = path + ("?" + urllib.parse.urlencode(query) if query else "")
    check(*request(server.port, "POST", url, body, headers), f"{case} {url}")


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzz_sessions(fuzz, data):
    server, blobs, _ = fuzz
    name, payload = data.draw(mutated_image(blobs["vol"], "x.nii.gz"), "image")
    expiry = data.draw(st.sampled_from(["", "0", "60", "-1", str(2**64), "1e9", "x"]), "expiry")
    body, headers = multipart({"params": data.draw(mutated_params({}), "params")}, [("image", name, payload)])
    path = "/session/" + (f"?expiry={urllib.parse.quote(expiry)}" if expiry else "")
    status, out = request(server.port, "PUT", path, body, headers)
    check(status, out, path)
    sid = json.loads(out)["session_id"] if status == 200 else data.draw(text_value(), "sid")
    if data.draw(st.booleans(), "use"):
        b2, h2 = multipart({"params": json.dumps({"points": POINTS})}, [])
        q = urllib.parse.urlencode({"model": "annotation_ct_spleen", "session_id": sid})
        check(*request(server.port, "POST", f"/v1/dextr3d?{q}", b2, h2), "dextr3d with session")
    quoted = urllib.parse.quote(sid, safe="")
    check(*request(server.port, "GET", f"/session/{quoted}"), "GET session")
    check(*request(server.port, "DELETE", f"/session/{quoted}"), "DELETE session")


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzz_read_only_routes(fuzz, data):
    server, _, _ = fuzz
    tok = {"X-Admin-Token": TOKEN} if data.draw(st.booleans(), "token") else {}
    v = urllib.parse.quote(data.draw(text_value(), "value"), safe="")
    route = data.draw(st.sampled_from([
        f"/v1/models?label={v}", f"/v1/models?type={v}", f"/v1/models?model={v}", f"/v1/model?model={v}",
        f"/logs?lines={v}", f"/admin/model/{v}", "/admin/model", f"/viewer/assets/{v}", f"/{v}", "/",
        f"/aiaa/v1/models?model={v}"]), "route")
    check(*request(server.port, "GET", route, headers=tok), route)


@settings(max_examples=EXAMPLES, derandomize=True, deadline=None, database=None,
          suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fuzz_admin_put_and_delete(fuzz, data):
    server, blobs, seg_cfg = fuzz
    cfg = {k: v for k, v in seg_cfg.items() if k != "model_path"}
    # the network's sizes are the operator's to choose (a 10^6-filter net is slow, not a bug): they stay
    keys = tuple(k for k in cfg if k not in ("network", "roi"))
    text = data.draw(mutated_params({k: cfg[k] for k in keys}, keys), "config")
    try:
        mutated = json.loads(text) if text else None
    except ValueError:
        mutated = None
    if isinstance(mutated, dict):
        text = json.dumps({**mutated, "network": cfg["network"], "roi": cfg["roi"]})
    name = data.draw(st.just("fuzzed") | text_value().filter(lambda s: s not in (
        "segmentation_ct_spleen", "annotation_ct_spleen", "clara_deepgrow", "clara_deepgrow_3d",
        "clara_xray_classification_chest_amp")), "name")
    fname, model = data.draw(st.just(("model.pt", blobs["model"])) | mutated_image(blobs["model"], "model.pt"),
                             "data")
    pentry = data.draw(mutated_params({"labels": ["spleen"], "type": "segmentation"}), "entry")
    body, headers = multipart({"config": text, "params": pentry}, [("data", fname, model)])
    quoted = urllib.parse.quote(name, safe="")
    check(*request(server.port, "PUT", f"/admin/model/{quoted}", body, {**headers, "X-Admin-Token": TOKEN}), "PUT")
    check(*request(server.port, "DELETE", f"/admin/model/{quoted}", headers={"X-Admin-Token": TOKEN}), "DELETE")


def test_server_still_serves_after_the_fuzz(fuzz):
    server, blobs, _ = fuzz
    body, headers = multipart({"params": json.dumps({"points": POINTS})}, [("datapoint", "x.nii.gz", blobs["vol"])])
    assert request(server.port, "POST", "/v1/dextr3d?model=annotation_ct_spleen", body, headers)[0] == 200
    models = json.loads(request(server.port, "GET", "/v1/models")[1])
    assert len(models) >= 5
