"""python-scim's scim2-tester against a live scimsync HTTP server: every check passes."""

from __future__ import annotations

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

from scimsync.store.directories import Directories


def test_scim2_tester_passes_every_check(live_server: str, directories: Directories) -> None:
    d = directories.create("conformance")
    base = f"{live_server}/scim/v2/{d['id']}"
    with httpx2.Client(base_url=base, headers={"Authorization": f"Bearer {d['token']}"},
                       timeout=30) as http:
        results = check_server(SyncSCIMClient(http))
    failures = [f"{r.status.name} {r.title}: {r.reason}" for r in results
                if r.status != Status.SUCCESS]
    assert len(results) > 100
    assert failures == []
