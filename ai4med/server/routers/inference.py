"""`POST /v1/segmentation`, `/v1/dextr3d`, `/v1/deepgrow`, `/v1/inference` (aiaa_api.md §3.3-3.6).

Every endpoint is the same thin flow: find the model -> check the session -> read the body
-> load the image -> run the engine on its device's queue -> write the mask -> reply
multipart (`params` [-> `points`] -> `file`).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from ai4med.server.budget import check_budget, work_voxels
from ai4med.server.errors import ApiError
from ai4med.server.images import write_mask
from ai4med.server.routers.common import ERROR_RESPONSES, check_session, find_engine, multipart_body, request_image
from ai4med.server.state import get_state
from ai4med.server.wire import multipart_response, read_request

logger = logging.getLogger(__name__)

_MULTIPART = {200: {"description": "multipart/form-data: `params` (JSON) [, `points`] and one file part `file`",
                    "content": {"multipart/form-data": {}}}, **ERROR_RESPONSES}


async def run_endpoint(request: Request, model: str | None, session_id: str | None,
                       want: tuple[str, ...], any_params: bool = False) -> Response:
    state = get_state(request)
    if not state.accepting:
        raise ApiError(503, "the server is shutting down")
    engine = find_engine(state, model, want)
    session = check_session(state, session_id)
    with state.request_dir() as tmp:
        up = await read_request(request, tmp, state.settings.max_upload_bytes)
        if any_params and not isinstance(up.params, dict):
            params: dict[str, Any] = {"params": up.params}
        else:
            params = up.dict_params()
        view, name = await request_image(state, up, session, tmp)
        work = work_voxels(engine.model_type, engine.config, view.shape)
        check_budget(work, state.settings.work_limit(engine.device), f"model {engine.name!r} on this image")
        limit = float(state.settings.max_request_seconds or 0) or None
        try:
            result = await state.queues.run(engine.device, engine.run, view, params, work=work, time_limit=limit,
                                            disconnected=request.is_disconnected)
        except ApiError:
            raise
        except (ValueError, RuntimeError, IndexError) as exc:
            logger.exception("model %s failed on %s", engine.name, name)
            raise ApiError(422, f"model {engine.name!r} could not process this image: {str(exc)[:300]}") from None
        file = None
        if result.mask is not None:
            file = await asyncio.to_thread(write_mask, result.mask, view.image, tmp, name)
            if params.get("store_seg") is True:
                from ai4med.server.dicomweb_source import store_seg

                if not state.settings.dicomweb:
                    raise ApiError(400, "store_seg: this server has no DICOMweb destination (--dicomweb URL)")
                result.params["seg_sop_instance_uid"] = await asyncio.to_thread(
                    store_seg, state.settings.dicomweb, view.image, result.mask, list(engine.labels))
    logger.info("%s %s on %s %s: %s", request.url.path, engine.name, name, list(view.shape),
                result.params.get("latencies"))
    return multipart_response(result.params, file, points=result.points)


def build_router() -> APIRouter:
    router = APIRouter(tags=["inference"])
    q_model = Query(None, description="model name (see GET /v1/models)")
    q_session = Query(None, description="use the image of this session instead of an upload")

    @router.post("/v1/segmentation", responses=_MULTIPART, openapi_extra=multipart_body(
        {"params": "JSON object, `{}`"}), summary="Automatic segmentation; params carry extreme `points`")
    async def segmentation(request: Request, model: str | None = q_model, session_id: str | None = q_session):
        return await run_endpoint(request, model, session_id, ("segmentation",))

    @router.post("/v1/dextr3d", responses=_MULTIPART, openapi_extra=multipart_body(
        {"params": 'JSON `{"points": [[x,y,z],...]}` (or `"points": "[[x,y,z],...]"`), ROI voxel space'}),
        summary="DEXTR3D annotation from extreme points")
    async def dextr3d(request: Request, model: str | None = q_model, session_id: str | None = q_session):
        return await run_endpoint(request, model, session_id, ("annotation",))

    @router.post("/v1/deepgrow", responses=_MULTIPART, openapi_extra=multipart_body(
        {"params": "JSON `{foreground, background, current_point?, spatial_size?}`"}),
        summary="Deepgrow from foreground/background clicks (2D or 3D); params carry `crop`")
    async def deepgrow(request: Request, model: str | None = q_model, session_id: str | None = q_session):
        return await run_endpoint(request, model, session_id, ("deepgrow",))

    @router.post("/v1/inference", responses=_MULTIPART, openapi_extra=multipart_body(
        {"params": "any JSON; the model's own params"}), summary="Generic inference with any model")
    async def inference(request: Request, model: str | None = q_model, session_id: str | None = q_session):
        return await run_endpoint(request, model, session_id, (), any_params=True)

    return router
