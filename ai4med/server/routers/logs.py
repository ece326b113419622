"""`GET /logs`: the last lines of the server log (text/plain), and `GET /` (a small index)."""

from __future__ import annotations

import time

from fastapi import APIRouter, Query, Request
from starlette.responses import PlainTextResponse, Response

from ai4med.server.routers.admin import require_token
from ai4med.server.state import get_state
from ai4med.server.wire import json_response


def build_router() -> APIRouter:
    router = APIRouter(tags=["logs"])

    async def logs(request: Request, lines: int = Query(100, ge=0, le=100000)) -> Response:
        """The last `lines` log lines (they name uploads: the admin token is needed when one is set)."""
        state = get_state(request)
        require_token(request, state, optional=True)
        text = "\n".join(state.log.tail(lines))
        return PlainTextResponse(text + ("\n" if text else ""))

    router.add_api_route("/logs", logs, methods=["GET"], summary="Server log (token)")
    router.add_api_route("/logs/", logs, methods=["GET"], include_in_schema=False)

    @router.get("/", summary="Server index")
    async def index(request: Request) -> Response:
        from ai4med import __version__

        state = get_state(request)
        return json_response({
            "name": "ai4med AI-assisted annotation server",
            "version": __version__,
            "uptime_s": round(time.time() - state.started, 1),
            "models": len(state.pool.engines()),
            "sessions": len(state.sessions),
            "queues": state.queues.pending(),
            "docs": "/docs", "openapi": "/openapi.json", "viewer": "/viewer", "logs": "/logs",
        })

    return router
