"""POST /Bulk (RFC7644 §3.7): bulkId references, failOnErrors, size limits.

All operations run in one database transaction, each inside a savepoint. Without
failOnErrors a failed operation is rolled back alone. With failOnErrors the request
is all or nothing: once that many operations have failed, processing stops and the
whole transaction is rolled back, so the directory and its journal are untouched.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.responses import Response

from scimsync.api.http import read_json, run_write, scim
from scimsync.api.origin import public_root
from scimsync.errors import (
    BadRequest,
    PayloadTooLarge,
    ScimError,
    invalid_syntax,
    invalid_value,
)
from scimsync.protocol.bulk_order import Plan, substitute
from scimsync.protocol.discovery import MAX_OPERATIONS, MAX_PAYLOAD
from scimsync.protocol.patch import parse_request
from scimsync.protocol.resources import BY_ENDPOINT
from scimsync.protocol.schema import BULK_REQUEST, BULK_RESPONSE
from scimsync.protocol.values import normalise_body
from scimsync.store.directories import Principal
from scimsync.store.lean import LeanConnection
from scimsync.store.resources import Loads

if TYPE_CHECKING:
    from scimsync.api.scim import ScimApi

NO_LOADS = Loads(members=False, groups=False)  # Bulk responses carry no resources


class _Abort(Exception):
    """failOnErrors was reached: roll everything back."""


@dataclass
class _Op:
    index: int
    method: str
    path: str
    bulk_id: str | None
    version: str | None
    data: Any


class BulkApi:
    def __init__(self, api: ScimApi):
        self.api = api

    async def post(self, request: Request, did: str, p: Principal) -> Response:
        body = await read_json(request, limit=MAX_PAYLOAD)  # 413 past maxPayloadSize
        if not isinstance(body, dict) or BULK_REQUEST not in (body.get("schemas") or []):
            raise invalid_syntax(f"schemas must be [{BULK_REQUEST!r}]")
        raw_ops = body.get("Operations")
        if not isinstance(raw_ops, list) or not raw_ops:
            raise invalid_syntax("Operations must be a non-empty array")
        if len(raw_ops) > MAX_OPERATIONS:
            raise PayloadTooLarge(f"more than maxOperations {MAX_OPERATIONS} operations")
        fail_on = body.get("failOnErrors")
        if fail_on is not None and (not isinstance(fail_on, int) or fail_on < 1):
            raise invalid_value("failOnErrors must be a positive integer")
        ops = [_parse_op(i, o) for i, o in enumerate(raw_ops)]
        base = f"{public_root(request)}/scim/v2/{did}"
        results = await run_write(self.api.store, did,
                                  lambda conn: self._run(conn, did, p, ops, fail_on, base))
        return scim({"schemas": [BULK_RESPONSE], "Operations": results})

    def _run(self, conn: LeanConnection, did: str, p: Principal, ops: list[_Op],
             fail_on: int | None, base: str) -> list[dict[str, Any]]:
        results: dict[int, dict[str, Any]] = {}
        ids: dict[str, str] = {}
        plan = Plan.of([o.bulk_id if o.method == "POST" else None for o in ops],
                       [[o.path, o.data] for o in ops])
        try:
            # One savepoint around everything: reaching failOnErrors undoes it all.
            with conn.begin_nested():
                # Known before anything runs: failOnErrors may stop the request here.
                for i in plan.doomed:
                    results[i] = _failure(ops[i], _unresolvable())
                errors = len(plan.doomed)
                if fail_on is not None and errors >= fail_on:
                    raise _Abort
                for i in plan.order():
                    op = ops[i]
                    try:
                        with conn.begin_nested():
                            results[i] = self._one(conn, did, p, op, substitute(op.path, ids),
                                                   substitute(op.data, ids), base, ids)
                    except ScimError as exc:
                        errors += 1
                        results[i] = _failure(op, exc)
                        if fail_on is not None and errors >= fail_on:
                            raise _Abort from exc
                        continue
                    if op.method == "POST" and op.bulk_id is not None:
                        plan.created(op.bulk_id)
                for i in range(len(ops)):  # waited for a POST that failed
                    if i not in results:
                        errors += 1
                        results[i] = _failure(ops[i], _unresolvable())
                if fail_on is not None and errors >= fail_on:
                    raise _Abort
        except _Abort:
            for i, res in results.items():
                if not str(res["status"]).startswith(("4", "5")):
                    results[i] = _failure(ops[i], ScimError(
                        "rolled back: the bulk request reached failOnErrors and nothing "
                        "was applied", status=409))
        return [results[i] for i in sorted(results)]

    def _one(self, conn: LeanConnection, did: str, p: Principal, op: _Op, path: str, data: Any,
             base: str, ids: dict[str, str]) -> dict[str, Any]:
        store = self.api.store
        parts = path.strip("/").split("/")
        rt = BY_ENDPOINT.get(parts[0]) if parts else None
        if rt is None or len(parts) > 2:
            raise BadRequest(f"unsupported bulk path {path!r}", scim_type="invalidPath")
        out: dict[str, Any] = {"method": op.method}
        if op.bulk_id is not None:
            out["bulkId"] = op.bulk_id
        if op.method == "POST":
            if len(parts) != 1:
                raise BadRequest("POST goes to a resource endpoint", scim_type="invalidPath")
            if op.bulk_id is None:
                raise invalid_syntax("POST operations need a bulkId")
            rec = store.create(did, rt, normalise_body(rt, data), p.token_id, conn, NO_LOADS)
            ids[op.bulk_id] = rec.id
            out.update(location=f"{base}{rt.endpoint}/{rec.id}", version=rec.etag, status="201")
            return out
        if len(parts) != 2:
            raise BadRequest(f"{op.method} needs a resource id", scim_type="invalidPath")
        rid = parts[1]
        if op.method == "PUT":
            rec = store.replace(did, rt, rid, normalise_body(rt, data), op.version, p.token_id,
                                conn, NO_LOADS)
        elif op.method == "PATCH":
            rec = store.patch(did, rt, rid, parse_request(data), op.version, p.token_id, conn,
                              NO_LOADS)
        elif op.method == "DELETE":
            store.delete(did, rt, rid, op.version, p.token_id, conn)
            out.update(location=f"{base}{rt.endpoint}/{rid}", status="204")
            return out
        else:
            raise invalid_syntax(f"unsupported bulk method {op.method}")
        out.update(location=f"{base}{rt.endpoint}/{rec.id}", version=rec.etag, status="200")
        return out


def _parse_op(index: int, raw: Any) -> _Op:
    if not isinstance(raw, dict):
        raise invalid_syntax(f"operation {index} must be an object")
    method = raw.get("method")
    path = raw.get("path")
    if not isinstance(method, str) or method.upper() not in ("POST", "PUT", "PATCH", "DELETE"):
        raise invalid_syntax(f"operation {index} has no valid method")
    if not isinstance(path, str) or not path.startswith("/"):
        raise invalid_syntax(f"operation {index} has no valid path")
    bulk_id = raw.get("bulkId")
    version = raw.get("version")
    return _Op(index, method.upper(), path, bulk_id if isinstance(bulk_id, str) else None,
               version if isinstance(version, str) else None, raw.get("data"))


def _unresolvable() -> ScimError:
    return ScimError("unresolvable or circular bulkId reference", status=409,
                     scim_type="invalidValue")


def _failure(op: _Op, exc: ScimError) -> dict[str, Any]:
    out: dict[str, Any] = {"method": op.method, "status": str(exc.status),
                           "response": exc.to_scim()}
    if op.bulk_id is not None:
        out["bulkId"] = op.bulk_id
    return out

