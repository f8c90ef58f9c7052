"""The database's health as the call path sees it, and how soon to try it again.

Pure: ``now`` is passed in. The call path never waits on a database that is away: writes
go to the local journal while the outage lasts and drain when it is back. The log says so
once per outage (when it starts and when it ends), not once per failed attempt.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class DbHealth(StrEnum):
    UP = "up"
    DOWN = "down"  # writes go to the journal; retried with backoff
    DRAINING = "draining"  # back: the journal is being written into it


def backoff(attempt: int, *, first: float = 0.25, cap: float = 5.0) -> float:
    """Seconds before retry ``attempt`` (1, 2, ...): doubling from ``first`` up to ``cap``,
    so a short blip drains fast and a long outage costs one try every few seconds."""
    if attempt < 1:
        return 0.0
    return float(min(cap, first * 2.0 ** min(attempt - 1, 30)))


@dataclass
class Outage:
    health: DbHealth = DbHealth.UP
    since: float | None = None  # when the current outage began
    attempts: int = 0  # failed tries since it began
    retry_at: float = 0.0

    def failed(self, now: float) -> bool:
        """A write or a drain failed; True when this starts an outage (say so once)."""
        starts = self.health is DbHealth.UP
        if starts:
            self.since = now
            self.attempts = 0
        self.health = DbHealth.DOWN
        self.attempts += 1
        self.retry_at = now + backoff(self.attempts)
        return starts

    def due(self, now: float) -> bool:
        """Time to try the database again."""
        return self.health is DbHealth.DOWN and now >= self.retry_at

    def draining(self) -> None:
        self.health = DbHealth.DRAINING

    def recovered(self, now: float) -> float | None:
        """The journal is drained: the outage's length in seconds when one ended (say so
        once), None when there was none."""
        lasted = None if self.since is None else now - self.since
        self.health = DbHealth.UP
        self.since = None
        self.attempts = 0
        self.retry_at = 0.0
        return lasted
