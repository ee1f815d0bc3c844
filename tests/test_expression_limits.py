"""Mapping expressions are bounded: no value over the caps is ever built, `split` needs
a separator, and a rule that fails on a sample user is refused when configured."""

from __future__ import annotations

from typing import Any

import pytest

from conftest import Scim
from scimsync.errors import UsageError
from scimsync.store.directories import Directories
from scimsync.sync.config import parse_config
from scimsync.sync.expressions import MAX_ITEMS, MAX_TEXT, ExpressionLimit, evaluate, parse

URL = "http://127.0.0.1:9/scim"


def bomb(levels: int = 8, width: int = 30) -> str:
    """Nested replace(x, "", ...): each level multiplies the length by width + 1."""
    text = "userName"
    for _ in range(levels):
        text = f'replace({text}, "", "{"x" * width}")'
    return text


def with_mapping(*rules: dict[str, Any]) -> Any:
    return parse_config("scim", {"url": URL, "mapping": list(rules)})


def test_the_nested_replace_of_the_issue_is_refused_before_it_grows() -> None:
    text = bomb()
    assert len(text) < 400  # uncapped it would ask for about 10^13 characters
    with pytest.raises(ExpressionLimit, match=f"at most {MAX_TEXT}"):
        evaluate(parse(text), {"userName": "bjensen@example.com"})


@pytest.mark.parametrize("text,doc", [
    ('replace(userName, "", "' + "y" * 200 + '")', {"userName": "u" * 400}),
    ('replace(userName, "u", "uu")', {"userName": "u" * (MAX_TEXT // 2 + 1)}),
    ("concat(title, title)", {"title": "t" * (MAX_TEXT // 2 + 1)}),
    ('join("", emails)', {"emails": [{"value": "e" * (MAX_TEXT // 3 + 1)}] * 3}),
    ('join(";", split(title, ","))', {"title": "," * (MAX_TEXT // 2)}),
    ('split(title, ",")', {"title": "a," * MAX_ITEMS}),
    ("upper(title)", {"title": "\u00df" * (MAX_TEXT // 2 + 1)}),  # ß is SS in upper case
    ("lower(title)", {"title": "\u0130" * (MAX_TEXT // 2 + 1)}),  # İ is i and a dot
])
def test_every_function_refuses_a_value_over_the_caps(text: str, doc: dict[str, Any]) -> None:
    with pytest.raises(ExpressionLimit):
        evaluate(parse(text), doc)


def test_values_up_to_the_caps_are_made() -> None:
    half = "h" * (MAX_TEXT // 2)
    assert len(evaluate(parse("concat(title, title)"), {"title": half})) == MAX_TEXT
    parts = evaluate(parse('split(title, ",")'), {"title": ",".join(["a"] * MAX_ITEMS)})
    assert len(parts) == MAX_ITEMS
    # A path yields the document's own value, whatever its size: only what functions
    # make is capped.
    assert evaluate(parse("title"), {"title": half * 4}) == half * 4


@pytest.mark.parametrize("text", ['split(userName, "")', "split(userName, title)",
                                  "split(userName, 1)", "split(userName, null)"])
def test_split_needs_a_non_empty_literal_separator(text: str) -> None:
    with pytest.raises(UsageError, match="split takes a separator"):
        parse(text)
    with pytest.raises(UsageError, match=r"mapping\[0\] \(title\): split takes a separator"):
        with_mapping({"target": "title", "expression": text})


def test_a_rule_that_fails_on_the_sample_user_is_refused_naming_it() -> None:
    good = {"target": "title", "expression": 'concat(name.givenName, " ", name.familyName)'}
    with pytest.raises(UsageError, match=r"mapping\[1\] \(displayName\): replace\(\) would "
                                         r"make \d+ characters"):
        with_mapping(good, {"target": "displayName", "expression": bomb()})
    # The branch the sample does not take is tried too.
    hidden = f'if("active eq true", userName, {bomb(levels=5)})'
    with pytest.raises(UsageError, match=r"mapping\[0\] \(nickName\)"):
        with_mapping({"target": "nickName", "source": hidden})
    # Parse errors name the rule as well.
    with pytest.raises(UsageError, match=r"mapping\[0\] \(title\): unknown attribute"):
        with_mapping({"target": "title", "expression": "nosuch"})
    config, _ = with_mapping(good, {"target": "nickName", "expression": bomb(levels=2)})
    assert [r["target"] for r in config.mapping] == ["title", "nickName"]


def test_the_admin_api_refuses_such_a_target_and_keeps_nothing(
        client: Any, scim: Scim, directories: Directories) -> None:
    admin = {"Authorization": f"Bearer {directories.create_token(None, 'x')['token']}"}
    r = client.post(f"/admin/directories/{scim.directory_id}/targets", headers=admin, json={
        "name": "bombed", "url": URL,
        "mapping": [{"target": "displayName", "expression": bomb()}]})
    assert r.status_code == 400 and "mapping[0] (displayName)" in r.json()["error"]
    listed = client.get("/admin/targets", headers=admin,
                        params={"directory": scim.directory_id}).json()["targets"]
    assert listed == []
