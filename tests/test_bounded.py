"""The pieces that bound a request's cost (issue 11), checked apart from HTTP: the linear
algorithms agree with the quadratic ones they replace, the database pool keeps one
directory to its share, the SQLite writer never acknowledges a write it lost, and a
downstream's huge Retry-After still records the failure."""

from __future__ import annotations

import asyncio
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
import uvicorn
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from conftest import Scim, free_port
from scimsync.api.pool import DatabasePool
from scimsync.connectors.http import MAX_RETRY_AFTER, retry_after
from scimsync.errors import BadRequest, ScimError
from scimsync.protocol.bulk_order import Plan, references, substitute
from scimsync.protocol.evaluate import matches
from scimsync.protocol.filter import parse_filter
from scimsync.protocol.multivalued import merge, unprimary, without
from scimsync.protocol.resources import USER
from scimsync.protocol.values import normalise_body
from scimsync.store.directories import Directories
from scimsync.store.engine import make_engine, upgrade
from scimsync.store.filter_merge import merge_or
from scimsync.store.resources import Store
from scimsync.store.tables import targets
from scimsync.store.targets import Targets
from scimsync.sync import engine as engine_module
from scimsync.sync.engine import Reconciler
from test_filter_sql import _people, filters

# --- limits come from the environment ------------------------------------------------


def test_limits_are_read_from_the_environment_and_checked() -> None:
    from scimsync.limits import Limits

    got = Limits.from_env({"SCIMSYNC_MAX_JSON_DEPTH": "12", "SCIMSYNC_STATEMENT_TIMEOUT": "0"})
    assert (got.json_depth, got.statement_timeout, got.attribute_values) == (12, 0.0, 1000)
    for bad in ("many", "-1", "0"):
        with pytest.raises(ValueError, match="SCIMSYNC_MAX_ATTRIBUTE_VALUES"):
            Limits.from_env({"SCIMSYNC_MAX_ATTRIBUTE_VALUES": bad})


# --- multi-valued add and remove agree with pairwise comparison ------------------------


def _same(a: Any, b: Any) -> bool:
    """The pairwise rule PATCH used before values were indexed."""
    if isinstance(a, dict) and isinstance(b, dict):
        if "value" in a or "value" in b:
            if a.get("value") != b.get("value"):
                return False
            return "type" not in a or "type" not in b or a["type"] == b["type"]
        return {k: v for k, v in a.items() if k != "primary"} == {
            k: v for k, v in b.items() if k != "primary"}
    return bool(a == b)


def _pairwise_merge(old: list[Any], new: list[Any]) -> list[Any]:
    merged = list(old)
    for item in new:
        if isinstance(item, dict) and item.get("primary") is True:
            merged = [unprimary(m) for m in merged]
        if not any(_same(m, item) for m in merged):
            merged.append(item)
    return merged


@st.composite
def values(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 5)) == 0:
        return draw(st.sampled_from(["a", "b", 1, True]))
    out: dict[str, Any] = {}
    for key, pool in (("value", ["a", "b", "c", 1]), ("type", ["work", "home"]),
                      ("display", ["x", "y"])):
        if draw(st.booleans()):
            out[key] = draw(st.sampled_from(pool))
    if draw(st.integers(0, 3)) == 0:
        out["primary"] = True
    return out


@settings(max_examples=200, deadline=None)
@given(old=st.lists(values(), max_size=8), new=st.lists(values(), max_size=8))
def test_merging_by_index_equals_merging_pairwise(old: list[Any], new: list[Any]) -> None:
    assert merge(old, new) == _pairwise_merge(old, new)


@settings(max_examples=200, deadline=None)
@given(old=st.lists(values(), max_size=8), drop=st.lists(values(), max_size=8))
def test_removing_by_index_equals_removing_pairwise(old: list[Any], drop: list[Any]) -> None:
    assert without(old, drop) == [v for v in old if not any(_same(v, d) for d in drop)]


# --- Bulk: one dependency pass runs what repeated passes ran ---------------------------


