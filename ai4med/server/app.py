"""create_app(settings): the annotation server's FastAPI app; `run(args)`: `ai4med serve`.

Example:
    >>> app = create_app(ServerSettings())
    >>> sorted(p for p in app.openapi()["paths"] if p.startswith("/v1/"))[:3]
    ['/v1/deepgrow', '/v1/dextr3d', '/v1/fixpolygon']
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import tempfile
import time
from collections.abc import AsyncIterator
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import Response

from ai4med.server.errors import ApiError, scrub_paths
from ai4med.server.settings import ServerSettings
from ai4med.server.state import ServerState
from ai4med.server.wire import json_response

logger = logging.getLogger("ai4med.server")

API_DESCRIPTION = """AI-assisted annotation server (NVIDIA Clara AIAA v1 REST contract).

Inference endpoints take `multipart/form-data`: a `params` JSON field and the image as the
first file part (`datapoint` or `image`), or `?session_id=`. They answer multipart:
`params` (JSON) [, `points`] and one file part `file`. Points are `[x, y, z]` voxel indices.
"""


def _error(status: int, message: str) -> Response:
    return json_response({"error": message}, status)


class AccessLog:
    """Pure ASGI middleware: one log line per request (method, path, status, seconds).

    It also answers an unexpected exception with a JSON 500 itself: Starlette's outermost
    error middleware would re-raise it after replying, and uvicorn then resets the
    keep-alive connection. Caught here, the client gets the 500 and keeps its connection.
    """

    def __init__(self, app: Any, scrub_roots: tuple[str, ...] = ()) -> None:
        self.app = app
        self.scrub_roots = scrub_roots
        self.log = logging.getLogger("ai4med.server.access")

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        t0 = time.perf_counter()
        status = [0]

        async def send_wrapper(message: dict) -> None:
            if message["type"] == "http.response.start":
                status[0] = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        except asyncio.CancelledError:  # uvicorn cancels what is left when the graceful timeout ends
            if not status[0]:
                with contextlib.suppress(Exception):
                    await _error(503, "the server is shutting down; retry later")(scope, receive, send_wrapper)
            raise
        except Exception as exc:
            if status[0]:  # the reply has started: nothing can be sent any more
                raise
            logger.exception("%s %s failed", scope.get("method"), scope.get("path"))
            msg = scrub_paths(f"internal error: {type(exc).__name__}: {str(exc)[:300]}", *self.scrub_roots)
            await _error(500, msg)(scope, receive, send_wrapper)
        finally:
            self.log.info("%s %s %s %.3fs", scope.get("method"), scope.get("path"), status[0],
                          time.perf_counter() - t0)


def _load_models(state: ServerState) -> None:
    path = state.settings.engine_pool
    if not path:
        return

    def load(engine: Any) -> None:
        state.queues.run_sync(engine.device, engine.load)
        state.queues.run_sync(engine.device, engine.warmup)

    state.pool.load_pool_file(path, load)


def create_app(settings: ServerSettings | None = None) -> FastAPI:
    """The annotation server app; models load at startup (lifespan), resources close at shutdown."""
    from ai4med import __version__
    from ai4med.server.routers import admin, inference, logs, models, polygon, session, viewer

    settings = settings or ServerSettings()
    state = ServerState(settings)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state.attach_logging()
        await asyncio.to_thread(_load_models, state)
        logger.info("annotation server ready: %d model(s), workspace %s",
                    len(state.pool.engines()), state.workspace)

        async def sweeper() -> None:
            while True:
                await asyncio.sleep(settings.session_sweep_s)
                n = state.sessions.sweep()
                if n:
                    logger.info("removed %d expired session(s)", n)
                state.sweep_tmp()

        task = asyncio.create_task(sweeper())
        try:
            yield
        finally:
            task.cancel()
            state.accepting = False
            logger.info("annotation server shutting down")
            await asyncio.to_thread(state.close)

    app = FastAPI(title="ai4med AIAA server", version=__version__, description=API_DESCRIPTION,
                  lifespan=lifespan, redirect_slashes=False)
    app.state.aiaa = state

    roots = (state.workspace, tempfile.gettempdir())

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        if exc.status >= 500:
            logger.warning("%s %s: %s", request.method, request.url.path, exc.message)
        return _error(exc.status, scrub_paths(exc.message, *roots))

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> Response:
        msgs = "; ".join(f"{'.'.join(str(x) for x in e.get('loc', ()))}: {e.get('msg')}" for e in exc.errors())
        return _error(422, msgs[:500] or "invalid request")

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        return _error(exc.status_code, scrub_paths(str(exc.detail), *roots))

    routers = [models.build_router(), inference.build_router(), polygon.build_router(),
               session.build_router(), admin.build_router(), logs.build_router(), viewer.build_router()]
    prefix = settings.path_prefix.rstrip("/")
    for r in routers:
        app.include_router(r)
        if prefix:
            app.include_router(r, prefix=prefix, include_in_schema=False)
    app.add_middleware(AccessLog, scrub_roots=roots)
    return app


def run(args: argparse.Namespace) -> int:
    """`ai4med serve`: start uvicorn on `--host:--port` with the models of `--config`."""
    import uvicorn

    settings = ServerSettings.from_args(args)
    if settings.engine_pool:  # a missing / malformed pool file: one error line here, not a startup traceback
        from ai4med.server.engines.pool import EnginePool

        EnginePool.read_pool(settings.engine_pool)
    app = create_app(settings)
    uvicorn.run(app, host=args.host, port=args.port, log_level=getattr(args, "log_level", "info"),
                timeout_graceful_shutdown=max(1, int(settings.graceful_timeout)), limit_concurrency=256)
    return 0
