"""Paging that cannot lie: drift against an application whose listings do not add up.

The double of tests/lying.py stands in front of scim2-server and tells one lie at a
time. Whatever the lie, the run is incomplete with the check that caught it, no
finding is added or resolved, and nothing is deleted or deactivated, though the
target fixes orphans automatically and deletes them (docs/drift.md: Listing).
"""

from __future__ import annotations

import secrets
from typing import Any

import httpx2
import pytest
from sqlalchemy import Engine

from conftest import Scim
from downstream import PEER_TOKEN, converge
from lying import LIES, Liar
from scimsync.drift.detect import Detector
from scimsync.drift.findings import list_findings
from scimsync.drift.remediate import fix
from scimsync.errors import UsageError
from scimsync.store.targets import Targets

CORE = "urn:ietf:params:scim:schemas:core:2.0:User"
# What each lie is caught by (scimsync.connectors.paging, drift's scratch file).
CAUGHT_BY = {"ignores_position": "start_index", "ignores_position_silently": "repeated_id",
             "wrong_start": "start_index", "repeats_earlier_id": "repeated_id",
             "overstates_page": "items_per_page", "short_page": "short_page",
             "stuck_cursor": "cursor_repeated", "crash_on_count": "unreadable"}
REMEDIATE = {"orphaned_account": "auto", "lingering_access": "auto",
             "missing_account": "auto"}


def target(engine: Engine, scim: Scim, url: str, **profile: Any) -> str:
    t = Targets(engine).add(scim.directory_id, f"liar-{secrets.token_hex(2)}", "scim", {
        "url": url, "auth": {"type": "bearer", "token": PEER_TOKEN},
        "profile": {"page_size": 2, "deprovision": "delete", "groups": False, **profile},
        "drift": {"remediate": REMEDIATE}})
    return str(t["id"])


def remote_users(url: str) -> dict[str, dict[str, Any]]:
    r = httpx2.get(f"{url}/Users", params={"count": "1000"}, timeout=10,
                   headers={"Authorization": f"Bearer {PEER_TOKEN}"})
    r.raise_for_status()
    return {u["userName"]: u for u in r.json()["Resources"]}


def orphan(url: str) -> None:
    r = httpx2.post(f"{url}/Users", json={"schemas": [CORE], "userName": "orphan@x.test",
                                         "active": True}, timeout=10,
                    headers={"Authorization": f"Bearer {PEER_TOKEN}"})
    assert r.status_code == 201, r.text


def test_every_lie_the_double_tells_is_one_of_the_checked() -> None:
    assert set(CAUGHT_BY) == set(LIES)


@pytest.mark.parametrize("lie", LIES)
def test_a_listing_that_does_not_add_up_makes_an_incomplete_run_that_fixes_nothing(
        engine: Engine, scim: Scim, liar: tuple[Liar, str], lie: str) -> None:
    state, url = liar
    state.cursors = lie == "stuck_cursor"
    for i in range(5):
        scim.user(f"p{i}@x.test")
    tid = target(engine, scim, url)
    converge(engine, tid)
    orphan(url)
    before = remote_users(url)
    assert len(before) == 6

    state.lie = lie
    run = Detector(engine).run(tid)
    assert run["status"] == "incomplete", run
    assert run["stats"]["incomplete"]["reason"] == CAUGHT_BY[lie], run["stats"]
    assert run["error"] and "could not be read whole" in run["error"]
    assert "remediation" not in run
    assert list_findings(engine, target_id=tid) == []
    with pytest.raises(UsageError, match="incomplete"):
        fix(engine, tid, ["orphaned_account"], approved=True)
    state.lie = None
    assert remote_users(url) == before  # nothing deleted, nothing deactivated

    # Told the truth, the same target finds the orphan and (auto) deletes it: the
    # lie alone kept it alive.
    honest = Detector(engine).run(tid)
    assert honest["status"] == "complete", honest
    assert "incomplete" not in honest["stats"]
    assert honest["stats"]["findings"] == {"orphaned_account": 1}
    assert honest["remediation"]["fixed"] == 1
    assert "orphan@x.test" not in remote_users(url)


def test_an_app_that_fails_on_any_count_is_read_whole_when_the_profile_omits_it(
        engine: Engine, scim: Scim, liar: tuple[Liar, str]) -> None:
    state, url = liar
    state.lie = "crash_on_count"
    for i in range(5):
        scim.user(f"p{i}@x.test")
    tid = target(engine, scim, url, count="omit")
    converge(engine, tid)  # matching by filter sends no count either
    orphan(url)
    run = Detector(engine).run(tid)
    assert run["status"] == "complete", run
    assert run["stats"]["listed_users"] == 6
    assert run["stats"]["findings"] == {"orphaned_account": 1}
    assert state.asked and all("count" not in q for q in state.asked)


def test_a_capped_count_is_what_every_page_asks_for(
        engine: Engine, scim: Scim, liar: tuple[Liar, str]) -> None:
    state, url = liar
    for i in range(5):
        scim.user(f"p{i}@x.test")
    tid = target(engine, scim, url, page_size=100, count=3)
    converge(engine, tid)
    run = Detector(engine).run(tid)
    assert run["status"] == "complete", run
    assert run["stats"]["listed_users"] == 5
    assert [q.get("count") for q in state.asked] == ["3", "3"]


def test_no_page_asks_for_more_than_the_app_says_it_returns(
        engine: Engine, scim: Scim, liar: tuple[Liar, str]) -> None:
    """maxResults (the app's, here as the profile overrides it) caps every count."""
    state, url = liar
    for i in range(5):
        scim.user(f"p{i}@x.test")
    tid = target(engine, scim, url, page_size=100, discovery={"max_results": 2})
    converge(engine, tid)
    run = Detector(engine).run(tid)
    assert run["status"] == "complete", run
    assert run["stats"]["listed_users"] == 5
    assert [q.get("count") for q in state.asked] == ["2", "2", "2"]


def test_an_honest_cursor_listing_is_read_whole(engine: Engine, scim: Scim,
                                                liar: tuple[Liar, str]) -> None:
    state, url = liar
    state.cursors = True
    for i in range(5):
        scim.user(f"p{i}@x.test")
    tid = target(engine, scim, url)
    converge(engine, tid)
    state.asked.clear()
    run = Detector(engine).run(tid)
    assert run["status"] == "complete", run
    assert run["stats"]["listed_users"] == 5
    assert [q.get("cursor") for q in state.asked] == ["", "3", "5"]
