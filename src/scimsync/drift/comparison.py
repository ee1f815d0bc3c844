"""The comparison step of a drift run: the directory walked against the read-back.

The directory is walked in id order, a thousand identities at a time; each one's
desired body (scope and mapping, as provisioning computes it) is compared with its
remote account, found through its link or else by the target's matching attributes,
and classified (scimsync.drift.classify). Links whose identity is gone, and remote
objects nothing claimed, are swept up from the scratch file (scimsync.drift.readback)
afterwards. Findings go to the run's writer as they are found.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import replace
from typing import Any, TypeVar

import orjson
from sqlalchemy import Engine, bindparam, select

from scimsync.drift import classify
from scimsync.drift.classify import Listed
from scimsync.drift.findings import Finding, FindingsWriter
from scimsync.drift.readback import Linked, Scratch
from scimsync.drift.runs import RunStats
from scimsync.protocol.evaluate import matches
from scimsync.protocol.filter import parse_filter
from scimsync.protocol.record import Record
from scimsync.protocol.resources import RESOURCE_TYPES
from scimsync.store import members as store_members
from scimsync.store.lean import Lean, json_value
from scimsync.store.tables import resources
from scimsync.sync import mapping
from scimsync.sync.config import TargetConfig
from scimsync.sync.matching import folded, match_value

Doc = dict[str, Any]
D = TypeVar("D", Doc, Doc | None)

R = resources.c
BATCH = 1000  # directory identities compared at a time
# A batch of directory identities in id order, read on the lean path: SQLAlchemy's
# row processing (its JSON decoder above all) cost a third of the comparison.
IDENTITIES = (select(R.id, R.type, R.doc, R.created, R.last_modified, R.version)
              .where(R.directory_id == bindparam("d"), R.type == bindparam("t"),
                     R.id > bindparam("after"))
              .order_by(R.id).limit(BATCH))


def _match_key(attr: str) -> str:
    return {"externalId": "ext", "userName": "uname", "email": "email"}[attr]


def _match_values(rec: Record, attr: str) -> str | None:
    """A directory identity's value for a matching attribute, folded by the same case
    rules as provisioning (sync/matching.py), as the scratch file indexes it (the hub
    id travels as externalId)."""
    if attr == "externalId":
        return rec.id
    value = match_value(rec.doc, "User", attr)
    return folded(attr, value) if value is not None else None


class Comparison:
    """The comparison step of one run."""

    def __init__(self, engine: Engine, row: Any, config: TargetConfig, scratch: Scratch,
                 writer: FindingsWriter, stats: RunStats,
                 tick: Callable[[str, int], None],
                 stores: Callable[[str, Doc], Doc] | None = None):
        self.engine = engine
        # The desired object as the app is sent it, so as it can hold it: an attribute
        # it does not store is not compared (connectors/shaping.py).
        self.stores = stores
        self.row = row
        self.config = config
        self.scratch = scratch
        self.writer = writer
        self.stats = stats
        self.tick = tick
        scope = config.scope
        self.need_groups = bool(scope.groups or config.roles or
                                (scope.filter and "groups" in scope.filter))
        self.managed_roles = {r.get("attribute", "roles") for r in config.roles}
        self._claimed: set[str] = set()
        self._kept: dict[tuple[str, frozenset[str]], frozenset[str]] = {}

    def _sent(self, kind: str, desired: D) -> D:
        return self.stores(kind, desired) if self.stores is not None and desired else desired

    def _linked(self, kind: str, link: Linked) -> Linked:
        """A link whose applied attributes are those the app stores: one the hub sent
        once and the app does not keep (or makes up itself, as django-scim2 does a
        displayName) is not compared."""
        if self.stores is None or not link.keys:
            return link
        kept = self._kept.get((kind, link.keys))
        if kept is None:
            shown = self.stores(kind, dict.fromkeys(link.keys, ""))
            kept = self._kept[(kind, link.keys)] = link.keys & frozenset(shown)
        return replace(link, keys=kept)

    def _walk(self, rtype: str) -> Iterator[tuple[list[Record], dict[str, Linked]]]:
        """The directory's identities of `rtype` in batches, each with its links; links
        whose identity has left the directory are passed to `_gone` on the way."""
        after = ""
        for records in self._batches(rtype):
            last = records[-1].id
            linked = self.scratch.linked_range(rtype, after, last)
            yield records, linked
            ids = {r.id for r in records}
            self._gone(rtype, [lk for rid, lk in linked.items() if rid not in ids])
            after = last
        self._gone(rtype, list(self.scratch.linked_range(rtype, after, None).values()))

    def _batches(self, rtype: str) -> Iterator[list[Record]]:
        lean = Lean(self.engine)
        prepared = lean.prepared(IDENTITIES)
        params = {"d": self.row.directory_id, "t": rtype, "after": ""}
        # Text on SQLite, already decoded by the driver on PostgreSQL.
        decode = orjson.loads if lean.sqlite else json_value
        raw = self.engine.raw_connection()  # this thread's own, returned at the end
        try:
            cur = raw.cursor()
            while True:
                cur.execute(*prepared.render(params))
                rows = cur.fetchall()
                if not rows:
                    return
                records = [Record(rid, rt, decode(doc), created, modified, version)
                           for rid, rt, doc, created, modified, version in rows]
                self._attach(rtype, records)
                yield records
                params["after"] = records[-1].id
        finally:
            raw.rollback()
            raw.close()

    def _attach(self, rtype: str, records: list[Record]) -> None:
        """Groups of users (where scope or roles need them), members of groups."""
        ids = [r.id for r in records]
        if rtype == "User" and self.need_groups:
            with self.engine.connect() as conn:
                groups = store_members.load_groups(conn, ids)
            for rec in records:
                rec.groups = groups[rec.id]
        elif rtype == "Group":
            with self.engine.connect() as conn:
                members = store_members.load_members(conn, ids)
            for rec in records:
                rec.members = members[rec.id]

    # --- users --------------------------------------------------------------------

    def users(self) -> None:
        for records, linked in self._walk("User"):
            self._user_batch(records, linked)
            self.stats.compared += len(records)
            self.tick("comparing users", self.stats.compared)

    def _user_batch(self, records: list[Record], linked: dict[str, Linked]) -> None:
        managers = [m for r in records if (m := classify.manager(r)) is not None]
        remote_of = self.scratch.remote_ids(managers) if managers else {}
        # Unlinked identities (or links whose remote is gone): match as provisioning would.
        unlinked = [r for r in records
                    if r.id not in linked or linked[r.id].doc is None]
        matched: dict[str, Listed] = {}
        for attr in self.config.profile.match:
            wanted = {v: r.id for r in unlinked
                      if r.id not in matched and (v := _match_values(r, attr)) is not None}
            if not wanted:
                continue
            for value, found in self.scratch.unclaimed_by("User", _match_key(attr),
                                                          list(wanted)).items():
                if found[0] not in self._claimed:
                    matched[wanted[value]] = found
                    self._claimed.add(found[0])
        if matched:
            self.scratch.claim("User", [m[0] for m in matched.values()])
            self._claimed.clear()
        for rec in records:
            desired = self._sent("User", mapping.desired_user(self.config, rec, remote_of.get))
            link = linked.get(rec.id)
            link = None if link is None else self._linked("User", link)
            if link is not None and link.doc is not None:
                assert link.remote_id is not None and link.active is not None
                self._add(classify.user(rec, desired, (link.remote_id, link.active, link.doc),
                                        True, link, self.managed_roles))
            else:
                self._add(classify.user(rec, desired, matched.get(rec.id), False, link,
                                        self.managed_roles))

    # --- groups -------------------------------------------------------------------

    def groups(self) -> None:
        for records, linked in self._walk("Group"):
            for rec in records:
                member_ids = self._flatten(rec)
                remote_of = self.scratch.remote_ids(member_ids)
                desired = mapping.desired_group(self.config, rec, member_ids, remote_of.get)
                link = linked.get(rec.id)
                if link is not None and link.doc is not None:
                    assert link.remote_id is not None and link.active is not None
                    self._add(classify.group(rec, desired,
                                             (link.remote_id, link.active, link.doc), True))
                    continue
                remote = self._match_one("Group", rec.id, rec.doc.get("displayName"))
                self._add(classify.group(rec, desired, remote, False))

    def _match_one(self, rtype: str, rid: str, name: Any) -> Listed | None:
        """An unclaimed remote object for one unlinked identity, by externalId (the hub
        id), then by name; claimed if found."""
        for column, value in (("ext", rid), ("uname", str(name or "").lower())):
            found = self.scratch.unclaimed_by(rtype, column, [value])
            if value in found:
                self.scratch.claim(rtype, [found[value][0]])
                return found[value]
        return None

    def _flatten(self, rec: Record) -> list[str]:
        """User members, nested groups flattened (as provisioning sends them)."""
        def load(gid: str) -> Record:
            with self.engine.connect() as conn:
                found = store_members.load_members(conn, [gid])
            return Record(gid, "Group", {}, "", "", 0, members=found[gid])

        return mapping.member_users(rec, load)

    # --- agents -------------------------------------------------------------------

    def agents(self) -> None:
        """Agents, in applications that take them: the same classes as accounts, the
        desired body being what provisioning sends (mapping.desired_nhi)."""
        for records, linked in self._walk("Agent"):
            refs = sorted({o["value"] for r in records
                           for o in [*(r.doc.get("owners") or []), r.doc.get("parent")]
                           if isinstance(o, dict) and isinstance(o.get("value"), str)})
            remote_of = self.scratch.remote_ids(refs, ("User", "Group", "Agent")) \
                if refs else {}
            for rec in records:
                desired = self._sent("Agent", mapping.desired_nhi(rec, remote_of.get))
                link = linked.get(rec.id)
                link = None if link is None else self._linked("Agent", link)
                if link is not None and link.doc is not None:
                    assert link.remote_id is not None and link.active is not None
                    self._add(classify.agent(rec, desired, (link.remote_id, link.active,
                                                            link.doc), link))
                    continue
                remote = self._match_one("Agent", rec.id, rec.doc.get("name"))
                self._add(classify.agent(rec, desired, remote, None))
            self.stats.compared += len(records)

    # --- what nothing claimed -----------------------------------------------------

    def leftovers(self, agents: bool = False) -> None:
        """Remote objects that no link points at and no identity matched, but those the
        target's `drift.ignore` says are the application's own."""
        for rtype in ("User", "Agent", "Group"):
            if (rtype == "Agent" and not agents) or \
                    (rtype == "Group" and not self.config.profile.groups):
                continue
            own = self._own(rtype)
            for remote_id, active, doc in self.scratch.unclaimed(rtype):
                if own(doc):
                    self.stats.ignored += 1
                elif not active and rtype != "Group":
                    # Deactivated, it grants nothing (it is what deprovisioning by
                    # deactivation leaves behind): counted, not a finding.
                    self.stats.inactive_unmatched += 1
                else:
                    self.writer.add(classify.orphan(rtype, remote_id, doc))

    def _own(self, rtype: str) -> Callable[[Doc], bool]:
        """Whether a remote object is one of the application's own (drift.ignore)."""
        filters = [parse_filter(f) for f in self.config.drift.ignore.get(rtype, [])]
        schema = RESOURCE_TYPES[rtype]
        return lambda doc: any(matches(schema, f, doc) for f in filters)

    def _gone(self, rtype: str, gone: list[Linked]) -> None:
        """Links whose identity left the directory: the object must not grant access."""
        for lk in gone:
            found = classify.gone(rtype, lk)
            if found is not None:
                self.writer.add(found)

    def _add(self, found: list[Finding]) -> None:
        for f in found:
            self.writer.add(f)
