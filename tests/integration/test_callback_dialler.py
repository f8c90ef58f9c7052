"""Callback tasks worked by the agent dialler on the real Asterisk, on SQLite and PostgreSQL:
the queue's callbacks campaign dials a due task for a free nailed-up agent, and the task ends
done after the disposition with its attempt and call; an unanswered one keeps its attempt and
stays open for a retry; an agent's own task is offered to them in preview, to nobody else; a
callback comes before a sales campaign's contacts. The feeder is run here (``serve``'s own
schedule is off in the tests, so other tests' tasks are never dialled)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime

import pytest
from sqlalchemy import select, update

from ari_app.ami import AMIClient
from core.callbacks import callback_settings, campaign_name
from models.callback_tasks import feed_callbacks
from models.callbacks import add_callback
from models.tables import (
    Call,
    Callback,
    CallbackStatus,
    Campaign,
    CampaignContact,
    CampaignStatus,
)
from tests.integration.conftest import Server
from tests.integration.test_agent_dialler import (
    QUEUE,
    calls_of,
    create,
    line,
    nailed_agent,
    number,
    person,
    trail,
)
from tests.integration.test_campaign_calls import api
from tests.integration.test_infoline_paths import Desk, wait_status
from tests.support import wait_until

ALWAYS = {
    "timezone": "UTC",
    "weekly": {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
}


@pytest.fixture
async def desk(server: Server) -> AsyncIterator[Desk]:
    # Tasks another module left on this queue (the agent dialler's "callback_queue"
    # dispositions) are not this test's: closed before it, as its own are after it.
    await close_callbacks(server)
    d = Desk(server)
    try:
        yield d
    finally:
        await close_callbacks(server)
        await d.close()


async def close_callbacks(server: Server) -> None:
    """A test's callbacks end with it: nothing left to dial into the next test."""
    async with server.db.sessions() as session, session.begin():
        await session.execute(
            update(Callback)
            .where(Callback.queue == QUEUE, Callback.status == CallbackStatus.OPEN)
            .values(status=CallbackStatus.CANCELLED, closed_reason="test over")
        )
        campaign = await session.scalar(
            select(Campaign).where(Campaign.name == campaign_name(QUEUE))
        )
        if campaign is not None:
            await session.execute(
                update(CampaignContact)
                .where(
                    CampaignContact.campaign_id == campaign.id, CampaignContact.status == "pending"
                )
                .values(status="skipped", last_outcome="test over")
            )


async def callback_task(
    server: Server, num: str, *, agent: str | None = None, client_id: int | None = None
) -> int:
    async with server.db.sessions() as session, session.begin():
        task = add_callback(
            session,
            call_id=None,
            client_id=client_id,
            number=num,
            reason="after_hours",
            queue=QUEUE,
            assigned_agent_id=agent,
            due_at=datetime.now(UTC),
        )
        await session.flush()
        return task.id


async def feed(server: Server, num: str) -> int:
    """The feeder's run for this module's queue; the campaign it fills dials at any hour of
    the test run (the legal hours kept in production are checked by the unit tests) and
    rings for 15 seconds, with no wrap-up. Those settings are the campaign's before the
    feeder adds the contact: set after, a dialler's tick in between (on a loaded machine, or
    one that read the campaign just before) would put the contact off to the next morning's
    legal hours when the suite runs at night."""
    async with server.db.sessions() as session, session.begin():
        campaign = await session.scalar(
            select(Campaign).where(Campaign.name == campaign_name(QUEUE))
        )
        if campaign is None:  # made as the feeder would, finished: the feeder starts it
            campaign = Campaign(
                name=campaign_name(QUEUE),
                kind="callbacks",
                status=CampaignStatus.FINISHED,
                settings=callback_settings(QUEUE).model_dump(mode="json"),
            )
            session.add(campaign)
        settings = dict(campaign.settings)
        settings["rules"] = {**settings["rules"], "legal": ALWAYS}
        settings["ring_seconds"], settings["wrap_up_seconds"] = 15, 0
        campaign.settings = settings
        await session.flush()
        campaign_id = campaign.id
    result = await feed_callbacks(server.db.sessions, datetime.now(UTC), queues=[QUEUE])
    assert result.fed.get(QUEUE), result
    async with server.db.sessions() as session:
        campaign = await session.get(Campaign, campaign_id)
        assert campaign is not None and campaign.kind == "callbacks"
    if campaign.status is not CampaignStatus.RUNNING:
        why = await explain(server, campaign_id, num)
        raise AssertionError(f"fed, but the campaign is {campaign.status}:\n{why}")
    return campaign_id


async def task_of(server: Server, task_id: int) -> Callback:
    async with server.db.sessions() as session:
        task = await session.get(Callback, task_id)
    assert task is not None
    return task


async def ended_call(server: Server, campaign_id: int, num: str) -> Call:
    async def ended() -> Call | None:
        calls = (await calls_of(server, campaign_id)).get(num) or []
        return calls[0] if calls and calls[0].ended_at is not None else None

    # Dialled at the dialler's next tick, rung, answered and ended: bounded generously, as
    # the shards of the whole suite load the machine (twice seen past 40 s there).
    try:
        return await wait_until(ended, timeout=90, message=f"the call to {num} made and ended")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{await explain(server, campaign_id, num)}") from None


