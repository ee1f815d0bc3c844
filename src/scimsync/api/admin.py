"""The admin REST API under /admin, behind admin tokens (OpenAPI at /admin/openapi.json)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import orjson
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from scimsync.api.admin_guard import guard_routes
from scimsync.api.http import run_db
from scimsync.api.openapi import OPENAPI
from scimsync.api.origin import public_root
from scimsync.drift.detect import Detector, list_runs
from scimsync.drift.findings import LINE_COLUMNS, accept, as_line, get_finding, list_findings
from scimsync.drift.remediate import fix
from scimsync.errors import ScimError, UsageError
from scimsync.limits import int64
from scimsync.nhi.policy import get_policy, set_policy
from scimsync.nhi.reports import COLUMNS as NHI_COLUMNS
from scimsync.nhi.reports import LEAVER_COLUMNS
from scimsync.nhi.reports import report as nhi_report
from scimsync.nhi.revocations import COLUMNS as REVOCATION_COLUMNS
from scimsync.nhi.revocations import acknowledge, list_revocations
from scimsync.nhi.sweep import Sweeper
from scimsync.protocol.timefmt import format_time
from scimsync.reports import csv_text
from scimsync.store import journal
from scimsync.store.advertised import get_advertised, set_advertised
from scimsync.store.directories import Directories, Lifetime
from scimsync.store.resources import Store
from scimsync.store.targets import Targets, list_dead_letters
from scimsync.sync.engine import retry_dead_letters
from scimsync.sync.events import build_event, retention_days
from scimsync.sync.lag import target_lag

Handler = Callable[[Request], Awaitable[Response]]


def _classes(value: Any) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(c, str) for c in value):
        raise UsageError("a list of finding classes is expected")
    return value


class JSONResponse(Response):
    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


def _error(status: int, message: str) -> Response:
    return JSONResponse({"error": message}, status_code=status)


class AdminApi:
    def __init__(self, store: Store, dirs: Directories):
        self.store = store
        self.dirs = dirs
        self.targets = Targets(store.engine)

    def endpoint(self, fn: Callable[[Request], Awaitable[Any]], status: int = 200) -> Handler:
        async def handler(request: Request) -> Response:
            header = request.headers.get("authorization", "")
            scheme, _, token = header.partition(" ")
            principal = await run_db(self.dirs.authenticate, token.strip()) \
                if scheme.lower() == "bearer" else None
            if principal is None or principal.kind != "admin":
                resp = _error(401, "an admin bearer token is required")
                resp.headers["WWW-Authenticate"] = 'Bearer realm="scimsync-admin"'
                return resp
            try:
                result = await fn(request)
            except UsageError as exc:
                return _error(404 if str(exc).startswith("no ") else 400, str(exc))
            except ScimError as exc:
                resp = _error(exc.status, exc.detail)
                resp.headers.update(exc.headers)
                return resp
            if result is None:
                return Response(status_code=204)
            if isinstance(result, Response):
                return result
            return JSONResponse(result, status_code=status)

        return handler

    async def _body(self, request: Request) -> dict[str, Any]:
        raw = await request.body()
        if not raw:
            return {}
        try:
            body = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise UsageError("the request body is not valid JSON") from exc
        if not isinstance(body, dict):
            raise UsageError("the request body must be a JSON object")
        return body

    async def list_directories(self, _r: Request) -> Any:
        return {"directories": await run_db(self.dirs.list_all)}

    async def create_directory(self, request: Request) -> Any:
        body = await self._body(request)
        name = body.get("name")
        if not isinstance(name, str):
            raise UsageError("name is required")
        created = await run_db(self.dirs.create, name)
        return {**created, "scim_url": f"{public_root(request)}{created['scim_path']}"}

    async def get_directory(self, request: Request) -> Any:
        return await run_db(self.dirs.get, request.path_params["did"])

    async def delete_directory(self, request: Request) -> Any:
        await run_db(self.dirs.delete, request.path_params["did"])
        return None

    async def discovery(self, request: Request) -> Any:
        return await self._setting(request, get_advertised, set_advertised)

    async def _setting(self, request: Request, get: Callable[..., Any],
                       put: Callable[..., Any]) -> Any:
        """A directory's settings of one kind: GET shows them, PUT validates and stores."""
        did = (await run_db(self.dirs.get, request.path_params["did"]))["id"]
        if request.method == "PUT":
            return (await run_db(put, self.store.engine, did,
                                 await self._body(request))).to_json()
        return (await run_db(get, self.store.engine, did)).to_json()

    # Token handlers serve both scopes: /directories/{did}/tokens and /admin-tokens
    # (no `did`: admin tokens).

    async def events(self, request: Request) -> Any:
        """The events API: journal entries as events, by cursor, within the retention."""
        did = request.path_params["did"]
        await run_db(self.dirs.get, did)
        after = _int_param(request, "after", 0)
        limit = min(max(_int_param(request, "limit", 100), 1), 1000)
        oldest = format_time(datetime.now(UTC) - timedelta(days=retention_days()))

        def read() -> list[dict[str, Any]]:
            with self.store.read() as conn:
                entries = journal.read(conn, did, after, limit, since=oldest)
            return [build_event(self.store, e, "events-api") for e in entries]

        events = await run_db(read)
        return {"events": events, "next_after": events[-1]["seq"] if events else after,
                "retention_days": retention_days()}

    async def list_tokens(self, request: Request) -> Any:
        did = request.path_params.get("did")
        if did is not None:
            await run_db(self.dirs.get, did)
        return {"tokens": await run_db(self.dirs.list_tokens, did)}

    async def create_token(self, request: Request) -> Any:
        body = await self._body(request)
        expires = _seconds(body.get("expires_in_seconds"), "expires_in_seconds")
        return await run_db(
            self.dirs.create_token, request.path_params.get("did"),
            str(body.get("name") or ""), timedelta(seconds=expires) if expires else None)

    async def rotate_token(self, request: Request) -> Any:
        body = await self._body(request)
        overlap = _seconds(body.get("overlap_seconds", 3600), "overlap_seconds")
        lifetime: timedelta | Lifetime | None = Lifetime.KEEP
        if "expires_in_seconds" in body:  # null: the successor never expires
            seconds = _seconds(body["expires_in_seconds"], "expires_in_seconds")
            lifetime = timedelta(seconds=seconds) if seconds else None
        return await run_db(
            self.dirs.rotate_token, request.path_params.get("did"), request.path_params["tid"],
            timedelta(seconds=overlap or 0), lifetime)

    async def revoke_token(self, request: Request) -> Any:
        await run_db(self.dirs.revoke_token, request.path_params.get("did"),
                     request.path_params["tid"])
        return None

    async def journal(self, request: Request) -> Any:
        did = request.path_params["did"]
        await run_db(self.dirs.get, did)
        after = _int_param(request, "after", 0)
        limit = min(max(_int_param(request, "limit", 100), 1), 1000)

        def read() -> list[dict[str, Any]]:
            with self.store.read() as conn:
                return journal.read(conn, did, after, limit)

        entries = await run_db(read)
        return {"entries": entries, "next_after": entries[-1]["seq"] if entries else after}

    # --- targets --------------------------------------------------------------------

    async def list_targets(self, request: Request) -> Any:
        return {"targets": await run_db(self.targets.list,
                                        request.query_params.get("directory"))}

    async def add_target(self, request: Request) -> Any:
        body = await self._body(request)
        name, kind = body.pop("name", None), body.pop("kind", "scim")
        status = "paused" if body.pop("paused", False) else "active"
        if not isinstance(name, str) or not isinstance(kind, str):
            raise UsageError("name (and optionally kind) are required")
        return await run_db(self.targets.add, request.path_params["did"], name, kind, body,
                            status)

    async def show_target(self, request: Request) -> Any:
        return await run_db(self.targets.show, request.path_params["tid"])

    async def pause_target(self, request: Request) -> Any:
        return await run_db(self.targets.set_status, request.path_params["tid"], "paused")

    async def resume_target(self, request: Request) -> Any:
        return await run_db(self.targets.set_status, request.path_params["tid"], "active")

    async def remove_target(self, request: Request) -> Any:
        await run_db(self.targets.remove, request.path_params["tid"])
        return None

    async def target_lag(self, request: Request) -> Any:
        t = await run_db(self.targets.show, request.path_params["tid"])
        return await run_db(target_lag, self.store.engine, t["id"])

    async def dead_letters(self, request: Request) -> Any:
        t = await run_db(self.targets.show, request.path_params["tid"])
        status = request.query_params.get("status", "open")
        return {"dead_letters": await run_db(list_dead_letters, self.store.engine, t["id"],
                                             None if status == "all" else status)}

    async def retry_dead_letters(self, request: Request) -> Any:
        t = await run_db(self.targets.show, request.path_params["tid"])
        body = await self._body(request)
        ids = body.get("ids")
        if ids is not None and not (isinstance(ids, list) and all(isinstance(i, int)
                                                                  for i in ids)):
            raise UsageError("ids must be a list of dead-letter ids")
        return await run_db(retry_dead_letters, self.store.engine, t["id"], ids)

    # --- drift ------------------------------------------------------------------------

    async def run_drift(self, request: Request) -> Any:
        """A full reconciliation now; optionally fix classes afterwards."""
        t = await run_db(self.targets.show, request.path_params["tid"])
        body = await self._body(request)
        classes = _classes(body.get("fix", []))
        run = await run_db(Detector(self.store.engine).run, t["id"])
        fixed = None
        if classes and run["status"] == "complete":
            fixed = await run_db(fix, self.store.engine, t["id"], classes,
                                 body.get("approve") is True)
        return {"run": run, "remediation": fixed}

    async def fix_drift(self, request: Request) -> Any:
        t = await run_db(self.targets.show, request.path_params["tid"])
        body = await self._body(request)
        classes = _classes(body.get("classes"))
        if not classes:
            raise UsageError("classes: the finding classes to fix")
        return await run_db(fix, self.store.engine, t["id"], classes,
                            body.get("approve") is True)

    async def drift_runs(self, request: Request) -> Any:
        t = await run_db(self.targets.show, request.path_params["tid"])
        return {"runs": await run_db(list_runs, self.store.engine, t["id"])}

    async def findings(self, request: Request) -> Any:
        q = request.query_params
        did = await run_db(self.targets.directory_id, q["directory"]) if q.get("directory") \
            else None
        tid = (await run_db(self.targets.show, q["target"]))["id"] if q.get("target") else None
        try:
            limit = min(max(int(q.get("limit", "1000")), 1), 1000)
        except ValueError as exc:
            raise UsageError("limit is a number from 1 to 1000") from exc
        rows = await run_db(list_findings, self.store.engine, did, tid, q.get("class"),
                            q.get("status"), q.get("identity"), limit, q.get("after", ""))
        if _wants_csv(request):
            return _csv(csv_text((as_line(r) for r in rows), LINE_COLUMNS), "findings.csv")
        return {"findings": rows}

    async def finding(self, request: Request) -> Any:
        return await run_db(get_finding, self.store.engine, request.path_params["fid"])

    async def accept_finding(self, request: Request) -> Any:
        body = await self._body(request)
        values = [body.get(k) for k in ("reason", "approver", "until")]
        if not all(isinstance(v, str) for v in values):
            raise UsageError("reason, approver and until (a date-time) are required")
        return await run_db(accept, self.store.engine, request.path_params["fid"], *values)

    # --- non-human identities ---------------------------------------------------------

    async def nhi_policy(self, request: Request) -> Any:
        return await self._setting(request, get_policy, set_policy)

    async def nhi_sweep(self, request: Request) -> Any:
        did = (await run_db(self.dirs.get, request.path_params["did"]))["id"]
        return await run_db(Sweeper(self.store.engine).run, did)

    async def nhi_report(self, request: Request) -> Any:
        did = (await run_db(self.dirs.get, request.path_params["did"]))["id"]
        kind = request.path_params["kind"]
        rows = await run_db(nhi_report, self.store.engine, did, kind,
                            _int_param(request, "days", 30))
        if _wants_csv(request):
            columns = LEAVER_COLUMNS if kind == "leavers" else NHI_COLUMNS
            return _csv(csv_text(rows, columns), f"nhi-{kind}.csv")
        return {"report": kind, "rows": rows}

    async def revocations(self, request: Request) -> Any:
        q = request.query_params
        did = (await run_db(self.dirs.get, q["directory"]))["id"] if q.get("directory") \
            else None
        rows = await run_db(list_revocations, self.store.engine, did, q.get("status"),
                            q.get("identity"))
        if _wants_csv(request):
            return _csv(csv_text(rows, REVOCATION_COLUMNS), "revocations.csv")
        return {"revocations": rows}

    async def acknowledge_revocation(self, request: Request) -> Any:
        body = await self._body(request)
        by, note = body.get("by"), body.get("note")
        if not isinstance(by, str) or (note is not None and not isinstance(note, str)):
            raise UsageError("by (who revoked the credential) is required; note is text")
        return await run_db(acknowledge, self.store.engine, request.path_params["rid"],
                            by, note)

    async def openapi(self, _r: Request) -> Response:
        return JSONResponse(OPENAPI)

    def routes(self) -> list[Route]:
        e = self.endpoint
        return [
            Route("/openapi.json", self.openapi, methods=["GET"]),
            Route("/directories", e(self.list_directories), methods=["GET"]),
            Route("/directories", e(self.create_directory, 201), methods=["POST"]),
            Route("/directories/{did}", e(self.get_directory), methods=["GET"]),
            Route("/directories/{did}", e(self.delete_directory), methods=["DELETE"]),
            Route("/directories/{did}/discovery", e(self.discovery), methods=["GET", "PUT"]),
            Route("/directories/{did}/tokens", e(self.list_tokens), methods=["GET"]),
            Route("/directories/{did}/tokens", e(self.create_token, 201), methods=["POST"]),
            Route("/directories/{did}/tokens/{tid}/rotate", e(self.rotate_token, 201),
                  methods=["POST"]),
            Route("/directories/{did}/tokens/{tid}", e(self.revoke_token), methods=["DELETE"]),
            Route("/directories/{did}/journal", e(self.journal), methods=["GET"]),
            Route("/directories/{did}/events", e(self.events), methods=["GET"]),
            Route("/directories/{did}/targets", e(self.add_target, 201), methods=["POST"]),
            Route("/targets", e(self.list_targets), methods=["GET"]),
            Route("/targets/{tid}", e(self.show_target), methods=["GET"]),
            Route("/targets/{tid}", e(self.remove_target), methods=["DELETE"]),
            Route("/targets/{tid}/pause", e(self.pause_target), methods=["POST"]),
            Route("/targets/{tid}/resume", e(self.resume_target), methods=["POST"]),
            *guard_routes(self),
            Route("/targets/{tid}/lag", e(self.target_lag), methods=["GET"]),
            Route("/targets/{tid}/dead-letters", e(self.dead_letters), methods=["GET"]),
            Route("/targets/{tid}/dead-letters/retry", e(self.retry_dead_letters),
                  methods=["POST"]),
            Route("/targets/{tid}/drift", e(self.run_drift), methods=["POST"]),
            Route("/targets/{tid}/drift/fix", e(self.fix_drift), methods=["POST"]),
            Route("/targets/{tid}/drift-runs", e(self.drift_runs), methods=["GET"]),
            Route("/findings", e(self.findings), methods=["GET"]),
            Route("/findings/{fid}", e(self.finding), methods=["GET"]),
            Route("/findings/{fid}/accept", e(self.accept_finding), methods=["POST"]),
            Route("/directories/{did}/nhi/policy", e(self.nhi_policy), methods=["GET", "PUT"]),
            Route("/directories/{did}/nhi/sweep", e(self.nhi_sweep), methods=["POST"]),
            Route("/directories/{did}/nhi/reports/{kind}", e(self.nhi_report),
                  methods=["GET"]),
            Route("/revocations", e(self.revocations), methods=["GET"]),
            Route("/revocations/{rid}/acknowledge", e(self.acknowledge_revocation),
                  methods=["POST"]),
            Route("/admin-tokens", e(self.list_tokens), methods=["GET"]),
            Route("/admin-tokens", e(self.create_token, 201), methods=["POST"]),
            Route("/admin-tokens/{tid}/rotate", e(self.rotate_token, 201), methods=["POST"]),
            Route("/admin-tokens/{tid}", e(self.revoke_token), methods=["DELETE"]),
        ]


def _int_param(request: Request, name: str, default: int) -> int:
    raw = request.query_params.get(name)
    if raw is None:
        return default
    value = int64(raw) if raw.isdigit() else None
    if value is None:
        raise UsageError(f"{name} must be a non-negative 64-bit integer")
    return value


MAX_SECONDS = 100 * 365 * 86_400  # a century: later dates overflow datetime arithmetic


def _seconds(value: Any, name: str) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"{name} must be a non-negative integer")
    if value > MAX_SECONDS:
        raise UsageError(f"{name} must be at most {MAX_SECONDS} (100 years)")
    return value


def _wants_csv(request: Request) -> bool:
    """`format=csv`, or an Accept header that asks for CSV (reports only)."""
    fmt = request.query_params.get("format")
    if fmt is not None and fmt not in ("csv", "json"):
        raise UsageError("format is csv or json")
    return fmt == "csv" or (fmt is None and "text/csv" in request.headers.get("accept", ""))


def _csv(text: str, filename: str) -> Response:
    return Response(text, media_type="text/csv; charset=utf-8",
                    headers={"Content-Disposition": f'attachment; filename="{filename}"'})
