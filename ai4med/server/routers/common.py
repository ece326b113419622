"""Helpers shared by the routers: model lookup, the image of a request, OpenAPI bodies."""

from __future__ import annotations

import asyncio
import os
from typing import Any

from ai4med.server.engines.base import Engine
from ai4med.server.engines.pool import NAME_RE
from ai4med.server.errors import ApiError
from ai4med.server.images import SpatialView, load_image, spatial_view
from ai4med.server.state import ServerState
from ai4med.server.wire import UploadedRequest

ERROR_RESPONSES: dict[int | str, dict[str, Any]] = {
    400: {"description": "bad input (message in `error`)"},
    404: {"description": "unknown model"},
    413: {"description": "body or image too large"},
    440: {"description": "unknown or expired session"},
    503: {"description": "busy or shutting down"},
}


def multipart_body(fields: dict[str, str], file_field: str | None = "datapoint",
                   required: tuple[str, ...] = ()) -> dict[str, Any]:
    """`openapi_extra` describing a multipart request (the endpoints parse it themselves)."""
    props: dict[str, Any] = {k: {"type": "string", "description": v} for k, v in fields.items()}
    if file_field:
        props[file_field] = {"type": "string", "format": "binary",
                             "description": "the input image (any first file part: `datapoint` or `image`)"}
    schema: dict[str, Any] = {"type": "object", "properties": props}
    if required:
        schema["required"] = list(required)
    return {"requestBody": {"required": False, "content": {"multipart/form-data": {"schema": schema}}}}


def find_engine(state: ServerState, model: str | None, want: tuple[str, ...] = ()) -> Engine:
    """The engine `model` (400 for a missing / path-like name, 404 unknown, 400 wrong type)."""
    if not model:
        raise ApiError(400, "the query parameter 'model' is required")
    if not NAME_RE.match(model) or ".." in model:
        raise ApiError(400, f"invalid model name {model[:80]!r}")
    engine = state.pool.get(model)
    if engine is None:
        raise ApiError(404, f"model {model!r} not found; GET /v1/models lists the models")
    if want and engine.model_type not in want:
        raise ApiError(400, f"model {model!r} is a {engine.model_type} model; this endpoint takes {'/'.join(want)}")
    return engine


def check_session(state: ServerState, session_id: str | None) -> Any:
    return state.sessions.get(session_id) if session_id else None


async def request_image(state: ServerState, up: UploadedRequest, session: Any,
                        tmp: str | None = None) -> tuple[SpatialView, str]:
    """The request's image (the session's, else the first file part, else the DICOMweb series its params
    name, see `ai4med.server.dicomweb_source`) and its client file name."""
    from ai4med.server.dicomweb_source import fetch_series, series_ref

    ref = series_ref(up.params) if session is None and up.image is None else None
    if session is not None:
        path, name = session.path, session.name
    elif up.image is not None:
        name, path = up.image
    elif ref is not None and tmp is not None:
        path, name = await asyncio.to_thread(fetch_series, state.settings.dicomweb, ref[0], ref[1],
                                             os.path.join(tmp, "dicomweb"))
    else:
        raise ApiError(400, "no image: send the image as the first file part (datapoint/image), a session_id, or "
                            "params {\"study\": UID, \"series\": UID} of the server's DICOMweb source")
    img = await asyncio.to_thread(load_image, path, state.settings.max_image_voxels)
    view = await asyncio.to_thread(spatial_view, img)
    return view, name
