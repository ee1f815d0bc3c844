"""Encryption of target credentials at rest (Fernet: AES-128-CBC with HMAC-SHA256).

The key comes from SCIMSYNC_SECRET_KEY (a Fernet key), else from the file named by
SCIMSYNC_SECRET_KEY_FILE (default `scimsync.key` in the working directory), which is
created with mode 0600 on first use. Every process that shares a database must
share the key.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import orjson
from cryptography.fernet import Fernet, InvalidToken

from scimsync.errors import UsageError


@lru_cache(maxsize=4)
def _fernet(key: str | None, path: str) -> Fernet:
    if key:
        return Fernet(key.encode())
    file = Path(path)
    if not file.exists():
        file.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(Fernet.generate_key())
    return Fernet(file.read_bytes().strip())


def fernet() -> Fernet:
    return _fernet(os.environ.get("SCIMSYNC_SECRET_KEY"),
                   os.environ.get("SCIMSYNC_SECRET_KEY_FILE", "scimsync.key"))


def seal(secrets: dict[str, Any]) -> str:
    """Encrypt a dict of credentials for storage."""
    return fernet().encrypt(orjson.dumps(secrets)).decode()


def unseal(blob: str | None) -> dict[str, Any]:
    """Decrypt stored credentials; a wrong key is a clear error, not garbage."""
    if not blob:
        return {}
    try:
        value = orjson.loads(fernet().decrypt(blob.encode()))
    except InvalidToken as exc:
        raise UsageError("target credentials cannot be decrypted: wrong SCIMSYNC_SECRET_KEY "
                         "or key file") from exc
    return value if isinstance(value, dict) else {}
