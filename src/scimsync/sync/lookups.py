"""Finding the remote objects that could be an identity's, before it is planned.

By the identity's id in `externalId` (the hub's own mark) and by the profile's match
attributes, fifty values per request, with the target's concurrency; and which of
them the hub already links, for another identity or from another target writing to
the same system (store/claims.py). The planner (sync/plan.py) decides from these.
"""

from __future__ import annotations

from typing import Any

from scimsync.connectors.contract import Remote
from scimsync.store import claims
from scimsync.sync import mapping
from scimsync.sync.context import MATCH_BATCH, RunContext
from scimsync.sync.matching import NAMED_BY, match_value
from scimsync.sync.plan import candidates_for
from scimsync.sync.work import Work

Doc = dict[str, Any]


class Lookups(RunContext):
    """A run's lookups of remote candidates (prefetched in batches, or one at a time)."""

    def prefetch_matches(self, users: list[Work]) -> None:
        """Look up the remote accounts that could be unlinked users': by their id in
        externalId and by each match attribute, fifty values per request, with as many
        requests in flight as the profile allows."""
        if not self.can_filter:
            return
        bodies: dict[str, Doc] = {}
        self.prefetch_links([w.resource_id for w in users])
        for w in users:
            rec = self.load(w)
            self._loaded[("User", w.resource_id)] = rec
            link = self.link(w.resource_id)
            if rec is None or (link is not None and link.remote_id):
                continue
            body = mapping.desired_user(self.config, rec, self.remote_id)
            if body is not None:
                bodies[w.resource_id] = body
        chunks = [dict(list(bodies.items())[i:i + MATCH_BATCH])
                  for i in range(0, len(bodies), MATCH_BATCH)]
        found: list[list[Remote]] = [[] for _ in chunks]

        def look(i: int, attr: str) -> None:
            hits = self.find_by("User", attr, chunks[i])
            with self.lock:
                found[i].extend(hits)

        self.steps.run([lambda i=i, a=a: look(i, a)  # type: ignore[misc]
                        for i in range(len(chunks)) for a in self.lookup_attributes()])
        for chunk, hits in zip(chunks, found, strict=True):
            for rid, body in chunk.items():
                self._candidates[rid] = candidates_for("User", rid, body, hits, self.rules)

    def lookup_attributes(self) -> list[str]:
        """externalId (the hub's mark) first, then the profile's other match attributes.

        A profile with no match attributes looks nothing up before creating: the
        application's uniqueness (409) is then what reveals an existing account, which
        is looked up and planned again at that moment.
        """
        if not self.rules.match:
            return []
        return ["externalId", *[a for a in self.rules.match if a != "externalId"]]

    def find_by(self, kind: str, attr: str, bodies: dict[str, Doc]) -> list[Remote]:
        """Remote objects equal to one of `bodies` on `attr` (externalId: their ids)."""
        if attr == "externalId":
            values = list(bodies)
        else:
            values = [v for b in bodies.values() if (v := match_value(b, kind, attr)) is not None]
        if not values:
            return []
        name = NAMED_BY.get(kind, attr) if attr == "userName" else attr
        return self.connector.find(kind, name, values)

    def lookup(self, kind: str, bodies: dict[str, Doc]) -> list[Remote]:
        """Remote objects whose externalId is one of these ids, or that equal one of
        these bodies on a match attribute."""
        found: dict[str, Remote] = {}
        for attr in self.lookup_attributes():
            for remote in self.find_by(kind, attr, bodies):
                found[remote.id] = remote
        return list(found.values())

    def conflict_lookup(self, kind: str, rid: str, body: Doc) -> list[Remote]:
        """After a 409: the objects that hold this one's id or its unique name."""
        found: dict[str, Remote] = {}
        for attr in ("externalId", "userName"):
            for remote in self.find_by(kind, attr, {rid: body}):
                found[remote.id] = remote
        return list(found.values())

    def candidates(self, kind: str, rid: str, body: Doc) -> list[Remote]:
        """The remote objects that could be this one (prefetched, or looked up now)."""
        if rid in self._candidates:
            return self._candidates.pop(rid)
        if not self.can_filter:
            return []
        return candidates_for(kind, rid, body, self.lookup(kind, {rid: body}), self.rules)

    def claims(self, rid: str, candidates: list[Remote]) -> dict[str, str]:
        """Which candidates the hub links already, for another identity of this target
        or from another target on the same system."""
        if not candidates:
            return {}
        with self.r.engine.connect() as conn:
            if self._sharing is None:
                self._sharing = claims.sharing_targets(conn, self.row.kind,
                                                       self.config.settings)
            found = claims.claimed(conn, self._sharing, [c.id for c in candidates])
        out = {}
        for (tid, remote_id), owner in found.items():
            if tid != self.row.id:
                out[remote_id] = f"another target ({tid})"
            elif owner != rid:
                out[remote_id] = f"identity {owner}"
        return out
