"""Discovery (RFC 7643 §5-§7), the profile's overrides and what is sent: pure, no I/O."""

from __future__ import annotations

from typing import Any

import pytest

from scimsync.connectors import discovery, overrides, shaping
from scimsync.connectors.contract import ChangeSet, Rejected, RemoteNotFound, Transient
from scimsync.connectors.discovery import Cache, Discovered
from scimsync.sync.config import parse_config
from scimsync.validation import ConfigError, problems_of

CORE_USER = "urn:ietf:params:scim:schemas:core:2.0:User"
CORE_GROUP = "urn:ietf:params:scim:schemas:core:2.0:Group"
ENTERPRISE = "urn:ietf:params:scim:schemas:extension:enterprise:2.0:User"
BASE = "https://app.example/scim/v2"


def attr(name: str, *subs: dict[str, Any], **facts: Any) -> dict[str, Any]:
    return {"name": name, "type": "complex" if subs else "string", "multiValued": False,
            **facts, **({"subAttributes": list(subs)} if subs else {})}


# An app like the one of docs/apps.md (Canaille): a user's name needs `formatted`,
# emails are bare values, no locale; a member needs `$ref`; externalId is read-only.
APP = {
    "ServiceProviderConfig": {"patch": {"supported": True}, "filter": {"supported": False,
                              "maxResults": 0}, "sort": {"supported": False},
                              "bulk": {"supported": False}},
    "ResourceTypes": {"Resources": [
        {"name": "User", "endpoint": "/Users", "schema": CORE_USER,
         "schemaExtensions": [{"schema": ENTERPRISE, "required": False}]},
        {"name": "Group", "endpoint": "/Groups", "schema": CORE_GROUP}]},
    "Schemas": {"Resources": [
        {"id": CORE_USER, "attributes": [
            attr("externalId", mutability="readOnly"),
            attr("userName", required=True, mutability="immutable"),
            attr("name", attr("formatted", required=True), attr("givenName"),
                 attr("familyName", required=True), required=True),
            attr("title"), attr("active", required=True), attr("emails", attr("value"))]},
        {"id": ENTERPRISE, "attributes": [attr("employeeNumber")]},
        {"id": CORE_GROUP, "attributes": [
            attr("displayName"),
            attr("members", attr("value", mutability="immutable"),
                 attr("$ref", required=True, mutability="immutable"))]}]},
}


def found(app: dict[str, Any] = APP) -> Discovered:
    def fetch(path: str) -> Any:
        if path not in app:
            raise RemoteNotFound(f"GET {path} answered 404", status=404)
        return app[path]
    return discovery.read(fetch, now=lambda: 1.0)


USER = {"schemas": [CORE_USER, ENTERPRISE], "externalId": "e1", "userName": "ada@example.com",
        "name": {"givenName": "Ada", "familyName": "Lovelace"}, "locale": "en",
        "active": True, "emails": [{"value": "ada@example.com", "type": "work",
                                    "primary": True}],
        ENTERPRISE: {"employeeNumber": "7", "costCenter": "4"}}


def test_the_service_provider_config_is_kept() -> None:
    f = found()
    assert (f.patch, f.filter, f.sort, f.bulk, f.cursor, f.schemas) == (
        True, False, False, False, False, True)
    assert f.max_results is None  # 0 is "not said"


def test_a_user_is_sent_only_what_the_app_stores_and_what_it_requires() -> None:
    sent = shaping.render(found(), "User", USER, BASE)
    assert sent == {"schemas": [CORE_USER, ENTERPRISE], "userName": "ada@example.com",
                    "name": {"givenName": "Ada", "familyName": "Lovelace",
                             "formatted": "Ada Lovelace"},
                    "active": True, "emails": [{"value": "ada@example.com"}],
                    ENTERPRISE: {"employeeNumber": "7"}}


def test_members_get_a_ref_made_of_the_apps_url_and_the_members_id() -> None:
    sent = shaping.render(found(), "Group", {"displayName": "Ops", "members": [
        {"value": "u/1", "type": "User"}]}, BASE)
    assert sent["members"] == [{"value": "u/1", "$ref": f"{BASE}/Users/u%2F1"}]
    assert shaping.members(found(), ["u2"], BASE) == [
        {"value": "u2", "$ref": f"{BASE}/Users/u2"}]


def test_a_change_set_leaves_out_what_the_app_does_not_store_or_change() -> None:
    changes = ChangeSet(USER, set={"locale": "fr", "title": "Eng", "userName": "b@x.org"},
                        clear=["locale", "title"])
    out = shaping.changed(found(), "User", changes, BASE)
    assert out.set == {"title": "Eng"}  # userName is immutable: set on create only
    assert out.clear == ["title"]


