"""Targets in the database: add, update, list, show, pause, resume, remove, resync (never
secrets out)."""

from __future__ import annotations

import uuid
from dataclasses import asdict
from typing import Any

from sqlalchemy import Engine, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError

from scimsync import crypto
from scimsync.errors import UsageError
from scimsync.protocol.timefmt import now
from scimsync.store import holds
from scimsync.store.health import last_applied
from scimsync.store.tables import dead_letters, directories, links, targets
from scimsync.sync import group_rules, resync
from scimsync.sync.config import TargetConfig, load_config, parse_config
from scimsync.validation import ConfigError

T = targets.c
STATUSES = ("active", "paused", "quarantined", "held")
# A cursor of -1 asks the engine for a full pass over the directory (a new target's
# initial load) before it follows the journal from where that pass began.
FULL_SYNC = -1


def _view(row: Any, counts: dict[str, Any] | None = None, held: int = 0) -> dict[str, Any]:
    """A target as shown to people and API clients: never its credentials."""
    out = {
        "id": row.id, "directory_id": row.directory_id, "name": row.name, "kind": row.kind,
        "status": holds.shown_status(row.status, held), "config": row.config,
        "learned": row.learned or {},
        "has_credentials": bool(row.secret),
        "cursor": row.cursor, "failures": row.failures, "last_error": row.last_error,
        "retry_at": row.retry_at, "created": row.created, "updated": row.updated,
        "discovered": row.discovered,
    }
    if counts is not None:
        out.update(counts)
    return out


def effective_profile(kind: str, config: dict[str, Any]) -> dict[str, Any]:
    """The profile a target runs with: its stored settings over the shipped profile it
    names (`config.profile` holds the former only)."""
    try:
        profile = asdict(load_config(kind, config).profile)
    except ConfigError as exc:  # a shipped profile this release no longer has
        return {"error": str(exc)}
    profile["match"] = list(profile["match"])
    return profile


