"""SCIM 2.0 endpoints under /scim/v2/<directory id> (RFC7644 §3)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scimsync.api.http import error_response, read_json, run_db, run_write, scim
from scimsync.api.origin import public_root
from scimsync.errors import (
    BadRequest,
    NotFound,
    NotImplementedScim,
    ScimError,
    Unauthorized,
    invalid_syntax,
)
from scimsync.protocol import discovery
from scimsync.protocol.patch import parse_request
from scimsync.protocol.projection import Projection, parse_projection
from scimsync.protocol.query import Cursor, Query, parse_query
from scimsync.protocol.record import Record
from scimsync.protocol.render import render
from scimsync.protocol.resources import BY_ENDPOINT, RESOURCE_TYPES
from scimsync.protocol.schema import LIST_RESPONSE, ResourceType
from scimsync.protocol.values import normalise_body
from scimsync.store.advertised import get_advertised
from scimsync.store.directories import Directories, Principal
from scimsync.store.resources import Loads, Store

Handler = Callable[[Request], Awaitable[Response]]
RENDER_ON_LOOP = 1_000  # members; a group of 100,000 took 53 ms to render here


def base_url(request: Request, directory_id: str) -> str:
    """A directory's SCIM base URL, as clients reach it (api/origin.py)."""
    return f"{public_root(request)}/scim/v2/{directory_id}"


def _projection(request: Request, rt: ResourceType) -> Projection:
    """`attributes` / `excludedAttributes` of a request (RFC7644 §3.9)."""
    return parse_projection(rt, request.query_params.get("attributes"),
                            request.query_params.get("excludedAttributes"))


def loads_for(proj: Projection) -> Loads:
    return Loads(members=proj.wants("members"), groups=proj.wants("groups"))


