"""`PUT/GET/DELETE /admin/model/{name}`: add, inspect and remove models at run time (token protected).

PUT takes a multipart body with
  * `config`: the model config (a JSON field or a .json file part, seed 004 format), and
  * `data`: the model file (TorchScript / ONNX / checkpoint), or a zipped MMAR (its
    `config/config_aiaa.json` is the config unless `config` is sent; `model_path` is
    relative to the MMAR), and optionally
  * `params`: pool-entry fields (`class`, `labels`, `description`, `type`).
The token goes in `Authorization: Bearer <token>` or `X-Admin-Token`.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import os
import shutil
import tempfile
import zipfile
from typing import Any

from fastapi import APIRouter, Request
from starlette.responses import Response

from ai4med.server.engines.config import ModelConfigError, normalize_keys
from ai4med.server.engines.pool import check_name
from ai4med.server.errors import ApiError
from ai4med.server.routers.common import ERROR_RESPONSES
from ai4med.server.state import ServerState, get_state
from ai4med.server.wire import json_response, read_request

MAX_ZIP_ENTRIES = 2000
MAX_ZIP_BYTES = 8 << 30


def require_token(request: Request, state: ServerState, optional: bool = False) -> None:
    """401 unless the request carries the admin token.

    Without a token configured, routes that change the server answer 403, and read-only
    ones (`optional=True`: GET /admin/*, /logs) are open, as on a private workstation.
    """
    token = state.settings.admin_token
    if not token:
        if optional:
            return
        raise ApiError(403, "the admin API is disabled (start the server with --admin-token)")
    auth = request.headers.get("authorization", "")
    given = auth[7:].strip() if auth.lower().startswith("bearer ") else request.headers.get("x-admin-token", "")
    if not hmac.compare_digest(given.encode(), token.encode()):
        raise ApiError(401, "missing or wrong admin token")


def safe_extract(zip_path: str, dest: str) -> None:
    """Extract a zip refusing absolute paths, '..', links, too many entries or too many bytes."""
    try:
        zf = zipfile.ZipFile(zip_path)
    except zipfile.BadZipFile:
        raise ApiError(400, "data is not a valid zip file") from None
    with zf:
        infos = zf.infolist()
        if len(infos) > MAX_ZIP_ENTRIES or sum(i.file_size for i in infos) > MAX_ZIP_BYTES:
            raise ApiError(413, "the zip holds too many files or bytes")
        root = os.path.realpath(dest)
        for info in infos:
            name = info.filename.replace("\\", "/")
            target = os.path.realpath(os.path.join(dest, name))
            if name.startswith("/") or ".." in name.split("/") or not target.startswith(root + os.sep):
                raise ApiError(400, f"unsafe path in zip: {name[:100]!r}")
            if (info.external_attr >> 16) & 0o170000 == 0o120000:
                raise ApiError(400, f"links are not allowed in the zip: {name[:100]!r}")
        try:
            zf.extractall(dest)
        except (zipfile.BadZipFile, OSError, EOFError) as exc:
            raise ApiError(400, f"cannot extract the zip: {exc}") from None


def _find(root: str, names: tuple[str, ...]) -> str | None:
    for dirpath, _dirs, files in os.walk(root):
        for n in names:
            if n in files:
                return os.path.join(dirpath, n)
    return None


def _is_mmar_zip(basename: str, path: str) -> bool:
    """A zipped MMAR (not a torch.save / TorchScript file, which are zip archives too)."""
    if basename.lower().endswith(".zip"):
        return True
    if not zipfile.is_zipfile(path):
        return False
    with zipfile.ZipFile(path) as z:
        return not any(n.endswith(("/data.pkl", "/constants.pkl")) for n in z.namelist())


def _mmar_root(root: str) -> str:
    """The folder holding config/ and models/ (a zip may wrap them in one top folder)."""
    entries = [e for e in os.listdir(root) if not e.startswith((".", "__MACOSX"))]
    if len(entries) == 1 and os.path.isdir(os.path.join(root, entries[0])):
        return os.path.join(root, entries[0])
    return root


def _prepare(state: ServerState, name: str, up: Any, stage: str) -> dict[str, Any]:
    """Lay the model out in `stage`; returns the pool entry (its config_file inside `stage`)."""
    cfg: Any = None
    if "config" in up.fields:
        try:
            cfg = json.loads(up.fields["config"])
        except ValueError:
            raise ApiError(400, "config is not valid JSON") from None
    elif up.file("config"):
        try:
            with open(up.file("config")[1], encoding="utf-8") as fh:
                cfg = json.load(fh)
        except (ValueError, UnicodeDecodeError):
            raise ApiError(400, "the config file is not valid JSON") from None
    data = up.file("data", "model", "file") or (up.image if up.image and up.image[0] and cfg is None else None)
    if data is None and up.files:
        data = next(((b, p) for n, b, p in up.files if n != "config"), None)
    if data is None:
        raise ApiError(400, "send the model file or zipped MMAR as the file part 'data'")
    base, path = data
    root = stage
    if _is_mmar_zip(base, path):
        safe_extract(path, stage)
        root = _mmar_root(stage)
        if cfg is None:
            found = _find(root, ("config_aiaa.json", "aiaa_config.json"))
            if not found:
                raise ApiError(400, "the MMAR has no config/config_aiaa.json; send the config as the 'config' part")
            try:
                with open(found, encoding="utf-8") as fh:
                    cfg = json.load(fh)
            except ValueError:
                raise ApiError(400, f"{os.path.relpath(found, stage)} is not valid JSON") from None
        cfg = normalize_keys(cfg) if isinstance(cfg, dict) else cfg
        if isinstance(cfg, dict) and not cfg.get("model_path"):
            for cand in ("models/model.ts", "models/model.onnx", "models/model.pt"):
                if os.path.isfile(os.path.join(root, cand)):
                    cfg["model_path"] = cand
                    break
    else:
        if cfg is None:
            raise ApiError(400, "send the model config as the 'config' part")
        suffix = os.path.splitext(base.lower())[1] if base else ""
        target = os.path.join(stage, "model" + (suffix if suffix in (".pt", ".pth", ".ts", ".onnx") else ".pt"))
        shutil.move(path, target)
        cfg = normalize_keys(cfg) if isinstance(cfg, dict) else cfg
        if isinstance(cfg, dict):
            cfg["model_path"] = os.path.basename(target)
    if not isinstance(cfg, dict):
        raise ApiError(400, "the model config must be a JSON object")
    mp = str(cfg.get("model_path", ""))
    full = os.path.realpath(os.path.join(root, mp))
    if not mp or os.path.isabs(mp) or not full.startswith(os.path.realpath(stage) + os.sep):
        raise ApiError(400, f"model_path {mp[:100]!r} must be a relative path inside the upload")
    cfg_path = os.path.join(root, "config_aiaa.server.json")
    with open(cfg_path, "w", encoding="utf-8") as fh:
        json.dump(cfg, fh, indent=2)
    entry = up.params if isinstance(up.params, dict) else {}
    entry = {k: v for k, v in normalize_keys(entry).items() if k in ("class", "labels", "description", "type")}
    entry.setdefault("labels", cfg.get("labels", []))
    entry.setdefault("type", cfg.get("type", ""))
    if "class" not in entry and cfg.get("class"):
        entry["class"] = cfg["class"]
    return {"name": name, **entry, "config_file": cfg_path}


def build_router() -> APIRouter:
    router = APIRouter(tags=["admin"])

    @router.put("/admin/model/{name}", responses=ERROR_RESPONSES, summary="Add or replace a model (token)",
                openapi_extra={"requestBody": {"content": {"multipart/form-data": {"schema": {
                    "type": "object", "properties": {
                        "config": {"type": "string", "description": "model config JSON"},
                        "params": {"type": "string", "description": "pool entry fields JSON (class, labels...)"},
                        "data": {"type": "string", "format": "binary",
                                 "description": "model file or zipped MMAR"}}}}}}})
    async def put_model(request: Request, name: str) -> Response:
        state = get_state(request)
        require_token(request, state)
        try:
            check_name(name)
        except ModelConfigError as exc:
            raise ApiError(400, str(exc)) from None
        with state.request_dir() as tmp:
            up = await read_request(request, tmp, state.settings.max_upload_bytes)
            stage = tempfile.mkdtemp(dir=state.models_root, prefix=".stage-")
            try:
                entry = await asyncio.to_thread(_prepare, state, name, up, stage)
                try:
                    engine = state.pool.create(entry, stage)
                    await state.queues.run(engine.device, engine.load)
                    await state.queues.run(engine.device, engine.warmup)
                except ApiError:
                    raise
                except Exception as exc:
                    raise ApiError(400, f"cannot load model {name!r}: {str(exc)[:400]}") from None
                final = os.path.join(state.models_root, name)
                with state.admin_lock:
                    old_dir = final + ".old"
                    shutil.rmtree(old_dir, ignore_errors=True)
                    if os.path.exists(final):
                        os.replace(final, old_dir)
                    os.replace(stage, final)
                    # the engine has read its files; re-point its paths at the final folder
                    engine.config_path = final + engine.config_path[len(stage):]
                    engine.config_dir = os.path.dirname(engine.config_path)
                    stage = ""
                    old = state.pool.add(engine, source="admin")
                    shutil.rmtree(old_dir, ignore_errors=True)
                if old is not None:
                    old.close()
            finally:
                if stage:
                    shutil.rmtree(stage, ignore_errors=True)
        return json_response(engine.info())

    @router.get("/admin/model/{name}", responses=ERROR_RESPONSES, summary="A model's info, config and stats (token)")
    async def get_model(request: Request, name: str) -> Response:
        state = get_state(request)
        require_token(request, state, optional=True)
        engine = state.pool.get(name)
        if engine is None:
            err = state.pool.errors().get(name)
            raise ApiError(404, f"model {name[:80]!r} not found" + (f" (load error: {err})" if err else ""))
        return json_response({"model": engine.info(), "source": state.pool.source(name), "device": engine.device,
                              "config": engine.config, "stats": dict(engine.stats)})

    @router.get("/admin/model", summary="Models and models that failed to load (token)", responses=ERROR_RESPONSES)
    async def list_admin(request: Request) -> Response:
        state = get_state(request)
        require_token(request, state, optional=True)
        return json_response({"models": [e.info() for e in state.pool.engines()], "errors": state.pool.errors()})

    @router.delete("/admin/model/{name}", responses=ERROR_RESPONSES, summary="Remove a model (token)")
    async def delete_model(request: Request, name: str) -> Response:
        state = get_state(request)
        require_token(request, state)
        engine = state.pool.get(name)
        if engine is None:
            raise ApiError(404, f"model {name[:80]!r} not found")
        source = state.pool.source(name)
        state.pool.remove(name)
        await state.queues.run(engine.device, engine.close)
        if source == "admin":
            try:
                check_name(name)
                shutil.rmtree(os.path.join(state.models_root, name), ignore_errors=True)
            except ModelConfigError:
                pass
        return json_response({"name": name, "deleted": True})

    return router
