"""Hostile requests (issue 11), each sent over a real socket: served within bounds, or
refused with the SCIM error RFC 7644 §3.12 names, and then nothing is written."""

from __future__ import annotations

import base64
import threading
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import replace
from typing import Any

import httpx
import orjson
import pytest

from conftest import ENTERPRISE, GROUP, USER, Scim
from scimsync import limits
from scimsync.api.pool import DatabaseCalls
from scimsync.store.directories import Directories

BULK = "urn:ietf:params:scim:api:messages:2.0:BulkRequest"
SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"
DIGITS = "9" * 5000


@pytest.fixture
def web(live_scim: Callable[[str], Scim]) -> Scim:
    """A fresh directory, spoken to over a real socket."""
    return live_scim("hostile")


@pytest.fixture
def bystander(live_scim: Callable[[str], Scim]) -> Scim:
    """Another tenant, with a client of its own."""
    return live_scim("bystander")


@pytest.fixture
def small_limits() -> Iterator[Any]:
    """Set some limits for one test; the defaults come back afterwards."""
    def use(**values: Any) -> None:
        limits.use(replace(limits.current(), **values))

    yield use
    limits.use(None)


def seq(directories: Directories, scim: Scim) -> int:
    return int(directories.get(scim.directory_id)["journal_seq"])


def refused(r: Any, status: int, scim_type: str | None) -> None:
    assert r.status_code == status, r.text
    body = r.json()
    assert body["status"] == str(status)
    assert body.get("scimType") == scim_type


def bulk(scim: Scim, ops: list[dict[str, Any]], **extra: Any) -> Any:
    return scim.post("/Bulk", {"schemas": [BULK], "Operations": ops, **extra})


# --- multi-valued attributes ---------------------------------------------------------


def test_a_patch_adding_twenty_thousand_emails_is_refused_and_writes_nothing(
        web: Scim, directories: Directories) -> None:
    u = web.user("many@x.test", emails=[{"value": "one@x.test"}])
    before = seq(directories, web)
    r = web.patch(f"/Users/{u['id']}", [{"op": "add", "path": "emails", "value": [
        {"value": f"{i}@x.io"} for i in range(20_000)]}])
    refused(r, 400, "invalidValue")
    assert seq(directories, web) == before
    assert web.get(f"/Users/{u['id']}").json()["emails"] == [{"value": "one@x.test"}]


def test_adding_and_removing_a_thousand_values_is_served_without_repeats(web: Scim) -> None:
    u = web.user("thousand@x.test")
    values = [{"value": f"{i}@x.io", "type": "work"} for i in range(1000)]
    for _ in range(2):  # the second add finds every value already there
        r = web.patch(f"/Users/{u['id']}", [{"op": "add", "path": "emails", "value": values}])
        assert r.status_code == 200, r.text
        assert len(r.json()["emails"]) == 1000
    r = web.patch(f"/Users/{u['id']}", [{"op": "remove", "path": "emails",
                                         "value": [{"value": f"{i}@x.io"} for i in range(999)]}])
    assert r.status_code == 200, r.text
    assert r.json()["emails"] == [{"value": "999@x.io", "type": "work"}]


def test_operations_that_together_pass_the_limit_are_refused(
        web: Scim, directories: Directories) -> None:
    u = web.user("steps@x.test")
    before = seq(directories, web)
    half = [{"op": "add", "path": "emails",
             "value": [{"value": f"{k}{i}@x.io"} for i in range(600)]} for k in "ab"]
    refused(web.patch(f"/Users/{u['id']}", half), 400, "invalidValue")
    assert seq(directories, web) == before


def test_a_document_past_the_value_limit_is_refused(
        web: Scim, directories: Directories, small_limits: Any) -> None:
    small_limits(document_values=40)
    before = seq(directories, web)
    r = web.post("/Users", {"schemas": [USER], "userName": "wide@x.test",
                            "emails": [{"value": f"{i}@x.io", "type": "work"} for i in range(15)]})
    refused(r, 400, "invalidValue")
    assert seq(directories, web) == before
    assert web.post("/Users", {"schemas": [USER], "userName": "narrow@x.test",
                               "emails": [{"value": "a@x.io"}]}).status_code == 201