class ScimApi:
    """Binds the SCIM endpoints to a store and the directory tokens."""

    def __init__(self, store: Store, dirs: Directories):
        self.store = store
        self.dirs = dirs

    # --- plumbing -------------------------------------------------------------

    async def authorize(self, request: Request) -> tuple[str, Principal]:
        """The directory in the path, if the bearer token belongs to it; else 401."""
        directory_id = request.path_params["directory_id"]
        header = request.headers.get("authorization", "")
        scheme, _, token = header.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise Unauthorized("a bearer token is required")
        # Off the loop unless validated a moment ago: a token is read from the database.
        principal = self.dirs.cached(token.strip()) or await run_db(
            self.dirs.authenticate, token.strip(), directory=directory_id)
        # A token of another directory gets the same answer as a bad token, so it
        # learns nothing about which directories exist.
        if principal is None or principal.kind != "directory" or \
                principal.directory_id != directory_id:
            raise Unauthorized("the bearer token is not valid for this directory")
        return directory_id, principal

    def endpoint(self, fn: Callable[[Request, str, Principal], Awaitable[Response]]) -> Handler:
        async def handler(request: Request) -> Response:
            try:
                directory_id, principal = await self.authorize(request)
                return await fn(request, directory_id, principal)
            except ScimError as exc:
                response = error_response(exc)
                if exc.status == 401:
                    response.headers["WWW-Authenticate"] = 'Bearer realm="scimsync"'
                return response

        return handler

    @staticmethod
    def rtype(request: Request) -> ResourceType:
        rt = BY_ENDPOINT.get(request.path_params["endpoint"])
        if rt is None:
            raise NotFound(f"no resource endpoint /{request.path_params['endpoint']}")
        return rt

    # --- discovery ------------------------------------------------------------

    async def spc(self, request: Request, did: str, _p: Principal) -> Response:
        chosen = await run_db(get_advertised, self.store.engine, did)
        return scim(discovery.service_provider_config(
            base_url(request, did), agent_extension=chosen.agent_extension))

    async def resource_types(self, request: Request, did: str, _p: Principal) -> Response:
        base = base_url(request, did)
        docs = [discovery.resource_type_doc(rt, base) for rt in discovery.resource_types()]
        return _one_or_all(docs, request.path_params.get("name"), "resource type")

    async def schemas(self, request: Request, did: str, _p: Principal) -> Response:
        base = base_url(request, did)
        docs = [discovery.schema_doc(s, base) for s in discovery.schemas()]
        return _one_or_all(docs, request.path_params.get("sid"), "schema")

    # --- resources ------------------------------------------------------------

    async def create(self, request: Request, did: str, p: Principal) -> Response:
        rt = self.rtype(request)
        body = await read_json(request)
        proj = _projection(request, rt)
        loads = loads_for(proj)
        # Validated off the loop too: a body may name thousands of values or members.
        rec = await run_write(self.store, did, lambda c: self.store.create(
            did, rt, normalise_body(rt, body), p.token_id, c, loads))
        doc = await _rendered(rec, base_url(request, did), proj, did)
        location = f"{base_url(request, did)}{rt.endpoint}/{rec.id}"
        return scim(doc, 201, {"Location": location, "ETag": rec.etag})

    async def get(self, request: Request, did: str, _p: Principal) -> Response:
        rt = self.rtype(request)
        rid = request.path_params["rid"]
        proj = _projection(request, rt)
        rec = await run_db(self.store.get, did, rt, rid, loads_for(proj), directory=did)
        inm = request.headers.get("if-none-match")
        if inm is not None and (inm.strip() == "*" or rec.etag in
                                {t.strip() for t in inm.split(",")}):
            return Response(status_code=304, headers={"ETag": rec.etag})
        doc = await _rendered(rec, base_url(request, did), proj, did)
        return scim(doc, headers={"ETag": rec.etag})

    async def replace(self, request: Request, did: str, p: Principal) -> Response:
        rt = self.rtype(request)
        rid = request.path_params["rid"]
        body = await read_json(request)
        proj = _projection(request, rt)
        if_match, loads = request.headers.get("if-match"), loads_for(proj)
        rec = await run_write(self.store, did, lambda c: self.store.replace(
            did, rt, rid, normalise_body(rt, body), if_match, p.token_id, c, loads))
        doc = await _rendered(rec, base_url(request, did), proj, did)
        return scim(doc, headers={"ETag": rec.etag})

    async def patch(self, request: Request, did: str, p: Principal) -> Response:
        rt = self.rtype(request)
        rid = request.path_params["rid"]
        ops = parse_request(await read_json(request))
        proj = _projection(request, rt)
        if_match, loads = request.headers.get("if-match"), loads_for(proj)
        rec = await run_write(self.store, did, lambda c: self.store.patch(
            did, rt, rid, ops, if_match, p.token_id, c, loads))
        doc = await _rendered(rec, base_url(request, did), proj, did)
        return scim(doc, headers={"ETag": rec.etag})

    async def delete(self, request: Request, did: str, p: Principal) -> Response:
        rt = self.rtype(request)
        rid = request.path_params["rid"]
        if_match = request.headers.get("if-match")
        await run_write(self.store, did, lambda c: self.store.delete(
            did, rt, rid, if_match, p.token_id, c))
        return Response(status_code=204)

    async def list_resources(self, request: Request, did: str, _p: Principal) -> Response:
        rt = self.rtype(request)
        query = parse_query(dict(request.query_params))
        return await self._query(request, did, [rt], query)

    async def search(self, request: Request, did: str, _p: Principal) -> Response:
        rt = self.rtype(request)
        body = await read_json(request)
        if not isinstance(body, dict):
            raise invalid_syntax("a SearchRequest must be an object")
        return await self._query(request, did, [rt], parse_query(body, body=True))

    async def root_search(self, request: Request, did: str, _p: Principal) -> Response:
        if request.method == "GET":
            query = parse_query(dict(request.query_params))
        else:
            body = await read_json(request)
            if not isinstance(body, dict):
                raise invalid_syntax("a SearchRequest must be an object")
            query = parse_query(body, body=True)
        return await self._query(request, did, list(RESOURCE_TYPES.values()), query)

    async def _query(self, request: Request, did: str, rtypes: list[ResourceType],
                     query: Query) -> Response:
        base = base_url(request, did)
        if len(rtypes) == 1:
            rt = rtypes[0]
            proj = parse_projection(rt, query.attributes, query.excluded)

            def page() -> tuple[int, list[Any], str | None]:
                # Rendered on the pool thread too: a page of 1,000 is work for the loop.
                total, recs, nxt = self._page(did, rt, query, loads_for(proj))
                return total, [render(r, base, proj) for r in recs], nxt

            total, docs, next_cursor = await run_db(page, directory=did)
        else:
            if query.cursor is not None:
                raise NotImplementedScim("cursor pagination is offered per resource type")
            total, docs = await run_db(self._root_page, did, rtypes, query, base, directory=did)
            next_cursor = None
        body = _list(docs, total, None if query.cursor is not None else query.start_index)
        if next_cursor is not None:
            body["nextCursor"] = next_cursor
        return scim(body)

    def _page(self, did: str, rt: ResourceType, q: Query,
              loads: Loads) -> tuple[int, list[Any], str | None]:
        if q.cursor is None:
            total, recs = self.store.search(did, rt, q.filter, q.sort_by, q.descending,
                                            q.start_index - 1, q.count, loads)
            return total, recs, None
        c = q.cursor
        if q.sort_by:
            total, recs = self.store.search(did, rt, q.filter, q.sort_by, q.descending,
                                            c.offset, q.count, loads)
            more = c.offset + len(recs) < total
            nxt = Cursor(offset=c.offset + len(recs)).encode() if more and recs else None
            return total, recs, nxt
        total, recs = self.store.search(did, rt, q.filter, None, False, 0, q.count + 1, loads,
                                        after_id=c.after_id)
        nxt = None
        if len(recs) > q.count:
            recs = recs[: q.count]
            nxt = Cursor(after_id=recs[-1].id).encode()
        return total, recs, nxt

    def _root_page(self, did: str, rtypes: list[ResourceType], q: Query,
                   base: str) -> tuple[int, list[Any]]:
        """A query across resource types: each type's matches in turn (RFC7644 §3.4.3)."""
        from scimsync.store.filter_sql import Compiler

        if q.filter is not None:
            errors: list[BadRequest] = []
            for rt in rtypes:
                try:
                    Compiler(rt, self.store.engine.dialect.name).compile(q.filter)
                except BadRequest as exc:
                    errors.append(exc)
            if len(errors) == len(rtypes):
                raise errors[0]
        total = 0
        docs: list[Any] = []
        skip = q.start_index - 1
        want = q.count
        for rt in rtypes:
            proj = _lenient_projection(rt, q.attributes, q.excluded)
            n, _ = self.store.search(did, rt, q.filter, None, False, 0, 0, loads_for(proj),
                                     lenient=True)
            total += n
            if want > 0 and skip < n:
                sort = q.sort_by if q.sort_by and _sortable(rt, q.sort_by) else None
                _, recs = self.store.search(did, rt, q.filter, sort, q.descending, skip, want,
                                            loads_for(proj), lenient=True)
                docs.extend(render(r, base, proj) for r in recs)
                want -= len(recs)
            skip = max(0, skip - n)
        return total, docs

    def routes(self) -> list[Route]:
        from scimsync.api.bulk import BulkApi

        bulk = BulkApi(self)
        e = self.endpoint
        return [
            Route("/ServiceProviderConfig", e(_get_only(self.spc)), methods=ALL),
            Route("/ResourceTypes", e(_get_only(self.resource_types)), methods=ALL),
            Route("/ResourceTypes/{name}", e(_get_only(self.resource_types)), methods=ALL),
            Route("/Schemas", e(_get_only(self.schemas)), methods=ALL),
            Route("/Schemas/{sid}", e(_get_only(self.schemas)), methods=ALL),
            Route("/Bulk", e(bulk.post), methods=["POST"]),
            Route("/.search", e(self.root_search), methods=["POST"]),
            Route("/", e(self.root_search), methods=["GET"]),
            Route("/Me", e(_me), methods=["GET", "POST", "PUT", "PATCH", "DELETE"]),
            Route("/{endpoint}", e(self.list_resources), methods=["GET"]),
            Route("/{endpoint}", e(self.create), methods=["POST"]),
            Route("/{endpoint}/.search", e(self.search), methods=["POST"]),
            Route("/{endpoint}/{rid}", e(self.get), methods=["GET"]),
            Route("/{endpoint}/{rid}", e(self.replace), methods=["PUT"]),
            Route("/{endpoint}/{rid}", e(self.patch), methods=["PATCH"]),
            Route("/{endpoint}/{rid}", e(self.delete), methods=["DELETE"]),
        ]


