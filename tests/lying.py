"""A SCIM application that lies about its listings: scim2-server behind a double.

The double forwards every request to a tenant of the running scim2-server
(tests/downstream.py) and, while `lie` is set, bends what a listing of Users or
Groups answers, as applications downstream were seen to (issue 12, docs/drift.md):

- `ignores_position`: `startIndex` and `count` are ignored, the first page comes
  every time (its true `startIndex`, 1, echoed);
- `ignores_position_silently`: the same, without any `startIndex` in the answer;
- `wrong_start`: the right page, echoed with another `startIndex`;
- `repeats_earlier_id`: the last page's first resource is replaced by the first
  resource of the listing (an id seen pages before);
- `overstates_page`: a page drops its last resource but keeps `itemsPerPage`;
- `short_page`: a page after the first drops its last resource, counts adjusted;
- `stuck_cursor`: every page's `nextCursor` points at the second page (with
  `cursors` set, the double advertises cursor pagination, RFC 9865, and pages by
  cursor honestly when it does not lie);
- `crash_on_count`: any request with a `count` answers 500 (Canaille 0.3.6).

Two lies are about writes (WRITE_LIES): `drops_members` takes `members` out of every
POST and PUT of a Group and every PATCH operation on them, and answers what the app
then holds (django-scim2 does it on POST and PUT only, docs/apps.md);
`drops_attribute` does the same to the User (or Agent) attribute named by `dropped`
(`title` unless set) on every path: the write is answered 201/200 without it, and it
is not stored (django-scim2 does it to `title`, which its schema announces).

Everything else passes through unchanged. `lie = None` is an honest application.
`seen` keeps (method, path, body) of every request. `in_front` puts the double in
front of any application (tests/apps/), to see what the hub sends it.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

import httpx
import pytest

from downstream import ThreadedServer, read_body

LIES = ("ignores_position", "ignores_position_silently", "wrong_start",
        "repeats_earlier_id", "overstates_page", "short_page", "stuck_cursor",
        "crash_on_count")
WRITE_LIES = ("drops_members", "drops_attribute")
LISTED = ("/Users", "/Groups")


class Liar:
    """The double's state: which lie it tells now, and what it was asked."""

    def __init__(self, upstream: str):
        # scim2-server's root: the double's paths carry the tenant.
        self.upstream = upstream.rstrip("/")
        self.lie: str | None = None
        self.cursors = False  # advertise cursor pagination (discovery is cached)
        self.dropped = "title"  # the User or Agent attribute `drops_attribute` drops
        self.asked: list[dict[str, str]] = []  # the query of each listing request
        self.searched: list[dict[str, str]] = []  # the query of each filtered GET
        # (method, path, JSON body or None) of every request, as the client sent it
        self.seen: list[tuple[str, str, Any]] = []