class Targets:
    def __init__(self, engine: Engine):
        self.engine = engine

    def _directory(self, conn: Any, directory: str) -> str:
        row = conn.execute(select(directories.c.id).where(
            or_(directories.c.id == directory, directories.c.name == directory))).all()
        if len(row) != 1:
            raise UsageError(f"no directory {directory!r}" if not row else
                             f"directory name {directory!r} is ambiguous: use its id")
        return str(row[0][0])

    def directory_id(self, directory: str) -> str:
        """A directory's id from its id or name."""
        with self.engine.connect() as conn:
            return self._directory(conn, directory)

    def add(self, directory: str, name: str, kind: str, settings: dict[str, Any],
            status: str = "active") -> dict[str, Any]:
        """Create a target; settings carry credentials, which are encrypted here."""
        if not name.strip():
            raise UsageError("a target needs a name")
        config, secrets = parse_config(kind, settings)
        ts = now()
        tid = str(uuid.uuid4())
        with self.engine.begin() as conn:
            did = self._directory(conn, directory)
            group_rules.check(conn, did, config)
            try:
                conn.execute(insert(targets).values(
                    id=tid, directory_id=did, name=name, kind=kind, config=config.to_json(),
                    secret=self._seal(conn, secrets), status=status,
                    cursor=FULL_SYNC, failures=0, created=ts, updated=ts))
            except IntegrityError as exc:
                raise UsageError(f"directory already has a target named {name!r}") from exc
        return self.show(tid)

    def update(self, target: str, settings: dict[str, Any],
               directory: str | None = None) -> dict[str, Any]:
        """Replace a target's settings (and credentials); a change of what its identities
        should look like in the application starts a resync (`resync` in the answer)."""
        row = self._row(target, directory)
        config, secrets = parse_config(row.kind, settings)
        try:
            before = load_config(row.kind, row.config)
        except ConfigError:  # it named a shipped profile this release no longer has
            before = None
        again = resync.converges(row.kind) and (
            before is None or resync.changed(before, config))
        with self.engine.begin() as conn:
            group_rules.check(conn, row.directory_id, config)
            conn.execute(update(targets).where(T.id == row.id).values(
                config=config.to_json(), secret=self._seal(conn, secrets, row.id),
                updated=now()))
            if again:  # in the same transaction: a stored change always converges
                resync.start(conn, row, "configuration")
        return {**self.show(row.id), "resync": again}

    def resync(self, target: str, directory: str | None = None) -> dict[str, Any]:
        """Re-evaluate every identity of the target, as bulk work in its lane."""
        row = self._row(target, directory)
        if not resync.converges(row.kind):
            raise UsageError(f"target {row.name} is a {row.kind} target: it hears of each "
                             "change once and holds nothing to re-evaluate")
        with self.engine.begin() as conn:
            resync.start(conn, row, "by hand")
        return {**self.show(row.id), "resync": True}

    def _seal(self, conn: Any, secrets: dict[str, Any], replacing: str | None = None
              ) -> str | None:
        """Encrypt credentials with the key the others stored (those of `replacing`
        aside, so that re-entering them after a lost key repairs the target)."""
        if not secrets:
            return None
        stored = conn.execute(select(T.secret).where(
            T.secret.is_not(None), T.id != (replacing or "")).limit(1)).scalar()
        return crypto.seal(self.engine.url, secrets, stored)

    def row(self, target: str) -> Any:
        """A target's stored row by id or name, its credentials still sealed."""
        return self._row(target)

    def _row(self, target: str, directory: str | None = None) -> Any:
        with self.engine.connect() as conn:
            stmt = select(targets).where(or_(T.id == target, T.name == target))
            if directory is not None:
                stmt = stmt.where(T.directory_id == self._directory(conn, directory))
            rows = conn.execute(stmt).all()
        if len(rows) != 1:
            raise UsageError(f"no target {target!r}" if not rows else
                             f"target name {target!r} is ambiguous: use its id or --directory")
        return rows[0]

    def show(self, target: str, directory: str | None = None) -> dict[str, Any]:
        row = self._row(target, directory)
        with self.engine.connect() as conn:
            linked = conn.execute(select(func.count()).select_from(links).where(
                links.c.target_id == row.id, links.c.state == "provisioned")).scalar_one()
            dead = conn.execute(select(func.count()).select_from(dead_letters).where(
                dead_letters.c.target_id == row.id, dead_letters.c.status == "open")
            ).scalar_one()
            applied = last_applied(conn, row.id)
            hold = holds.batch(conn, row.id)
        return _view(row, {"provisioned": int(linked), "dead_letters": int(dead),
                           "last_applied": applied, "hold": hold,
                           "profile": effective_profile(row.kind, row.config)},
                     hold["count"] if hold else 0)

    def list(self, directory: str | None = None) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            stmt = select(targets).order_by(T.directory_id, T.name)
            if directory is not None:
                stmt = stmt.where(T.directory_id == self._directory(conn, directory))
            held = holds.held_counts(conn)
            return [_view(r, held=held.get(r.id, 0)) for r in conn.execute(stmt)]

    def set_status(self, target: str, status: str, directory: str | None = None) -> dict[str, Any]:
        if status not in STATUSES:
            raise UsageError(f"status is one of {', '.join(STATUSES)}")
        row = self._row(target, directory)
        with self.engine.begin() as conn:
            conn.execute(update(targets).where(T.id == row.id).values(
                status=status, updated=now(), failures=0 if status == "active" else T.failures,
                retry_at=None))
        return self.show(row.id)

    def remove(self, target: str, directory: str | None = None) -> None:
        row = self._row(target, directory)
        with self.engine.begin() as conn:
            conn.execute(delete(targets).where(T.id == row.id))

    def runtime(self, target_id: str) -> tuple[Any, TargetConfig, dict[str, Any]]:
        """The row, configuration and decrypted credentials the engine needs."""
        row = self._row(target_id)
        secrets = crypto.unseal(self.engine.url, row.secret)
        return row, load_config(row.kind, row.config), secrets


def learn(conn: Any, target_id: str, fact: str, value: Any, evidence: str) -> bool:
    """Store what the engine found out about a target's application (`learned`, apart
    from the configuration); False if it was known already."""
    learned = dict(conn.execute(select(T.learned).where(T.id == target_id)).scalar() or {})
    if (learned.get(fact) or {}).get("value") == value:
        return False
    learned[fact] = {"value": value, "at": now(), "evidence": evidence}
    conn.execute(update(targets).where(T.id == target_id).values(learned=learned))
    return True


def list_dead_letters(engine: Engine, target_id: str, status: str | None = "open"
                      ) -> list[dict[str, Any]]:
    """Operations a target refused, with the request and response (secrets redacted)."""
    c = dead_letters.c
    stmt = select(dead_letters).where(c.target_id == target_id).order_by(c.id)
    if status is not None:
        stmt = stmt.where(c.status == status)
    with engine.connect() as conn:
        return [{str(k): v for k, v in r._mapping.items()} for r in conn.execute(stmt)]


def mark_retried(engine: Engine, target_id: str, ids: list[int] | None) -> list[Any]:
    """Mark dead letters as retried; returns (action, resource_type, resource_id) of
    each, to reconcile."""
    c = dead_letters.c
    where = [c.target_id == target_id, c.status == "open"]
    if ids is not None:
        where.append(c.id.in_(ids))
    with engine.begin() as conn:
        rows = conn.execute(select(c.action, c.resource_type, c.resource_id).where(
            *where)).all()
        conn.execute(update(dead_letters).where(*where).values(status="retried",
                                                               retried=now()))
    return [(r[0], r[1], r[2]) for r in rows]
