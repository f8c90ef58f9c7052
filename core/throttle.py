"""Login throttle: how long a guesser must wait, per account and per address. Pure: every
method takes ``now`` (monotonic seconds) and returns a decision; the web layer keeps one
``LoginThrottle`` and says 429 with ``Retry-After`` while it answers a wait.

A few failures are free (a typo, caps lock); after that each failure doubles the wait, up to
``max_wait``. A quiet ``forget_after`` since the last failure starts the count again. An
address gets more free failures than an account, because a call centre's agents often share
one address behind NAT, and one agent's typos must not lock the whole floor out.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class ThrottleRule:
    free: int  # failures before the first wait
    base_wait: float  # seconds of the first wait; each further failure doubles it
    max_wait: float
    forget_after: float  # seconds without a failure that wipe the count

    def wait(self, failures: int) -> float:
        """The wait after ``failures`` failures in a row."""
        if failures < self.free:
            return 0.0
        return min(self.max_wait, self.base_wait * 2.0 ** min(failures - self.free, 32))


ACCOUNT_RULE = ThrottleRule(free=5, base_wait=1.0, max_wait=900.0, forget_after=3600.0)
ADDRESS_RULE = ThrottleRule(free=30, base_wait=1.0, max_wait=900.0, forget_after=3600.0)


@dataclass
class _Record:
    failures: int
    last: float  # monotonic time of the last failure


class LoginThrottle:
    """Failures per account (``agent id``) and per address; at most ``max_keys`` of each are
    remembered (the oldest forgotten first), so a flood of made-up ids cannot exhaust memory."""

    def __init__(
        self,
        account: ThrottleRule = ACCOUNT_RULE,
        address: ThrottleRule = ADDRESS_RULE,
        max_keys: int = 10_000,
    ) -> None:
        self.rules = {"account": account, "address": address}
        self.max_keys = max_keys
        self._records: dict[str, dict[str, _Record]] = {"account": {}, "address": {}}

    def _live(self, kind: str, key: str, now: float) -> _Record | None:
        record = self._records[kind].get(key)
        if record is not None and now - record.last >= self.rules[kind].forget_after:
            del self._records[kind][key]
            return None
        return record

    def retry_after(self, account: str, address: str, now: float) -> float:
        """Seconds until a login attempt for ``account`` from ``address`` is heard; 0: now."""
        waits = [0.0]
        for kind, key in (("account", account), ("address", address)):
            record = self._live(kind, key, now)
            if record is not None:
                waits.append(record.last + self.rules[kind].wait(record.failures) - now)
        return max(waits)

    def failed(self, account: str, address: str, now: float) -> tuple[int, int]:
        """Count a failed attempt; returns the failures in a row of the account and address."""
        counts = []
        for kind, key in (("account", account), ("address", address)):
            records = self._records[kind]
            record = self._live(kind, key, now) or _Record(0, now)
            # Re-inserted at the end: the dict's order is then the order of last failures.
            records.pop(key, None)
            if len(records) >= self.max_keys:
                del records[next(iter(records))]
            records[key] = record
            record.failures += 1
            record.last = now
            counts.append(record.failures)
        return counts[0], counts[1]

    def succeeded(self, account: str, address: str, now: float) -> None:
        """The right password: the account starts afresh; the address keeps its count (one
        known password must not launder a spray of guesses at other accounts)."""
        self._records["account"].pop(account, None)


class CallRate:
    """A carrier's limit on new calls through a trunk: ``per_second`` on average, at most
    ``burst`` back to back (a token bucket kept as the time the next call may go). ``reserve``
    books a call's moment: 0 now, a wait in seconds, or None when the wait would pass
    ``max_wait`` (nothing booked then). A booked moment is the caller's to keep: it waits that
    long, then dials. Pure: ``now`` is monotonic seconds."""

    def __init__(self, per_second: float, burst: int = 1) -> None:
        if per_second <= 0 or burst < 1:
            raise ValueError("per_second > 0 and burst >= 1")
        self.interval = 1.0 / per_second
        self.burst = burst
        self._next_free: float | None = None  # when the bucket is full again, minus burst

    def wait(self, now: float) -> float:
        """The wait a call booked now would get (nothing is booked)."""
        earliest = now - (self.burst - 1) * self.interval
        start = earliest if self._next_free is None else max(self._next_free, earliest)
        return max(0.0, start - now)

    def reserve(self, now: float, max_wait: float) -> float | None:
        # The bucket's state is one time: the moment from which a call needs no token saved.
        # A full bucket (idle long enough) starts burst-1 intervals back.
        earliest = now - (self.burst - 1) * self.interval
        start = earliest if self._next_free is None else max(self._next_free, earliest)
        wait = max(0.0, start - now)
        if wait > max_wait:
            return None
        self._next_free = start + self.interval
        return wait
