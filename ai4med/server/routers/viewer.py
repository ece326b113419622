"""`GET /viewer`: the static web viewer (index.html + assets from `ai4med/server/viewer/`)."""

from __future__ import annotations

import os

from fastapi import APIRouter
from starlette.responses import FileResponse, Response

from ai4med.server.errors import ApiError

VIEWER_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "viewer")
_TYPES = {".js": "text/javascript", ".css": "text/css", ".html": "text/html", ".png": "image/png"}


def build_router() -> APIRouter:
    router = APIRouter(tags=["viewer"], include_in_schema=False)

    async def index() -> Response:
        path = os.path.join(VIEWER_DIR, "index.html")
        if not os.path.isfile(path):
            raise ApiError(404, "the web viewer is not installed")
        return FileResponse(path, media_type="text/html")

    router.add_api_route("/viewer", index, methods=["GET"])
    router.add_api_route("/viewer/", index, methods=["GET"])

    @router.get("/viewer/assets/{name}")
    async def asset(name: str) -> Response:
        ext = os.path.splitext(name)[1]
        path = os.path.join(VIEWER_DIR, name)
        if "/" in name or "\\" in name or name.startswith(".") or ext not in _TYPES or not os.path.isfile(path):
            raise ApiError(404, "not found")
        return FileResponse(path, media_type=_TYPES[ext])

    return router
