"""Listing, sorting, index and cursor pagination (RFC7644 §3.4.2, RFC9865), searches."""

from __future__ import annotations

import pytest

from conftest import Scim

SEARCH = "urn:ietf:params:scim:api:messages:2.0:SearchRequest"


@pytest.fixture
def people(scim: Scim) -> list[dict]:
    names = ["delta", "Alpha", "charlie", "bravo", "echo", "foxtrot", "golf"]
    return [scim.user(n, title=f"T{i % 3}") for i, n in enumerate(names)]


def test_list_response_shape(scim: Scim, people: list[dict]) -> None:
    body = scim.get("/Users?count=3").json()
    assert body["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:ListResponse"]
    assert body["totalResults"] == 7
    assert body["itemsPerPage"] == 3
    assert body["startIndex"] == 1
    assert len(body["Resources"]) == 3


def test_sort_by_username_both_orders_case_insensitive(scim: Scim, people: list[dict]) -> None:
    up = [r["userName"] for r in scim.get("/Users?sortBy=userName").json()["Resources"]]
    assert up == ["Alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf"]
    down = scim.get("/Users?sortBy=userName&sortOrder=descending").json()["Resources"]
    assert [r["userName"] for r in down] == list(reversed(up))


def test_index_pagination_walks_everything_once(scim: Scim, people: list[dict]) -> None:
    seen = []
    start = 1
    while True:
        page = scim.get(f"/Users?sortBy=userName&startIndex={start}&count=2").json()
        if not page["Resources"]:
            break
        seen += [r["id"] for r in page["Resources"]]
        start += page["itemsPerPage"]
    assert sorted(seen) == sorted(p["id"] for p in people)
    assert len(seen) == len(set(seen))


def test_count_zero_and_out_of_range(scim: Scim, people: list[dict]) -> None:
    body = scim.get("/Users?count=0").json()
    assert body["totalResults"] == 7 and body["Resources"] == []
    body = scim.get("/Users?startIndex=100").json()
    assert body["Resources"] == [] and body["totalResults"] == 7
    assert scim.get("/Users?startIndex=0").json()["startIndex"] == 1
    assert scim.get("/Users?count=abc").json()["scimType"] == "invalidValue"


@pytest.mark.parametrize("sort", [None, "userName"])
def test_cursor_pagination(scim: Scim, people: list[dict], sort: str | None) -> None:
    seen: list[str] = []
    url = "/Users?count=3&cursor=" + (f"&sortBy={sort}" if sort else "")
    pages = 0
    while True:
        body = scim.get(url).json()
        pages += 1
        assert "startIndex" not in body
        seen += [r["id"] for r in body["Resources"]]
        if "nextCursor" not in body:
            break
        url = f"/Users?count=3&cursor={body['nextCursor']}" + (f"&sortBy={sort}" if sort else "")
    assert pages == 3
    assert sorted(seen) == sorted(p["id"] for p in people)
    assert len(seen) == len(set(seen))


def test_bad_cursor_is_invalid_cursor(scim: Scim) -> None:
    r = scim.get("/Users?cursor=not-a-cursor")
    assert r.status_code == 400
    assert r.json()["scimType"] == "invalidCursor"
    assert scim.get("/Users?cursor=&startIndex=2").status_code == 400


def test_cursor_advertised(scim: Scim) -> None:
    spc = scim.get("/ServiceProviderConfig").json()
    assert spc["pagination"]["cursor"] is True
    assert spc["pagination"]["index"] is True


def test_post_search(scim: Scim, people: list[dict]) -> None:
    r = scim.post("/Users/.search", {"schemas": [SEARCH], "filter": 'title eq "t0"',
                                     "attributes": ["userName"], "sortBy": "userName",
                                     "startIndex": 1, "count": 10})
    assert r.status_code == 200
    body = r.json()
    assert [x["userName"] for x in body["Resources"]] == ["bravo", "delta", "golf"]
    assert all(set(x) == {"schemas", "id", "userName"} for x in body["Resources"])
    bad = scim.post("/Users/.search", {"filter": 'title eq "x"'})
    assert bad.status_code == 400 and bad.json()["scimType"] == "invalidSyntax"


