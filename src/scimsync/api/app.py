"""The ASGI application: SCIM under /scim/v2/<directory>, admin API under /admin."""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson
from sqlalchemy import Engine
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Mount, Route, Router
from starlette.types import ASGIApp, Receive, Scope, Send

from scimsync import limits
from scimsync.api.admin import AdminApi
from scimsync.api.http import error_response
from scimsync.api.metrics import metrics_endpoint
from scimsync.api.pool import DatabaseCalls
from scimsync.api.scim import ScimApi
from scimsync.api.settings import Settings, from_env
from scimsync.errors import ScimError
from scimsync.store.directories import Directories
from scimsync.store.engine import make_engine, upgrade
from scimsync.store.resources import Store
from scimsync.sync.worker import Worker

log = logging.getLogger("scimsync.access")


class AccessLog:
    """One structured line per request: method, path, status, duration. Never headers
    or bodies, so tokens and passwords cannot reach the log."""

    def __init__(self, app: ASGIApp):
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or not log.isEnabledFor(logging.INFO):
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_wrapper(message: Any) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_wrapper)
        finally:
            log.info(orjson.dumps({
                "method": scope["method"], "path": scope["path"], "status": status,
                "ms": round((time.perf_counter() - start) * 1000, 2),
            }).decode())


async def _internal_error(request: Request, exc: Exception) -> Response:
    """No stack traces on the wire: a SCIM error with a generic detail."""
    logging.getLogger("scimsync").error("unhandled error on %s %s: %s", request.method,
                                        request.url.path, type(exc).__name__, exc_info=exc)
    return error_response(ScimError("internal server error", status=500))


async def _http_error(request: Request, exc: Exception) -> Response:
    """Routing errors (404, 405) in the SCIM namespace are SCIM errors too."""
    status = getattr(exc, "status_code", 500)
    detail = getattr(exc, "detail", "error")
    if request.url.path.startswith("/scim/"):
        return error_response(ScimError(str(detail), status=status))
    return Response(orjson.dumps({"error": str(detail)}), status_code=status,
                    media_type="application/json")


async def _other_version(request: Request) -> Response:
    """RFC7644 §3.13: only /v2 exists."""
    return error_response(ScimError(
        f"SCIM protocol version {request.path_params['version']} is not supported; use v2",
        status=400, scim_type="invalidVers"))


async def _health(_request: Request) -> Response:
    return PlainTextResponse("ok")


def create_app(database_url: str | None = None, engine: Engine | None = None,
               worker: bool = False, settings: Settings | None = None) -> Starlette:
    """Build the application on a database (its schema is created or upgraded);
    with `worker`, an embedded provisioning worker runs while the app is up.
    Settings come from the environment unless given (api/settings.py)."""
    settings = settings or from_env()
    if engine is None:
        from scimsync.config import database_url as configured

        engine = make_engine(database_url or configured())
    upgrade(engine)
    limits.current()  # a malformed SCIMSYNC_MAX_* fails the start, not a request
    DatabaseCalls.configure(engine.dialect.name)
    store = Store(engine)
    dirs = Directories(engine)
    scim_api = ScimApi(store, dirs)
    admin_api = AdminApi(store, dirs)
    embedded = Worker(engine) if worker else None
    if embedded is not None:
        store.after_write.append(embedded.wake)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        # What start-up made (modules, schema, statements) lives as long as the process:
        # kept out of the collector's full passes, which otherwise took ~90 ms here,
        # stopping every thread, whenever requests had allocated enough to trigger one.
        gc.collect()
        gc.freeze()
        if embedded is not None:
            embedded.start()
        try:
            yield
        finally:
            if embedded is not None:
                embedded.stop()

    app = Starlette(
        lifespan=lifespan,
        routes=[
            Route("/healthz", _health, methods=["GET"]),
            Route("/metrics", metrics_endpoint(engine, dirs, settings), methods=["GET"]),
            Mount("/scim/v2/{directory_id}", app=Router(scim_api.routes(),
                                                        redirect_slashes=False)),
            Route("/scim/{version:str}/{rest:path}", _other_version,
                  methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            Mount("/admin", app=Router(admin_api.routes(), redirect_slashes=False)),
        ],
        exception_handlers={Exception: _internal_error, HTTPException: _http_error},
    )
    # A path that matches no route is a 404 (a SCIM Error under /scim), never a
    # redirect to a neighbouring route: `/Users/%2F` must not land on `/Users`.
    app.router.redirect_slashes = False
    app.state.settings = settings
    app.state.store = store
    app.state.directories = dirs
    app.state.engine = engine
    app.state.worker = embedded
    app.add_middleware(AccessLog)
    return app
