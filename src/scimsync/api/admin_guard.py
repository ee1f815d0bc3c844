"""Admin API for changing a target and for the accidental-deletion guard: update,
approve, reject, resync (docs/provisioning.md)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from starlette.requests import Request
from starlette.routing import Route

from scimsync.api.http import run_db
from scimsync.store.holds import approve, reject

if TYPE_CHECKING:
    from scimsync.api.admin import AdminApi


def guard_routes(api: AdminApi) -> list[Route]:
    """The routes, under /admin, behind the same admin tokens as the rest."""

    async def update_target(request: Request) -> Any:
        # The whole configuration, as when adding (credentials included): a change of
        # what identities should look like starts a resync (`resync` in the answer).
        body = await api._body(request)
        return await run_db(api.targets.update, request.path_params["tid"], body)

    async def approve_target(request: Request) -> Any:
        t = await run_db(api.targets.show, request.path_params["tid"])
        return await run_db(approve, api.store.engine, t["id"])

    async def reject_target(request: Request) -> Any:
        t = await run_db(api.targets.show, request.path_params["tid"])
        return await run_db(reject, api.store.engine, t["id"])

    async def resync_target(request: Request) -> Any:
        return await run_db(api.targets.resync, request.path_params["tid"])

    e = api.endpoint
    return [
        Route("/targets/{tid}", e(update_target), methods=["PUT"]),
        Route("/targets/{tid}/approve", e(approve_target), methods=["POST"]),
        Route("/targets/{tid}/reject", e(reject_target), methods=["POST"]),
        Route("/targets/{tid}/resync", e(resync_target), methods=["POST"]),
    ]
