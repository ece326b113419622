"""`GET /v1/models` (aiaa_api.md §3.1, §3.1b): the model list, filters, and `?model=` for one object."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from ai4med.server.routers.common import find_engine
from ai4med.server.state import get_state
from ai4med.server.wire import json_response


def _matches(info: dict[str, Any], label: str | None, mtype: str | None) -> bool:
    if mtype and str(info.get("type", "")).lower() != mtype.lower():
        return False
    if label:
        want = label.lower()
        labels = [str(x).lower() for x in info.get("labels", [])]
        if not any(want == x or want in x or x in want for x in labels if x):
            return False
    return True


def build_router() -> APIRouter:
    router = APIRouter(tags=["models"])

    async def list_models(
        request: Request,
        label: str | None = Query(None, description="label filter (case-insensitive, substring either way)"),
        type: str | None = Query(None, description="segmentation|annotation|classification|deepgrow|others"),
        model: str | None = Query(None, description="one model: its object instead of the list"),
    ) -> Response:
        """List the models (a JSON array), or one model object with `?model=`."""
        state = get_state(request)
        if model is not None:
            return json_response(find_engine(state, model).info())
        infos = [e.info() for e in state.pool.engines()]
        return json_response([i for i in infos if _matches(i, label, type)])

    router.add_api_route("/v1/models", list_models, methods=["GET"], summary="List models")
    router.add_api_route("/v1/models/", list_models, methods=["GET"], include_in_schema=False)
    router.add_api_route("/v1/model", list_models, methods=["GET"], include_in_schema=False)
    return router
