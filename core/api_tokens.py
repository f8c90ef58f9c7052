"""Per-user API tokens, the pure part: what a token looks like, its hash, and the checks on a
new token's name and lifetime. The rows are models.api_tokens; the guard of /api is web.errors.

A token reads ``ctk_<public id>_<secret>``: the prefix makes a leaked one recognisable (secret
scanners, logs), the public id names it in lists without revealing it, and only its SHA-256
is stored. SHA-256, not argon2: the secret is 256 random bits, nothing to guess, and the
token is checked on every API request. Imports nothing but the standard library.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

PREFIX = "ctk_"
MAX_NAME = 100
MAX_DAYS = 3650  # ten years; "never" is no expiry at all
MAX_LIVE_PER_AGENT = 20  # live (unrevoked, unexpired) tokens one agent may hold
MAX_TOKEN = 120  # longer than any token we make: refused before it is hashed


class TokenRequestError(ValueError):
    """A new token cannot be made as asked; ``field`` names what is wrong."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.reason = message


@dataclass(frozen=True)
class NewToken:
    public_id: str
    token: str  # shown once, never stored
    token_hash: str


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


def new_token() -> NewToken:
    public_id = secrets.token_hex(4)
    token = f"{PREFIX}{public_id}_{secrets.token_urlsafe(32)}"
    return NewToken(public_id, token, token_hash(token))


def looks_like_token(token: str) -> bool:
    """Could ``token`` be one of ours (else it is not even looked up)."""
    return token.startswith(PREFIX) and 0 < len(token) <= MAX_TOKEN


def check_name(name: object) -> str:
    if not isinstance(name, str) or not name.strip():
        raise TokenRequestError("name", "a name, e.g. what the token is for")
    name = name.strip()
    if len(name) > MAX_NAME:
        raise TokenRequestError("name", f"at most {MAX_NAME} characters")
    if any(not c.isprintable() for c in name):
        raise TokenRequestError("name", "printable characters only")
    return name


def check_expiry(days: object, now: datetime) -> datetime | None:
    """When a token made ``now`` to last ``days`` days expires (None: never)."""
    if days is None:
        return None
    if isinstance(days, bool) or not isinstance(days, int):
        raise TokenRequestError("expires_days", "a whole number of days")
    if not 1 <= days <= MAX_DAYS:
        raise TokenRequestError("expires_days", f"1 to {MAX_DAYS} days (omit it: never)")
    return now + timedelta(days=days)
