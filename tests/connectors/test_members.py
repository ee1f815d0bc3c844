"""Members as an app names them (connectors/members.py)."""

from __future__ import annotations

import threading
import time
from typing import Any

from scimsync.connectors.members import MemberNames


def test_a_read_during_a_listing_waits_for_all_of_it() -> None:
    """Two group reads at once, both naming users not seen yet: the second waits for
    the first's listing to end and maps every name (a listing marked done when it
    started left it half a map: Canaille's groups then got bogus changes)."""
    names: MemberNames
    listings = []

    def relist() -> None:
        listings.append(1)
        names.seen({"id": "1", "userName": "a@example.com"})
        time.sleep(0.3)  # the rest of the listing is on its way
        names.seen({"id": "2", "userName": "b@example.com"})

    names = MemberNames(relist, lambda rid: None)
    group = {"members": [{"value": "a@example.com"}, {"value": "B@example.com"}]}
    out: list[Any] = []
    readers = [threading.Thread(target=lambda: out.append(names.as_ids(group)))
               for _ in range(2)]
    for t in readers:
        t.start()
        time.sleep(0.05)
    for t in readers:
        t.join()
    assert [sorted(m["value"] for m in g["members"]) for g in out] == [["1", "2"]] * 2
    assert len(listings) == 1  # the second read used the first's listing


def test_a_name_no_user_has_is_kept_and_relisted_at_most_once_a_minute() -> None:
    listings = []
    names = MemberNames(lambda: listings.append(1), lambda rid: None)
    names.seen({"id": "1", "userName": "a@example.com"})
    group = {"members": [{"value": "a@example.com"}, {"value": "stranger"}]}
    for _ in range(3):
        assert [m["value"] for m in names.as_ids(group)["members"]] == ["1", "stranger"]
    assert len(listings) == 1
    # Removal names: a known id by its userName, one never seen looked up once.
    looked: list[str] = []
    names = MemberNames(lambda: None, lambda rid: looked.append(rid) or
                        {"id": rid, "userName": f"{rid}@example.com"})
    names.seen({"id": "1", "userName": "a@example.com"})
    assert names.as_names(["1", "9", "9"]) == ["a@example.com", "9@example.com",
                                               "9@example.com"]
    assert looked == ["9"]