async def explain(server: Server, campaign_id: int, num: str) -> str:
    """What the dialler had to go on, for a call that was not made: the campaign, the
    number's contact rows and the dialler's lines of the serve log."""
    async with server.db.sessions() as session:
        campaign = await session.get(Campaign, campaign_id)
        contacts = list(
            await session.scalars(select(CampaignContact).where(CampaignContact.number == num))
        )
    lines = [
        f"campaign {campaign_id}: "
        f"{campaign.status if campaign else None} {campaign.settings if campaign else None}",
        *(
            f"contact {c.id} of {c.campaign_id}: {c.status} attempts={c.attempts} "
            f"next={c.next_attempt_at} last={c.last_outcome} agent={c.callback_agent_id}"
            for c in contacts
        ),
    ]
    words = ("dialler", "campaign", "callback", "claim", "dial", num)
    log_lines = server.log_path.read_text(errors="replace").splitlines()
    lines += [line[:400] for line in log_lines if any(w in line for w in words)][-40:]
    return "\n".join(lines)


async def test_a_due_callback_reaches_a_free_agent_and_is_done_after_the_disposition(
    server: Server, ami: AMIClient, desk: Desk
) -> None:
    agent = await nailed_agent(desk, "cora")
    num = number()
    await person(ami, num, delay=1, talk=2)
    client_id = await desk.client("Caller", num)
    task_id = await callback_task(server, num, client_id=client_id)
    campaign_id = await feed(server, num)

    call = await ended_call(server, campaign_id, num)
    assert call.outcome == "connected" and call.agent_id == agent
    assert call.direction.value == "outbound" and call.client_id == client_id
    events = await trail(server, call.id)
    assert events["dialling"].data["reserved"] == agent  # progressive: held for it
    task = await task_of(server, task_id)
    assert (task.status, task.attempts, task.last_outcome) == (CallbackStatus.OPEN, 1, "connected")

    status, body = await api(
        server,
        "POST",
        f"/api/campaigns/calls/{call.id}/disposition",
        {"agent_id": agent, "disposition": "interested", "note": "called back"},
    )
    assert status == 200, body
    task = await task_of(server, task_id)
    assert (task.status, task.attempts, task.last_call_id) == (CallbackStatus.DONE, 1, call.id)
    assert task.closed_reason == "interested"
    await wait_status(desk, agent, "available", message="the agent free again")


async def test_an_unanswered_callback_keeps_its_attempt_and_stays_open(
    server: Server, ami: AMIClient, desk: Desk
) -> None:
    await nailed_agent(desk, "uma")
    num = number()
    await line(ami, num, "noanswer")
    task_id = await callback_task(server, num)
    campaign_id = await feed(server, num)

    call = await ended_call(server, campaign_id, num)
    assert call.outcome == "no_answer"

    async def tried() -> Callback | None:
        task = await task_of(server, task_id)
        return task if task.attempts == 1 else None

    task = await wait_until(tried, timeout=10, message="the attempt on the task")
    assert task.status is CallbackStatus.OPEN and task.last_outcome == "no_answer"
    assert task.last_call_id == call.id
    assert task.next_attempt_at is not None and task.next_attempt_at > datetime.now(UTC)


async def test_an_assigned_callback_is_offered_in_preview_to_its_agent_only(
    server: Server, ami: AMIClient, desk: Desk
) -> None:
    own = await nailed_agent(desk, "olga")
    other = await nailed_agent(desk, "otto")
    num = number()
    await person(ami, num, delay=1, talk=2)
    task_id = await callback_task(server, num, agent=own)
    campaign_id = await feed(server, num)

    async def offered() -> dict[str, object] | None:
        shown = (await desk.api("GET", f"/api/agents/{own}/preview"))["contact"]
        return shown if shown else None

    try:
        shown = await wait_until(offered, timeout=10, message="the callback on its agent's desk")
    except AssertionError as exc:
        raise AssertionError(f"{exc}\n{await explain(server, campaign_id, num)}") from None
    assert shown["number"] == num and shown["kind"] == "callbacks"
    assert shown["purpose"] == "Callback: called after hours"
    assert (await desk.api("GET", f"/api/agents/{other}/preview"))["contact"] is None
    assert num not in await calls_of(server, campaign_id)  # preview: not dialled by itself

    placed = await desk.api("POST", f"/api/agents/{own}/preview/{shown['contact_id']}/call")
    call = await ended_call(server, campaign_id, num)
    assert call.id == placed["call_id"] and call.outcome == "connected" and call.agent_id == own
    task = await task_of(server, task_id)
    assert task.attempts == 1 and task.last_call_id == call.id
    await wait_status(desk, own, "available", message="the agent free again")


async def test_a_callback_is_dialled_before_a_sales_campaigns_contacts(
    server: Server, ami: AMIClient, desk: Desk
) -> None:
    agent = await nailed_agent(desk, "sara")
    await desk.api("POST", f"/api/agents/{agent}/pause", {"reason": "briefing"})
    await wait_status(desk, agent, "paused", message="the agent paused")
    caller, lead = number(), number()
    await person(ami, caller, delay=1, talk=2)
    await person(ami, lead, delay=1, talk=2)
    sales_id = await create(server, f"sales-{lead[-6:]}", "progressive", [lead])
    try:
        status, _ = await api(server, "POST", f"/api/campaigns/{sales_id}/start")
        assert status == 200
        await callback_task(server, caller)
        callbacks_id = await feed(server, caller)
        # Both have work due for the agent: the first free moment goes to the callback.
        await desk.api("POST", f"/api/agents/{agent}/ready", {})
        first = await ended_call(server, callbacks_id, caller)
        later = await ended_call(server, sales_id, lead)
        assert first.agent_id == later.agent_id == agent
        assert first.started_at < later.started_at
        assert first.ended_at is not None and first.ended_at <= later.started_at
    finally:
        with contextlib.suppress(Exception):
            await api(server, "POST", f"/api/campaigns/{sales_id}/stop")
