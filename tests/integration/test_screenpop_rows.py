"""The screen-pop's rows (web/store.py `pop_rows`) on SQLite and PostgreSQL: what the IVR and
the queue set on the call is written behind, so the live call's facts are shown without
waiting for that write; without them, the call's trail is written first."""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import select

from models.calllog import CallLog
from models.tables import Call, Direction
from tests.conftest import Database
from web.store import DeskStore


async def test_the_pop_shows_the_live_facts_without_waiting_for_the_trail(
    database: Database,
) -> None:
    log = CallLog(database.sessions, "BA", write_behind_seconds=3600.0)  # the test writes
    opened = await log.open_call(
        channel_id="chan-pop",
        linkedid="chan-pop",
        direction=Direction.INBOUND,
        handler="ari",
        caller_number="061 222 333",
        caller_name="Amra",
        called_number="0800100200",
        started_at=datetime.now(UTC),
    )
    await log.event(opened.id, "routed", intent="my_loan", queue="finance")
    await log.update(opened.id, queue="finance", ivr_path=["welcome", "2"])
    store = DeskStore(database.sessions, writer=log)
    facts = {"queue": "finance", "ivr_path": ["welcome", "2"], "intent": "my_loan"}

    rows = await store.pop_rows(opened.id, facts)
    assert rows is not None
    assert (rows.call.queue, rows.call.ivr_path, rows.intent) == (
        "finance",
        ["welcome", "2"],
        "my_loan",
    )
    assert rows.call.caller_number == "061 222 333"
    async with database.sessions() as session:
        stored = await session.scalar(select(Call).where(Call.id == opened.id))
    assert stored is not None and stored.queue is None  # not waited for: still behind

    rows = await store.pop_rows(opened.id)  # no facts (a page reload): the trail first
    assert rows is not None
    assert (rows.call.queue, rows.call.ivr_path, rows.intent) == (
        "finance",
        ["welcome", "2"],
        "my_loan",
    )
    async with database.sessions() as session:
        stored = await session.scalar(select(Call).where(Call.id == opened.id))
    assert stored is not None and stored.queue == "finance"
    await log.aclose()
