"""Migration 0017 (agents.language) on SQLite and PostgreSQL: an agent speaks Bosnian unless
set otherwise, only bs and en are stored, and it downgrades to 0016 and upgrades again keeping
the agents (back in Bosnian), and an edit of an agent still bumps config_generation (SQLite
rebuilds the table: its triggers must come back). (test_survey_migration.py checks that the
ORM models agree with the migrated schema.)"""

from __future__ import annotations

import asyncio

import pytest
from alembic import command
from sqlalchemy import Connection, inspect, select, text
from sqlalchemy.exc import IntegrityError

from models.db import alembic_config
from models.tables import Agent, AgentRole, DeskLanguage
from tests.conftest import Database


async def _seed(database: Database) -> None:
    async with database.sessions() as session, session.begin():
        session.add_all(
            [
                Agent(id="amra", name="Amra", role=AgentRole.AGENT),
                Agent(id="john", name="John", role=AgentRole.AGENT, language=DeskLanguage.EN),
            ]
        )


async def _languages(database: Database) -> dict[str, str]:
    async with database.sessions() as session:
        rows = await session.execute(select(Agent.id, Agent.language).order_by(Agent.id))
        return {agent_id: str(language) for agent_id, language in rows}


async def test_agents_speak_bosnian_unless_set_and_only_bs_or_en(database: Database) -> None:
    await _seed(database)
    assert await _languages(database) == {"amra": "bs", "john": "en"}
    # A row written by hand (an import, psql) without the column gets the default too.
    async with database.engine.begin() as conn:
        await conn.execute(
            text("INSERT INTO agents (id, name, role, skills, active) VALUES (:i, :n, :r, :s, :a)"),
            {"i": "hana", "n": "Hana", "r": "agent", "s": "[]", "a": True},
        )
    assert (await _languages(database))["hana"] == "bs"
    with pytest.raises(IntegrityError):
        async with database.engine.begin() as conn:
            await conn.execute(text("UPDATE agents SET language = 'de' WHERE id = 'amra'"))


async def _generation(database: Database) -> int:
    async with database.engine.connect() as conn:
        found = await conn.scalar(text("SELECT generation FROM config_generation"))
    assert found is not None
    return int(found)


async def _edit_bumps_generation(database: Database) -> None:
    before = await _generation(database)
    async with database.engine.begin() as conn:
        await conn.execute(text("UPDATE agents SET name = 'Amra H.' WHERE id = 'amra'"))
    assert await _generation(database) > before


def _columns(conn: Connection) -> set[str]:
    return {c["name"] for c in inspect(conn).get_columns("agents")}


async def test_downgrade_drops_the_column_and_upgrade_restores_bosnian(
    database: Database,
) -> None:
    await _seed(database)
    await _edit_bumps_generation(database)
    await database.engine.dispose()  # no pooled connection holds the table during DDL
    config = alembic_config(database.url)
    await asyncio.to_thread(command.downgrade, config, "0016")
    async with database.engine.connect() as conn:
        assert "language" not in await conn.run_sync(_columns)
        names = (await conn.execute(text("SELECT id FROM agents ORDER BY id"))).scalars().all()
    assert names == ["amra", "john"]
    await _edit_bumps_generation(database)
    await database.engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await _languages(database) == {"amra": "bs", "john": "bs"}
    await _edit_bumps_generation(database)
