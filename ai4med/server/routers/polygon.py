"""`POST /v1/mask2polygon` and `POST /v1/fixpolygon` (aiaa_api.md §3.7, §3.8, §4)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import numpy as np
from fastapi import APIRouter, Request
from starlette.responses import Response

from ai4med.server import polygons as P
from ai4med.server.errors import ApiError
from ai4med.server.images import SpatialView, write_mask
from ai4med.server.points import is_number, short_json
from ai4med.server.routers.common import ERROR_RESPONSES, multipart_body, request_image
from ai4med.server.state import get_state
from ai4med.server.wire import json_response, multipart_response, read_request

#: bound of every integer param (indices, counts): larger values are refused with a 400
INT_LIMIT = 1 << 31
#: bound of a vertex offset component (pixels), as for the vertices themselves
OFFSET_LIMIT = 1e7


def _int(params: dict[str, Any], *names: str, default: int | None = None,
         lo: int = -INT_LIMIT, hi: int = INT_LIMIT) -> int:
    """The first of `names` in params as an int in [lo, hi]; 400 naming the field otherwise."""
    for n in names:
        if n in params:
            v = params[n]
            if not is_number(v) or (isinstance(v, float) and not v.is_integer()):
                raise ApiError(400, f"{n} must be an integer, got {short_json(v, 40)}")
            if not lo <= v <= hi:
                raise ApiError(400, f"{n} must be in [{lo}, {hi}], got {short_json(v, 40)}")
            return int(v)
    if default is None:
        raise ApiError(400, f"{names[0]} is required")
    return default


def _mask2polygon(view: SpatialView, more_points: int) -> list[Any]:
    mask = view.data.max(axis=0) > 0
    return P.mask_polygons(mask, view.picture, more_points)


def _fix(view: SpatialView, params: dict[str, Any]) -> tuple[Any, np.ndarray, bool]:
    """Move the vertex, propagate, and rasterise. Returns (polygons, mask, v1_yx)."""
    v1 = "prev_poly" in params or "polygonIndex" in params
    dim = _int(params, "dimension", default=3 if view.ndim == 3 and not view.picture and not v1 else 2)
    if dim not in (2, 3):
        raise ApiError(400, f"dimension must be 2 or 3, got {dim}")
    polys = P.parse_polygons(params.get("poly"), dim)
    if v1:  # 2019 dialect: (y, x) vertices, and the offset is poly - prev_poly
        prev = P.parse_polygons(params.get("prev_poly", params.get("poly")), 2)
        polys = [[[v[1], v[0]] for v in p] for p in polys]
        prev = [[[v[1], v[0]] for v in p] for p in prev]
        pi, vi = _int(params, "polygonIndex", "polygon_index"), _int(params, "vertexIndex", "vertex_index")
        if not (0 <= pi < len(polys) and pi < len(prev) and 0 <= vi < len(polys[pi]) and vi < len(prev[pi])):
            raise ApiError(400, "polygonIndex / vertexIndex out of range")
        off = [polys[pi][vi][0] - prev[pi][vi][0], polys[pi][vi][1] - prev[pi][vi][1]]
        n = _int(params, "propagate_neighbor", default=1, lo=0)
        moved = [list(v) for v in prev[pi]]
        prev[pi] = P.move_vertex(moved, vi, off, n)
        polys, dim = prev, 2
    else:
        off = params.get("vertex_offset", [0, 0])
        if isinstance(off, str):
            try:
                off = json.loads(off)
            except ValueError:
                raise ApiError(400, "vertex_offset is not valid JSON") from None
        if not (isinstance(off, list) and len(off) == 2 and all(is_number(c) and abs(c) <= OFFSET_LIMIT for c in off)):
            raise ApiError(400, f"vertex_offset must be [dx, dy] with |dx|, |dy| <= {OFFSET_LIMIT:g}, "
                                f"got {short_json(off, 60)}")
        n = _int(params, "propagate_neighbor", default=1, lo=0)
        pi, vi = _int(params, "polygon_index", "polygonIndex"), _int(params, "vertex_index", "vertexIndex")
        if dim == 2:
            if not (0 <= pi < len(polys) and 0 <= vi < len(polys[pi])):
                raise ApiError(400, f"polygon_index {pi} / vertex_index {vi} out of range")
            polys[pi] = P.move_vertex(polys[pi], vi, off, n)
        else:
            s = _int(params, "slice_index", "sliceIndex")
            n3 = _int(params, "propagate_neighbor_3d", default=0, lo=0, hi=max(0, len(polys)))
            if not (0 <= s < len(polys) and 0 <= pi < len(polys[s]) and 0 <= vi < len(polys[s][pi])):
                raise ApiError(400, f"slice_index {s} / polygon_index {pi} / vertex_index {vi} out of range")
            origin = np.array(polys[s][pi][vi])
            polys[s][pi] = P.move_vertex(polys[s][pi], vi, off, n)
            for ds in range(1, max(0, n3) + 1):
                w = 1.0 - ds / (n3 + 1)
                for z in (s - ds, s + ds):
                    if 0 <= z < len(polys) and polys[z]:
                        best = min(((np.hypot(*(np.array(v) - origin)), a, b)
                                    for a, p in enumerate(polys[z]) for b, v in enumerate(p)), default=None)
                        if best is not None:
                            polys[z][best[1]] = P.move_vertex(polys[z][best[1]], best[2], off, n, w)
    polys = P.rounded(polys)
    if dim == 2:
        if view.ndim == 2:
            shape = view.shape
            mask = P.rasterize(polys, shape, swap=view.picture)
        else:
            raise ApiError(400, "2D fixpolygon needs a 2D image (PNG)")
    else:
        if view.ndim != 3:
            raise ApiError(400, "3D fixpolygon needs a 3D image")
        mask = np.zeros(view.shape, np.uint8)
        for z in range(min(len(polys), view.shape[2])):
            if polys[z]:
                mask[:, :, z] = P.rasterize(polys[z], view.shape[:2])
    if v1:
        polys = [[[v[1], v[0]] for v in p] for p in polys]
    return polys, mask, v1


def build_router() -> APIRouter:
    router = APIRouter(tags=["polygons"])

    @router.post("/v1/mask2polygon", responses={200: {"description": "JSON: per slice, a list of polygons"},
                                                 **ERROR_RESPONSES},
                 openapi_extra=multipart_body({"params": 'JSON `{"more_points": 10}`'}),
                 summary="Binary mask -> per-slice polygons (plain JSON reply)")
    async def mask2polygon(request: Request) -> Response:
        state = get_state(request)
        with state.request_dir() as tmp:
            up = await read_request(request, tmp, state.settings.max_upload_bytes)
            params = up.dict_params()
            more = _int(params, "more_points", default=10, lo=0, hi=1000)
            view, _ = await request_image(state, up, None)
            result = await asyncio.to_thread(_mask2polygon, view, more)
        return json_response(result)

    @router.post("/v1/fixpolygon", responses={200: {"description": "multipart: `params` {poly} + mask file"},
                                              **ERROR_RESPONSES},
                 openapi_extra=multipart_body({"params": "JSON `{poly, vertex_offset, dimension, polygon_index, "
                                                         "vertex_index, propagate_neighbor, ...}`"}),
                 summary="Move one polygon vertex, propagate to neighbours, return polygons and mask")
    async def fixpolygon(request: Request) -> Response:
        state = get_state(request)
        with state.request_dir() as tmp:
            up = await read_request(request, tmp, state.settings.max_upload_bytes)
            params = up.dict_params()
            view, name = await request_image(state, up, None)
            polys, mask, v1 = await asyncio.to_thread(_fix, view, params)
            file = await asyncio.to_thread(write_mask, mask, view.image, tmp, name)
        if v1:
            return multipart_response(None, file, points=[polys])
        return multipart_response({"poly": polys}, file)

    return router
