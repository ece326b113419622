"""The AIAA contract end to end: a real uvicorn server on loopback, driven as the clients drive it."""

from __future__ import annotations

import http.client
import io
import json
import os
import time
import zipfile

import nibabel as nib
import numpy as np
import pytest
from aiaa_test_client import AIAAClient, parse_multipart
from aiaa_test_models import write_mask_volume, write_png, write_volume

SIX = [[10, 10, 5], [30, 10, 5], [20, 5, 5], [20, 30, 5], [20, 10, 2], [20, 10, 20]]


@pytest.fixture(scope="module")
def data(tmp_path_factory) -> dict[str, str]:
    d = tmp_path_factory.mktemp("data")
    paths = {"vol": str(d / "image.nii.gz"), "roi": str(d / "roi.nii.gz"), "png": str(d / "xray.png"),
             "mask": str(d / "mask.nii.gz"), "slice": str(d / "fixpolygon.input.png"), "nii": str(d / "plain.nii")}
    write_volume(paths["vol"])
    write_volume(paths["roi"], shape=(32, 32, 32), spacing=(1.2, 1.1, 2.0), seed=3)
    write_volume(paths["nii"], shape=(20, 20, 12))
    write_png(paths["png"])
    write_png(paths["slice"], shape=(30, 40), value=0)
    write_mask_volume(paths["mask"])
    return paths


@pytest.fixture(scope="module")
def client(live) -> AIAAClient:
    return AIAAClient(live.url)


def _mask(files: dict[str, bytes], tmp_path, name: str = "result.nii.gz") -> nib.Nifti1Image:
    assert list(files) == [name]
    p = tmp_path / name
    p.write_bytes(files[name])
    return nib.load(str(p))


def test_models_list_filters_and_one(client):
    r = client.model_list()
    assert r.status == 200 and r.headers["content-type"].startswith("application/json")
    models = r.json()
    names = {m["name"] for m in models}
    assert {"segmentation_ct_spleen", "annotation_ct_spleen", "clara_deepgrow",
            "clara_xray_classification_chest_amp"} <= names
    for m in models:
        assert isinstance(m["name"], str) and isinstance(m["type"], str) and isinstance(m["labels"], list)
        assert isinstance(m["description"], str) and isinstance(m["version"], str)
    ann = next(m for m in models if m["type"] == "annotation")
    assert ann["roi"] == [32, 32, 32] and ann["padding"] == 5.0
    assert {m["deepgrow"] for m in models if m["type"] == "deepgrow"} == {"2D", "3D"}
    one = client.model("annotation_ct_spleen")
    assert one.status == 200 and isinstance(one.json(), dict) and one.json()["name"] == "annotation_ct_spleen"
    assert [m["name"] for m in client.http_method("GET", "/v1/models?type=deepgrow").json()] == [
        "clara_deepgrow", "clara_deepgrow_3d"]
    assert {m["name"] for m in client.model_list("SPLEEN").json()} == {"annotation_ct_spleen",
                                                                       "segmentation_ct_spleen"}
    assert client.model_list("liver").json() == []
    assert client.model("nope").status == 404
    # no redirects anywhere the clients go
    assert client.http_method("GET", "/v1/models/").status == 200


def test_segmentation_python_client(client, data, tmp_path):
    r = client.segmentation("segmentation_ct_spleen", data["vol"])
    assert r.status == 200, r.body
    assert "content-length" in r.headers and "transfer-encoding" not in r.headers
    params = r.params
    assert len(params["points"]) in (0, 6)
    assert json.loads(r.form["points"]) == params["points"]
    img = _mask(r.files, tmp_path)
    src = nib.load(data["vol"])
    assert img.shape == src.shape and np.allclose(img.affine, src.affine)
    assert img.get_data_dtype() == np.uint8
    m = np.asarray(img.dataobj)
    for p in params["points"]:
        assert m[tuple(p)] > 0


def test_segmentation_under_path_prefix_and_plain_nii(live, data, tmp_path):
    c = AIAAClient(live.url + "/aiaa/")
    assert c.model_list().status == 200
    r = c.segmentation("segmentation_ct_spleen", data["nii"])
    assert r.status == 200 and list(r.files) == ["result.nii"]


