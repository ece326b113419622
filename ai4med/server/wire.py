"""The AIAA wire format: reading multipart / JSON requests and writing multipart replies.

Requests (aiaa_api.md §2.2, §5): `params` is a JSON string field (may be absent or empty);
the input image is the *first part with a filename*, whatever its name (`datapoint` from the
Python client, `image` from C++). Bodies are streamed through a byte counter (413 above the
limit) and file parts are spooled to disk, never held whole in memory.

Replies (§2.3, §5.3): `params` (JSON, no filename) -> optional `points` (bare JSON array) ->
exactly one file part named `file` with `filename="result.<ext>"` and
`application/octet-stream`; always with Content-Length (a `Response` with bytes), never chunked.

Example:
    >>> r = multipart_response({"points": []}, ("result.nii.gz", b"xx"))
    >>> r.media_type.startswith("multipart/form-data; boundary="), int(r.headers["content-length"]) > 0
    (True, True)
"""

from __future__ import annotations

import json
import math
import os
import secrets
import shutil
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field
from typing import Any

from starlette.requests import Request
from starlette.responses import Response

from ai4med.server.errors import ApiError

__all__ = ["UploadedRequest", "read_request", "multipart_response", "json_response", "sniff_suffix", "image_suffix"]

#: suffixes the server reads, longest first (".nii.gz" before ".gz")
IMAGE_SUFFIXES = (".nii.gz", ".nii", ".mha", ".mhd", ".nrrd", ".png", ".jpg", ".jpeg")
ARCHIVE_SUFFIXES = (".zip",)
MAX_FIELD_BYTES = 64 << 20
MAX_FILES = 8


@dataclass
class UploadedRequest:
    """A parsed request: its params and the files saved under the request's temp folder."""

    params: Any = field(default_factory=dict)
    fields: dict[str, str] = field(default_factory=dict)
    #: (part name, client basename, saved path) in upload order
    files: list[tuple[str, str, str]] = field(default_factory=list)

    @property
    def image(self) -> tuple[str, str] | None:
        """(client basename, saved path) of the first file part, the input image."""
        return (self.files[0][1], self.files[0][2]) if self.files else None

    def file(self, *names: str) -> tuple[str, str] | None:
        """(basename, path) of the first file part named one of `names`."""
        for name, base, path in self.files:
            if name in names:
                return base, path
        return None

    def dict_params(self) -> dict[str, Any]:
        """`params` as a JSON object (400 if it is another JSON value)."""
        if self.params is None or self.params == "":
            return {}
        if not isinstance(self.params, dict):
            raise ApiError(400, f"params must be a JSON object, got {type(self.params).__name__}")
        return self.params


def image_suffix(basename: str) -> str:
    """The image suffix of a client file name ('' if none we know); keeps `.nii.gz` whole."""
    low = basename.lower()
    for suf in IMAGE_SUFFIXES + ARCHIVE_SUFFIXES + (".json", ".pt", ".pth", ".ts", ".onnx"):
        if low.endswith(suf):
            return suf
    return ""


def sniff_suffix(head: bytes) -> str:
    """A suffix from magic bytes (gzip -> .nii.gz, PNG, NIfTI-1, MetaImage, NRRD, zip); '' if unknown."""
    if head[:2] == b"\x1f\x8b":
        return ".nii.gz"
    if head[:8] == b"\x89PNG\r\n\x1a\n":
        return ".png"
    if head[:3] == b"\xff\xd8\xff":
        return ".jpg"
    if len(head) >= 348 and head[344:347] in (b"n+1", b"ni1"):
        return ".nii"
    if head[:4] == b"NRRD":
        return ".nrrd"
    if head[:4] == b"PK\x03\x04":
        return ".zip"
    if b"ObjectType" in head[:256] or b"NDims" in head[:256]:
        return ".mha"
    return ""


def _loads(text: str, what: str) -> Any:
    def reject(c: str) -> Any:
        raise ValueError(f"{c} is not valid JSON")

    try:
        return json.loads(text, parse_constant=reject)
    except (ValueError, RecursionError) as exc:
        raise ApiError(400, f"{what} is not valid JSON: {str(exc)[:200]}") from None


def parse_params(text: str | bytes | None) -> Any:
    """The `params` field: '' / absent -> {}; JSON; a JSON string holding JSON is decoded once more."""
    if text is None:
        return {}
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    if not text.strip():
        return {}
    value = _loads(text, "params")
    if isinstance(value, str) and value.strip()[:1] in ("{", "["):
        try:
            value = json.loads(value)
        except ValueError:
            pass
    return value


