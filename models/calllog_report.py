"""The call log report's reads: calls matching a filter, newest first, in bounded chunks by
keyset (started_at, id), each chunk with its calls' hold and agent events and notes read in
two more statements. Each chunk is its own short transaction, so a month's CSV neither sits
in memory nor holds a connection (or, on PostgreSQL, a snapshot) for the whole download."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator, Sequence
from typing import Any

from sqlalchemy import and_, exists, or_, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from core.calllog_report import (
    AGENT_KINDS,
    EVENT_KINDS,
    CallFacts,
    CallFilter,
    CallLogRow,
    Cursor,
    TrailEvent,
    call_row,
)
from models.tables import Call, CallEvent, Campaign, Client, Direction, Interaction

CHUNK = 1000  # calls a statement (with their events and notes: two more)

Sessions = async_sessionmaker[AsyncSession]


def _conditions(f: CallFilter, after: Cursor | None = None) -> list[ColumnElement[bool]]:
    found: list[ColumnElement[bool]] = []
    if f.since is not None:
        found.append(Call.started_at >= f.since)
    if after is not None:
        found.append(_after(after))
    # A database takes one upper bound as the index's range, and not always the tighter:
    # past the first page the cursor's is the one (``until`` would walk every row sent).
    if f.until is not None and (after is None or after.started_at >= f.until):
        found.append(Call.started_at < f.until)
    if f.direction is not None:
        found.append(Call.direction == Direction(f.direction))
    if f.queue is not None:
        found.append(Call.queue == f.queue)
    if f.agent is not None:
        # The call's (last) agent, or any agent put through during it (a transfer).
        put_through = exists(
            select(CallEvent.id).where(
                CallEvent.call_id == Call.id,
                CallEvent.kind.in_(AGENT_KINDS),
                CallEvent.data["agent_id"].as_string() == f.agent,
            )
        )
        found.append(or_(Call.agent_id == f.agent, put_through))
    if f.campaign is not None:
        found.append(Call.campaign_id.in_(select(Campaign.id).where(Campaign.name == f.campaign)))
    if f.client is not None:
        found.append(Call.client_id == f.client)
    if f.outcome is not None:
        found.append(Call.outcome == f.outcome)
    if f.disposition is not None:
        found.append(Call.disposition == f.disposition)
    return found


def _after(cursor: Cursor) -> ColumnElement[bool]:
    # Newest first: the next rows are older, or as old with a smaller id. The plain
    # ``started_at <=`` beside the OR is what the databases take as the index's range:
    # without it each chunk would walk the index from the top past every row already sent,
    # and a month's export would go quadratic.
    return and_(
        Call.started_at <= cursor.started_at,
        or_(
            Call.started_at < cursor.started_at,
            and_(Call.started_at == cursor.started_at, Call.id < cursor.call_id),
        ),
    )


async def _chunk(
    session: AsyncSession, f: CallFilter, after: Cursor | None, size: int
) -> list[CallLogRow]:
    where = _conditions(f, after)
    # Straight to the connection: plain rows, without the ORM's loading machinery.
    conn = await session.connection()
    rows = (
        await conn.execute(
            select(*_COLUMNS, Client.name, Campaign.name)
            .outerjoin(Client, Client.id == Call.client_id)
            .outerjoin(Campaign, Campaign.id == Call.campaign_id)
            .where(*where)
            .order_by(Call.started_at.desc(), Call.id.desc())
            .limit(size)
        )
    ).all()
    if not rows:
        return []
    ids = [row[0] for row in rows]
    events: dict[str, list[TrailEvent]] = defaultdict(list)
    for call_id, at, kind, data in await conn.execute(
        select(CallEvent.call_id, CallEvent.at, CallEvent.kind, CallEvent.data)
        .where(CallEvent.call_id.in_(ids), CallEvent.kind.in_(EVENT_KINDS))
        .order_by(CallEvent.id)
    ):
        events[call_id].append(TrailEvent(at, kind, data or {}))
    notes: dict[str, list[str]] = defaultdict(list)
    for call_id, note in await conn.execute(
        select(Interaction.call_id, Interaction.note)
        .where(Interaction.call_id.in_(ids), Interaction.note.is_not(None))
        .order_by(Interaction.id)
    ):
        if call_id is not None and note:
            notes[call_id].append(note)
    return [call_row(_facts(row), events[row[0]], notes[row[0]]) for row in rows]


# Columns, not ORM objects: a month's export reads a million rows, and building (and
# tracking) an object per row cost a third of the time.
_COLUMNS = (
    Call.id,
    Call.started_at,
    Call.answered_at,
    Call.ended_at,
    Call.direction,
    Call.caller_number,
    Call.called_number,
    Call.client_id,
    Call.queue,
    Call.agent_id,
    Call.ivr_path,
    Call.queued_at,
    Call.connected_at,
    Call.wait_seconds,
    Call.talk_seconds,
    Call.outcome,
    Call.disposition,
    Call.hangup_cause,
)


def _facts(row: Sequence[Any]) -> CallFacts:
    (call_id, started_at, answered_at, ended_at, direction, caller, called, client_id, queue,
     agent_id, path, queued_at, connected_at, wait, talk, outcome, disposition, cause,
     client_name, campaign) = row  # fmt: skip
    return CallFacts(
        id=call_id,
        started_at=started_at,
        answered_at=answered_at,
        ended_at=ended_at,
        direction=str(direction),
        caller_number=caller,
        called_number=called,
        client_id=client_id,
        client_name=client_name,
        campaign=campaign,
        queue=queue,
        agent_id=agent_id,
        ivr_path=path if isinstance(path, list) else [],
        queued_at=queued_at,
        connected_at=connected_at,
        wait_seconds=wait,
        talk_seconds=talk,
        outcome=outcome,
        disposition=disposition,
        hangup_cause=cause,
    )


async def stream_calls(
    sessions: Sessions,
    f: CallFilter,
    *,
    after: Cursor | None = None,
    limit: int | None = None,
    chunk: int = CHUNK,
) -> AsyncIterator[list[CallLogRow]]:
    """The matching calls after ``after``, newest first, ``chunk`` at a time (at most
    ``limit`` in all), each chunk read in a transaction of its own."""
    left = limit
    while left is None or left > 0:
        size = chunk if left is None else min(chunk, left)
        async with sessions() as session:
            rows = await _chunk(session, f, after, size)
        if not rows:
            return
        yield rows
        if left is not None:
            left -= len(rows)
        if len(rows) < size:
            return
        after = rows[-1].cursor


async def page(
    sessions: Sessions, f: CallFilter, after: Cursor | None, limit: int
) -> tuple[list[CallLogRow], Cursor | None]:
    """One page and the cursor of the next (None: this is the last). One row more than
    asked tells whether there is a next page."""
    async with sessions() as session:
        rows = await _chunk(session, f, after, limit + 1)
    if len(rows) > limit:
        return rows[:limit], rows[limit - 1].cursor
    return rows, None


__all__ = ["CHUNK", "page", "stream_calls"]
