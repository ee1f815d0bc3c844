"""Verifying what the application did (docs/provisioning.md: Verification).

The double of tests/lying.py stands in front of scim2-server: honest, or dropping a
group's members, or a user's `title`, on every path (POST, PUT and PATCH). What it
drops is sent once more by PATCH, then is a finding (`membership_drift`,
`attribute_drift`), and the delivery is never recorded as applied. Users are verified
with `profile.verify: all` only; by default (`groups`) they are not read back.
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx2
import sqlalchemy as sa
from sqlalchemy import Engine

from conftest import Scim
from downstream import PEER_TOKEN, converge
from lying import Liar, in_front
from scimsync.drift.findings import list_findings
from scimsync.store.directories import Directories
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


# --- users (verify: all) ---------------------------------------------------------

TITLE = "Staff Engineer"
AGENT = "urn:ietf:params:scim:schemas:core:2.0:Agent"


def person(scim: Scim, **attrs: Any) -> dict[str, Any]:
    tag = secrets.token_hex(3)
    return scim.user(f"ann-{tag}@x.test", name={"givenName": "Ann", "familyName": tag},
                     title=TITLE, emails=[{"value": f"Ann-{tag}@X.test", "primary": True}],
                     **attrs)


def user_requests(state: Liar) -> list[str]:
    """The requests on one user (not the lookups by filter before a create)."""
    return [m for m, p, _ in state.seen
            if "/Users" in p and (m != "GET" or "/Users/" in p)]


def reads_of_users(state: Liar) -> list[str]:
    return [p for m, p, _ in state.seen if m == "GET" and "/Users/" in p]


def test_an_attribute_the_app_drops_is_sent_once_more_then_a_finding_and_never_applied(
        engine: Engine, scim: Scim, liar: tuple[Liar, str]) -> None:
    state, url = liar
    state.lie = "drops_attribute"
    user = person(scim)
    tid = target(engine, scim, url, verify="all", groups=False)
    converge(engine, tid)
    assert outcomes(engine, tid, user["id"]) == [("create", "unverified")]
    [finding] = list_findings(engine, target_id=tid, cls="attribute_drift")
    assert finding["resource_id"] == user["id"] and finding["status"] == "open"
    assert finding["resource_type"] == "User"
    evidence = finding["evidence"]
    assert evidence["userName"] == user["userName"]
    assert evidence["differences"] == [{"attribute": "title", "sent": TITLE, "held": None}]
    assert "after one retry" in evidence["reason"]
    # The POST's answer lacks the title: read back, sent once more (one PATCH of the
    # title alone), read back again.
    assert user_requests(state) == ["POST", "GET", "PATCH", "GET"]
    [patch] = [body for m, p, body in state.seen if m == "PATCH"]
    assert patch["Operations"] == [{"op": "replace", "path": "title", "value": TITLE}]
    # Nothing else of the user was counted as a difference (emails' case, name...).
    assert list_findings(engine, target_id=tid) == [finding]


def test_an_answer_that_holds_what_was_sent_is_not_read_back_an_empty_one_is(
        engine: Engine, scim: Scim, liar: tuple[Liar, str]) -> None:
    state, url = liar
    user = person(scim)
    tid = target(engine, scim, url, verify="all", groups=False)
    converge(engine, tid)
    # The POST is answered with the user as scim2-server holds it: that is the proof.
    assert outcomes(engine, tid, user["id"]) == [("create", "ok")]
    assert user_requests(state) == ["POST"]
    # A change is a PATCH that scim2-server answers 204 (RFC 7644 §3.5.2): read back.
    r = scim.patch(f"/Users/{user['id']}", [{"op": "replace", "path": "title",
                                              "value": "Principal"}])
    assert r.status_code == 200, r.text
    converge(engine, tid)
    assert outcomes(engine, tid, user["id"]) == [("create", "ok"), ("update", "ok")]
    assert user_requests(state) == ["POST", "PATCH", "GET"]
    assert list_findings(engine, target_id=tid) == []


def test_by_default_users_are_not_read_back(
        engine: Engine, scim: Scim, peer_root: str) -> None:
    with in_front(f"{peer_root}/t{secrets.token_hex(4)}") as (quiet, quiet_url), \
            in_front(f"{peer_root}/t{secrets.token_hex(4)}") as (checked, checked_url):
        quiet.lie = checked.lie = "drops_attribute"
        user = person(scim)
        default = target(engine, scim, quiet_url, groups=False)
        verified = target(engine, scim, checked_url, groups=False, verify="all")
        converge(engine, default)
        converge(engine, verified)
        # `groups` (the default): the app's word is taken for users, the lie unseen.
        assert user_requests(quiet) == ["POST"]
        assert outcomes(engine, default, user["id"]) == [("create", "ok")]
        assert list_findings(engine, target_id=default) == []
        # The same lie, where users are verified.
        assert user_requests(checked) == ["POST", "GET", "PATCH", "GET"]
        assert outcomes(engine, verified, user["id"]) == [("create", "unverified")]


def test_an_agent_takes_the_same_path(engine: Engine, scim: Scim, live_server: str,
                                      directories: Directories) -> None:
    """Agents go to an application that holds them (here the hub's own SCIM server,
    another directory) by the same write, so they are verified the same way."""
    downstream = directories.create(f"agents-{secrets.token_hex(3)}")
    r = scim.post("/Agents", {"schemas": [AGENT], "name": f"bot-{secrets.token_hex(3)}",
                              "description": "files the reports"})
    assert r.status_code == 201, r.text
    agent = r.json()
    with in_front(f"{live_server}{downstream['scim_path']}") as (state, url):
        state.lie, state.dropped = "drops_attribute", "description"
        tid = str(Targets(engine).add(scim.directory_id, f"a-{secrets.token_hex(2)}", "scim", {
            "url": url, "auth": {"type": "bearer", "token": downstream["token"]},
            "profile": {"verify": "all", "groups": False}})["id"])
        converge(engine, tid)
        assert [m for m, p, _ in state.seen if "/Agents" in p and m == "PATCH"] == ["PATCH"]
    assert outcomes(engine, tid, agent["id"]) == [("create", "unverified")]
    [finding] = list_findings(engine, target_id=tid, cls="attribute_drift")
    assert finding["resource_type"] == "Agent" and finding["evidence"]["name"] == agent["name"]
    assert finding["evidence"]["differences"] == [
        {"attribute": "description", "sent": "files the reports", "held": None}]