def test_a_document_stored_before_a_limit_was_lowered_can_still_change(
        web: Scim, small_limits: Any) -> None:
    u = web.user("legacy@x.test", emails=[{"value": f"{i}@x.io"} for i in range(20)])
    small_limits(attribute_values=5)
    r = web.patch(f"/Users/{u['id']}", [{"op": "replace", "path": "active", "value": False}])
    assert r.status_code == 200, r.text
    r = web.patch(f"/Users/{u['id']}", [{"op": "add", "path": "emails",
                                         "value": [{"value": "more@x.io"}]}])
    refused(r, 400, "invalidValue")


def test_group_members_per_request_are_limited(
        web: Scim, directories: Directories, small_limits: Any) -> None:
    ids = [web.user(f"m{i}@x.test")["id"] for i in range(3)]
    small_limits(members_per_request=2)
    before = seq(directories, web)
    r = web.post("/Groups", {"schemas": [GROUP], "displayName": "crowd",
                             "members": [{"value": i} for i in ids]})
    refused(r, 400, "invalidValue")
    g = web.group("small", ids[:1])
    r = web.patch(f"/Groups/{g['id']}", [{"op": "add", "path": "members", "value": [{"value": i}]}
                                        for i in ids])  # three named in all
    refused(r, 400, "invalidValue")
    assert seq(directories, web) == before + 2  # the user of the group, and the group


def test_a_group_too_large_to_render_on_the_loop_is_served_whole(web: Scim) -> None:
    from scimsync.api.scim import RENDER_ON_LOOP

    created = bulk(web, [{"method": "POST", "path": "/Users", "bulkId": f"u{i}", "data": {
        "schemas": [USER], "userName": f"member{i}@x.test"}} for i in range(RENDER_ON_LOOP)])
    ids = [o["location"].rsplit("/", 1)[1] for o in created.json()["Operations"]]
    ids.append(web.user("one-more@x.test")["id"])
    g = web.group("everyone", ids)
    got = web.get(f"/Groups/{g['id']}").json()
    assert sorted(m["value"] for m in got["members"]) == sorted(ids)


# --- Bulk ----------------------------------------------------------------------------


def test_a_thousand_posts_chained_in_reverse_are_all_created(web: Scim) -> None:
    ops = [{"method": "POST", "path": "/Users", "bulkId": f"c{i}", "data": {
        "schemas": [USER, ENTERPRISE], "userName": f"chain{i}",
        **({ENTERPRISE: {"manager": {"value": f"bulkId:c{i + 1}"}}} if i < 999 else {})}}
        for i in range(1000)]
    r = bulk(web, ops)
    assert r.status_code == 200, r.text
    results = r.json()["Operations"]
    assert [o["status"] for o in results] == ["201"] * 1000
    first, second = (o["location"].rsplit("/", 1)[1] for o in results[:2])
    got = web.get(f"/Users/{first}").json()
    assert got[ENTERPRISE]["manager"]["value"] == second


def test_a_cycle_with_fail_on_errors_stops_before_anything_is_written(
        web: Scim, directories: Directories) -> None:
    before = seq(directories, web)
    ops = [{"method": "POST", "path": "/Users", "bulkId": "plain", "data": {
        "schemas": [USER], "userName": "plain@x.test"}}] + [
        {"method": "POST", "path": "/Groups", "bulkId": a, "data": {
            "schemas": [GROUP], "displayName": a, "members": [{"value": f"bulkId:{b}"}]}}
        for a, b in (("a", "b"), ("b", "a"))]
    r = bulk(web, ops, failOnErrors=1)
    assert r.status_code == 200
    statuses = {o["bulkId"]: o["status"] for o in r.json()["Operations"]}
    assert statuses == {"a": "409", "b": "409"}
    assert seq(directories, web) == before
    # Without failOnErrors the operation that does not depend on the cycle runs.
    statuses = {o["bulkId"]: o["status"] for o in bulk(web, ops).json()["Operations"]}
    assert statuses == {"plain": "201", "a": "409", "b": "409"}


