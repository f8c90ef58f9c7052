"""Migration 0019 (the call log report's indexes) on SQLite and PostgreSQL: they are there
after an upgrade, a downgrade to 0018 drops them and keeps the calls and notes, and an
upgrade brings them back. (test_survey_migration.py checks that the ORM models agree with
the migrated schema.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import Connection, func, inspect, select

from models.db import alembic_config
from models.tables import Call, Direction, Interaction
from tests.conftest import Database

CALLS = {
    "ix_calls_started_at_id",
    "ix_calls_queue_started_at",
    "ix_calls_agent_id_started_at",
    "ix_calls_outcome_started_at",
    "ix_calls_disposition_started_at",
}


def _indexes(conn: Connection) -> set[str]:
    found = inspect(conn)
    return {str(i["name"]) for t in ("calls", "interactions") for i in found.get_indexes(t)}


async def _present(database: Database) -> set[str]:
    async with database.engine.connect() as conn:
        return await conn.run_sync(_indexes) & (CALLS | {"ix_interactions_call_id"})


async def _counts(database: Database) -> tuple[int | None, int | None]:
    async with database.sessions() as session:
        calls = await session.scalar(select(func.count()).select_from(Call))
        notes = await session.scalar(select(func.count()).select_from(Interaction))
    return calls, notes


async def test_the_indexes_come_and_go_with_0019_and_the_rows_stay(database: Database) -> None:
    async with database.sessions() as session, session.begin():
        session.add(
            Call(
                id="c1",
                channel_id="chan-1",
                direction=Direction.INBOUND,
                handler="ari",
                started_at=datetime(2026, 10, 25, 1, 30, tzinfo=UTC),
                queue="general",
            )
        )
        session.add(Interaction(call_id="c1", note="a note"))
    assert await _present(database) == CALLS | {"ix_interactions_call_id"}
    await database.engine.dispose()  # no pooled connection holds the tables during DDL
    config = alembic_config(database.url)
    await asyncio.to_thread(command.downgrade, config, "0018")
    assert await _present(database) == set()
    assert await _counts(database) == (1, 1)
    await database.engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await _present(database) == CALLS | {"ix_interactions_call_id"}
    assert await _counts(database) == (1, 1)