def test_dextr3d_roi_points_array_and_string(client, data, tmp_path):
    pts = [[2, 16, 16], [29, 16, 16], [16, 3, 16], [16, 28, 16], [16, 16, 4], [16, 16, 27]]
    for form in (pts, json.dumps(pts)):
        r = client.dextr3d("annotation_ct_spleen", form, data["roi"])
        assert r.status == 200, r.body
        assert isinstance(r.params, dict)
        assert _mask(r.files, tmp_path).shape == (32, 32, 32)


def test_dextr3d_full_image_is_cropped_server_side(client, data, tmp_path):
    r = client.dextr3d("annotation_ct_spleen", SIX, data["vol"])
    assert r.status == 200, r.body
    img = _mask(r.files, tmp_path)
    assert img.shape == (40, 36, 24)
    (x0, x1), (y0, y1), (z0, z1) = r.params["crop"]
    m = np.asarray(img.dataobj).copy()
    m[x0:x1, y0:y1, z0:z1] = 0
    assert not m.any()


def test_dextr3d_cpp_client_http10_image_field_string_points(live, data):
    """C++ (Poco) style: HTTP/1.0, its own boundary, `params` then file part `image`, points as a string."""
    boundary = "MIME_boundary_01234567"
    with open(data["roi"], "rb") as fh:
        payload = fh.read()
    params = json.dumps({"points": json.dumps([[2, 16, 16], [29, 16, 16], [16, 3, 16], [16, 28, 16],
                                               [16, 16, 4], [16, 16, 27]])})
    body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"params\"\r\n\r\n{params}\r\n"
            f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"roi.nii.gz\"\r\n"
            "Content-Type: application/octet-stream\r\n\r\n").encode() + payload + f"\r\n--{boundary}--\r\n".encode()
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=60)
    conn._http_vsn, conn._http_vsn_str = 10, "HTTP/1.0"
    conn.request("POST", "/v1/dextr3d?model=annotation_ct_spleen", body,
                 {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    r = conn.getresponse()
    assert r.status == 200
    form, files = parse_multipart(r.fp, r.msg)
    assert list(files) == ["result.nii.gz"] and "params" in form


def test_deepgrow_2d_and_3d(client, data, tmp_path):
    r = client.deepgrow("clara_deepgrow", [[20, 18, 12]], [[3, 3, 12]], data["vol"], current_point=[20, 18, 12])
    assert r.status == 200, r.body
    assert r.params["crop"] == [[0, 40], [0, 36], [12, 13]]
    m = np.asarray(_mask(r.files, tmp_path).dataobj)
    assert m.shape == (40, 36, 24) and not m[:, :, :12].any() and not m[:, :, 13:].any()
    r = client.deepgrow("clara_deepgrow_3d", [[20, 18, 12], [22, 18, 12]], [], data["vol"],
                        current_point=[[22, 18, 12]], spatial_size=[16, 16, 16])
    assert r.status == 200, r.body
    crop = r.params["crop"]
    assert [b - a for a, b in crop] == [16, 16, 16]
    m = np.asarray(_mask(r.files, tmp_path).dataobj).copy()
    (x0, x1), (y0, y1), (z0, z1) = crop
    m[x0:x1, y0:y1, z0:z1] = 0
    assert not m.any()


def test_inference_generic_segmentation_and_classification(client, data, tmp_path):
    r = client.inference("segmentation_ct_spleen", {}, data["vol"])
    assert r.status == 200 and "points" in r.params and _mask(r.files, tmp_path).shape == (40, 36, 24)
    r = client.inference("clara_deepgrow", {"foreground": [[20, 18, 12]], "background": [],
                                            "current_point": [[20, 18, 12]]}, data["vol"])
    assert r.status == 200 and "crop" in r.params
    r = client.inference("clara_xray_classification_chest_amp", {}, data["png"])
    assert r.status == 200 and r.files == {}
    assert r.params["label"] in ("normal", "abnormal")
    assert set(r.params["scores"]) == {"normal", "abnormal"}


def test_mask2polygon_plain_json(client, data):
    r = client.mask2polygon(data["mask"], 10)
    assert r.status == 200 and "multipart" not in r.headers["content-type"]
    polys = r.json()
    assert len(polys) == 6 and polys[0] == [] and len(polys[2]) == 2
    for poly in polys[1]:
        assert all(len(v) == 2 and all(isinstance(c, int) for c in v) for v in poly)
    xs = [v[0] for v in polys[1][0]]
    ys = [v[1] for v in polys[1][0]]
    assert (min(xs), max(xs), min(ys), max(ys)) == (4, 11, 5, 14)


def test_fixpolygon_2d_png_and_3d(client, data, tmp_path):
    poly = [[[5, 5], [20, 5], [20, 15], [5, 15]]]
    r = client.fixpolygon(data["slice"], {"poly": poly, "vertex_offset": [4, 2], "dimension": 2,
                                          "polygon_index": 0, "vertex_index": 2, "propagate_neighbor": 1})
    assert r.status == 200, r.body
    new = r.params["poly"]
    assert new[0][2] == [24, 17] and new[0][0] == [5, 5]
    from PIL import Image

    assert list(r.files) == ["result.png"]
    png = np.array(Image.open(io.BytesIO(r.files["result.png"])))
    assert png.shape == (30, 40) and png[16, 23] == 1 and png[2, 2] == 0  # (row=y, col=x)
    polys = client.mask2polygon(data["mask"], 10).json()
    r = client.fixpolygon(data["mask"], {"poly": polys, "vertex_offset": [1, 1], "dimension": 3,
                                         "slice_index": 2, "polygon_index": 0, "vertex_index": 0,
                                         "propagate_neighbor_3d": 1, "propagate_neighbor": 1})
    assert r.status == 200, r.body
    assert len(r.params["poly"]) == 6
    assert _mask(r.files, tmp_path).shape == (24, 20, 6)


def test_fixpolygon_2019_dialect(client, data):
    prev = [[[5, 5], [5, 20], [15, 20], [15, 5]]]  # (y, x)
    poly = [[[5, 5], [5, 20], [19, 24], [15, 5]]]
    r = client.fixpolygon(data["slice"], {"propagate_neighbor": 1, "polygonIndex": 0, "vertexIndex": 2,
                                          "poly": poly, "prev_poly": prev})
    assert r.status == 200
    out = json.loads(r.form["points"])
    assert out[0][0][2] == [19, 24]


def test_sessions(client, data, tmp_path):
    r = client.create_session(data["vol"], expiry=0)
    assert r.status == 200 and "multipart" not in r.headers["content-type"]
    sid = r.json()["session_id"]
    info = client.get_session(sid)
    assert info.status == 200 and info.json()["shape"] == [40, 36, 24]
    r = client.dextr3d("annotation_ct_spleen", SIX, None, session_id=sid)
    assert r.status == 200 and _mask(r.files, tmp_path).shape == (40, 36, 24)
    r = client.deepgrow("clara_deepgrow_3d", [[20, 18, 12]], [], None, session_id=sid)
    assert r.status == 200
    assert client.close_session(sid).status == 200
    assert client.close_session(sid).status == 440
    assert client.get_session(sid).status == 440
    assert client.segmentation("segmentation_ct_spleen", None, session_id=sid).status == 440
    short = client.create_session(data["vol"], expiry=1).json()
    assert short["expiry"] == 1
    time.sleep(1.3)
    assert client.get_session(short["session_id"]).status == 440


def _put(live, name: str, parts: list[tuple[str, str | None, bytes]], token: str | None = "s3cret"):
    boundary = "adminboundary42"
    body = b""
    for field, filename, payload in parts:
        disp = f'form-data; name="{field}"' + (f'; filename="{filename}"' if filename else "")
        body += f"--{boundary}\r\nContent-Disposition: {disp}\r\n\r\n".encode() + payload + b"\r\n"
    body += f"--{boundary}--\r\n".encode()
    headers = {"Content-Type": f"multipart/form-data; boundary={boundary}"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=60)
    conn.request("PUT", f"/admin/model/{name}", body, headers)
    r = conn.getresponse()
    return r.status, r.read()


def test_admin_model_upload_zip_and_delete(live, client, model_root, data):
    cfg = json.load(open(os.path.join(model_root, "segmentation_ct_spleen.json")))
    weights = open(os.path.join(model_root, "models", "segmentation.pt"), "rb").read()
    parts = [("config", None, json.dumps(cfg).encode()), ("params", None, b'{"description": "uploaded"}'),
             ("data", "model.pt", weights)]
    assert _put(live, "uploaded_seg", parts, token=None)[0] == 401
    assert _put(live, "uploaded_seg", parts, token="wrong")[0] == 401
    assert _put(live, "..%2Fescape", parts)[0] in (400, 404)
    status, body = _put(live, "uploaded_seg", parts)
    assert status == 200, body
    assert json.loads(body)["description"] == "uploaded"
    assert client.model("uploaded_seg").json()["type"] == "segmentation"
    assert client.segmentation("uploaded_seg", data["vol"]).status == 200
    # a zipped MMAR: config/config_aiaa.json + models/model.pt
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("spleen_mmar/config/config_aiaa.json", json.dumps({**cfg, "model_path": "models/model.pt"}))
        z.writestr("spleen_mmar/models/model.pt", weights)
    status, body = _put(live, "mmar_seg", [("data", "mmar.zip", buf.getvalue())])
    assert status == 200, body
    got = client.http_method("GET", "/admin/model/mmar_seg", {"X-Admin-Token": "s3cret"})
    assert got.status == 200 and got.json()["source"] == "admin"
    assert client.segmentation("mmar_seg", data["vol"]).status == 200
    for name in ("uploaded_seg", "mmar_seg"):
        conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=30)
        conn.request("DELETE", f"/admin/model/{name}", headers={"X-Admin-Token": "s3cret"})
        assert conn.getresponse().status == 200
        assert client.model(name).status == 404
    # zip slip is refused
    evil = io.BytesIO()
    with zipfile.ZipFile(evil, "w") as z:
        z.writestr("../../evil.json", "{}")
    assert _put(live, "evil", [("data", "e.zip", evil.getvalue())])[0] == 400


def test_logs_docs_index(client):
    assert client.http_method("GET", "/logs?lines=50").status == 401  # the server has a token
    assert client.http_method("GET", "/v1/models").status == 200  # a request of its own to find in the log
    r = client.http_method("GET", "/logs?lines=50", {"Authorization": "Bearer s3cret"})
    assert r.status == 200 and b"/v1/" in r.body
    spec = client.http_method("GET", "/openapi.json").json()
    for path in ("/v1/models", "/v1/segmentation", "/v1/dextr3d", "/v1/deepgrow", "/v1/inference",
                 "/v1/mask2polygon", "/v1/fixpolygon", "/session/", "/session/{session_id}",
                 "/admin/model/{name}", "/logs"):
        assert path in spec["paths"]
    assert client.http_method("GET", "/docs").status == 200
    assert client.http_method("GET", "/").json()["models"] >= 5


def test_viewer_is_served(client):
    import shutil
    import subprocess

    page = client.http_method("GET", "/viewer")
    assert page.status == 200 and b"<canvas" in page.body and page.headers["content-type"].startswith("text/html")
    assert client.http_method("GET", "/viewer/").status == 200
    js = client.http_method("GET", "/viewer/assets/viewer.js")
    assert js.status == 200 and b"dextr3d" in js.body and b"/session/" in js.body
    assert client.http_method("GET", "/viewer/assets/viewer.css").status == 200
    for bad in ("/viewer/assets/..%2F..%2Fapp.py", "/viewer/assets/nope.js", "/viewer/assets/.hidden.js"):
        assert client.http_method("GET", bad).status == 404
    node = shutil.which("node")
    if node:  # the script at least parses
        from ai4med.server.routers.viewer import VIEWER_DIR

        subprocess.run([node, "--check", os.path.join(VIEWER_DIR, "viewer.js")], check=True, timeout=60)
