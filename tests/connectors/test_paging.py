"""The checks a listing's pages must pass (scimsync.connectors.paging): pure."""

from __future__ import annotations

from typing import Any

import pytest

from scimsync.connectors.contract import IncompleteListing
from scimsync.connectors.paging import Pages, resources


def page(ids: list[str], start: int | None = None, total: int = 5,
         **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"totalResults": total, "itemsPerPage": len(ids),
                           "Resources": [{"id": i} for i in ids], **extra}
    if start is not None:
        out["startIndex"] = start
    return out


def walk(*pages: tuple[dict[str, Any], int]) -> list[bool]:
    p = Pages("User")
    return [p.indexed(doc, resources(doc, "User"), start) for doc, start in pages]


def reason(*pages: tuple[dict[str, Any], int]) -> str:
    with pytest.raises(IncompleteListing) as caught:
        walk(*pages)
    return caught.value.reason


def test_an_honest_index_listing_ends_at_the_total() -> None:
    assert walk((page(["a", "b"], 1), 1), (page(["c", "d"], 3), 3),
                (page(["e"], 5), 5)) == [False, False, True]


def test_a_page_shorter_than_asked_sets_the_page_size() -> None:
    # RFC 7644 §3.4.2.4: fewer than `count` is allowed, when every full page is so.
    assert walk((page(["a", "b"]), 1), (page(["c", "d"]), 3), (page(["e"]), 5))[-1]


def test_a_wrong_echoed_start_index_is_caught() -> None:
    assert reason((page(["a", "b"], 1), 1), (page(["a", "b"], 1), 3)) == "start_index"


def test_the_same_page_again_is_caught_without_a_start_index() -> None:
    assert reason((page(["a", "b"]), 1), (page(["a", "b"]), 3)) == "repeated_id"


def test_items_per_page_must_count_the_resources() -> None:
    assert reason((page(["a", "b"], 1, itemsPerPage=3), 1),) == "items_per_page"


def test_a_short_page_before_the_total_is_caught() -> None:
    assert reason((page(["a", "b"], 1), 1), (page(["c"], 3), 3)) == "short_page"
    assert reason((page([], 1), 1),) == "short_page"


def test_a_page_without_total_results_is_caught() -> None:
    doc = page(["a"], 1)
    del doc["totalResults"]
    assert reason((doc, 1),) == "total_results"


def test_resources_without_ids_are_not_a_listing() -> None:
    with pytest.raises(IncompleteListing, match="without ids"):
        resources({"Resources": [{"userName": "x"}]}, "User")


def test_a_cursor_that_comes_back_is_caught() -> None:
    p = Pages("Group")
    assert p.cursor(page(["a"], nextCursor="n1"), [{"id": "a"}]) == "n1"
    assert p.cursor(page(["b"], nextCursor="n2"), [{"id": "b"}]) == "n2"
    assert p.cursor(page(["c"]), [{"id": "c"}]) is None
    stuck = Pages("Group")
    stuck.cursor(page(["a"], nextCursor="n1"), [{"id": "a"}])
    with pytest.raises(IncompleteListing) as caught:
        stuck.cursor(page(["b"], nextCursor="n1"), [{"id": "b"}])
    assert caught.value.reason == "cursor_repeated"
