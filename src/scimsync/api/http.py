"""Shared HTTP pieces: SCIM JSON responses, bounded body reading, error rendering."""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any, TypeVar

import orjson
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response

from scimsync import limits
from scimsync.api.pool import DatabaseCalls
from scimsync.errors import PayloadTooLarge, ScimError, invalid_syntax
from scimsync.store.lean import LeanConnection
from scimsync.store.resources import Store

SCIM_JSON = "application/scim+json"
MAX_BODY = 1_048_576 + 65_536  # Bulk maxPayloadSize plus envelope headroom
PARSE_ON_LOOP = 65_536  # larger bodies are decoded and checked on a thread

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
    """The request body as JSON; 413 past `limit` bytes, 400 invalidSyntax if it is not
    JSON or nests deeper than the limit."""
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and (len(declared) > 15 or
                                                        int(declared) > limit):
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
    if len(body) <= PARSE_ON_LOOP:
        return parse_json(body)
    return await run_in_threadpool(parse_json, body)


def parse_json(body: bytes) -> Any:
    """Decode a JSON body and check its nesting (RFC7644 §3.12 invalidSyntax)."""
    try:
        value = orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        raise invalid_syntax(f"the request body is not valid JSON: {exc.msg}") from exc
    most = limits.current().json_depth
    stack: list[tuple[Any, int]] = [(value, 1)] if isinstance(value, dict | list) else []
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node
        for child in children:
            if isinstance(child, dict | list):
                if depth >= most:
                    raise invalid_syntax(f"the request body nests deeper than {most} levels")
                stack.append((child, depth + 1))
    return value


T = TypeVar("T")


async def run_db(fn: Callable[..., T], *args: Any, directory: str | None = None) -> T:
    """Run blocking database work off the event loop: a SCIM request's (`directory`
    given) on the bounded pool under the statement timeout, an administrator's on
    Starlette's thread pool."""
    if directory is None:
        return await run_in_threadpool(fn, *args)
    if DatabaseCalls.inline:
        return fn(*args)
    return await DatabaseCalls.pool().run(directory, fn, *args)


async def run_write(store: Store, directory: str, fn: Callable[[LeanConnection], T]) -> T:
    """Run a write: queued for group commit on SQLite, on the bounded pool otherwise."""
    if store.writer is not None:
        result = await store.writer.run(fn)
    else:
        result = await DatabaseCalls.pool().run(directory, store.transact, fn)
    for notify in store.after_write:
        notify()
    return result
