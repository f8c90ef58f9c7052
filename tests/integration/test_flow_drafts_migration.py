"""Migration 0015 (flow drafts, trial versions, the audit trail) on SQLite and PostgreSQL: a
draft's write moves config_generation as a flow's does (the call path reads test numbers);
down to 0014 the published versions stay and the drafts, trials and audit go; up again all
works. (test_survey_migration.py checks that the ORM models agree with the migrated schema.)"""

from __future__ import annotations

import asyncio

from alembic import command
from sqlalchemy import Connection, inspect, select

from dialplan.validate import load_flow
from models.db import alembic_config
from models.flow_drafts import store_draft
from models.flows import apply_flow
from models.tables import ConfigGeneration, FlowVersion
from tests.conftest import Database
from tests.integration.flow_site import FLOW_FILE


async def _generation(database: Database) -> int:
    async with database.sessions() as session:
        value = await session.scalar(select(ConfigGeneration.generation))
    assert value is not None
    return int(value)


def _schema(conn: Connection) -> tuple[set[str], set[str]]:
    inspector = inspect(conn)
    columns = {c["name"] for c in inspector.get_columns("flow_versions")}
    return set(inspector.get_table_names()), columns


async def test_drafts_bump_the_generation_and_down_up_keeps_the_history(
    database: Database,
) -> None:
    flow = load_flow(FLOW_FILE.read_text(), str(FLOW_FILE))
    await apply_flow(database.sessions, flow, "tests")
    before = await _generation(database)
    draft = await store_draft(
        database.sessions,
        "infoline",
        "admin-1",
        flow.model_dump(mode="json"),
        base_version=1,
        test_numbers=["+38761555777"],
        trial=flow.model_copy(update={"default_language": flow.languages[-1]}),
    )
    assert draft.trial_version == 2
    assert await _generation(database) > before

    await database.engine.dispose()
    config = alembic_config(database.url)
    await asyncio.to_thread(command.downgrade, config, "0014")
    async with database.engine.connect() as conn:
        tables, columns = await conn.run_sync(_schema)
    assert not tables & {"flow_drafts", "audit_log"}
    assert not columns & {"status", "note", "base_version", "publish_at"}
    await database.engine.dispose()
    await asyncio.to_thread(command.upgrade, config, "head")
    async with database.sessions() as session:
        rows = list(await session.execute(select(FlowVersion.version, FlowVersion.status)))
    assert rows == [(1, "published")]  # the trial left with its draft
    after = await _generation(database)
    await store_draft(
        database.sessions,
        "infoline",
        "admin-1",
        flow.model_dump(mode="json"),
        base_version=1,
        test_numbers=[],
        trial=None,
    )
    assert await _generation(database) > after  # the triggers are back