def test_root_search_spans_resource_types(scim: Scim, people: list[dict]) -> None:
    scim.group("Alpha team")
    r = scim.post("/.search", {"schemas": [SEARCH], "filter": 'displayName pr or userName pr',
                               "count": 100})
    body = r.json()
    assert body["totalResults"] == 8
    types = sorted(x["meta"]["resourceType"] for x in body["Resources"])
    assert types == ["Group"] + ["User"] * 7
    only_users = scim.get('/?filter=userName sw "a"').json()
    assert only_users["totalResults"] == 1


def test_invalid_filter_on_list(scim: Scim) -> None:
    r = scim.get('/Users?filter=userName eq')
    assert r.status_code == 400 and r.json()["scimType"] == "invalidFilter"
    r = scim.get('/Users?filter=' + "(" * 5000 + "a pr" + ")" * 5000)
    assert r.status_code == 400 and r.json()["scimType"] == "invalidFilter"


def test_sort_by_unknown_attribute(scim: Scim, people: list[dict]) -> None:
    assert scim.get("/Users?sortBy=nosuch").status_code == 400


def test_unknown_endpoint_is_scim_404(scim: Scim) -> None:
    r = scim.get("/Widgets")
    assert r.status_code == 404
    assert r.json()["schemas"] == ["urn:ietf:params:scim:api:messages:2.0:Error"]
    r = scim.get("/Users/x/y/z")
    assert r.status_code == 404
    assert r.json()["status"] == "404"


def test_password_in_a_url_filter_is_sensitive(scim: Scim) -> None:
    r = scim.get('/Users?filter=password eq "hunter2"')
    assert r.status_code == 403
    assert r.json()["scimType"] == "sensitive"
    r = scim.post("/Users/.search", {"schemas": [SEARCH], "filter": 'password eq "x"'})
    assert r.status_code == 400 and r.json()["scimType"] == "invalidFilter"


def test_other_protocol_versions_are_invalid_vers(scim: Scim) -> None:
    r = scim.http.get(f"/scim/v1/{scim.directory_id}/Users", headers=scim.headers())
    assert r.status_code == 400
    assert r.json()["scimType"] == "invalidVers"


def test_unindexed_sort_of_too_many_results_is_too_many(
        scim: Scim, people: list[dict], monkeypatch: pytest.MonkeyPatch) -> None:
    from scimsync.store import resources

    monkeypatch.setattr(resources, "UNINDEXED_SORT_LIMIT", 5)
    r = scim.get("/Users?sortBy=title")
    assert r.status_code == 400 and r.json()["scimType"] == "tooMany"
    assert scim.get("/Users?sortBy=userName").status_code == 200
    assert scim.get('/Users?sortBy=title&filter=title eq "T0"').status_code == 200


def test_compiled_filters_are_cached_per_shape_and_bounded(
        scim: Scim, app: object, monkeypatch: pytest.MonkeyPatch) -> None:
    from scimsync.store import resources

    store = app.state.store  # type: ignore[attr-defined]
    monkeypatch.setattr(resources, "SEARCH_CACHE_SIZE", 4)
    scim.user("cached", title="x")
    constants = len(store.lean._prepared)
    for value in ("a", "b", "cached"):  # one shape, three values
        r = scim.get(f'/Users?filter=userName eq "{value}"').json()
        assert r["totalResults"] == (1 if value == "cached" else 0)
    shapes = [f'title eq "x" and nickName pr{" or title pr" * i}' for i in range(10)]
    for text in shapes:
        assert scim.get(f"/Users?filter={text}").status_code == 200
    assert len(store._searches) <= 4
    assert len(store.lean._prepared) == constants
