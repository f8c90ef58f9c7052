"""Migration 0025 (Viber's fallback to SMS: notices' fallback_of and fallback_at) on SQLite
and PostgreSQL: there after an upgrade; a downgrade to 0024 drops them and keeps the
outbox's messages; an upgrade brings them back, an SMS naming its Viber message again."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import Connection, inspect, select

from models.db import alembic_config
from models.tables import Client, Notice
from tests.conftest import Database

AT = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
COLUMNS = {"fallback_of", "fallback_at"}


def _columns(conn: Connection) -> set[str]:
    return {c["name"] for c in inspect(conn).get_columns("notices")} & COLUMNS


async def _now(database: Database) -> set[str]:
    async with database.engine.connect() as conn:
        return await conn.run_sync(_columns)


def _notice(client_id: int, key: str, channel: str, fallback_of: int | None = None) -> Notice:
    return Notice(
        key=key,
        client_id=client_id,
        kind="birthday",
        channel=channel,
        language="bs",
        address="+387660770041",
        subject="s",
        body="b",
        html="",
        state="queued",
        attempts=0,
        not_before=AT,
        created_at=AT,
        fallback_of=fallback_of,
    )


async def test_the_fallback_columns_come_and_go_with_0025(database: Database) -> None:
    async with database.sessions() as session, session.begin():
        client = Client(external_id="nv-mig", name="Mig")
        session.add(client)
        await session.flush()
        viber = _notice(client.id, "birthday:1:2026", "viber")
        session.add(viber)
        await session.flush()
        client_id, viber_id = client.id, viber.id
        session.add(_notice(client_id, "birthday:1:2026:sms", "sms", viber_id))
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
        assert list(keys) == ["birthday:1:2026", "birthday:1:2026:sms"]
        sms = await session.scalar(select(Notice).where(Notice.channel == "sms"))
        assert sms is not None and sms.fallback_of is None
        sms.fallback_of = viber_id
    async with database.sessions() as session:
        assert await session.scalar(select(Notice.fallback_of).where(Notice.id != viber_id)) == (
            viber_id
        )
