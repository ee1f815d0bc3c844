"""Shared HTTP pieces: SCIM JSON responses, bounded body reading, error rendering."""

from __future__ import annotations

import logging
import os
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from scimsync.errors import PayloadTooLarge, ScimError, invalid_syntax
from scimsync.store.lean import LeanConnection
from scimsync.store.resources import Store

SCIM_JSON = "application/scim+json"
MAX_BODY = 1_048_576 + 65_536  # Bulk maxPayloadSize plus envelope headroom

log = logging.getLogger("scimsync.http")


class ScimResponse(Response):
    media_type = SCIM_JSON

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def scim(content: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return ScimResponse(content, status_code=status, headers=headers)


def error_response(exc: ScimError) -> Response:
    return ScimResponse(exc.to_scim(), status_code=exc.status, headers=exc.headers or None)


async def read_json(request: Request, limit: int = MAX_BODY) -> Any:
    """The request body as JSON; 413 past `limit` bytes, 400 invalidSyntax if not JSON."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise PayloadTooLarge(f"request body is larger than {limit} bytes")
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is larger than {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if not body:
        raise invalid_syntax("the request body is empty")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid_syntax(f"the request body is not valid JSON: {exc.msg}") from exc


T = TypeVar("T")


class DatabaseCalls:
    """How request handlers call the (blocking) store.

    SQLite answers in microseconds and admits one writer at a time, so its calls run
    on the event loop: measured 1,150 GET/s inline against 665 GET/s through the
    thread pool, whose hand-offs and GIL contention cost more than the query.
    PostgreSQL calls wait on the network, so they run in the thread pool.
    SCIMSYNC_DB_THREADS=1|0 overrides the choice.
    """

    inline = False

    @classmethod
    def configure(cls, dialect: str) -> None:
        forced = os.environ.get("SCIMSYNC_DB_THREADS")
        cls.inline = (dialect == "sqlite") if forced is None else forced == "0"


async def run_db(fn: Callable[..., T], *args: Any) -> T:
    """Run blocking database work as DatabaseCalls says."""
    if DatabaseCalls.inline:
        return fn(*args)
    return await run_in_threadpool(fn, *args)


async def run_write(store: Store, fn: Callable[[LeanConnection], T]) -> T:
    """Run a write: queued for group commit on SQLite, in the thread pool otherwise."""
    if store.writer is not None:
        result = await store.writer.run(fn)
    else:
        result = await run_in_threadpool(store.transact, fn)
    for notify in store.after_write:
        notify()
    return result
