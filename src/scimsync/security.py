"""Bearer tokens: random, prefixed, stored only as a hash, checked in constant time."""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
from dataclasses import dataclass

PREFIX = "scs"


@dataclass(frozen=True)
class NewToken:
    id: str
    secret_hash: str
    plaintext: str  # shown once, never stored


def _b32(n: int) -> str:
    return base64.b32encode(secrets.token_bytes(n)).decode().rstrip("=").lower()


def hash_secret(secret: str) -> str:
    """SHA-256 is right for 256-bit random secrets: there is nothing to brute-force."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_token(kind: str) -> NewToken:
    """A token `scs_<kind letter><id>_<secret>`: the prefix makes leaked tokens findable."""
    tid = ("a" if kind == "admin" else "d") + _b32(10)
    secret = secrets.token_urlsafe(32)
    return NewToken(tid, hash_secret(secret), f"{PREFIX}_{tid}_{secret}")


def split_token(token: str) -> tuple[str, str] | None:
    """(id, secret) of a well-formed token, else None."""
    parts = token.split("_", 2)
    if len(parts) != 3 or parts[0] != PREFIX or not parts[1] or not parts[2]:
        return None
    return parts[1], parts[2]


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def redact(text: str) -> str:
    """Mask anything that looks like one of our tokens (for logs)."""
    out = []
    for word in text.split():
        out.append(f"{PREFIX}_***" if word.startswith(PREFIX + "_") else word)
    return " ".join(out)
