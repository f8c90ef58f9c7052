"""Migration 0025 (Viber's fallback to SMS: notices' fallback_of and fallback_at, the partial
index of the Viber messages not yet decided) on SQLite and PostgreSQL: there after an upgrade;
a downgrade to 0024 drops them and keeps the outbox's messages; an upgrade brings them back,
an SMS naming its Viber message again."""

from __future__ import annotations

import asyncio

from alembic import command
from sqlalchemy import Connection, inspect, select

from models.db import alembic_config
from models.tables import Client, Notice
from tests.conftest import Database
from tests.integration.test_notices_migration import notice

NUMBER = "+387660770041"
COLUMNS = {"fallback_of", "fallback_at", "ix_notices_viber_undecided"}


def _columns(conn: Connection) -> set[str]:
    """The columns and the partial index 0025 adds, those there."""
    found = inspect(conn)
    names = {c["name"] for c in found.get_columns("notices")}
    names |= {str(i["name"]) for i in found.get_indexes("notices")}
    return names & COLUMNS


async def _now(database: Database) -> set[str]:
    async with database.engine.connect() as conn:
        return await conn.run_sync(_columns)


async def test_the_fallback_columns_come_and_go_with_0025(database: Database) -> None:
    async with database.sessions() as session, session.begin():
        client = Client(external_id="nv-mig", name="Mig")
        session.add(client)
        await session.flush()
        viber = notice(client.id, channel="viber", address=NUMBER)
        session.add(viber)
        await session.flush()
        client_id, viber_id = client.id, viber.id
        key = f"{viber.key}:sms"
        session.add(notice(client_id, key=key, channel="sms", address=NUMBER, fallback_of=viber_id))
    assert await _now(database) == COLUMNS
    await database.engine.dispose()  # no pooled connection holds the table during DDL
    config = alembic_config(database.url)
    await asyncio.to_thread(command.downgrade, config, "0024")
    assert await _now(database) == set()
    await database.engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await _now(database) == COLUMNS
    async with database.sessions() as session, session.begin():
        keys = await session.scalars(select(Notice.key).order_by(Notice.id))
        assert list(keys) == [f"birthday:{client_id}:2026", f"birthday:{client_id}:2026:sms"]
        again = await session.scalar(select(Notice).where(Notice.channel == "sms"))
        assert again is not None and again.fallback_of is None
        again.fallback_of = viber_id
    async with database.sessions() as session:
        assert await session.scalar(select(Notice.fallback_of).where(Notice.id != viber_id)) == (
            viber_id
        )