def _passes(declares: list[str | None], needs: list[set[str]],
            fails: set[int]) -> tuple[set[int], set[int]]:
    """(ran, never ran) as the old algorithm decided: passes until none resolves."""
    created: set[str] = set()
    pending, ran = list(range(len(needs))), set()
    while pending:
        deferred = [i for i in pending if not needs[i] <= created]
        ready = [i for i in pending if needs[i] <= created]
        if not ready:
            break
        for i in ready:
            ran.add(i)
            if i not in fails and declares[i] is not None:
                created.add(declares[i])  # type: ignore[arg-type]
        # Later operations of a pass saw ids created earlier in it: resolve again.
        pending = deferred
    return ran, set(pending)


@settings(max_examples=200, deadline=None)
@given(st.data())
def test_one_dependency_pass_runs_what_repeated_passes_ran(data: st.DataObject) -> None:
    n = data.draw(st.integers(1, 8))
    names = [f"b{i}" for i in range(n + 2)]  # two names that no operation declares
    declares = [data.draw(st.sampled_from([None, f"b{i}"])) for i in range(n)]
    needs = [set(data.draw(st.lists(st.sampled_from(names), max_size=3))) for _ in range(n)]
    fails = set(data.draw(st.lists(st.integers(0, n - 1), max_size=2)))
    bodies = [{"refs": [f"bulkId:{r}" for r in sorted(refs)]} for refs in needs]
    plan = Plan.of(declares, bodies)
    ran: set[int] = set()
    for i in plan.order():
        ran.add(i)
        if i not in fails and declares[i] is not None:
            plan.created(declares[i])  # type: ignore[arg-type]
    expected_ran, expected_left = _passes(declares, needs, fails)
    assert ran == expected_ran
    assert set(range(n)) - ran == expected_left
    assert set(plan.doomed) <= expected_left  # known before anything ran


def test_a_chain_in_reverse_runs_from_its_end() -> None:
    declares = [f"c{i}" for i in range(5)]
    plan = Plan.of(declares, [{"m": f"bulkId:c{i + 1}"} if i < 4 else {} for i in range(5)])
    order = []
    for i in plan.order():
        order.append(i)
        plan.created(declares[i])
    assert order == [4, 3, 2, 1, 0]
    assert plan.doomed == []


def test_references_are_found_whole_or_as_path_segments_only() -> None:
    assert references(["bulkId:a", "/Groups/bulkId:b", {"x": "xbulkId:c"}, "bulkId:"]) == \
        {"a", "b"}
    assert substitute({"p": "/Users/bulkId:a", "v": ["bulkId:b", "xbulkId:c"]},
                      {"a": "1", "b": "2"}) == {"p": "/Users/1", "v": ["2", "xbulkId:c"]}


def test_two_posts_declaring_one_bulk_id_are_an_invalid_value() -> None:
    with pytest.raises(BadRequest) as err:
        Plan.of(["x", None, "x"], [{}, {}, {}])
    assert err.value.scim_type == "invalidValue"


# --- filters: merged OR terms select what the terms select ----------------------------


DOCS = [{**normalise_body(USER, body).doc, "id": str(i)} for i, body in enumerate(_people())]


@settings(max_examples=200, deadline=None)
@given(text=filters)
def test_merged_or_terms_select_the_same_resources(text: str) -> None:
    flt = parse_filter(text)
    try:
        expected = [d["id"] for d in DOCS if matches(USER, flt, d)]
    except BadRequest:
        return  # an invalid filter stays invalid; the SQL tests check that
    merged = merge_or(USER, flt)
    assert [d["id"] for d in DOCS if matches(USER, merged, d)] == expected


def test_or_terms_on_one_attribute_become_one_value_filter() -> None:
    flt = parse_filter('emails.value co "a" or title eq "x" or emails[type eq "work"] '
                       'or emails.type pr or emails.value ne "b"')
    assert str(merge_or(USER, flt)).count("ValuePath") == 1


# --- the database pool keeps a directory to its share ---------------------------------


