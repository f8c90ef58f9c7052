"""The campaign store on SQLite and PostgreSQL: a contact is claimed once per attempt, an
attempt's result applies once, due contacts come in order with their clients' facts, and a
campaign finishes when nobody is left."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from core.surveys.campaign import CampaignSettings, ContactStatus, Outcome
from models.campaigns import CampaignError, CampaignStore, NewContact
from models.tables import Call, CampaignStatus, Client, Direction, Survey
from tests.conftest import Database

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)


async def _campaign(database: Database, numbers: list[str]) -> tuple[CampaignStore, int]:
    async with database.sessions() as session, session.begin():
        survey = Survey(name="nps", version=1, definition={"name": "nps"}, active=True)
        session.add(survey)
        await session.flush()
        survey_id = survey.id
    store = CampaignStore(database.sessions)
    campaign_id, count = await store.create(
        "c1", survey_id, CampaignSettings(), [NewContact(n) for n in numbers]
    )
    assert count == len(set(numbers))
    return store, campaign_id


async def test_a_contact_is_claimed_once_per_attempt(database: Database) -> None:
    store, campaign_id = await _campaign(database, ["+38761000001"])
    (due,) = await store.due(campaign_id, NOW, 10)
    contact_id = due.contact.contact_id
    claims = await asyncio.gather(*(store.claim(contact_id, 1) for _ in range(5)))
    assert sorted(claims) == [False, False, False, False, True]
    assert await store.dialling(campaign_id) == 1
    assert await store.due(campaign_id, NOW, 10) == []
    progress = await store.progress(campaign_id)
    assert (progress["attempts"], progress["in_progress"]) == (1, 1)  # the call under way
    assert not await store.claim(contact_id, 2)  # not the next attempt


async def test_an_attempt_applies_once_and_schedules_the_retry(database: Database) -> None:
    store, campaign_id = await _campaign(database, ["+38761000001"])
    (due,) = await store.due(campaign_id, NOW, 10)
    cid = due.contact.contact_id
    assert await store.claim(cid, 1)
    first = await store.apply(campaign_id, cid, 1, Outcome.BUSY, NOW, None)
    again = await store.apply(campaign_id, cid, 1, Outcome.COMPLETED, NOW, None)
    assert first is not None and again is not None
    assert first.status is ContactStatus.PENDING and first.next_attempt_at == NOW + timedelta(
        minutes=15
    )
    assert again.status is ContactStatus.PENDING and again.last_outcome == "busy"  # unchanged
    assert await store.due(campaign_id, NOW, 10) == []  # not before the retry is due
    progress = await store.progress(campaign_id)
    assert progress["next_call_at"] == (NOW + timedelta(minutes=15)).isoformat()
    (later,) = await store.due(campaign_id, NOW + timedelta(minutes=15), 10)
    assert later.contact.attempts == 1 and len(later.contact.history) == 1
    assert await store.apply(campaign_id + 1, cid, 2, Outcome.BUSY, NOW, None) is None


async def test_due_contacts_carry_the_clients_facts(database: Database) -> None:
    store, campaign_id = await _campaign(database, ["+38761000002", "+38761000001"])
    async with database.sessions() as session, session.begin():
        client = Client(external_id="X", name="X", language="en", timezone="Europe/Vienna")
        session.add(client)
        await session.flush()
        session.add(
            Call(
                channel_id="old-survey",
                direction=Direction.OUTBOUND,
                handler="campaign",
                called_number="+38761000002",
                started_at=NOW - timedelta(days=10),
                survey_status="completed",
            )
        )
    rows = await store.due(campaign_id, NOW, 10)
    by_number = {d.contact.number: d.contact.client for d in rows}
    assert by_number["+38761000002"].last_surveyed_at == NOW - timedelta(days=10)
    assert by_number["+38761000001"].last_surveyed_at is None


async def test_states_move_only_the_allowed_ways_and_the_campaign_finishes(
    database: Database,
) -> None:
    store, campaign_id = await _campaign(database, ["+38761000001"])
    with pytest.raises(CampaignError, match="cannot become paused"):
        await store.set_status(campaign_id, CampaignStatus.PAUSED)
    assert (await store.set_status("c1", CampaignStatus.RUNNING)).status is CampaignStatus.RUNNING
    assert not await store.finish_if_done(campaign_id)
    (due,) = await store.due(campaign_id, NOW, 10)
    assert await store.claim(due.contact.contact_id, 1)
    await store.apply(campaign_id, due.contact.contact_id, 1, Outcome.COMPLETED, NOW, None)
    assert await store.finish_if_done(campaign_id)
    progress = await store.progress(campaign_id)
    assert progress["by_status"] == {"done": 1} and progress["percent_done"] == 100.0
    assert progress["by_outcome"] == {"completed": 1} and progress["attempts"] == 1
    with pytest.raises(CampaignError, match="no campaign"):
        await store.find("nope")
    with pytest.raises(CampaignError, match="exists"):
        await store.create("c1", 1, CampaignSettings(), [NewContact("+38761000009")])
