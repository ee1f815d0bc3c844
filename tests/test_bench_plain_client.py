"""The benchmarks' baseline (bench/plain_client.py) creates in a real SCIM application
what the engine creates there for the same directory."""

from __future__ import annotations

import secrets
import sys
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine

from conftest import Scim
from downstream import PEER_TOKEN, Peer, converge
from scimsync.store.targets import Targets

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "bench"))
from _common import group_members, user_body
from plain_client import RUNNERS, Shape

SHAPE = Shape(users=7, groups=2, members=4, match=("externalId", "userName"))
UNCOMPARABLE = {"id", "meta", "externalId"}  # each side's own identifiers


def comparable(doc: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in doc.items() if k not in UNCOMPARABLE}


def held(peer: Peer) -> tuple[dict[str, Any], dict[str, set[str]]]:
    """Users by userName, and each group's members as userNames."""
    users = peer.get("Users", count="1000")["Resources"]
    names = {u["id"]: u["userName"] for u in users}
    groups = peer.get("Groups", count="1000")["Resources"]
    return ({u["userName"]: comparable(u) for u in users},
            {g["displayName"]: {names[m["value"]] for m in g.get("members", [])}
             for g in groups})


@pytest.mark.parametrize("mode", sorted(RUNNERS))
def test_the_plain_client_leaves_in_the_app_what_the_engine_leaves(
        engine: Engine, scim: Scim, peer_root: str, mode: str) -> None:
    ids = []
    for i in range(SHAPE.users):
        r = scim.post("/Users", user_body(i))
        assert r.status_code == 201, r.text
        ids.append(r.json()["id"])
    for g in range(SHAPE.groups):
        scim.group(f"group {g}", [ids[k] for k in group_members(g, SHAPE.members,
                                                                 SHAPE.users)])
    by_engine = Peer(f"{peer_root}/t{secrets.token_hex(4)}")
    t = Targets(engine).add(scim.directory_id, f"app-{secrets.token_hex(2)}", "scim", {
        "url": by_engine.base, "auth": {"type": "bearer", "token": PEER_TOKEN},
        "profile": {"match": list(SHAPE.match)}})
    converge(engine, t["id"])
    by_plain = Peer(f"{peer_root}/t{secrets.token_hex(4)}")
    result = RUNNERS[mode](by_plain.base, PEER_TOKEN, SHAPE, 3)
    engine_users, engine_groups = held(by_engine)
    plain_users, plain_groups = held(by_plain)
    assert len(engine_users) == SHAPE.users
    assert plain_users == engine_users
    assert plain_groups == engine_groups
    # Per fifty users one lookup per match attribute, a POST per user and per group.
    assert result["requests"] == len(SHAPE.match) + SHAPE.users + SHAPE.groups
