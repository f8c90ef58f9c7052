"""Migration 0024 (notices: the outbox, opt-outs, clients' e-mail, postal address and
preferred channel) on SQLite and PostgreSQL: there after an upgrade; a downgrade to 0023
drops them and keeps the clients; an upgrade brings them back, empty, with the outbox's key
unique (one message per client, kind and occasion)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

import pytest
from alembic import command
from sqlalchemy import Connection, inspect, select
from sqlalchemy.exc import IntegrityError

from models.db import alembic_config
from models.tables import Client, Notice
from tests.conftest import Database

AT = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def _shape(conn: Connection) -> tuple[set[str], set[str]]:
    found = inspect(conn)
    tables = set(found.get_table_names()) & {"notices", "contact_opt_outs"}
    columns = {c["name"] for c in found.get_columns("clients")}
    return tables, columns & {"email", "postal_address", "preferred_channel"}


async def _now(database: Database) -> tuple[set[str], set[str]]:
    async with database.engine.connect() as conn:
        return await conn.run_sync(_shape)


def notice(client_id: int, **overrides: Any) -> Notice:
    """A queued birthday e-mail of the client's (``overrides``: other columns)."""
    columns: dict[str, Any] = {
        "key": f"birthday:{client_id}:2026",
        "client_id": client_id,
        "kind": "birthday",
        "channel": "email",
        "language": "bs",
        "address": "a@x.org",
        "subject": "s",
        "body": "b",
        "html": "",
        "state": "queued",
        "attempts": 0,
        "not_before": AT,
        "created_at": AT,
    }
    return Notice(**{**columns, **overrides})


async def test_the_outbox_comes_and_goes_with_0024_and_the_clients_stay(database: Database) -> None:
    everything = ({"notices", "contact_opt_outs"}, {"email", "postal_address", "preferred_channel"})
    async with database.sessions() as session, session.begin():
        client = Client(external_id="nt-mig", name="Mig", email="mig@x.org")
        session.add(client)
        await session.flush()
        client_id = client.id
        session.add(notice(client_id))
    assert await _now(database) == everything
    await database.engine.dispose()  # no pooled connection holds the tables during DDL
    config = alembic_config(database.url)
    await asyncio.to_thread(command.downgrade, config, "0023")
    assert await _now(database) == (set(), set())
    await database.engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await _now(database) == everything
    async with database.sessions() as session, session.begin():
        assert await session.scalar(select(Client.name).where(Client.id == client_id)) == "Mig"
        assert await session.scalar(select(Notice.id)) is None
        session.add(notice(client_id))
    with pytest.raises(IntegrityError):
        async with database.sessions() as session, session.begin():
            session.add(notice(client_id))