def test_an_app_without_schemas_is_sent_everything() -> None:
    bare = {k: v for k, v in APP.items() if k != "Schemas"}
    assert shaping.render(found(bare), "User", USER, BASE) == USER
    assert shaping.report(found(bare))["not_sent"] == []


def test_the_report_says_what_is_not_sent_and_why_and_what_is_filled() -> None:
    report = shaping.report(found())
    why = {(n["resource"], n["attribute"]): n["reason"] for n in report["not_sent"]}
    assert why[("User", "locale")] == "the app's schema does not have it"
    assert why[("User", "emails.type")] == "the app's schema does not have it"
    assert why[("User", "externalId")] == "read-only in the app"
    assert ("User", "title") not in why
    assert {(f["resource"], f["attribute"]) for f in report["filled"]} == {
        ("User", "name.formatted"), ("Group", "members.$ref")}
    assert {c["attribute"] for c in report["create_only"]} >= {"userName"}


def test_profile_overrides_win_over_what_the_app_announced() -> None:
    raw = {"filter": True, "max_results": 50, "attributes": {
        "User": {"title": {"stored": False}, "emails.type": {"stored": True},
                 f"{ENTERPRISE}:employeeNumber": {"stored": False}},
        "Group": {"members.$ref": {"required": False}}}}
    f = overrides.apply(found(), raw)
    assert (f.filter, f.max_results) == (True, 50)
    sent = shaping.render(f, "User", {**USER, "title": "Eng"}, BASE)
    assert "title" not in sent and sent["emails"] == [{"value": "ada@example.com",
                                                       "type": "work"}]
    assert ENTERPRISE not in sent and sent["schemas"] == [CORE_USER]
    assert shaping.members(f, ["u"], BASE) == [{"value": "u"}]
    why = {n["attribute"]: n["reason"] for n in shaping.report(f)["not_sent"]}
    assert why["title"] == "the profile says the app does not store it"


def test_overrides_on_an_app_without_schemas_drop_only_what_they_name() -> None:
    bare = {k: v for k, v in APP.items() if k != "Schemas"}
    f = overrides.apply(found(bare), {"attributes": {"User": {"locale": {"stored": False}}}})
    assert shaping.render(f, "User", USER, BASE) == {
        k: v for k, v in USER.items() if k != "locale"}


@pytest.mark.parametrize(("raw", "path", "words"), [
    ({"filter": "no"}, ("profile", "discovery", "filter"), "true or false"),
    ({"max_results": 0}, ("profile", "discovery", "max_results"), "at least 1"),
    ({"paging": True}, ("profile", "discovery", "paging"), "unknown"),
    ({"attributes": {"Person": {}}}, ("profile", "discovery", "attributes", "Person"),
     "resource type"),
    ({"attributes": {"User": {"title": {"mutability": "sometimes"}}}},
     ("profile", "discovery", "attributes", "User", "title", "mutability"), "readOnly"),
])
def test_overrides_are_checked_with_the_path_of_each_problem(
        raw: dict[str, Any], path: tuple[str, ...], words: str) -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("scim", {"url": "http://127.0.0.1:9/scim/v2",
                              "profile": {"discovery": raw}})
    problems = problems_of(caught.value)
    assert any(tuple(p.path) == path and words in str(p) for p in problems), problems


def test_discovery_overrides_are_refused_on_other_kinds() -> None:
    with pytest.raises(ConfigError, match="discovery is a setting of scim targets"):
        parse_config("memory", {"store": "s", "profile": {"discovery": {"filter": False}}})


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_a_failed_discovery_is_not_kept_and_not_replaced_by_defaults() -> None:
    clock = Clock()
    cache = Cache(ttl=600, clock=clock)

    def refused() -> Discovered:
        raise Rejected("GET ServiceProviderConfig answered 401", status=401)

    with pytest.raises(Transient, match="discovery failed"):
        cache.get(BASE, "k", refused)
    assert cache.get(BASE, "k", found).filter is False  # asked again, not cached


def test_a_failed_refresh_uses_the_last_success_and_says_so() -> None:
    clock = Clock()
    cache = Cache(ttl=600, clock=clock)
    cache.get(BASE, "k", found)
    clock.now = 601

    def down() -> Discovered:
        raise Transient("GET ServiceProviderConfig answered 503", status=503)

    stale = cache.get(BASE, "k", down)
    assert stale.filter is False and stale.stale is not None and "503" in stale.stale


def test_a_schema_that_lists_no_attribute_says_nothing_so_all_of_it_is_sent() -> None:
    schemas = [s for s in APP["Schemas"]["Resources"] if s["id"] != ENTERPRISE]
    empty = {**APP, "Schemas": {"Resources": [*schemas, {"id": ENTERPRISE,
                                                         "attributes": []}]}}
    sent = shaping.render(found(empty), "User", USER, BASE)
    assert sent[ENTERPRISE] == USER[ENTERPRISE]
