"""Who may open a FastAGI session, and how loudly refusals are logged. Pure: the server
(``agi.server``) counts its sessions by remote address and asks ``refusal`` before it reads a
header; it reports each refused connection to a ``RefusalLog`` with the loop's clock.

Why per address: anyone who reaches the FastAGI port can open connections that never send a
header. Without a cap a few hundred of them from one host take every session slot, and
Asterisk's own connections (the info line's fallback, the post-call survey) are refused while
they stay. So each other address gets a few sessions, all of them together never the share
kept for the PBX's addresses, and the PBX is only refused when the server as a whole is full.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum


class Refusal(StrEnum):
    """Why a connection or a request was turned away (the keys of the log's counts)."""

    STOPPING = "stopping"
    FULL = "full"  # every session slot is taken
    PEER_LIMIT = "peer_limit"  # this address holds its share already
    OTHERS_LIMIT = "others_limit"  # addresses other than the PBX's hold theirs
    HEADER_TIMEOUT = "header_timeout"
    BAD_HEADER = "bad_header"
    DUPLICATE_KEY = "duplicate_key"  # a forged or injected header
    UNAUTHENTICATED = "unauthenticated"  # no secret, or the wrong one
    UNKNOWN_SCRIPT = "unknown_script"


@dataclass(frozen=True)
class SessionLimits:
    """``total`` sessions at most; an address not in ``pbx_addresses`` at most ``per_peer``,
    and those addresses together at most ``total - reserved_for_pbx``."""

    total: int = 500
    per_peer: int = 16
    reserved_for_pbx: int = 100
    pbx_addresses: frozenset[str] = frozenset({"127.0.0.1", "::1"})

    def __post_init__(self) -> None:
        if self.total < 1 or self.per_peer < 1:
            raise ValueError("FastAGI session limits must be at least 1")
        if not 0 <= self.reserved_for_pbx < self.total:
            raise ValueError("the PBX's reserved sessions must be fewer than the total")


def refusal(
    address: str, sessions: Mapping[str, int], limits: SessionLimits, *, stopping: bool = False
) -> Refusal | None:
    """Why a new connection from ``address`` is refused, None when it may proceed.
    ``sessions``: the open sessions by remote address, this one not yet counted."""
    if stopping:
        return Refusal.STOPPING
    if sum(sessions.values()) >= limits.total:
        return Refusal.FULL
    if address in limits.pbx_addresses:
        return None
    if sessions.get(address, 0) >= limits.per_peer:
        return Refusal.PEER_LIMIT
    others = sum(n for peer, n in sessions.items() if peer not in limits.pbx_addresses)
    if limits.pbx_addresses and others >= limits.total - limits.reserved_for_pbx:
        return Refusal.OTHERS_LIMIT
    return None


@dataclass
class RefusalLog:
    """At most one log line per ``interval`` seconds about refused connections: the first
    refusal after a quiet interval is logged at once (``note`` returns its counts), later
    ones are counted and logged together when the interval is over (``take`` at
    ``due_at``). A flood of refusals cannot flood the log."""

    interval: float
    _held: dict[str, int] = field(default_factory=dict)
    _quiet_from: float = float("-inf")

    def note(self, reason: Refusal | str, now: float) -> dict[str, int] | None:
        """Count one refusal; the counts to log now, or None when they wait for ``take``."""
        self._held[reason] = self._held.get(reason, 0) + 1
        if now < self._quiet_from:
            return None
        return self.take(now)

    @property
    def holding(self) -> bool:
        return bool(self._held)

    @property
    def due_at(self) -> float:
        """When the counts held now may be logged."""
        return self._quiet_from

    def take(self, now: float) -> dict[str, int]:
        """The counts held (maybe none); the next line may come ``interval`` after this one."""
        counts, self._held = self._held, {}
        if counts:
            self._quiet_from = now + self.interval
        return counts
