"""Migrations 0020 (calls by queued_at) and 0021 (the partial index of the events of calls
that moved on from a queue), the queues report's indexes, on SQLite and PostgreSQL: each is
there after an upgrade, a downgrade to the revision before drops it and keeps the rows, and
an upgrade brings it back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import Connection, func, inspect, select

from models.db import alembic_config
from models.tables import Call, CallEvent, Direction
from tests.conftest import Database


async def _has_index(database: Database, table: str, index: str) -> bool:
    def names(conn: Connection) -> set[str]:
        return {str(i["name"]) for i in inspect(conn).get_indexes(table)}

    async with database.engine.connect() as conn:
        return index in await conn.run_sync(names)


@pytest.mark.parametrize(
    ("before", "table", "index"),
    [
        ("0019", "calls", "ix_calls_queued_at"),
        ("0020", "call_events", "ix_call_events_moved_on"),
    ],
)
async def test_the_index_comes_and_goes_with_its_migration_and_the_rows_stay(
    database: Database, before: str, table: str, index: str
) -> None:
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    async with database.sessions() as session, session.begin():
        call = Call(
            channel_id=f"chan-{index}",
            direction=Direction.INBOUND,
            handler="ari",
            started_at=at,
            queue="general",
            queued_at=at,
        )
        session.add(call)
        await session.flush()
        session.add(CallEvent(call_id=call.id, at=at, kind="transferred", data={"to": "finance"}))
    assert await _has_index(database, table, index)
    await database.engine.dispose()  # no pooled connection holds the table during DDL
    config = alembic_config(database.url)
    await asyncio.to_thread(command.downgrade, config, before)
    assert not await _has_index(database, table, index)
    await database.engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await _has_index(database, table, index)
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Call)) == 1
        assert await session.scalar(select(func.count()).select_from(CallEvent)) == 1
