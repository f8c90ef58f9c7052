"""Migration 0012 (payments, procedure_tasks, campaign_contacts.task_id/purpose) on SQLite
and PostgreSQL: what the import and the generator store fits, a task's campaign contact loses
only its link when the task goes, and it downgrades to 0011 keeping the contacts and upgrades
again. (test_survey_migration.py checks that the ORM models agree with the migrated schema.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from alembic import command
from sqlalchemy import Connection, delete, inspect, select
from sqlalchemy.exc import IntegrityError

from models.db import alembic_config
from models.tables import (
    Campaign,
    CampaignContact,
    Client,
    ClientPhone,
    Loan,
    Payment,
    ProcedureTask,
)
from tests.conftest import Database

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


async def _seed(database: Database) -> int:
    async with database.sessions() as session, session.begin():
        client = Client(external_id="C1", name="Amra", phones=[ClientPhone(number="+38761000111")])
        campaign = Campaign(name="procedural", kind="procedural")
        session.add_all([client, campaign])
        await session.flush()
        loan = Loan(client_id=client.id, external_id="L1", opened_at=T0)
        session.add(loan)
        await session.flush()
        payment = Payment(
            external_id="P" * 64,
            loan_id=loan.id,
            client_id=client.id,
            payer_client_id=None,
            payer_name="n" * 200,
            payer_number="+38762555111",
            amount=Decimal("999999999999.99"),
            paid_at=T0,
            matched=True,
        )
        session.add(payment)
        await session.flush()
        task = ProcedureTask(
            kind="third_party_payment",
            cause_key="payment:" + "P" * 64,
            client_id=client.id,
            number="+38761000111",
            payment_id=payment.id,
            loan_id=loan.id,
            status="open",
            created_at=T0,
            due_at=T0,
        )
        session.add(task)
        await session.flush()
        session.add(
            CampaignContact(
                campaign_id=campaign.id,
                client_id=client.id,
                number="+38761000111",
                task_id=task.id,
                purpose="third_party_payment",
            )
        )
        return task.id


async def test_new_tables_store_what_the_import_and_generator_write(database: Database) -> None:
    task_id = await _seed(database)
    async with database.sessions() as session:
        payment = await session.scalar(select(Payment))
        contact = await session.scalar(select(CampaignContact))
    assert payment is not None and contact is not None
    assert (payment.amount, payment.paid_at, payment.matched) == (
        Decimal("999999999999.99"),
        T0,
        True,
    )
    assert (contact.task_id, contact.purpose) == (task_id, "third_party_payment")

    # (kind, cause_key) is unique: the generator's idempotence rests on it.
    with pytest.raises(IntegrityError):
        async with database.sessions() as session, session.begin():
            session.add(
                ProcedureTask(
                    kind="third_party_payment",
                    cause_key="payment:" + "P" * 64,
                    number="+38761000111",
                    status="open",
                    created_at=T0,
                    due_at=T0,
                )
            )
    # A deleted task leaves its contact (and the campaign's history) in place, unlinked; a
    # deleted payment leaves the task, which the re-check then closes (payment_removed).
    async with database.sessions() as session, session.begin():
        await session.execute(delete(Payment))
    async with database.sessions() as session:
        task = await session.get(ProcedureTask, task_id)
    assert task is not None and task.payment_id is None
    async with database.sessions() as session, session.begin():
        await session.execute(delete(ProcedureTask))
    async with database.sessions() as session:
        contact = await session.scalar(select(CampaignContact))
    assert contact is not None and (contact.task_id, contact.purpose) == (
        None,
        "third_party_payment",
    )


def _tables(conn: Connection) -> dict[str, set[str]]:
    inspector = inspect(conn)
    return {t: {c["name"] for c in inspector.get_columns(t)} for t in inspector.get_table_names()}


async def test_downgrade_keeps_contacts_and_loans_and_upgrade_restores(
    database: Database,
) -> None:
    await _seed(database)
    await database.engine.dispose()  # no pooled connection holds the tables during DDL
    config = alembic_config(database.url)
    await asyncio.to_thread(command.downgrade, config, "0011")
    async with database.engine.connect() as conn:
        tables = await conn.run_sync(_tables)
    assert "payments" not in tables and "procedure_tasks" not in tables
    assert not tables["campaign_contacts"] & {"task_id", "purpose"}
    await database.engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "head")

    async with database.sessions() as session:
        contact = await session.scalar(select(CampaignContact))
        loans = (await session.scalars(select(Loan.external_id))).all()
        phones = (await session.scalars(select(ClientPhone.number))).all()
        payments = (await session.scalars(select(Payment))).all()
    # SQLite's batch copy of campaign_contacts took nothing else along.
    assert contact is not None and contact.number == "+38761000111"
    assert (contact.task_id, contact.purpose) == (None, None)
    assert (loans, phones, payments) == (["L1"], ["+38761000111"], [])
