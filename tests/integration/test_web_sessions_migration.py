"""Migration 0008 (web_sessions) and its store on SQLite and PostgreSQL: it stores a desktop
log-in, a deleted agent takes their sessions along, expired ones are purged, a confirmed one
outlives a short database outage, and it downgrades to 0007 and upgrades again without
touching the agents. (test_survey_migration.py checks that the ORM models agree with
the migrated schema.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import pytest
from alembic import command
from sqlalchemy import Connection, delete, inspect, select

from models.db import alembic_config
from models.tables import Agent, AgentRole, WebSession
from models.web_sessions import WebSessionStore
from tests.conftest import Database

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


async def _seed(database: Database) -> str:
    async with database.sessions() as session, session.begin():
        session.add_all(
            [
                Agent(id="anna", name="Anna", role=AgentRole.AGENT, active=True),
                Agent(id="boris", name="Boris", role=AgentRole.SUPERVISOR, active=True),
            ]
        )
    store = WebSessionStore(database.sessions, timedelta(hours=9))
    await store.open("boris", T0)
    return await store.open("anna", T0)


async def test_a_session_is_live_until_revoked_expired_or_its_agent_goes(
    database: Database,
) -> None:
    session_id = await _seed(database)
    store = WebSessionStore(database.sessions, timedelta(hours=9))
    live = await store.live(session_id, T0 + timedelta(minutes=5))
    assert live is not None and (live.agent_id, live.role) == ("anna", "agent")
    async with database.sessions() as session:
        row = await session.get(WebSession, session_id)
    assert row is not None and row.last_seen_at == T0 + timedelta(minutes=5)
    assert await store.live(session_id, T0 + timedelta(hours=9, seconds=1)) is None
    await store.revoke(session_id, T0 + timedelta(minutes=6))
    assert await store.live(session_id, T0 + timedelta(minutes=7)) is None

    assert await store.purge(T0 + timedelta(hours=8)) == 0  # within the lifetime: kept
    async with database.sessions() as session, session.begin():
        await session.execute(delete(Agent).where(Agent.id == "boris"))
    async with database.sessions() as session:
        owners = (await session.scalars(select(WebSession.agent_id))).all()
    assert owners == ["anna"]  # boris's session went with him (ON DELETE CASCADE)
    assert await store.purge(T0 + timedelta(hours=9)) == 1  # past it: forgotten
    async with database.sessions() as session:
        assert (await session.scalars(select(WebSession))).all() == []


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names())


async def test_downgrade_drops_only_web_sessions_and_upgrade_restores(database: Database) -> None:
    await _seed(database)
    await database.engine.dispose()  # no pooled connection holds the tables during DDL
    config = alembic_config(database.url)
    await asyncio.to_thread(command.downgrade, config, "0007")
    async with database.engine.connect() as conn:
        tables = await conn.run_sync(_tables)
    assert "web_sessions" not in tables and "agents" in tables
    await database.engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "head")

    async with database.sessions() as session:
        agents = (await session.scalars(select(Agent.id).order_by(Agent.id))).all()
        sessions = (await session.scalars(select(WebSession))).all()
    assert agents == ["anna", "boris"]
    assert sessions == []


class _Unreachable:
    """A session factory whose database is down."""

    def __call__(self) -> _Unreachable:
        return self

    async def __aenter__(self) -> None:
        raise ConnectionRefusedError("database down")

    async def __aexit__(self, *exc: object) -> None:
        return None


async def test_a_confirmed_session_outlives_a_database_outage(database: Database) -> None:
    """The calls go on from memory while the database is away; so do the desks of agents whose
    session the database confirmed shortly before it went, for the whole outage. A log-out
    still ends one at once (with no journal to take it, the error says it was not stored)."""
    session_id = await _seed(database)
    store = WebSessionStore(database.sessions, timedelta(hours=9))
    assert await store.live(session_id, T0) is not None
    other = await store.open("boris", T0)  # never confirmed before the outage

    store.sessions = cast(Any, _Unreachable())
    live = await store.live(session_id, T0 + timedelta(minutes=10))
    assert live is not None and live.agent_id == "anna"
    with pytest.raises(ConnectionRefusedError):
        await store.live(other, T0 + timedelta(minutes=10))
    # Confirmed before the outage began: good for all of it, however long.
    assert await store.live(session_id, T0 + timedelta(minutes=60)) is not None
    with pytest.raises(ConnectionRefusedError):
        await store.revoke(session_id, T0 + timedelta(minutes=61))
    assert await store.live(session_id, T0 + timedelta(minutes=62)) is None


async def test_a_session_confirmed_long_before_the_outage_is_not_taken_on_trust(
    database: Database,
) -> None:
    session_id = await _seed(database)
    store = WebSessionStore(database.sessions, timedelta(hours=9))
    assert await store.live(session_id, T0) is not None
    store.sessions = cast(Any, _Unreachable())
    with pytest.raises(ConnectionRefusedError):  # the outage begins 20 minutes after it
        await store.live(session_id, T0 + timedelta(minutes=20))
