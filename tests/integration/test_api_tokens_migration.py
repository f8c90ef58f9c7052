"""Migration 0016 (api_tokens) and its store on SQLite and PostgreSQL: a token resolves to its
agent with their role now, is refused once revoked, expired or its agent inactive, notes its
last use at most once a minute, goes with a deleted agent; and the migration downgrades to the
revision before it and upgrades again without touching the agents. (test_survey_migration.py
checks that the ORM models agree with the migrated schema.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import Connection, delete, inspect, select, update

from models.api_tokens import ApiTokenStore
from models.db import alembic_config
from models.tables import Agent, AgentRole, ApiToken
from tests.conftest import Database

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def _seed(database: Database) -> None:
    async with database.sessions() as session, session.begin():
        session.add_all(
            [
                Agent(id="anna", name="Anna", role=AgentRole.AGENT, active=True),
                Agent(id="sara", name="Sara", role=AgentRole.SUPERVISOR, active=True),
            ]
        )


async def test_a_token_lives_until_revoked_expired_or_its_agent_goes(database: Database) -> None:
    await _seed(database)
    store = ApiTokenStore(database.sessions)
    sara = await store.create("sara", "wallboard", None, "cli", T0)
    anna = await store.create("anna", "crm", 7, "anna", T0)

    found = await store.resolve(sara.token, T0, "192.0.2.7")
    assert found is not None and (found.agent_id, found.role) == ("sara", "supervisor")
    await store.resolve(sara.token, T0 + timedelta(seconds=30), "192.0.2.8")
    async with database.sessions() as session:
        row = await session.get(ApiToken, sara.row.id)
    assert row is not None and (row.last_used_at, row.last_used_from) == (T0, "192.0.2.7")

    async with database.sessions() as session, session.begin():
        await session.execute(update(Agent).where(Agent.id == "sara").values(role="agent"))
    found = await store.resolve(sara.token, T0, None)
    assert found is not None and found.role == "agent"
    await store.revoke(sara.row.id, T0 + timedelta(minutes=1))
    assert await store.resolve(sara.token, T0 + timedelta(minutes=2), None) is None

    assert await store.resolve(anna.token, T0 + timedelta(days=7, seconds=-1), None) is not None
    assert await store.resolve(anna.token, T0 + timedelta(days=7), None) is None
    states = {r.name: r.state(T0 + timedelta(days=8)) for r in await store.list()}
    assert states == {"wallboard": "revoked", "crm": "expired"}

    async with database.sessions() as session, session.begin():
        await session.execute(delete(Agent).where(Agent.id == "anna"))
    assert [r.agent_id for r in await store.list()] == ["sara"]  # ON DELETE CASCADE


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def test_downgrade_drops_only_api_tokens_and_upgrade_restores(database: Database) -> None:
    await _seed(database)
    await ApiTokenStore(database.sessions).create("anna", "crm", None, "cli", T0)
    await database.engine.dispose()  # no pooled connection holds the tables during DDL
    config = alembic_config(database.url)
    # The revision before 0016, whatever it is chained to.
    before = ScriptDirectory.from_config(config).get_revision("0016").down_revision
    assert isinstance(before, str)
    await asyncio.to_thread(command.downgrade, config, before)
    async with database.engine.connect() as conn:
        tables = await conn.run_sync(_tables)
    assert "api_tokens" not in tables and "agents" in tables
    await database.engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "head")

    async with database.sessions() as session:
        agents = (await session.scalars(select(Agent.id).order_by(Agent.id))).all()
        tokens = (await session.scalars(select(ApiToken))).all()
    assert agents == ["anna", "sara"]
    assert tokens == []