async def _rendered(rec: Record, base: str, proj: Projection, did: str) -> dict[str, Any]:
    """A resource's document; a group with many members is rendered on a pool thread."""
    if rec.members is not None and len(rec.members) > RENDER_ON_LOOP:
        return await run_db(render, rec, base, proj, directory=did)
    return render(rec, base, proj)


def _lenient_projection(rt: ResourceType, attributes: Any, excluded: Any) -> Projection:
    """A projection that ignores paths this resource type does not have."""
    from scimsync.protocol.schema import resolve, split_urn

    def keep(v: Any) -> Any:
        if v is None:
            return None
        parts = v if isinstance(v, list) else str(v).split(",")
        return [p for p in parts if isinstance(p, str) and (
            resolve(rt, p.strip()) is not None or split_urn(p.strip(), rt)[0] is not None)]

    kept = keep(attributes)
    if attributes is not None and not kept:
        return Projection(include=frozenset({"id"}))
    return parse_projection(rt, kept, keep(excluded))


def _sortable(rt: ResourceType, path: str) -> bool:
    from scimsync.protocol.schema import resolve

    return resolve(rt, path) is not None


ALL = ["GET", "POST", "PUT", "PATCH", "DELETE"]
Endpoint = Callable[[Request, str, Principal], Awaitable[Response]]


def _get_only(fn: Endpoint) -> Endpoint:
    """Discovery endpoints are read-only: other methods get 405 (RFC7644 §4)."""

    async def handler(request: Request, did: str, p: Principal) -> Response:
        if request.method != "GET":
            raise ScimError(f"{request.method} is not allowed here", status=405)
        return await fn(request, did, p)

    return handler


async def _me(_request: Request, _did: str, _p: Principal) -> Response:
    raise NotImplementedScim("/Me is not supported: directory tokens do not represent a user")


def _one_or_all(docs: list[dict[str, Any]], wanted: str | None, what: str) -> Response:
    """A discovery collection as a ListResponse, or the one member asked for by id."""
    if wanted is None:
        return scim(_list(docs, len(docs), 1))
    for d in docs:
        if d["id"] == wanted:
            return scim(d)
    raise NotFound(f"no {what} {wanted}")


def _list(docs: list[Any], total: int, start_index: int | None) -> dict[str, Any]:
    body: dict[str, Any] = {"schemas": [LIST_RESPONSE], "totalResults": total,
                            "itemsPerPage": len(docs)}
    if start_index is not None:
        body["startIndex"] = start_index
    body["Resources"] = docs
    return body
