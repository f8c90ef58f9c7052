"""Migration 0004 (survey columns) on SQLite and PostgreSQL: what the survey modules store
fits, old contacts get an empty attempt history, it downgrades and upgrades again, and the ORM
models agree with the migrated schema."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from core.surveys.campaign import ContactStatus, Outcome, Segment
from core.surveys.interpreter import SurveyStatus
from sqlalchemy import Connection, inspect, select, text

from models.db import alembic_config
from models.tables import Base, Call, CallEvent, Campaign, CampaignContact, Direction, Survey
from tests.conftest import Database

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)
OUR_COLUMNS = {"survey_id", "survey_status", "attempt_history", "segment"}


async def _seed(database: Database) -> tuple[int, str]:
    async with database.sessions() as session, session.begin():
        survey = Survey(name="nps", version=1, definition={"name": "nps"}, active=True)
        session.add(survey)
        await session.flush()
        call = Call(
            channel_id="chan-survey-1",
            direction=Direction.OUTBOUND,
            handler="ari",
            started_at=T0,
            survey_id=survey.id,
            survey_status=SurveyStatus.PARTIAL.value,
        )
        campaign = Campaign(name="nps-nov", kind="survey", survey_id=survey.id)
        session.add_all([call, campaign])
        await session.flush()
        session.add(CallEvent(call_id=call.id, at=T0, kind="opened", data={}))
        session.add(
            CampaignContact(
                campaign_id=campaign.id,
                number="+38761000111",
                status=ContactStatus.PENDING.value,
                attempts=1,
                last_outcome=Outcome.BUSY.value,
                segment=Segment.ACTIVE.value,
                attempt_history=[
                    {"attempt": 1, "outcome": "busy", "at": T0.isoformat(), "call_id": call.id}
                ],
            )
        )
        return campaign.id, call.id


async def test_survey_columns_store_status_history_and_segment(database: Database) -> None:
    campaign_id, call_id = await _seed(database)
    async with database.sessions() as session:
        call = await session.get(Call, call_id)
        assert call is not None and call.survey_status == "partial" and call.survey_id
        contact = await session.scalar(select(CampaignContact))
        assert contact is not None and contact.segment == "active"
        assert contact.attempt_history[0]["call_id"] == call_id
    async with database.sessions() as session, session.begin():
        # A row written without the column (an older writer) gets an empty history.
        await session.execute(
            text(
                "INSERT INTO campaign_contacts (campaign_id, number, status, attempts) "
                "VALUES (:c, '+38761000222', 'pending', 0)"
            ),
            {"c": campaign_id},
        )
    async with database.sessions() as session:
        histories = (
            await session.scalars(
                select(CampaignContact.attempt_history).order_by(CampaignContact.number)
            )
        ).all()
    assert len(histories[0]) == 1 and histories[1] == []


async def test_downgrade_and_upgrade_keep_the_contacts(database: Database) -> None:
    await _seed(database)
    await database.engine.dispose()  # no pooled connection holds the tables during DDL
    config = alembic_config(database.url)
    await asyncio.to_thread(command.downgrade, config, "0003")
    async with database.engine.connect() as conn:
        columns = await conn.run_sync(_columns, "campaign_contacts")
    assert not columns & OUR_COLUMNS
    await database.engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "head")
    async with database.sessions() as session:
        contact = await session.scalar(select(CampaignContact))
    assert contact is not None and contact.number == "+38761000111"
    assert contact.attempt_history == [] and contact.segment is None
    async with database.sessions() as session:
        # SQLite rebuilds `calls` in batch mode: its events must not go with the old table.
        kinds = (await session.scalars(select(CallEvent.kind))).all()
    assert kinds == ["opened"]


def _columns(conn: Connection, table: str) -> set[str]:
    return {c["name"] for c in inspect(conn).get_columns(table)}


def _diff(conn: Connection) -> list[Any]:
    context = MigrationContext.configure(conn, opts={"compare_type": True})
    return list(compare_metadata(context, Base.metadata))


async def test_orm_models_match_the_migrated_schema(database: Database) -> None:
    async with database.engine.connect() as conn:
        diff = await conn.run_sync(_diff)
    assert diff == []  # what `centrala db revision` would autogenerate: nothing
