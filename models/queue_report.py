"""What the queues report reads (``core.queue_report``): the calls that reached a queue and
the callback tasks made for one, in [since, until), and each queue's service-level threshold.
Plain reads in chunks of ``CHUNK`` rows (a month of calls is not one result set held by the
driver). Imports models.tables and models.crm."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.queue_report import CallbackTask, QueuedCall
from models.crm import queue_def_of
from models.tables import Call, Callback, CallbackStatus, Queue

Sessions = async_sessionmaker[AsyncSession]
CHUNK = 5000


async def queued_calls(
    sessions: Sessions, since: datetime, until: datetime, queue: str | None = None
) -> AsyncIterator[QueuedCall]:
    query = (
        select(
            Call.queue,
            Call.queued_at,
            Call.connected_at,
            Call.ended_at,
            Call.outcome,
            Call.wait_seconds,
        )
        .where(Call.queue.is_not(None), Call.queued_at >= since, Call.queued_at < until)
        .execution_options(yield_per=CHUNK)
    )
    if queue is not None:
        query = query.where(Call.queue == queue)
    async with sessions() as session:
        result = await session.stream(query)
        async for name, queued_at, connected_at, ended_at, outcome, wait in result:
            if queued_at is None:  # excluded by the query; the column may be NULL
                continue
            yield QueuedCall(str(name), queued_at, connected_at, ended_at, outcome, wait)


async def callback_tasks(
    sessions: Sessions, since: datetime, until: datetime, queue: str | None = None
) -> list[CallbackTask]:
    query = select(Callback.queue, Callback.created_at, Callback.status).where(
        Callback.queue.is_not(None), Callback.created_at >= since, Callback.created_at < until
    )
    if queue is not None:
        query = query.where(Callback.queue == queue)
    async with sessions() as session:
        rows = await session.execute(query)
        return [
            CallbackTask(str(name), created_at, status == CallbackStatus.DONE)
            for name, created_at, status in rows
        ]


async def thresholds(sessions: Sessions) -> dict[str, int]:
    """Each queue's service-level seconds, as the ACD reads its settings."""
    async with sessions() as session:
        rows = await session.scalars(select(Queue))
        return {row.id: queue_def_of(row).service_level_seconds for row in rows}
