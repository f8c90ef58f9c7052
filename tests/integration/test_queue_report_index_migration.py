"""Migration 0020 (the queues report's index, calls by queued_at) on SQLite and PostgreSQL: it
is there after an upgrade, a downgrade to 0019 drops it and keeps the calls, and an upgrade
brings it back."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import Connection, func, inspect, select

from models.db import alembic_config
from models.tables import Call, Direction
from tests.conftest import Database


def _names(conn: Connection) -> set[str]:
    return {str(i["name"]) for i in inspect(conn).get_indexes("calls")}


async def _has_index(database: Database) -> bool:
    async with database.engine.connect() as conn:
        return "ix_calls_queued_at" in await conn.run_sync(_names)


async def test_the_index_comes_and_goes_with_0020_and_the_calls_stay(database: Database) -> None:
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    async with database.sessions() as session, session.begin():
        session.add(
            Call(
                channel_id="chan-q",
                direction=Direction.INBOUND,
                handler="ari",
                started_at=at,
                queue="general",
                queued_at=at,
            )
        )
    assert await _has_index(database)
    await database.engine.dispose()  # no pooled connection holds the table during DDL
    config = alembic_config(database.url)
    await asyncio.to_thread(command.downgrade, config, "0019")
    assert not await _has_index(database)
    await database.engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await _has_index(database)
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Call)) == 1
