"""Migrations 0027 (several instances: the nodes' leases and the instances' heartbeats), 0028
(each node's place in its CDR file) and 0029 (the node of each agent's log-in) on SQLite and
PostgreSQL: the tables there after an upgrade; a downgrade to 0027 drops the CDR's place and
the log-ins' nodes and keeps the lease, to 0026 drops them
and keeps the clients; an upgrade brings them back, and a lease taken works again. The calls'
and campaign contacts' node columns come and go with them."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

from alembic import command
from sqlalchemy import Connection, func, inspect, select

from core.cluster import Lease
from models import cluster as store
from models.db import alembic_config
from models.tables import Client
from tests.conftest import Database

TABLES = {"pbx_nodes", "instances", "calls.node", "campaign_contacts.node"}
CURSOR = {"pbx_nodes.cdr_inode", "pbx_nodes.cdr_offset", "agent_sessions.node"}
NOW = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)


def _tables(conn: Connection) -> set[str]:
    found = inspect(conn)
    names = set(found.get_table_names())
    for table in ("calls", "campaign_contacts", "pbx_nodes", "agent_sessions"):
        if table in names:
            names |= {f"{table}.{c['name']}" for c in found.get_columns(table)}
    return names & (TABLES | CURSOR)


async def _now(database: Database) -> set[str]:
    async with database.engine.connect() as conn:
        return await conn.run_sync(_tables)


async def _clients(database: Database) -> int:
    async with database.sessions() as session:
        return int(await session.scalar(select(func.count()).select_from(Client)) or 0)


async def test_the_lease_tables_come_and_go_with_0027(database: Database) -> None:
    async with database.sessions() as session, session.begin():
        session.add(Client(external_id="mig-0027", name="Mig"))
    assert await store.take(database.sessions, "pbx1", "a", None, NOW)
    assert await store.save_cdr_cursor(database.sessions, "pbx1", "a", 7, 120)
    assert await _now(database) == TABLES | CURSOR
    await database.engine.dispose()  # no pooled connection holds the tables during DDL
    config = alembic_config(database.url)
    # 0029 and 0028 down: the agents' nodes and the CDR's place go, the lease stays.
    await asyncio.to_thread(command.downgrade, config, "0027")
    assert await _now(database) == TABLES
    await database.engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await store.cdr_cursor(database.sessions, "pbx1") is None
    assert await store.lease_of(database.sessions, "pbx1") is not None
    await database.engine.dispose()
    await asyncio.to_thread(command.downgrade, config, "0026")
    assert await _now(database) == set()
    assert await _clients(database) == 1
    await database.engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await _now(database) == TABLES | CURSOR
    assert await store.lease_of(database.sessions, "pbx1") is None  # dropped with its table
    assert await store.take(database.sessions, "pbx1", "b", None, NOW)
    assert await store.lease_of(database.sessions, "pbx1") == Lease("b", 1)
    assert await _clients(database) == 1
