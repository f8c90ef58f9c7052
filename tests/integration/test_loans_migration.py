"""Migration 0006 (loans, clients.timezone, campaign_contacts.name/language/timezone) on SQLite
and PostgreSQL: what the import and the contact list store fits, it downgrades without taking
clients' phones along, and upgrades again. (test_survey_migration.py checks that the ORM
models agree with the migrated schema.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

from alembic import command
from sqlalchemy import Connection, inspect, select

from models.db import alembic_config
from models.tables import Campaign, CampaignContact, Client, ClientPhone, Loan
from tests.conftest import Database

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
CONTACT_COLUMNS = {"name", "language", "timezone"}


async def _seed(database: Database) -> None:
    async with database.sessions() as session, session.begin():
        client = Client(
            external_id="C1",
            name="Amra",
            timezone="America/Argentina/Buenos_Aires",
            phones=[ClientPhone(number="+38761000111")],
        )
        campaign = Campaign(name="nps-nov", kind="survey")
        session.add_all([client, campaign])
        await session.flush()
        session.add(
            Loan(
                client_id=client.id,
                external_id="L" * 64,
                opened_at=T0,
                amount=Decimal("999999999999.99"),
                product="p" * 64,
            )
        )
        session.add(
            CampaignContact(
                campaign_id=campaign.id,
                number="+38761000222",
                name="n" * 200,
                language="sr-Latn",
                timezone="Europe/Sarajevo",
            )
        )


async def test_new_columns_store_what_the_imports_write(database: Database) -> None:
    await _seed(database)
    async with database.sessions() as session:
        loan = await session.scalar(select(Loan))
        client = await session.scalar(select(Client))
        contact = await session.scalar(select(CampaignContact))
    assert loan is not None and client is not None and contact is not None
    assert (loan.opened_at, loan.closed_at) == (T0, None)
    assert loan.amount == Decimal("999999999999.99")
    assert client.timezone == "America/Argentina/Buenos_Aires"
    assert (len(contact.name or ""), contact.language, contact.timezone) == (
        200,
        "sr-Latn",
        "Europe/Sarajevo",
    )


def _tables(conn: Connection) -> dict[str, set[str]]:
    inspector = inspect(conn)
    return {t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()}


async def test_downgrade_keeps_clients_and_phones_and_upgrade_restores(database: Database) -> None:
    await _seed(database)
    await database.engine.dispose()  # no pooled connection holds the tables during DDL
    config = alembic_config(database.url)
    await asyncio.to_thread(command.downgrade, config, "0005")
    async with database.engine.connect() as conn:
        tables = await conn.run_sync(_tables)
    assert "loans" not in tables
    assert "timezone" not in tables["clients"]
    assert not tables["campaign_contacts"] & CONTACT_COLUMNS
    await database.engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "head")

    async with database.sessions() as session:
        client = await session.scalar(select(Client))
        phones = (await session.scalars(select(ClientPhone.number))).all()
        contact = await session.scalar(select(CampaignContact))
        loans = (await session.scalars(select(Loan))).all()
    # SQLite's batch mode would have copied `clients`, and its DROP cascaded to the phones.
    assert client is not None and (client.external_id, client.timezone) == ("C1", None)
    assert phones == ["+38761000111"]
    assert contact is not None and contact.number == "+38761000222"
    assert (contact.name, contact.language, contact.timezone) == (None, None, None)
    assert loans == []
