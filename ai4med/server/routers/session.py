"""`PUT /session/`, `GET /session/{id}`, `DELETE /session/{id}` (aiaa_api.md §3.9; no /v1 prefix).

Replies are plain JSON; an unknown or expired session is HTTP 440.
"""

from __future__ import annotations

import asyncio
import os

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from ai4med.server.dicomweb_source import fetch_series, series_ref
from ai4med.server.errors import ApiError
from ai4med.server.images import load_image, spatial_view, wire_shape
from ai4med.server.routers.common import ERROR_RESPONSES, multipart_body
from ai4med.server.state import get_state
from ai4med.server.wire import json_response, read_request


def build_router() -> APIRouter:
    router = APIRouter(tags=["session"])

    async def create(request: Request, expiry: int = Query(0, ge=0, le=10**9,
                     description="seconds; 0 = server default; at most the server default")) -> Response:
        """Upload an image (file part `image`) and get a `session_id` for later `?session_id=` calls."""
        state = get_state(request)
        with state.request_dir() as tmp:
            up = await read_request(request, tmp, state.settings.max_upload_bytes)
            ref = series_ref(up.params) if up.image is None else None
            if up.image is None and ref is None:
                raise ApiError(400, "no image: send the image as a file part named 'image', or params "
                                    "{\"study\": UID, \"series\": UID} of the server's DICOMweb source")
            if up.image is not None:
                name, path = up.image
            else:
                path, name = await asyncio.to_thread(fetch_series, state.settings.dicomweb, ref[0], ref[1],
                                                     os.path.join(tmp, "dicomweb"))
            img = await asyncio.to_thread(load_image, path, state.settings.max_image_voxels)
            view = spatial_view(img)
            meta = {"shape": wire_shape(view), "dimension": view.ndim}
            s = state.sessions.create(path, name, meta, expiry)
        return json_response(s.info())

    extra = multipart_body({"params": "optional, `{}`"}, file_field="image")
    for path in ("/session/", "/session"):
        router.add_api_route(path, create, methods=["PUT"], summary="Create a session",
                             responses=ERROR_RESPONSES, openapi_extra=extra, include_in_schema=path.endswith("/"))

    @router.get("/session/{session_id}", responses=ERROR_RESPONSES, summary="Session info (440 if unknown)")
    async def get_session(request: Request, session_id: str) -> Response:
        return json_response(get_state(request).sessions.get(session_id).info())

    @router.delete("/session/{session_id}", responses=ERROR_RESPONSES, summary="Close a session (440 if unknown)")
    async def delete_session(request: Request, session_id: str) -> Response:
        state = get_state(request)
        s = state.sessions.get(session_id, touch=False)
        state.sessions.delete(s.session_id)
        return json_response({"session_id": s.session_id, "deleted": True})

    return router