async def _limited(request: Request, limit: int) -> AsyncGenerator[bytes, None]:
    total = 0
    async for chunk in request.stream():
        total += len(chunk)
        if total > limit:
            raise ApiError(413, f"request body larger than the limit of {limit} bytes")
        yield chunk


def _check_length(request: Request, limit: int) -> None:
    cl = request.headers.get("content-length")
    if cl is not None:
        try:
            n = int(cl)
        except ValueError:
            raise ApiError(400, "bad Content-Length header") from None
        if n > limit:
            raise ApiError(413, f"request body of {n} bytes is larger than the limit of {limit} bytes")


def _safe_basename(filename: str | None) -> str:
    name = (filename or "").replace("\\", "/").rsplit("/", 1)[-1]
    return name or "upload"


async def read_request(request: Request, tmp_dir: str, max_bytes: int) -> UploadedRequest:
    """Parse a POST/PUT body (multipart, JSON or empty); files are saved under `tmp_dir`.

    Raises:
        ApiError: 413 over `max_bytes`, 400 for a malformed body or `params`.
    """
    from starlette.formparsers import FormParser, MultiPartException, MultiPartParser

    _check_length(request, max_bytes)
    ctype = request.headers.get("content-type", "").lower()
    out = UploadedRequest()
    if ctype.startswith("multipart/"):
        parser = MultiPartParser(
            request.headers, _limited(request, max_bytes),
            max_files=MAX_FILES, max_fields=64, max_part_size=MAX_FIELD_BYTES,
        )
        try:
            form = await parser.parse()
        except MultiPartException as exc:
            raise ApiError(400, f"malformed multipart body: {exc.message}") from None
        except UnicodeDecodeError:
            raise ApiError(400, "malformed multipart body: a field is not UTF-8") from None
        try:
            for i, (name, value) in enumerate(form.multi_items()):
                if isinstance(value, str):
                    out.fields.setdefault(name, value)
                    continue
                base = _safe_basename(value.filename)
                value.file.seek(0)
                head = value.file.read(512)
                value.file.seek(0)
                suffix = image_suffix(base) or sniff_suffix(head)
                path = os.path.join(tmp_dir, f"upload{i}{suffix}")
                with open(path, "wb") as fh:
                    shutil.copyfileobj(value.file, fh, 1 << 20)
                out.files.append((name, base, path))
        finally:
            await form.close()
        out.params = parse_params(out.fields.get("params"))
    elif ctype.startswith("application/x-www-form-urlencoded"):
        form = await FormParser(request.headers, _limited(request, max_bytes), max_part_size=MAX_FIELD_BYTES).parse()
        out.fields = {k: v for k, v in form.multi_items() if isinstance(v, str)}
        out.params = parse_params(out.fields.get("params"))
    else:
        body = b"".join([c async for c in _limited(request, max_bytes)])
        if body.strip():
            if "json" not in ctype and ctype:
                raise ApiError(415, f"unsupported Content-Type {ctype!r}: send multipart/form-data or JSON")
            out.params = parse_params(body)
    return out


def _finite(obj: Any) -> Any:
    """`obj` with NaN/inf floats replaced by None (JSON has no NaN)."""
    if isinstance(obj, float):
        return obj if math.isfinite(obj) else None
    if isinstance(obj, dict):
        return {k: _finite(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite(v) for v in obj]
    return obj


def dumps(obj: Any) -> bytes:
    return json.dumps(_finite(obj), separators=(",", ":"), allow_nan=False).encode()


def json_response(obj: Any, status: int = 200) -> Response:
    """A plain (non-multipart) JSON reply with Content-Length."""
    return Response(dumps(obj), status_code=status, media_type="application/json")


def multipart_response(
    params: dict[str, Any] | None,
    file: tuple[str, bytes] | None = None,
    points: Any = None,
) -> Response:
    """A multipart/form-data reply: `params` -> [`points`] -> [one file part named `file`]."""
    boundary = "aiaa" + secrets.token_hex(16)
    parts: list[bytes] = []

    def part(headers: list[str], payload: bytes) -> None:
        head = "".join(h + "\r\n" for h in headers)
        parts.append(f"--{boundary}\r\n{head}\r\n".encode() + payload + b"\r\n")

    if params is not None:
        part(['Content-Disposition: form-data; name="params"', "Content-Type: application/json"], dumps(params))
    if points is not None:
        part(['Content-Disposition: form-data; name="points"', "Content-Type: application/json"], dumps(points))
    if file is not None:
        name, data = file
        part([f'Content-Disposition: form-data; name="file"; filename="{name}"',
              "Content-Type: application/octet-stream"], data)
    body = b"".join(parts) + f"--{boundary}--\r\n".encode()
    return Response(body, media_type=f"multipart/form-data; boundary={boundary}")
