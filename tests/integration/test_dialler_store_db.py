"""The agent dialler's store on SQLite and PostgreSQL: two dialling processes claiming one
campaign at once never get the same contact; the rules run at the claim (do-not-call, the
calling window); an attempt's end and a disposition apply once, with their consequences
(72 hours on the do-not-call list and a callback task for an abandoned call); the figures the
status and the cap are read from."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from sqlalchemy import select

from core.dialler import AgentCampaignSettings, AgentDisposition, CampaignKind
from core.enums import AgentRole
from core.surveys.campaign import Outcome
from dialplan.model import WEEKDAYS, Calendar
from models.campaigns import NewContact
from models.dialler import Claimed, DiallerStore, RunningAgentCampaign
from models.tables import (
    Agent,
    Call,
    Callback,
    CampaignContact,
    CampaignStatus,
    Direction,
    DoNotCall,
    Interaction,
)
from tests.conftest import Database

NOW = datetime.now(UTC).replace(microsecond=0)
ALWAYS = Calendar(timezone="UTC", weekly={d: ["00:00-24:00"] for d in WEEKDAYS})


def _settings(**kw: object) -> AgentCampaignSettings:
    return AgentCampaignSettings.model_validate(
        {
            "queue": "sales",
            "mode": "predictive",
            "rules": {
                "window": ALWAYS.model_dump(mode="json"),
                "legal": ALWAYS.model_dump(mode="json"),
                "survey_cap_days": 0,
            },
            **kw,
        }
    )


async def _running(
    database: Database, numbers: list[str], **kw: object
) -> tuple[DiallerStore, RunningAgentCampaign]:
    store = DiallerStore(database.sessions)
    settings = _settings(**kw)
    campaign_id, count = await store.create(
        "sales-1", CampaignKind.LEADS, settings, [NewContact(n, timezone="UTC") for n in numbers]
    )
    assert count == len(numbers)
    await store.campaigns.set_status(campaign_id, CampaignStatus.RUNNING)
    (running,) = await store.running()
    assert running.id == campaign_id and running.kind is CampaignKind.LEADS
    return store, running


async def _call(database: Database, campaign_id: int, c: Claimed, outcome: str | None) -> str:
    async with database.sessions() as session, session.begin():
        call = Call(
            channel_id=f"dialler-{campaign_id}-{c.contact_id}-{c.attempt}",
            direction=Direction.OUTBOUND,
            handler="dialler",
            called_number=c.number,
            started_at=NOW,
            campaign_id=campaign_id,
            outcome=outcome,
        )
        session.add(call)
        await session.flush()
        call_id = call.id
    await DiallerStore(database.sessions).set_call(c.contact_id, call_id)
    return call_id


async def test_two_diallers_claiming_at_once_never_share_a_contact(database: Database) -> None:
    numbers = [f"+3876100{i:04d}" for i in range(40)]
    store, campaign = await _running(database, numbers)
    other = DiallerStore(database.sessions)  # a second `serve`
    claimed: list[int] = []
    for _ in range(10):  # rounds of six claims at once, until nobody is left
        batches = await asyncio.gather(
            *(s.claim(campaign, NOW, 7) for s in (store, other, store, other, store, other))
        )
        claimed += [c.contact_id for batch in batches for c in batch]
        assert {c.attempt for batch in batches for c in batch} <= {1}
        if not any(batches):
            break
    assert len(claimed) == len(set(claimed)) == 40
    assert await store.claim(campaign, NOW, 5) == []


async def test_the_rules_run_at_the_claim(database: Database) -> None:
    barred, late, fine = "+38761000001", "+38761000002", "+38761000003"
    async with database.sessions() as session, session.begin():
        session.add(DoNotCall(number=barred, reason="asked"))
    store, campaign = await _running(database, [barred, late, fine])
    async with database.sessions() as session, session.begin():
        row = await session.scalar(select(CampaignContact).where(CampaignContact.number == late))
        assert row is not None
        row.timezone = "Etc/GMT-12"  # twelve hours ahead, and the window is closed there
    closed = Calendar(timezone="UTC", weekly={d: ["00:00-00:30"] for d in WEEKDAYS})
    hour = NOW.hour
    if hour == 12:  # keep "now in UTC" open and "now +12 h" closed
        closed = Calendar(timezone="UTC", weekly={d: ["11:00-13:00"] for d in WEEKDAYS})
    else:
        closed = Calendar(
            timezone="UTC", weekly={d: [f"{hour:02d}:00-{hour + 1:02d}:00"] for d in WEEKDAYS}
        )
    rules = campaign.settings.rules.model_copy(update={"window": closed})
    campaign = RunningAgentCampaign(
        campaign.id,
        campaign.name,
        campaign.kind,
        campaign.settings.model_copy(update={"rules": rules}),
    )
    (only,) = await store.claim(campaign, NOW, 3, zones=lambda n: ())
    assert only.number == fine
    async with database.sessions() as session:
        rows = {
            r.number: r
            for r in await session.scalars(
                select(CampaignContact).where(CampaignContact.campaign_id == campaign.id)
            )
        }
    assert rows[barred].status == "skipped" and rows[barred].last_outcome == "do_not_call"
    assert rows[late].status == "pending" and rows[late].next_attempt_at is not None
    assert rows[late].next_attempt_at > NOW


async def test_an_abandoned_call_blocks_the_number_and_leaves_a_callback(
    database: Database,
) -> None:
    a, b = "+38761000011", "+38761000012"
    async with database.sessions() as session, session.begin():
        session.add(DoNotCall(number=b, reason="asked"))  # forever: never shortened
    store, campaign = await _running(database, [a, b])
    async with database.sessions() as session, session.begin():
        await session.delete(await session.get(DoNotCall, b))
    claims = await store.claim(campaign, NOW, 2)
    async with database.sessions() as session, session.begin():
        session.add(DoNotCall(number=b, reason="asked"))
    for c in claims:
        call_id = await _call(database, campaign.id, c, "abandoned")
        first = await store.finish(campaign, c, Outcome.ABANDONED, NOW, call_id)
        again = await store.finish(campaign, c, Outcome.ABANDONED, NOW, call_id)
        assert first is not None and again is not None and again.attempts == 1
    async with database.sessions() as session:
        entry_a = await session.get(DoNotCall, a)
        entry_b = await session.get(DoNotCall, b)
        callbacks = list(await session.scalars(select(Callback).order_by(Callback.number)))
    assert entry_a is not None and entry_a.expires_at == NOW + timedelta(hours=72)
    assert entry_b is not None and entry_b.expires_at is None and entry_b.reason == "asked"
    assert [(c.number, c.queue, c.reason) for c in callbacks] == [
        (a, "sales", "abandoned"),
        (b, "sales", "abandoned"),
    ]  # one each, though each attempt's end came twice
    counts = await store.abandon_count(campaign.id, None)
    assert (counts.live, counts.abandoned) == (2, 2)


async def test_a_disposition_applies_to_row_contact_and_history(database: Database) -> None:
    sold, later, barred = "+38761000021", "+38761000022", "+38761000023"
    async with database.sessions() as session, session.begin():
        session.add(Agent(id="ana", name="Ana", role=AgentRole.AGENT))
    store, campaign = await _running(database, [sold, later, barred])
    claims = {c.number: c for c in await store.claim(campaign, NOW, 3)}
    ids = {}
    for number, c in claims.items():
        ids[number] = await _call(database, campaign.id, c, "connected")
        await store.finish(campaign, c, Outcome.CONNECTED, NOW, ids[number], agent_id="ana")
    due = NOW + timedelta(days=2)
    await store.dispose(
        ids[sold], "ana", AgentDisposition.SALE, due=None, note="a 5000 loan", now=NOW
    )
    await store.dispose(
        ids[later], "ana", AgentDisposition.CALLBACK_PERSONAL, due=due, note=None, now=NOW
    )
    await store.dispose(
        ids[barred], "ana", AgentDisposition.DO_NOT_CALL, due=None, note=None, now=NOW
    )
    async with database.sessions() as session:
        calls = {c.called_number: c for c in await session.scalars(select(Call))}
        notes = list(await session.scalars(select(Interaction.note).order_by(Interaction.id)))
        callback = await session.scalar(select(Callback))
        dnc = await session.get(DoNotCall, barred)
        rows = {r.number: r for r in await session.scalars(select(CampaignContact))}
    assert calls[sold].disposition == "sale" and calls[later].disposition == "callback_personal"
    assert notes[0] == "[sale] a 5000 loan"
    assert callback is not None and callback.assigned_agent_id == "ana"
    assert callback.due_at == due and callback.number == later
    assert dnc is not None and dnc.expires_at is None
    assert rows[sold].last_outcome == "sale" and rows[sold].agent_id == "ana"
    assert rows[barred].status == "skipped"
    figures = await store.figures(campaign.id, NOW)
    assert figures["connected"] == 3 and figures["abandoned"] == 0
    assert figures["dispositions"] == {"sale": 1, "callback_personal": 1, "do_not_call": 1}
    assert figures["abandonment"]["last_hour"]["rate_percent"] == 0.0


async def test_attempts_under_way_are_found_after_a_restart(database: Database) -> None:
    store, campaign = await _running(database, ["+38761000031", "+38761000032"])
    first, second = await store.claim(campaign, NOW, 2)
    call_id = await _call(database, campaign.id, first, None)
    under_way = await DiallerStore(database.sessions).under_way()
    found = {(c.contact_id, c.attempt, call) for _, c, call, _ in under_way}
    assert found == {(first.contact_id, 1, call_id), (second.contact_id, 1, None)}
    await store.skip(campaign.id, second, "client is in hospital")
    async with database.sessions() as session:
        row = await session.get(CampaignContact, second.contact_id)
    assert row is not None and row.status == "skipped"
    assert row.last_outcome == "skipped: client is in hospital"
    assert len(await store.under_way()) == 1
