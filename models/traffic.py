"""The call rows the console's live view per node reads: today's ended inbound calls of the
info line, each with its IVR path and outcome (core.flowtraffic counts them). Imports only
models.tables."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.tables import Call, Direction

MAX_CALLS = 200_000  # a day of a large centre; beyond it the figures are of the latest ones


async def paths_since(
    sessions: async_sessionmaker[AsyncSession], since: datetime
) -> list[tuple[list[str], str | None]]:
    """(ivr_path, outcome) of the inbound calls that started since ``since`` and ended."""
    async with sessions() as session:
        rows = await session.execute(
            select(Call.ivr_path, Call.outcome)
            .where(
                Call.direction == Direction.INBOUND,
                Call.started_at >= since,
                Call.ended_at.is_not(None),
            )
            .order_by(Call.started_at.desc())
            .limit(MAX_CALLS)
        )
        return [(list(path or []), outcome) for path, outcome in rows]
