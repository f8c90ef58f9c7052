"""Migration 0026 (written inquiries: the inquiries, their messages, attachments and log) on
SQLite and PostgreSQL: there after an upgrade; a downgrade to 0025 drops them and keeps the
clients; an upgrade brings them back, empty, with a message's source key unique (a message
read twice is stored once)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import Connection, inspect, select
from sqlalchemy.exc import IntegrityError

from models.db import alembic_config
from models.tables import Client, Inquiry, InquiryAttachment, InquiryLog, InquiryMessage
from tests.conftest import Database

AT = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
TABLES = {"inquiries", "inquiry_messages", "inquiry_attachments", "inquiry_log"}


def _tables(conn: Connection) -> set[str]:
    return set(inspect(conn).get_table_names()) & TABLES


async def _now(database: Database) -> set[str]:
    async with database.engine.connect() as conn:
        return await conn.run_sync(_tables)


async def an_inquiry(database: Database, client_id: int, source_key: str) -> int:
    async with database.sessions() as session, session.begin():
        inquiry = Inquiry(
            channel="email", kind="complaint", kind_by="rules", state="new", subject="Žalba",
            client_id=client_id, sender="mig@x.org", queue="general", created_at=AT,
            updated_at=AT,
        )  # fmt: skip
        session.add(inquiry)
        await session.flush()
        message = InquiryMessage(
            inquiry_id=inquiry.id, direction="in", at=AT, source_key=source_key, text="čćžšđ"
        )
        session.add(message)
        session.add(InquiryLog(inquiry_id=inquiry.id, at=AT, kind="state", state="new"))
        await session.flush()
        session.add(
            InquiryAttachment(
                message_id=message.id,
                filename="a.pdf",
                content_type="application/pdf",
                size=3,
                content=b"%PD",
            )
        )
        return inquiry.id


async def test_the_inquiries_come_and_go_with_0026_and_the_clients_stay(
    database: Database,
) -> None:
    async with database.sessions() as session, session.begin():
        client = Client(external_id="iq-mig", name="Mig", email="mig@x.org")
        session.add(client)
        await session.flush()
        client_id = client.id
    await an_inquiry(database, client_id, "imap:inbox:1:1")
    assert await _now(database) == TABLES
    await database.engine.dispose()  # no pooled connection holds the tables during DDL
    config = alembic_config(database.url)
    await asyncio.to_thread(command.downgrade, config, "0025")
    assert await _now(database) == set()
    await database.engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "head")
    assert await _now(database) == TABLES
    async with database.sessions() as session:
        assert await session.scalar(select(Client.name).where(Client.id == client_id)) == "Mig"
        assert await session.scalar(select(Inquiry.id)) is None
    inquiry_id = await an_inquiry(database, client_id, "imap:inbox:1:1")
    async with database.sessions() as session:
        stored = await session.scalar(select(InquiryAttachment.content))
        assert stored == b"%PD"
    with pytest.raises(IntegrityError):  # the same message again
        await an_inquiry(database, client_id, "imap:inbox:1:1")
    async with database.sessions() as session, session.begin():  # its client goes: it stays
        await session.delete(await session.get(Client, client_id))
    async with database.sessions() as session:
        kept = await session.get(Inquiry, inquiry_id)
        assert kept is not None and kept.client_id is None
