"""Migration 0018 (survey drafts, who published a survey version and why, campaign settings
revisions) on SQLite and PostgreSQL: it downgrades to 0017 keeping the surveys and the
campaigns, and upgrades again with every campaign at settings revision 1 and the old
versions published by nobody known. (test_survey_migration.py checks that the ORM models
agree with the migrated schema.)"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from alembic import command
from sqlalchemy import Connection, inspect, select, text

from centrala.prompts import load_survey_file
from models.db import alembic_config
from models.surveys import apply_survey, store_draft
from models.tables import Campaign, CampaignStatus
from models.tables import Survey as SurveyRow
from tests.conftest import Database

NPS_FILE = Path(__file__).parents[2] / "surveys" / "nps.yaml"


def _schema(conn: Connection) -> tuple[set[str], set[str], set[str]]:
    found = inspect(conn)
    return (
        {c["name"] for c in found.get_columns("surveys")},
        {c["name"] for c in found.get_columns("campaigns")},
        set(found.get_table_names()),
    )


async def test_downgrade_keeps_surveys_and_campaigns_and_upgrade_restores_revisions(
    database: Database,
) -> None:
    stored = await apply_survey(database.sessions, load_survey_file(NPS_FILE), by="admin-1")
    await store_draft(database.sessions, "nps", "admin-1", {"name": "nps"}, 1)
    async with database.sessions() as session, session.begin():
        session.add(
            Campaign(
                name="c",
                kind="survey",
                status=CampaignStatus.PAUSED,
                survey_id=stored.id,
                settings={"concurrency": 5},
                settings_revision=4,
            )
        )
    await database.engine.dispose()  # no pooled connection holds the tables during DDL
    config = alembic_config(database.url)
    await asyncio.to_thread(command.downgrade, config, "0017")
    async with database.engine.connect() as conn:
        surveys, campaigns, tables = await conn.run_sync(_schema)
        assert not {"published_by", "note"} & surveys
        assert "settings_revision" not in campaigns and "survey_drafts" not in tables
        kept = (await conn.execute(text("SELECT name, settings FROM campaigns"))).all()
        # SQLite hands JSON back as text, PostgreSQL as an object.
        assert [(n, s if isinstance(s, dict) else json.loads(s)) for n, s in kept] == [
            ("c", {"concurrency": 5})
        ]
    await database.engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "head")
    async with database.sessions() as session:
        campaign = await session.scalar(select(Campaign))
        row = await session.get(SurveyRow, stored.id)
    assert campaign is not None and campaign.settings_revision == 1
    assert row is not None and (row.version, row.published_by, row.note) == (1, None, None)
