"""A test copy of the AIAA Python client's wire code (py_client/client_api.py, HEAD).

Requests are built by hand exactly as the client does (literal boundary with a `$`, field
parts first, file parts with the caller's path as filename and mimetypes' Content-Type,
a content-length header) and sent with http.client; multipart replies are parsed with
`cgi.FieldStorage` on the raw socket, as the client does.
"""

from __future__ import annotations

import http.client
import json
import mimetypes
import warnings
from typing import Any
from urllib.parse import quote_plus, urlparse

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)
    import cgi

LIMIT = "----------lImIt_of_THE_fIle_eW_$"


def encode_multipart_formdata(fields: dict[str, str], files: dict[str, str]) -> tuple[str, bytes]:
    lines: list[Any] = []
    for key, value in fields.items():
        lines += ["--" + LIMIT, f'Content-Disposition: form-data; name="{key}"', "", value]
    for key, filename in files.items():
        lines += ["--" + LIMIT, f'Content-Disposition: form-data; name="{key}"; filename="{filename}"',
                  "Content-Type: %s" % (mimetypes.guess_type(filename)[0] or "application/octet-stream"), ""]
        with open(filename, "rb") as f:
            lines.append(f.read())
    lines += ["--" + LIMIT + "--", ""]
    body = bytearray()
    for line in lines:
        body.extend(line if isinstance(line, bytes) else line.encode("utf-8"))
        body.extend(b"\r\n")
    return f"multipart/form-data; boundary={LIMIT}", bytes(body)


def parse_multipart(fp: Any, headers: Any) -> tuple[dict[str, Any], dict[str, bytes]]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        fs = cgi.FieldStorage(fp=fp, headers=headers, environ={"REQUEST_METHOD": "POST"}, keep_blank_values=True)
    form: dict[str, Any] = {}
    files: dict[str, bytes] = {}
    if hasattr(fs, "list") and isinstance(fs.list, list):
        for f in fs.list:
            if f.filename:
                files[f.filename] = f.value
            else:
                form[f.name] = f.value
    return form, files


class Reply:
    def __init__(self, status: int, headers: Any, form: Any = None, files: Any = None, body: bytes = b"") -> None:
        self.status, self.headers, self.form, self.files, self.body = status, headers, form, files, body

    @property
    def params(self) -> Any:
        if self.form and "params" in self.form:
            return json.loads(self.form["params"])
        return None

    def json(self) -> Any:
        return json.loads(self.body)


class AIAAClient:
    """The calls of the AIAA Python client, returning `Reply` objects."""

    def __init__(self, server_url: str, timeout: float = 60) -> None:
        self.url = server_url.rstrip("/")
        self.timeout = timeout

    def _conn(self) -> tuple[http.client.HTTPConnection, str]:
        p = urlparse(self.url)
        return http.client.HTTPConnection(p.hostname, p.port, timeout=self.timeout), p.path.rstrip("/")

    def http_method(self, method: str, selector: str, headers: dict[str, str] | None = None) -> Reply:
        conn, prefix = self._conn()
        conn.request(method, prefix + "/" + selector.lstrip("/"),
                     headers={"Accept-Encoding": "identity", **(headers or {})})
        r = conn.getresponse()
        body = r.read()
        conn.close()
        return Reply(r.status, r.msg, body=body)

    def http_multipart(self, method: str, selector: str, fields: dict[str, str], files: dict[str, str],
                       multipart_response: bool = True) -> Reply:
        ctype, body = encode_multipart_formdata(fields, files)
        conn, prefix = self._conn()
        conn.request(method, prefix + "/" + selector.lstrip("/"), body,
                     {"content-type": ctype, "content-length": str(len(body))})
        r = conn.getresponse()
        if r.status != 200 or not multipart_response or "multipart" not in r.getheader("content-type", ""):
            data = r.read()
            conn.close()
            return Reply(r.status, r.msg, body=data)
        form, fls = parse_multipart(r.fp if r.fp else r, r.msg)
        conn.close()
        return Reply(r.status, r.msg, form, fls)

    # --- the client API -----------------------------------------------------------------
    def model_list(self, label: str | None = None) -> Reply:
        return self.http_method("GET", "/v1/models" + (f"?label={quote_plus(label)}" if label else ""))

    def model(self, name: str) -> Reply:
        return self.http_method("GET", f"/v1/models?model={quote_plus(name)}")

    def create_session(self, image_in: str, expiry: int = 0) -> Reply:
        return self.http_multipart("PUT", f"/session/?expiry={expiry}", {}, {"image": image_in}, False)

    def get_session(self, session_id: str) -> Reply:
        return self.http_method("GET", f"/session/{quote_plus(session_id)}")

    def close_session(self, session_id: str) -> Reply:
        return self.http_method("DELETE", f"/session/{quote_plus(session_id)}")

    def _infer(self, api: str, model: str, params: Any, image_in: str | None, session_id: str | None) -> Reply:
        selector = f"/v1/{api}?model={quote_plus(model)}"
        if session_id:
            selector += f"&session_id={quote_plus(session_id)}"
        files = {"datapoint": image_in} if image_in and not session_id else {}
        text = params if isinstance(params, str) else json.dumps(params)
        return self.http_multipart("POST", selector, {"params": text}, files)

    def segmentation(self, model: str, image_in: str | None, session_id: str | None = None) -> Reply:
        return self._infer("segmentation", model, {}, image_in, session_id)

    def dextr3d(self, model: str, points: Any, image_in: str | None, session_id: str | None = None) -> Reply:
        return self._infer("dextr3d", model, {"points": points}, image_in, session_id)

    def deepgrow(self, model: str, foreground: Any, background: Any, image_in: str | None,
                 session_id: str | None = None, **extra: Any) -> Reply:
        return self._infer("deepgrow", model, {"foreground": foreground, "background": background, **extra},
                           image_in, session_id)

    def inference(self, model: str, params: Any, image_in: str | None, session_id: str | None = None) -> Reply:
        return self._infer("inference", model, params, image_in, session_id)

    def mask2polygon(self, image_in: str, point_ratio: int) -> Reply:
        return self.http_multipart("POST", "/v1/mask2polygon", {"params": json.dumps({"more_points": point_ratio})},
                                   {"datapoint": image_in}, False)

    def fixpolygon(self, image_in: str, params: dict[str, Any]) -> Reply:
        return self.http_multipart("POST", "/v1/fixpolygon", {"params": json.dumps(params)}, {"datapoint": image_in})
