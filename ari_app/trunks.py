"""The carriers' call-rate limits, kept in one place for everyone who dials out through a
trunk (the survey dialler and agents' manual calls): each new call books its moment with the
trunk's ``core.throttle.CallRate`` and waits for it, or is refused when the wait would be too
long. One ``TrunkGate`` per ``serve``: several processes each keep their own (a limit per
process; a shared one would need the database)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Mapping

import structlog

from core.outbound import OutboundRefused
from core.throttle import CallRate

log = structlog.get_logger(__name__)


class TrunkGate:
    def __init__(self, per_second: Mapping[str, float]) -> None:
        self.limits = dict(per_second)
        self._rates = {trunk: CallRate(rate) for trunk, rate in per_second.items()}

    def check(self, trunk: str | None, max_wait: float) -> None:
        """Refuse now (``trunk_busy``) a call that would wait longer than ``max_wait`` if it
        were dialled now: a desk asks before the agent's phone rings."""
        rate = self._rates.get(trunk or "")
        if rate is not None and rate.wait(time.monotonic()) > max_wait:
            raise self._busy(trunk)

    def _busy(self, trunk: str | None) -> OutboundRefused:
        log.warning("trunk_rate_refused", trunk=trunk, limit=self.limits[trunk or ""])
        return OutboundRefused(
            "trunk_busy",
            f"trunk {trunk} takes at most {self.limits[trunk or '']:g} new calls a second: "
            "try again in a moment",
            trunk=trunk or "",
        )

    async def admit(self, trunk: str | None, max_wait: float) -> float:
        """Wait for the trunk's next free moment; the seconds waited. Raises
        ``OutboundRefused('trunk_busy')`` when that moment is further than ``max_wait``."""
        rate = self._rates.get(trunk or "")
        if rate is None:
            return 0.0
        wait = rate.reserve(time.monotonic(), max_wait)
        if wait is None:
            raise self._busy(trunk)
        if wait > 0:
            # The limiter's own pacing (a booked moment), not a synchronisation.
            await asyncio.sleep(wait)
        return wait