def test_a_directory_holding_its_share_of_threads_leaves_the_others_to_other_tenants() -> None:
    pool = DatabasePool(threads=4, per_directory=2, timeout=0)
    started: list[str] = []
    two, release = threading.Event(), threading.Event()

    def held(tag: str) -> str:
        started.append(tag)
        if len(started) == 2:
            two.set()
        release.wait(30)
        return tag

    async def scenario() -> list[str]:
        hostile = [asyncio.ensure_future(pool.run("A", held, f"a{i}")) for i in range(3)]
        await asyncio.get_running_loop().run_in_executor(None, two.wait, 30)
        assert await pool.run("B", lambda: "b") == "b"
        assert sorted(started) == ["a0", "a1"]  # the third waits for A's share
        release.set()
        return list(await asyncio.gather(*hostile))

    assert asyncio.run(scenario()) == ["a0", "a1", "a2"]
    pool.executor.shutdown()


# --- the SQLite writer never acknowledges a write it lost -----------------------------


@pytest.fixture
def sqlite_store(tmp_path: Path) -> Iterator[tuple[Store, str]]:
    eng = make_engine(f"sqlite:///{tmp_path / 'writer.db'}")
    upgrade(eng)
    yield Store(eng), Directories(eng).create("writer")["id"]
    eng.dispose()


def test_a_write_that_takes_the_transaction_with_it_fails_the_writes_grouped_before_it(
        sqlite_store: tuple[Store, str]) -> None:
    store, did = sqlite_store
    assert store.writer is not None
    entered, go = threading.Event(), threading.Event()

    def hold(_conn: Any) -> str:
        entered.set()
        go.wait(30)
        return "held"

    def first(conn: Any) -> str:
        body = {"schemas": [USER.schema.id], "userName": "lost@x.test"}
        return store.create(did, USER, normalise_body(USER, body), None, conn).id

    def interrupted(conn: Any) -> None:
        conn.raw.rollback()  # what SQLite does to a write statement it interrupts
        raise sqlite3.OperationalError("interrupted")

    async def scenario() -> list[Any]:
        writer = store.writer
        assert writer is not None
        held = asyncio.ensure_future(writer.run(hold))
        await asyncio.get_running_loop().run_in_executor(None, entered.wait, 30)
        rest = [asyncio.ensure_future(writer.run(first)),
                asyncio.ensure_future(writer.run(interrupted))]
        await asyncio.sleep(0)
        go.set()  # all three are in one group now
        return list(await asyncio.gather(held, *rest, return_exceptions=True))

    outcomes = asyncio.run(scenario())
    assert all(isinstance(o, ScimError) and o.status == 503 for o in outcomes), outcomes
    _, found = store.search(did, USER, parse_filter('userName eq "lost@x.test"'), None, False,
                            0, 10, _no_loads())
    assert found == []


def _no_loads() -> Any:
    from scimsync.store.resources import Loads

    return Loads(members=False, groups=False)


# --- a downstream's Retry-After past any date ------------------------------------------


def test_retry_after_is_clamped_to_a_day() -> None:
    assert retry_after("99999999999") == MAX_RETRY_AFTER
    assert retry_after("9" * 5000) == MAX_RETRY_AFTER
    assert retry_after("Fri, 31 Dec 9999 23:59:59 GMT") == MAX_RETRY_AFTER
    assert retry_after("120") == 120.0


@pytest.fixture(params=["99999999999", "999999999999", "9" * 5000])
def unavailable(request: pytest.FixtureRequest) -> Iterator[str]:
    """An application that answers every request 503 with a Retry-After past any date
    (the last two overflowed the date arithmetic of the backoff)."""
    header = request.param.encode()

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        await send({"type": "http.response.start", "status": 503,
                    "headers": [(b"retry-after", header)]})
        await send({"type": "http.response.body", "body": b"later"})

    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port,
                                           log_level="critical", lifespan="off"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    server.should_exit = True
    thread.join(timeout=10)


def test_a_huge_retry_after_still_records_failures_and_quarantine(
        engine: Engine, scim: Scim, unavailable: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(engine_module, "QUARANTINE_AFTER", 2)
    scim.user("waiting@x.test")
    tid = Targets(engine).add(scim.directory_id, f"later-{secrets.token_hex(2)}", "scim", {
        "url": unavailable, "auth": {"type": "bearer", "token": "t"}})["id"]
    for expected in (1, 2):
        assert Reconciler(engine).run(tid).error is not None
        with engine.connect() as conn:
            row = conn.execute(sa.select(targets).where(targets.c.id == tid)).one()
        assert row.failures == expected
    assert row.status == "quarantined"
    assert row.retry_at is not None
