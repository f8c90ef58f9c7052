"""What the queues report reads (``core.queue_report``): the calls that reached a queue and
the callback tasks made for one, in [since, until), and each queue's service-level threshold.
Plain reads in chunks of ``CHUNK`` rows (a month of calls is not one result set held by the
driver). The few calls that moved on from a queue (overflowed, transferred: found through
the small partial index ``ix_call_events_moved_on``) are read with their events and counted
once per queue they waited in. Imports models.tables and models.crm."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timedelta

from sqlalchemy import select, text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.queue_report import MOVED_ON, CallbackTask, CallStep, QueuedCall, visits
from models.crm import queue_def_of
from models.tables import MOVED_ON_KINDS, Call, Callback, CallbackStatus, CallEvent, Queue

Sessions = async_sessionmaker[AsyncSession]
CHUNK = 5000
# A call moves on from a queue within its own length: its moves are looked for this far
# around the window (a call queued before midnight may be transferred into the next day).
LONGEST_CALL = timedelta(days=1)
STEP_KINDS = ("queued", "agent_connected", *MOVED_ON)
CALL_COLUMNS = (
    Call.id,
    Call.queue,
    Call.queued_at,
    Call.connected_at,
    Call.ended_at,
    Call.outcome,
    Call.wait_seconds,
)


async def queued_calls(
    sessions: Sessions, since: datetime, until: datetime, queue: str | None = None
) -> AsyncIterator[QueuedCall]:
    """Each queue's offers in the window: a call in one queue as its row says; a call that
    moved on, one offer per queue it waited in (each by its own time)."""
    moved = await _moved_on(sessions, since, until)
    query = (
        select(*CALL_COLUMNS)
        .where(Call.queue.is_not(None), Call.queued_at >= since, Call.queued_at < until)
        .execution_options(yield_per=CHUNK)
    )
    if queue is not None:
        query = query.where(Call.queue == queue)
    async with sessions() as session:
        result = await session.stream(query)
        # A chunk at a time: a row at a time, the async iteration's switches were half the
        # report's time.
        async for chunk in result.partitions(CHUNK):
            for call_id, name, queued_at, connected_at, ended_at, outcome, wait in chunk:
                if queued_at is None or call_id in moved:  # NULL: excluded by the query
                    continue
                yield QueuedCall(str(name), queued_at, connected_at, ended_at, outcome, wait)
    for offer in await _visits(sessions, sorted(moved)):
        if since <= offer.queued_at < until and queue in (None, offer.queue):
            yield offer


async def _moved_on(sessions: Sessions, since: datetime, until: datetime) -> set[str]:
    async with sessions() as session:
        found = await session.scalars(
            select(CallEvent.call_id)
            .where(
                # Written out as the partial index's own condition: a bound IN (?, ?) is
                # not one SQLite can prove the index covers.
                text(MOVED_ON_KINDS),
                CallEvent.at >= since - LONGEST_CALL,
                CallEvent.at < until + LONGEST_CALL,
            )
            .distinct()
        )
        return set(found)


async def _visits(sessions: Sessions, call_ids: list[str]) -> list[QueuedCall]:
    offers: list[QueuedCall] = []
    async with sessions() as session:
        for i in range(0, len(call_ids), 500):
            chunk = call_ids[i : i + 500]
            calls = {
                row.id: row
                for row in await session.execute(select(*CALL_COLUMNS).where(Call.id.in_(chunk)))
            }
            steps: dict[str, list[CallStep]] = {}
            for call_id, at, kind, data in await session.execute(
                select(CallEvent.call_id, CallEvent.at, CallEvent.kind, CallEvent.data)
                .where(CallEvent.call_id.in_(chunk), CallEvent.kind.in_(STEP_KINDS))
                .order_by(CallEvent.id)
            ):
                steps.setdefault(call_id, []).append(
                    CallStep(at, kind, _text(data, "queue"), _text(data, "to"))
                )
            for call_id, row in calls.items():
                if row.queue is None or row.queued_at is None:
                    continue
                call = QueuedCall(
                    str(row.queue),
                    row.queued_at,
                    row.connected_at,
                    row.ended_at,
                    row.outcome,
                    row.wait_seconds,
                )
                offers += visits(call, steps.get(call_id, []))
    return offers


def _text(data: object, key: str) -> str | None:
    value = data.get(key) if isinstance(data, dict) else None
    return str(value) if value is not None else None


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
