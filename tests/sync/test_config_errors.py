"""A target's settings: every problem at once, each with the path of its setting."""

from __future__ import annotations

import pytest

from scimsync.sync.config import parse_config
from scimsync.validation import ConfigError, ConfigErrors


def problems(kind: str, raw: dict[str, object]) -> dict[tuple[str | int, ...], str]:
    with pytest.raises(ConfigErrors) as caught:
        parse_config(kind, raw)
    return {e.path: e.message for e in caught.value.errors}


def test_unknown_keys_at_every_level_are_each_named_with_their_path() -> None:
    found = problems("scim", {
        "url": "http://127.0.0.1:9/scim", "scopes": {"groups": ["A"]},
        "auth": {"type": "bearer", "token": "t", "tokn": "x"},
        "profile": {"concurency": 2}, "scope": {"group": ["A"]},
        "drift": {"intervall": "1h"},
        "mapping": [{"target": "title", "value": "x"}, {"target": "title", "sorce": "x",
                                                        "value": "y"}],
        "roles": [{"group": "G", "value": "v", "atribute": "roles"}]})
    assert set(found) == {("scopes",), ("auth", "tokn"), ("profile", "concurency"),
                          ("scope", "group"), ("drift", "intervall"),
                          ("mapping", 1, "sorce"), ("roles", 0, "atribute")}
    assert "did you mean `scope`?" in found[("scopes",)]
    assert "did you mean `concurrency`?" in found[("profile", "concurency")]
    assert "mapping[1]" in found[("mapping", 1, "sorce")]


def test_wrong_types_and_ranges_are_refused_not_coerced() -> None:
    found = problems("memory", {"store": "s", "profile": {
        "patch": "no", "concurrency": 100, "rate_limit": -1, "match": "email",
        "timeout": 0}, "scope": {"groups": "Sales"}})
    assert found == {
        ("profile", "patch"): "profile.patch must be true or false",
        ("profile", "concurrency"): "profile.concurrency is from 1 to 64",
        ("profile", "rate_limit"): "profile.rate_limit is at least 0",
        ("profile", "match"): "profile.match must be a list of strings",
        ("profile", "timeout"): "profile.timeout is more than 0",
        ("scope", "groups"): "scope.groups must be a list of strings"}


def test_one_problem_is_a_config_error_with_its_path() -> None:
    with pytest.raises(ConfigError) as caught:
        parse_config("scim", {"url": "http://127.0.0.1:9/scim",
                              "auth": {"type": "bearer"}})
    assert caught.value.path == ("auth", "token")
    assert str(caught.value) == "auth type bearer needs token"


def test_a_duration_still_reads_as_a_duration() -> None:
    config, _ = parse_config("memory", {"store": "s", "drift": {"interval": "24h"},
                                        "profile": {"rate_limit": 5}})
    assert config.drift.interval == 86400 and config.profile.rate_limit == 5


def test_count_is_a_scim_profile_setting_checked_by_its_kind() -> None:
    url = "http://127.0.0.1:9/scim"
    for count in ("omit", 50, None):
        config, _ = parse_config("scim", {"url": url, "profile": {"count": count}})
        assert config.profile.count == count
    with pytest.raises(ConfigError) as caught:
        parse_config("scim", {"url": url, "profile": {"count": "none"}})
    assert caught.value.path == ("profile", "count")
    assert "omit (send no count)" in str(caught.value)
    with pytest.raises(ConfigError) as caught:
        parse_config("scim", {"url": url, "profile": {"count": 0}})
    assert caught.value.path == ("profile", "count")
    with pytest.raises(ConfigError) as caught:
        parse_config("memory", {"store": "s", "profile": {"count": "omit"}})
    assert caught.value.path == ("profile", "count")
    assert str(caught.value) == "profile.count is a setting of scim targets only"