def test_two_posts_declaring_one_bulk_id_are_refused(web: Scim, directories: Directories) -> None:
    before = seq(directories, web)
    ops = [{"method": "POST", "path": "/Users", "bulkId": "same", "data": {
        "schemas": [USER], "userName": f"twin{i}@x.test"}} for i in range(2)]
    refused(bulk(web, ops), 400, "invalidValue")
    assert seq(directories, web) == before


def test_bulk_data_nested_nine_hundred_deep_is_invalid_syntax(
        web: Scim, directories: Directories) -> None:
    deep: Any = "bottom"
    for _ in range(900):
        deep = {"a": deep}
    before = seq(directories, web)
    r = bulk(web, [{"method": "POST", "path": "/Users", "bulkId": "d",
                    "data": {"schemas": [USER], "userName": "deep", "x": deep}}])
    refused(r, 400, "invalidSyntax")
    assert seq(directories, web) == before


def test_a_bulk_id_inside_a_word_is_just_text(web: Scim) -> None:
    r = bulk(web, [{"method": "POST", "path": "/Users", "bulkId": "w", "data": {
        "schemas": [USER], "userName": "word@x.test", "title": "xbulkId:y"}}])
    assert r.json()["Operations"][0]["status"] == "201"


# --- filters and paging --------------------------------------------------------------


def test_or_terms_on_one_attribute_are_served_as_one_scan(web: Scim) -> None:
    web.user("a@x.test", emails=[{"value": "zz-a@x.test", "type": "work"}])
    web.user("b@x.test", emails=[{"value": "b@x.test", "type": "home"}])
    many = " or ".join(['emails.value co "zz"'] * 250)
    r = web.get("/Users", params={"filter": many})
    assert r.status_code == 200, r.text
    assert [u["userName"] for u in r.json()["Resources"]] == ["a@x.test"]
    mixed = 'emails.value co "zz" or emails[type eq "home"] or emails.type eq "none"'
    assert web.get("/Users", params={"filter": mixed}).json()["totalResults"] == 2


def test_too_many_terms_that_read_the_json_are_an_invalid_filter(web: Scim) -> None:
    text = " or ".join(f'title eq "{i}"' for i in range(limits.current().filter_json_terms + 1))
    refused(web.get("/Users", params={"filter": text}), 400, "invalidFilter")
    indexed = " or ".join(f'userName eq "{i}"' for i in range(100))
    assert web.get("/Users", params={"filter": indexed}).status_code == 200


@pytest.mark.parametrize("params", [
    {"startIndex": "99999999999999999999"},
    {"startIndex": DIGITS},
    {"count": DIGITS},
    {"count": "²"},
])
def test_numbers_past_sixty_four_bits_are_an_invalid_value(web: Scim,
                                                          params: dict[str, str]) -> None:
    refused(web.get("/Users", params=params), 400, "invalidValue")


def test_a_search_request_with_a_huge_start_index_is_an_invalid_value(web: Scim) -> None:
    r = web.post("/Users/.search", {"schemas": [SEARCH], "startIndex": 2**64 - 1})
    refused(r, 400, "invalidValue")


def test_a_cursor_past_sixty_four_bits_is_an_invalid_cursor(web: Scim) -> None:
    cursor = base64.urlsafe_b64encode(orjson.dumps({"o": 2**63})).decode().rstrip("=")
    refused(web.get("/Users", params={"cursor": cursor}), 400, "invalidCursor")


@pytest.mark.parametrize("literal", [DIGITS, "1e999", "-" + "9" * 30])
def test_a_filter_number_out_of_range_is_an_invalid_filter(web: Scim, literal: str) -> None:
    r = web.post("/Users/.search", {"schemas": [SEARCH], "filter": f"title eq {literal}"})
    refused(r, 400, "invalidFilter")


@pytest.mark.parametrize("value", [True, {}, 5, ["ok", 1]])
def test_search_attributes_that_are_not_strings_are_an_invalid_value(web: Scim,
                                                                     value: Any) -> None:
    for name in ("attributes", "excludedAttributes"):
        r = web.post("/Users/.search", {"schemas": [SEARCH], name: value})
        refused(r, 400, "invalidValue")