def liar_app(liar: Liar) -> Any:
    # No connection is kept to the upstream between requests: the double's server stops
    # its event loop at the end of a test, and one kept open (Node and uvicorn keep
    # them) would be an unclosed resource.
    client = httpx.AsyncClient(timeout=30, limits=httpx.Limits(max_keepalive_connections=0))

    async def upstream(method: str, path: str, query: dict[str, str], body: bytes,
                       headers: dict[str, str]) -> httpx.Response:
        url = liar.upstream + path + ("?" + urlencode(query) if query else "")
        return await client.request(method, url, content=body, headers=headers)

    async def answer(send: Any, status: int, doc: Any) -> None:
        payload = json.dumps(doc).encode() if doc is not None else b""
        await send({"type": "http.response.start", "status": status,
                    "headers": [(b"content-type", b"application/scim+json")]})
        await send({"type": "http.response.body", "body": payload})

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = await read_body(receive)
        method, path = scope["method"], scope["path"]
        query = dict(parse_qsl(scope["query_string"].decode(), keep_blank_values=True))
        headers = {k.decode(): v.decode() for k, v in scope["headers"]
                   if k.decode() in ("authorization", "content-type", "accept")}
        lie = liar.lie
        liar.seen.append((method, path, json.loads(body) if body else None))
        if lie == "drops_members" and "/Groups" in path and method in ("POST", "PUT",
                                                                        "PATCH"):
            body = without_members(body)
            if method == "PATCH" and not json.loads(body)["Operations"]:
                method, body = "GET", b""  # nothing left to change: what it holds
        if lie == "drops_attribute" and ("/Users" in path or "/Agents" in path) and \
                method in ("POST", "PUT", "PATCH"):
            body = without(body, liar.dropped)
            if method == "PATCH" and not json.loads(body)["Operations"]:
                method, body = "GET", b""
        if lie == "crash_on_count" and "count" in query:
            await answer(send, 500, {"detail": "'<' not supported between 'str' and 'int'"})
            return
        if liar.cursors and path.endswith("/ServiceProviderConfig"):
            r = await upstream(method, path, query, body, headers)
            spc = r.json()
            spc["pagination"] = {"cursor": True, "index": True}
            await answer(send, r.status_code, spc)
            return
        listing = method == "GET" and path.endswith(LISTED) and "filter" not in query
        if listing:
            liar.asked.append(query)
        elif method == "GET" and "filter" in query:
            liar.searched.append(query)
        if not listing or (lie is None and "cursor" not in query):
            r = await upstream(method, path, query, body, headers)
            await answer(send, r.status_code, r.json() if r.content else None)
            return
        await answer(send, 200, await bent(lie, path, query, body, headers))

    async def bent(lie: str | None, path: str, query: dict[str, str], body: bytes,
                   headers: dict[str, str]) -> Any:
        async def page(**params: str) -> Any:
            r = await upstream("GET", path, params, body, headers)
            return r.json()

        count = query.get("count", "2")
        if lie in ("ignores_position", "ignores_position_silently"):
            doc = await page(count="2")
            if lie == "ignores_position_silently":
                doc.pop("startIndex", None)
            return doc
        if "cursor" in query:
            start = int(query["cursor"] or "1")
            doc = await page(startIndex=str(start), count=count)
            doc.pop("startIndex", None)
            got = len(doc.get("Resources") or [])
            if start + got - 1 < doc["totalResults"]:
                # Honest: where the next page starts; stuck: always the second page.
                doc["nextCursor"] = str(1 + got if lie == "stuck_cursor" else start + got)
            return doc
        start = int(query.get("startIndex", "1"))
        doc = await page(startIndex=str(start), count=count)
        items = doc.get("Resources") or []
        last = start + len(items) - 1 >= doc["totalResults"]
        if lie == "wrong_start":
            doc["startIndex"] = start + 1
        elif lie == "repeats_earlier_id" and start > 1 and last:
            first = await page(startIndex="1", count="1")
            items[0] = first["Resources"][0]
        elif lie == "overstates_page" and len(items) > 1:
            items.pop()
        elif lie == "short_page" and start > 1 and not last and len(items) > 1:
            items.pop()
            doc["itemsPerPage"] = len(items)
        return doc

    return app


def without_members(body: bytes) -> bytes:
    """A Group's body, or a PATCH of one, with whatever touches `members` taken out."""
    return without(body, "members")


def without(body: bytes, attribute: str) -> bytes:
    """A resource's body, or a PATCH of one, with whatever touches `attribute` (a
    top-level one) taken out."""
    doc = json.loads(body)
    doc.pop(attribute, None)
    if "Operations" in doc:
        ops = []
        for op in doc["Operations"]:
            path = str(op.get("path", ""))
            if path == attribute or path.startswith((f"{attribute}.", f"{attribute}[")):
                continue
            if isinstance(op.get("value"), dict) and attribute in op["value"]:
                value = {k: v for k, v in op["value"].items() if k != attribute}
                if not value:
                    continue
                op = {**op, "value": value}
            ops.append(op)
        doc["Operations"] = ops
    return json.dumps(doc).encode()


@contextmanager
def in_front(url: str) -> Iterator[tuple[Liar, str]]:
    """The double in front of the SCIM application at `url`: (its state, its URL)."""
    parts = urlsplit(url)
    state = Liar(f"{parts.scheme}://{parts.netloc}")
    with ThreadedServer(liar_app(state)) as server:
        yield state, f"{server.url}{parts.path}"


@pytest.fixture
def liar(peer_root: str) -> Iterator[tuple[Liar, str]]:
    """A lying double in front of a fresh scim2-server tenant: (its state, its URL)."""
    with in_front(f"{peer_root}/t{secrets.token_hex(4)}") as double:
        yield double
