"""Migration 0014 (callbacks worked by the dialler) on SQLite and PostgreSQL: a callbacks
campaign may hold one number for several tasks but a task only once, other campaigns still a
number once; it downgrades to 0013 keeping each number's first contact and upgrades again.
(test_survey_migration.py checks that the ORM models agree with the migrated schema.)"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import Connection, inspect, select
from sqlalchemy.exc import IntegrityError

from models.db import alembic_config
from models.tables import Callback, CallbackStatus, Campaign, CampaignContact
from tests.conftest import Database

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
NUMBER = "+38761000222"


async def _seed(database: Database) -> tuple[int, int]:
    async with database.sessions() as session, session.begin():
        callbacks = Campaign(name="callbacks-info", kind="callbacks")
        sales = Campaign(name="winback", kind="sales")
        tasks = [
            Callback(number=NUMBER, reason=r, queue="info", due_at=T0, status=CallbackStatus.OPEN)
            for r in ("after_hours", "callback_requested")
        ]
        session.add_all([callbacks, sales, *tasks])
        await session.flush()
        session.add_all(
            CampaignContact(
                campaign_id=callbacks.id, number=NUMBER, callback_id=t.id, callback_agent_id="amra"
            )
            for t in tasks
        )
        session.add(CampaignContact(campaign_id=sales.id, number=NUMBER))
        await session.flush()
        tasks[0].last_outcome, tasks[0].closed_reason = "no_answer", "max_attempts"
        return callbacks.id, sales.id


async def test_a_number_per_task_in_callbacks_and_once_elsewhere(database: Database) -> None:
    callbacks_id, sales_id = await _seed(database)
    async with database.sessions() as session:
        rows = list(await session.scalars(select(CampaignContact).order_by(CampaignContact.id)))
        task = await session.scalar(select(Callback).order_by(Callback.id))
    assert [(r.campaign_id, r.callback_agent_id) for r in rows] == [
        (callbacks_id, "amra"),
        (callbacks_id, "amra"),
        (sales_id, None),
    ]
    assert task is not None and (task.last_outcome, task.closed_reason) == (
        "no_answer",
        "max_attempts",
    )
    for again in (
        CampaignContact(campaign_id=sales_id, number=NUMBER),  # once per other campaign
        CampaignContact(campaign_id=callbacks_id, number=NUMBER, callback_id=rows[0].callback_id),
    ):
        with pytest.raises(IntegrityError):
            async with database.sessions() as session, session.begin():
                session.add(again)


def _columns(conn: Connection) -> dict[str, set[str]]:
    inspector = inspect(conn)
    return {
        t: {c["name"] for c in inspector.get_columns(t)} for t in ("callbacks", "campaign_contacts")
    }


async def test_downgrade_keeps_the_first_contact_and_upgrade_restores(database: Database) -> None:
    callbacks_id, _ = await _seed(database)
    await database.engine.dispose()
    config = alembic_config(database.url)
    await asyncio.to_thread(command.downgrade, config, "0013")
    async with database.engine.connect() as conn:
        columns = await conn.run_sync(_columns)
    assert not columns["callbacks"] & {"last_outcome", "last_call_id", "next_attempt_at"}
    assert not columns["campaign_contacts"] & {"callback_id", "callback_agent_id"}
    await database.engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "head")
    async with database.sessions() as session:
        rows = list(await session.scalars(select(CampaignContact).order_by(CampaignContact.id)))
        tasks = list(await session.scalars(select(Callback)))
    assert [r.campaign_id for r in rows] == [callbacks_id, rows[1].campaign_id]
    assert rows[1].campaign_id != callbacks_id
    assert all(r.callback_id is None for r in rows) and len(tasks) == 2