def test_a_search_past_the_statement_timeout_is_too_many(
        web: Scim, monkeypatch: pytest.MonkeyPatch) -> None:
    for start in (0, 1000):
        r = bulk(web, [{"method": "POST", "path": "/Users", "bulkId": str(i), "data": {
            "schemas": [USER], "userName": f"t{i}@x.test", "title": f"t{i}",
            "emails": [{"value": f"t{i}@x.test"}, {"value": f"h{i}@x.test"}]}}
            for i in range(start, start + 1000)])
        assert r.status_code == 200
    heavy = " or ".join(['emails.value co "zz"', 'title co "zz"', 'nickName co "zz"',
                         'name.givenName co "zz"', 'name.familyName co "zz"',
                         'displayName co "zz"', 'emails.type co "zz"', 'profileUrl co "zz"'])
    assert web.get("/Users", params={"count": "1"}).json()["totalResults"] == 2000  # cached token
    monkeypatch.setattr(DatabaseCalls.pool(), "timeout", 1e-6)
    refused(web.get("/Users", params={"filter": heavy}), 400, "tooMany")
    monkeypatch.undo()
    assert web.get("/Users", params={"filter": heavy}).json()["totalResults"] == 0


# --- admin API -----------------------------------------------------------------------


@pytest.mark.parametrize("field", ["overlap_seconds", "expires_in_seconds"])
def test_seconds_past_a_century_are_refused_by_the_admin_api(
        live_server: str, directories: Directories, field: str) -> None:
    admin = directories.create_token(None, "hostile-admin")
    d = directories.create("rotate")
    path = f"/admin/directories/{d['id']}/tokens"
    path += f"/{d['token_id']}/rotate" if field == "overlap_seconds" else ""
    r = httpx.post(live_server + path, json={field: 10**12}, timeout=30,
                   headers={"Authorization": f"Bearer {admin['token']}"})
    assert r.status_code == 400, r.text
    assert field in r.json()["error"]
    assert len(directories.list_tokens(d["id"])) == 1


# --- nothing holds the event loop -----------------------------------------------------


@contextmanager
def held(monkeypatch: pytest.MonkeyPatch, store: Any, method: str,
         directory_id: str) -> Iterator[tuple[threading.Event, threading.Event]]:
    """The store's `method` waits, for one directory, until released: (entered, release)."""
    entered, release = threading.Event(), threading.Event()
    original = getattr(store, method)

    def waiting(did: str, *args: Any, **kw: Any) -> Any:
        if did == directory_id:
            entered.set()
            release.wait(60)
        return original(did, *args, **kw)

    monkeypatch.setattr(store, method, waiting)
    try:
        yield entered, release
    finally:
        release.set()


def others_are_served(bystander: Scim, live_server: str, calm: dict[str, Any]) -> None:
    assert httpx.get(f"{live_server}/healthz", timeout=30).text == "ok"
    assert bystander.get(f"/Users/{calm['id']}").status_code == 200
    assert bystander.get("/Users").json()["totalResults"] == 1


def test_a_search_held_in_the_database_stalls_neither_healthz_nor_other_tenants(
        web: Scim, bystander: Scim, app: Any, live_server: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    calm = bystander.user("calm@x.test")
    web.get("/Users/none")  # the hostile token is validated before the search starts
    with held(monkeypatch, app.state.store, "search", web.directory_id) as (entered, release), \
            ThreadPoolExecutor(1) as pool:
        slow = pool.submit(web.get, "/Users?filter=userName pr")
        assert entered.wait(60)
        others_are_served(bystander, live_server, calm)
        assert not slow.done()
        release.set()
        assert slow.result(60).status_code == 200


def test_a_write_held_in_the_database_stalls_neither_healthz_nor_other_tenants(
        web: Scim, bystander: Scim, app: Any, live_server: str,
        monkeypatch: pytest.MonkeyPatch) -> None:
    u = web.user("held@x.test")
    calm = bystander.user("calm@x.test")
    with held(monkeypatch, app.state.store, "patch", web.directory_id) as (entered, release), \
            ThreadPoolExecutor(1) as pool:
        slow = pool.submit(web.patch, f"/Users/{u['id']}",
                           [{"op": "replace", "path": "title", "value": "held"}])
        assert entered.wait(60)
        others_are_served(bystander, live_server, calm)
        assert not slow.done()
        release.set()
        assert slow.result(60).json()["title"] == "held"
