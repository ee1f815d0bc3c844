"""Encryption of target credentials at rest (Fernet: AES-128-CBC with HMAC-SHA256).

Where a database's key is, in order (docs/configuration.md, "Target credentials"):
the key itself in SCIMSYNC_SECRET_KEY, else the file SCIMSYNC_SECRET_KEY_FILE names,
else, for a SQLite database file, `<database file>.key` beside it. None of these
depends on the working directory, so every command and process that opens a
database finds the same key. PostgreSQL (and an in-memory SQLite) has no default:
it stores credentials only once one of the two settings is given.

A key file is created (mode 0600) only when credentials are sealed and the database
holds none yet. A key that is missing or wrong while stored credentials depend on
another one is refused with an error naming the setting and the path; it never
becomes a fresh key.

UsageError
├── KeyMismatch        stored credentials cannot be opened: the key is wrong, missing,
│                      unreadable or not configured (the engine counts it as a failure
│                      of the target, with backoff)
└── KeyNotConfigured   no key location for this database, or not a Fernet key
"""

from __future__ import annotations

import contextlib
import os
import secrets as random
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy.engine import URL, make_url

from scimsync.errors import UsageError

SETTING_KEY = "SCIMSYNC_SECRET_KEY"
SETTING_FILE = "SCIMSYNC_SECRET_KEY_FILE"
BESIDE_DATABASE = "beside the database"
# Where earlier builds kept the key (the working directory): named in errors, to help
# an upgrade, and never read.
LEGACY_FILE = "scimsync.key"


class KeyMismatch(UsageError):
    """Stored target credentials cannot be decrypted with the key this process found."""


class KeyNotConfigured(UsageError):
    """There is no usable credentials key for this database."""


@dataclass(frozen=True)
class KeyLocation:
    """Where one database's credentials key is, and which setting chose it."""

    setting: str
    path: Path | None = None  # None: the key is the value of SCIMSYNC_SECRET_KEY
    value: str | None = field(default=None, repr=False)

    def describe(self) -> str:
        """The location in words, for error messages (never the key itself)."""
        if self.path is None:
            return f"the key in {SETTING_KEY}"
        if self.setting == SETTING_FILE:
            return f"the key file {self.path} (from {SETTING_FILE})"
        return f"the key file {self.path} ({BESIDE_DATABASE}; {SETTING_FILE} overrides it)"


def locate(database: URL | str, env: Mapping[str, str] | None = None) -> KeyLocation | None:
    """Where the credentials key of `database` is; None if only a setting can say."""
    env = os.environ if env is None else env
    if env.get(SETTING_KEY):
        return KeyLocation(SETTING_KEY, value=env[SETTING_KEY])
    if env.get(SETTING_FILE):
        return KeyLocation(SETTING_FILE, Path(env[SETTING_FILE]).expanduser().resolve())
    url = make_url(database) if isinstance(database, str) else database
    name = url.database
    if (url.get_backend_name() != "sqlite" or not name or name == ":memory:"
            or url.query.get("mode") == "memory"):
        return None
    file = Path(name).expanduser().resolve()
    return KeyLocation(BESIDE_DATABASE, file.with_name(file.name + ".key"))


@lru_cache(maxsize=8)
def _fernet(raw: bytes) -> Fernet:
    return Fernet(raw)


def _read(loc: KeyLocation) -> Fernet | None:
    """The key at `loc`; None if its file does not exist."""
    if loc.path is None:
        raw = (loc.value or "").encode()
    else:
        try:
            raw = loc.path.read_bytes().strip()
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise KeyNotConfigured(f"{loc.describe()} cannot be read: {exc.strerror}") from exc
    try:
        return _fernet(raw)
    except ValueError as exc:
        raise KeyNotConfigured(f"{loc.describe()} is not a Fernet key (44 characters of "
                               "url-safe base64)") from exc


def _create(path: Path) -> Fernet:
    """A new key file, 0600 from the start; if another process made one first, theirs."""
    path.parent.mkdir(parents=True, exist_ok=True)
    draft = path.with_name(f".{path.name}.{random.token_hex(6)}")
    fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(Fernet.generate_key())
            out.flush()
            os.fsync(out.fileno())
        # A link never replaces an existing file, and the key appears whole or not at all.
        with contextlib.suppress(FileExistsError):
            os.link(draft, path)
    finally:
        draft.unlink(missing_ok=True)
    # The database commits durably; the key it now depends on must be as durable.
    folder = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(folder)
    finally:
        os.close(folder)
    found = _read(KeyLocation(BESIDE_DATABASE, path))
    assert found is not None  # just linked
    return found


def _missing(loc: KeyLocation) -> str:
    message = (f"target credentials are stored encrypted, but {loc.describe()} does not "
               f"exist: put the original key file there, or set {SETTING_FILE} to where "
               "it is")
    legacy = Path(LEGACY_FILE).resolve()
    if legacy.exists() and legacy != loc.path:
        message += f" ({legacy} exists: earlier builds kept the key in the working directory)"
    return message


def _unconfigured(stored: bool) -> str:
    what = ("target credentials are stored encrypted, but no key is configured for this "
            "database" if stored else
            "this database has no default place for the credentials key")
    return f"{what}: set {SETTING_FILE} (a file every process can read) or {SETTING_KEY}"


def _open(fernet: Fernet, blob: str, loc: KeyLocation) -> dict[str, Any]:
    try:
        value = orjson.loads(fernet.decrypt(blob.encode()))
    except InvalidToken as exc:
        raise KeyMismatch(f"target credentials cannot be decrypted with {loc.describe()}: "
                          f"it is not the key they were encrypted with. Set {SETTING_FILE} "
                          f"(or {SETTING_KEY}) to that key") from exc
    return value if isinstance(value, dict) else {}


def seal(database: URL | str, secrets: dict[str, Any], stored: str | None) -> str:
    """Encrypt credentials for `database`; `stored` (credentials already there, if any)
    must open with the same key, and only when there are none may a key be created."""
    loc = locate(database)
    if loc is None:
        raise KeyNotConfigured(_unconfigured(stored is not None))
    fernet = _read(loc)
    if fernet is None:
        if stored is not None:
            raise KeyMismatch(f"{_missing(loc)}. A new key would not open them, so none "
                              "is created")
        assert loc.path is not None  # a key given as a value is always readable
        fernet = _create(loc.path)
    elif stored is not None:
        _open(fernet, stored, loc)
    return fernet.encrypt(orjson.dumps(secrets)).decode()


def unseal(database: URL | str, blob: str | None) -> dict[str, Any]:
    """Decrypt stored credentials; a key that cannot open them is a KeyMismatch."""
    if not blob:
        return {}
    loc = locate(database)
    if loc is None:
        raise KeyMismatch(_unconfigured(True))
    try:
        fernet = _read(loc)
    except KeyNotConfigured as exc:
        raise KeyMismatch(str(exc)) from exc
    if fernet is None:
        raise KeyMismatch(_missing(loc))
    return _open(fernet, blob, loc)
