"""Checks that a SCIM listing adds up, page by page (RFC 7644 §3.4.2.4, RFC 9865).

An application that ignores `startIndex` answers the first page again and again; one
that drops resources from a page, or hands back the cursor it was given, lists less
than it holds. Drift that trusted such a listing would take what it missed for gone
(docs/drift.md: Listing). So each page is checked against what was asked and what the
pages before it said, and a page that does not add up raises IncompleteListing. The
checks are pure: no I/O, and memory for one page and the cursors seen.
"""

from __future__ import annotations

from typing import Any

from scimsync.connectors.contract import Doc, IncompleteListing


def _number(page: Doc, name: str) -> int | None:
    value = page.get(name)
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    return None


def resources(page: Any, kind: str) -> list[Doc]:
    """A ListResponse's `Resources`, each of them an object with an id."""
    if not isinstance(page, dict):
        raise IncompleteListing(f"listing {kind}s: a page is not a ListResponse",
                                reason="not_a_list", response=page)
    items = page.get("Resources") or []
    if not isinstance(items, list) or not all(
            isinstance(d, dict) and d.get("id") not in (None, "") for d in items):
        raise IncompleteListing(f"listing {kind}s: a page holds resources without ids",
                                reason="not_a_list")
    return items


class Pages:
    """What the pages of one listing have said so far.

    Each page is checked for itself (`itemsPerPage`, when the app says it, is the
    number of resources it holds) and against the page before it (no id on two
    pages in a row: an app that ignores the position answers the same page). An index
    listing also checks the echoed `startIndex` and that no page but the last is
    shorter than the first (RFC 7644 §3.4.2.4 lets an app return fewer than `count`,
    but then every full page is that long); a cursor listing, that no cursor comes
    back twice (RFC 9865 §3). Ids further apart are checked by the listing's consumer
    (drift's scratch file), which holds them all.
    """

    def __init__(self, kind: str):
        self.kind = kind
        self.previous: frozenset[str] = frozenset()
        self.full: int | None = None  # the length of a full page, set by the first one
        self.cursors: set[str] = set()

    def _fail(self, reason: str, message: str) -> IncompleteListing:
        return IncompleteListing(f"listing {self.kind}s: {message}", reason=reason)

    def page(self, page: Doc, items: list[Doc]) -> None:
        """Check one page's own counts and its ids against the page before it."""
        stated = _number(page, "itemsPerPage")
        if stated is not None and stated != len(items):
            raise self._fail("items_per_page", f"a page says itemsPerPage {stated} and "
                             f"holds {len(items)} resources")
        ids = frozenset(str(d["id"]) for d in items)
        if len(ids) != len(items):
            raise self._fail("repeated_id", "a page holds the same id twice")
        again = ids & self.previous
        if again:
            raise self._fail("repeated_id", f"id {min(again)!r} came on two pages in a "
                             "row: the app does not move through its results")
        self.previous = ids

    def indexed(self, page: Doc, items: list[Doc], start: int) -> bool:
        """Check a page asked for at `start`; whether the listing is over."""
        echoed = _number(page, "startIndex")
        if echoed is not None and echoed != start:
            raise self._fail("start_index", f"asked from startIndex {start}, the app "
                             f"answered from {echoed}")
        self.page(page, items)
        total = _number(page, "totalResults")
        if total is None:
            raise self._fail("total_results", "a page without totalResults")
        end = start + len(items) - 1
        if end >= total:
            return True
        if not items:
            raise self._fail("short_page", f"an empty page at {start} of {total}")
        if self.full is None:
            self.full = len(items)
        elif len(items) < self.full:
            raise self._fail("short_page", f"a page of {len(items)} at {start}, before "
                             f"the last ({end} of {total}), after pages of {self.full}")
        return False

    def cursor(self, page: Doc, items: list[Doc]) -> str | None:
        """Check a page read by cursor; the cursor to the next one, if any."""
        self.page(page, items)
        following = page.get("nextCursor")
        if following in (None, ""):
            return None
        token = str(following)
        if token in self.cursors:
            raise self._fail("cursor_repeated", f"nextCursor {token!r} came back twice: "
                             "the cursor does not advance")
        self.cursors.add(token)
        return token
