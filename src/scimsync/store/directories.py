"""Directories (tenants) and their bearer tokens; admin tokens for the admin API."""

from __future__ import annotations

import threading
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import Enum
from typing import Any

from sqlalchemy import Engine, delete, insert, select, update

from scimsync import security
from scimsync.errors import Busy, UsageError
from scimsync.protocol.timefmt import format_time, now, parse_time
from scimsync.store.tables import directories, tokens

T = tokens.c
D = directories.c
CACHE_SECONDS = 2.0
LAST_USED_EVERY = 60.0


class Lifetime(Enum):
    """A rotated token's successor keeps the lifetime its predecessor was issued with."""

    KEEP = "keep"


@dataclass(frozen=True)
class Principal:
    """Who is calling: a directory token (directory_id set) or an admin token."""

    token_id: str
    kind: str
    directory_id: str | None
    expires_at: str | None


def token_view(row: Any) -> dict[str, Any]:
    """A token as shown to an administrator: never the secret or its hash."""
    return {
        "id": row.id, "name": row.name, "kind": row.kind, "directory_id": row.directory_id,
        "created": row.created, "expires_at": row.expires_at, "revoked_at": row.revoked_at,
        "last_used_at": row.last_used_at,
    }


class Directories:
    """Tenant directories and token management."""

    def __init__(self, engine: Engine):
        self.engine = engine
        self._cache: dict[str, tuple[Principal, float]] = {}
        self._last_used: dict[str, float] = {}
        self._lock = threading.Lock()

    def create(self, name: str) -> dict[str, Any]:
        """Create a directory and its first token (returned once, in plain text)."""
        name = name.strip()
        if not name or len(name) > 255:
            raise UsageError("a directory name must be 1 to 255 characters")
        did = str(uuid.uuid4())
        with self.engine.begin() as conn:
            conn.execute(insert(directories).values(
                id=did, name=name, created=now(), journal_seq=0, settings={}))
        token = self.create_token(did, "initial")
        return {**self.get(did), "token": token["token"], "token_id": token["id"]}

    def get(self, directory_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            row = conn.execute(select(directories).where(D.id == directory_id)).first()
        if row is None:
            raise UsageError(f"no directory {directory_id}")
        return _directory_view(row)

    def list_all(self) -> list[dict[str, Any]]:
        with self.engine.connect() as conn:
            rows = conn.execute(select(directories).order_by(D.created, D.id)).all()
        return [_directory_view(r) for r in rows]

    def delete(self, directory_id: str) -> None:
        """Delete a directory with everything in it (tokens, resources, journal)."""
        with self.engine.begin() as conn:
            gone = conn.execute(delete(directories).where(D.id == directory_id)).rowcount
        if not gone:
            raise UsageError(f"no directory {directory_id}")
        self._forget()

    # --- tokens ---------------------------------------------------------------

    def create_token(self, directory_id: str | None, name: str,
                     expires_in: timedelta | None = None) -> dict[str, Any]:
        """A new token for a directory (or an admin token when directory_id is None)."""
        kind = "admin" if directory_id is None else "directory"
        if directory_id is not None:
            self.get(directory_id)
        tok = security.new_token(kind)
        expires = format_time(datetime.now(UTC) + expires_in) if expires_in else None
        with self.engine.begin() as conn:
            conn.execute(insert(tokens).values(
                id=tok.id, directory_id=directory_id, kind=kind, name=name or kind,
                secret_hash=tok.secret_hash, created=now(), expires_at=expires))
        return {"id": tok.id, "token": tok.plaintext, "kind": kind,
                "directory_id": directory_id, "name": name or kind, "expires_at": expires}

    def list_tokens(self, directory_id: str | None) -> list[dict[str, Any]]:
        stmt = select(tokens).order_by(T.created, T.id)
        stmt = stmt.where(T.kind == "admin") if directory_id is None else stmt.where(
            T.directory_id == directory_id)
        with self.engine.connect() as conn:
            return [token_view(r) for r in conn.execute(stmt)]

    def _token_row(self, token_id: str, directory_id: str | None) -> Any:
        with self.engine.connect() as conn:
            row = conn.execute(select(tokens).where(T.id == token_id)).first()
        if row is None or row.directory_id != directory_id:
            raise UsageError(f"no token {token_id}" + (
                f" in directory {directory_id}" if directory_id else " among admin tokens"))
        return row

    def revoke_token(self, directory_id: str | None, token_id: str) -> None:
        self._token_row(token_id, directory_id)
        with self.engine.begin() as conn:
            conn.execute(update(tokens).where(T.id == token_id, T.revoked_at.is_(None))
                         .values(revoked_at=now()))
        self._forget()

    def rotate_token(self, directory_id: str | None, token_id: str,
                     overlap: timedelta = timedelta(hours=1),
                     expires_in: timedelta | Lifetime | None = Lifetime.KEEP) -> dict[str, Any]:
        """Issue a successor; the old token stays valid for `overlap`, then expires.

        The successor lives as long as the old token was issued for (a 90-day token's
        successor is a 90-day token), unless `expires_in` says otherwise (None: never).
        """
        old = self._token_row(token_id, directory_id)
        if old.revoked_at is not None:
            raise UsageError(f"token {token_id} is revoked")
        if expires_in is Lifetime.KEEP:
            expires_in = None if old.expires_at is None else \
                parse_time(old.expires_at) - parse_time(old.created)
        new = self.create_token(directory_id, old.name, expires_in)
        until = format_time(datetime.now(UTC) + overlap)
        if old.expires_at is None or old.expires_at > until:
            with self.engine.begin() as conn:
                conn.execute(update(tokens).where(T.id == token_id).values(expires_at=until))
        self._forget()
        return {**new, "previous_token_id": token_id, "previous_expires_at": until}

    def authenticate(self, bearer: str) -> Principal | None:
        """The principal a bearer token stands for, or None (unknown, revoked, expired)."""
        parts = security.split_token(bearer)
        if parts is None:
            return None
        key = security.hash_secret(bearer)
        clock = time.monotonic()
        cached = self._cache.get(key)
        principal: Principal | None
        if cached is not None and cached[1] > clock:
            principal = cached[0]
        else:
            principal = self._lookup(*parts)
            if principal is None:
                return None
            with self._lock:
                if len(self._cache) > 10_000:
                    self._cache.clear()
                self._cache[key] = (principal, clock + CACHE_SECONDS)
        if principal.expires_at is not None and principal.expires_at <= now():
            return None
        self._touch(principal.token_id, clock)
        return principal

    def cached(self, bearer: str) -> Principal | None:
        """The principal of a token validated in the last CACHE_SECONDS, without any
        database work (None: call `authenticate`), so that requests need not leave the
        event loop to be authenticated."""
        cached = self._cache.get(security.hash_secret(bearer))
        clock = time.monotonic()
        if cached is None or cached[1] <= clock:
            return None
        principal = cached[0]
        if principal.expires_at is not None and principal.expires_at <= now():
            return None
        if self._last_used.get(principal.token_id, -LAST_USED_EVERY) + LAST_USED_EVERY <= clock:
            return None  # last use is due to be recorded
        return principal

    def _lookup(self, token_id: str, secret: str) -> Principal | None:
        with self.engine.connect() as conn:
            row = conn.execute(select(tokens).where(T.id == token_id)).first()
        if row is None or row.revoked_at is not None:
            return None
        if not security.secret_matches(secret, row.secret_hash):
            return None
        return Principal(row.id, row.kind, row.directory_id, row.expires_at)

    def _touch(self, token_id: str, clock: float) -> None:
        """Record last use, at most once a minute per token (no write per request)."""
        if self._last_used.get(token_id, -LAST_USED_EVERY) + LAST_USED_EVERY > clock:
            return
        self._last_used[token_id] = clock
        try:
            with self.engine.begin() as conn:
                conn.execute(update(tokens).where(T.id == token_id).values(
                    last_used_at=now()))
        except Busy:  # a stamp, not worth failing the request it rides on
            self._last_used[token_id] = clock - LAST_USED_EVERY

    def _forget(self) -> None:
        with self._lock:
            self._cache.clear()


def _directory_view(row: Any) -> dict[str, Any]:
    return {
        "id": row.id, "name": row.name, "created": row.created,
        "scim_path": f"/scim/v2/{row.id}", "journal_seq": row.journal_seq,
    }
