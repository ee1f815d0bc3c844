"""Safe adoption: an account is adopted only if it is provably this identity's, never
taken over from another tenant, another target, or a person who made it by hand."""

from __future__ import annotations

import secrets
from typing import Any

import httpx2
import sqlalchemy as sa
from sqlalchemy import Engine

from conftest import Scim
from downstream import PEER_TOKEN, Peer, converge
from scimsync.connectors import memory
from scimsync.errors import UsageError
from scimsync.store import journal
from scimsync.store.tables import dead_letters
from scimsync.store.targets import Targets
from scimsync.sync.config import parse_config

AUTH = {"Authorization": f"Bearer {PEER_TOKEN}"}


def scim_target(engine: Engine, scim: Scim, peer: Peer, **profile: Any) -> str:
    return str(Targets(engine).add(scim.directory_id, f"app-{secrets.token_hex(2)}", "scim", {
        "url": peer.base, "auth": {"type": "bearer", "token": PEER_TOKEN},
        "profile": profile})["id"])


def letters(engine: Engine, tid: str) -> list[tuple[str, str]]:
    with engine.connect() as conn:
        return [(r.resource_id, r.action) for r in conn.execute(
            sa.select(dead_letters).where(dead_letters.c.target_id == tid))]


def remote_by_name(peer: Peer, user_name: str) -> list[dict[str, Any]]:
    found = peer.get("Users", filter=f'userName eq "{user_name}"')["Resources"]
    return list(found)


def test_two_tenants_on_one_app_never_take_over_each_others_accounts(
        engine: Engine, scim: Scim, other_scim: Scim, peer: Peer) -> None:
    c_alice = scim.user("alice@corp.example", emails=[{"value": "alice@corp.example",
                                                       "primary": True}])
    c_target = scim_target(engine, scim, peer)
    converge(engine, c_target)
    d_target = scim_target(engine, other_scim, peer, match=["externalId", "userName", "email"])
    d_alice = other_scim.user("alice@corp.example", emails=[{"value": "attacker@evil.example",
                                                             "primary": True}])
    converge(engine, d_target)
    [account] = remote_by_name(peer, "alice@corp.example")
    # C's account is untouched: its externalId and email are C's.
    assert account["externalId"] == c_alice["id"]
    assert [e["value"] for e in account["emails"]] == ["alice@corp.example"]
    assert letters(engine, d_target) == [(d_alice["id"], "conflict")]
    # D deleting its alice does nothing to C's.
    other_scim.delete(f"/Users/{d_alice['id']}")
    converge(engine, d_target)
    [account] = remote_by_name(peer, "alice@corp.example")
    assert account["active"] is True and account["externalId"] == c_alice["id"]


def test_an_account_made_by_hand_is_adopted_only_where_the_profile_allows(
        engine: Engine, scim: Scim, peer: Peer) -> None:
    r = httpx2.post(f"{peer.base}/Users", headers=AUTH, json={
        "schemas": ["urn:ietf:params:scim:schemas:core:2.0:User"],
        "userName": "bob@corp.example", "title": "set by hand"})
    assert r.status_code == 201
    bob = scim.user("bob@corp.example", title="Engineer")
    strict = scim_target(engine, scim, peer)
    converge(engine, strict)
    assert letters(engine, strict) == [(bob["id"], "conflict")]
    [account] = remote_by_name(peer, "bob@corp.example")
    assert account["title"] == "set by hand" and not account.get("externalId")

    Targets(engine).remove(strict)
    allowing = scim_target(engine, scim, peer, adopt="match")
    seq_before = _journal_seq(engine, scim.directory_id)
    converge(engine, allowing)
    [account] = remote_by_name(peer, "bob@corp.example")
    assert account["id"] == r.json()["id"]  # the same account, adopted
    assert account["externalId"] == bob["id"] and account["title"] == "Engineer"
    with engine.connect() as conn:
        entries = journal.read(conn, scim.directory_id, seq_before, 100)
    adopted = [e for e in entries if e["op"] == "adopted"]
    assert [(e["detail"]["resource_id"], e["detail"]["remote_id"]) for e in adopted] == [
        (bob["id"], account["id"])]


def _journal_seq(engine: Engine, directory_id: str) -> int:
    from scimsync.store.tables import directories

    with engine.connect() as conn:
        return int(conn.execute(sa.select(directories.c.journal_seq).where(
            directories.c.id == directory_id)).scalar_one())


def test_an_object_another_target_links_is_never_adopted(engine: Engine, scim: Scim,
                                                        other_scim: Scim) -> None:
    """Even without an externalId to tell (an app that drops it), an account linked by
    another target on the same system belongs to that target's identity."""
    store = secrets.token_hex(4)
    data = memory.store(store)
    first = Targets(engine).add(scim.directory_id, "first", "memory", {
        "store": store, "profile": {"adopt": "match"}})["id"]
    carol = scim.user("carol@corp.example")
    converge(engine, first)
    with data.lock:  # the application forgets externalIds
        for doc in data.of("User").values():
            doc.pop("externalId", None)
    second = Targets(engine).add(other_scim.directory_id, "second", "memory", {
        "store": store, "profile": {"adopt": "match"}})["id"]
    other = other_scim.user("carol@corp.example")
    converge(engine, second)
    assert letters(engine, second) == [(other["id"], "conflict")]
    with data.lock:
        [doc] = data.of("User").values()
    assert "externalId" not in doc and carol["id"]  # untouched by the second target
    memory.drop(store)


def test_a_mapping_may_not_write_external_id() -> None:
    import pytest

    with pytest.raises(UsageError, match="externalId is the hub's own"):
        parse_config("memory", {"store": "s", "mapping": [
            {"target": "externalId", "source": "userName"}]})
