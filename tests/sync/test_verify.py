"""Verifying what the application did (docs/provisioning.md: Verification).

The double of tests/lying.py stands in front of scim2-server: honest, or dropping a
group's members on every path (POST, PUT and PATCH). What it drops is sent once more
by PATCH, then is a finding, and the delivery is never recorded as applied.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx2
import sqlalchemy as sa
from sqlalchemy import Engine

from conftest import Scim
from downstream import PEER_TOKEN, converge
from lying import Liar
from scimsync.drift.findings import list_findings
from scimsync.store.tables import deliveries
from scimsync.store.targets import Targets


def target(engine: Engine, scim: Scim, url: str, **profile: Any) -> str:
    t = Targets(engine).add(scim.directory_id, f"v-{secrets.token_hex(2)}", "scim", {
        "url": url, "auth": {"type": "bearer", "token": PEER_TOKEN}, "profile": profile})
    return str(t["id"])


def outcomes(engine: Engine, tid: str, rid: str) -> list[tuple[str, str]]:
    d = deliveries.c
    with engine.connect() as conn:
        return [(r.action, r.outcome) for r in conn.execute(
            sa.select(d.action, d.outcome).where(d.target_id == tid, d.resource_id == rid)
            .order_by(d.id))]


def remote_group(url: str, name: str) -> dict[str, Any]:
    r = httpx2.get(f"{url}/Groups", timeout=10, headers={"Authorization": f"Bearer {PEER_TOKEN}"})
    [group] = [g for g in r.json()["Resources"] if g["displayName"] == name]
    return group  # type: ignore[no-any-return]


def reads_of_groups(state: Liar) -> list[str]:
    return [p for m, p, _ in state.seen if m == "GET" and "/Groups/" in p]


def team(scim: Scim) -> tuple[dict[str, Any], list[str]]:
    members = [scim.user(f"{n}-{secrets.token_hex(2)}@x.test")["id"] for n in ("a", "b")]
    return scim.group(f"team-{secrets.token_hex(2)}", members), members


def test_members_dropped_on_every_path_are_a_finding_and_never_applied(
        engine: Engine, scim: Scim, liar: tuple[Liar, str]) -> None:
    state, url = liar
    state.lie = "drops_members"
    group, _ = team(scim)
    tid = target(engine, scim, url)
    converge(engine, tid)
    assert remote_group(url, group["displayName"]).get("members", []) == []
    assert outcomes(engine, tid, group["id"]) == [("create", "unverified")]
    [finding] = list_findings(engine, target_id=tid, cls="membership_drift")
    assert finding["resource_id"] == group["id"] and finding["status"] == "open"
    assert finding["evidence"]["missing"] == 2 and finding["evidence"]["extra"] == 0
    assert "after one retry" in finding["evidence"]["reason"]
    # The retry was sent (a PATCH add); a PATCH taking nothing teaches nothing.
    assert any(m == "PATCH" and "/Groups/" in p for m, p, _ in state.seen)
    assert Targets(engine).show(tid)["learned"] == {}


def test_an_answer_that_shows_the_members_is_not_read_back(
        engine: Engine, scim: Scim, liar: tuple[Liar, str]) -> None:
    state, url = liar
    group, members = team(scim)
    tid = target(engine, scim, url)
    converge(engine, tid)
    assert len(remote_group(url, group["displayName"])["members"]) == len(members)
    assert outcomes(engine, tid, group["id"]) == [("create", "ok")]
    assert reads_of_groups(state) == []
    assert list_findings(engine, target_id=tid) == []


def test_verification_off_sends_no_reads(
        engine: Engine, scim: Scim, liar: tuple[Liar, str]) -> None:
    state, url = liar
    state.lie = "drops_members"
    group, _ = team(scim)
    tid = target(engine, scim, url, verify="none")
    converge(engine, tid)
    assert reads_of_groups(state) == []
    # Lookups by filter before the create aside, only the POST went out.
    assert [m for m, p, _ in state.seen if "/Groups" in p and m != "GET"] == ["POST"]
    assert list_findings(engine, target_id=tid) == []
    assert outcomes(engine, tid, group["id"]) == [("create", "ok")]
