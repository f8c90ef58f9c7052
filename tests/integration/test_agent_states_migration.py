"""Migration 0022 (the agents report's state log, agent_states) on SQLite and PostgreSQL: the
table and its two indexes are there after an upgrade, a downgrade to 0021 drops them and
keeps the agents, and an upgrade brings them back, empty and writable."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import Connection, func, inspect, select

from models.db import alembic_config
from models.tables import Agent, AgentRole, AgentState
from tests.conftest import Database

INDEXES = {"ix_agent_states_agent_id_at", "ix_agent_states_at"}


def _shape(conn: Connection) -> set[str] | None:
    found = inspect(conn)
    if "agent_states" not in found.get_table_names():
        return None
    return {str(i["name"]) for i in found.get_indexes("agent_states")}


async def _indexes(database: Database) -> set[str] | None:
    async with database.engine.connect() as conn:
        return await conn.run_sync(_shape)


async def test_the_state_log_comes_and_goes_with_0022_and_the_agents_stay(
    database: Database,
) -> None:
    at = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    async with database.sessions() as session, session.begin():
        session.add(Agent(id="nsag-mig", name="Mig", role=AgentRole.AGENT))
        session.add(AgentState(agent_id="nsag-mig", at=at, state="ready"))
    assert await _indexes(database) == INDEXES
    await database.engine.dispose()  # no pooled connection holds the table during DDL
    config = alembic_config(database.url)
    await asyncio.to_thread(command.downgrade, config, "0021")
    assert await _indexes(database) is None
    await database.engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await _indexes(database) == INDEXES
    async with database.sessions() as session, session.begin():
        assert await session.scalar(select(func.count()).select_from(AgentState)) == 0
        assert await session.get(Agent, "nsag-mig") is not None
        session.add(AgentState(agent_id="nsag-mig", at=at, state="paused", reason="lunch"))
    async with database.sessions() as session:
        assert await session.scalar(select(AgentState.reason)) == "lunch"
