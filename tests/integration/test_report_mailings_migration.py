"""Migration 0023 (the morning e-mails' log, report_mailings) on SQLite and PostgreSQL: the
table is there after an upgrade, a downgrade to 0022 drops it, and an upgrade brings it back,
empty, with the day as its key (a second row for a day is refused: one sending a morning)."""

from __future__ import annotations

import asyncio
from datetime import date

import pytest
from alembic import command
from sqlalchemy import Connection, func, inspect, select
from sqlalchemy.exc import IntegrityError

from models.db import alembic_config
from models.tables import ReportMailing
from tests.conftest import Database


def _key(conn: Connection) -> list[str] | None:
    found = inspect(conn)
    if "report_mailings" not in found.get_table_names():
        return None
    return list(found.get_pk_constraint("report_mailings")["constrained_columns"])


async def _shape(database: Database) -> list[str] | None:
    async with database.engine.connect() as conn:
        return await conn.run_sync(_key)


async def test_the_mailings_log_comes_and_goes_with_0023(database: Database) -> None:
    day = date(2026, 12, 1)
    async with database.sessions() as session, session.begin():
        session.add(ReportMailing(day=day, state="sent", attempts=1, recipients="a@x.org"))
    assert await _shape(database) == ["day"]
    await database.engine.dispose()  # no pooled connection holds the table during DDL
    config = alembic_config(database.url)
    await asyncio.to_thread(command.downgrade, config, "0022")
    assert await _shape(database) is None
    await database.engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await _shape(database) == ["day"]
    async with database.sessions() as session, session.begin():
        assert await session.scalar(select(func.count()).select_from(ReportMailing)) == 0
        session.add(ReportMailing(day=day, state="sending", attempts=1, recipients=""))
    with pytest.raises(IntegrityError):
        async with database.sessions() as session, session.begin():
            session.add(ReportMailing(day=day, state="sending", attempts=1, recipients=""))
