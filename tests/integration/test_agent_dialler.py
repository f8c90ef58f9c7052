"""The agent dialler on the real Asterisk, on SQLite and PostgreSQL: agents are nailed-up Local
channels (tests/asterisk [test-agent]: they answer and stay on); clients are the simulated
phones of [test-clients] (a person who answers after a delay and stays on a few seconds, a
busy line, a phone nobody picks up). Every live answer must reach an agent or hear the
identification message within 2 seconds, measured from the call's own trail."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from ari_app.ami import AMIActionError, AMIClient
from ari_app.ari import ARINotFound
from models.flows import apply_flow
from models.procedures import generate_procedures
from models.tables import (
    Call,
    Callback,
    CallEvent,
    CampaignContact,
    Client,
    DoNotCall,
    Interaction,
    ProcedureTask,
)
from tests.integration.conftest import Callers, Server
from tests.integration.test_campaign_calls import api, around_now
from tests.integration.test_infoline_paths import (
    Desk,
    _flow,
    call_and_press,
    finish,
    open_always,
    wait_connected,
    wait_queued,
    wait_status,
)
from tests.support import wait_until

QUEUE = "outbound_sales"


@pytest.fixture
async def desk(server: Server) -> AsyncIterator[Desk]:
    d = Desk(server)
    try:
        yield d
    finally:
        await d.close()


def number() -> str:
    return f"+38761{random.randrange(10**5, 10**6)}"


async def person(ami: AMIClient, num: str, *, delay: float = 1, talk: float = 3) -> None:
    await ami.action("DBPut", {"Family": "sim", "Key": num, "Val": "person"})
    await ami.action("DBPut", {"Family": "sim", "Key": f"{num}-delay", "Val": str(delay)})
    await ami.action("DBPut", {"Family": "sim", "Key": f"{num}-talk", "Val": str(talk)})


async def line(ami: AMIClient, num: str, kind: str) -> None:
    await ami.action("DBPut", {"Family": "sim", "Key": num, "Val": kind})
    for suffix in ("delay", "talk"):
        with contextlib.suppress(AMIActionError):
            await ami.action("DBDel", {"Family": "sim", "Key": f"{num}-{suffix}"})


async def nailed_agent(desk: Desk, name: str, *also: str) -> str:
    agent = await desk.agent(name, [QUEUE, *also], login=False)
    await desk.api("POST", f"/api/agents/{agent}/login", {"mode": "nailed"})
    desk.logged_in.append(agent)
    await wait_status(desk, agent, "available", message=f"{name}'s nailed leg up")
    return agent


def contacts_csv(numbers: list[str]) -> str:
    return "number,timezone\n" + "".join(f"{n},UTC\n" for n in numbers)


def campaign_settings(**extra: Any) -> dict[str, Any]:
    always = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    return {
        "rules": {
            "window": around_now().model_dump(mode="json"),
            "legal": {"timezone": "UTC", "weekly": always},
            "retries": {
                "busy": {"delay_minutes": 30, "max_attempts": 2},
                "no_answer": {"delay_minutes": 60, "max_attempts": 2},
            },
        },
        "ring_seconds": 15,
        "wrap_up_seconds": 0,
        **extra,
    }


CREATED: list[tuple[Server, int]] = []  # stopped after each test (see stop_campaigns)


@pytest.fixture(autouse=True)
async def stop_campaigns() -> AsyncIterator[None]:
    """A test's campaigns stop with it: retries left pending must not dial into the next."""
    yield
    while CREATED:
        server, campaign_id = CREATED.pop()
        with contextlib.suppress(Exception):
            await api(server, "POST", f"/api/campaigns/{campaign_id}/stop")


async def create(server: Server, name: str, mode: str, numbers: list[str], **extra: Any) -> int:
    status, body = await api(
        server,
        "POST",
        "/api/campaigns",
        {
            "name": name,
            "mode": mode,
            "queue": QUEUE,
            "contacts_csv": contacts_csv(numbers),
            "settings": campaign_settings(**extra),
        },
    )
    assert status == 200, body
    assert body["kind"] == "leads" and body["settings"]["mode"] == mode
    CREATED.append((server, int(body["id"])))
    return int(body["id"])


async def rows_of(server: Server, campaign_id: int) -> dict[str, CampaignContact]:
    async with server.db.sessions() as session:
        found = await session.scalars(
            select(CampaignContact).where(CampaignContact.campaign_id == campaign_id)
        )
        return {r.number: r for r in found}


async def settled(server: Server, campaign_id: int, timeout: float = 120) -> dict[str, Any]:
    """Every contact tried once and no call of the campaign still open."""

    async def done() -> dict[str, CampaignContact] | None:
        rows = await rows_of(server, campaign_id)
        async with server.db.sessions() as session:
            still_open = await session.scalar(
                select(func.count())
                .select_from(Call)
                .where(Call.campaign_id == campaign_id, Call.ended_at.is_(None))
            )
        if still_open or any(r.status == "dialling" or r.attempts == 0 for r in rows.values()):
            return None
        return rows

    return await wait_until(done, timeout=timeout, message="every contact tried, calls closed")


async def calls_of(server: Server, campaign_id: int) -> dict[str, list[Call]]:
    async with server.db.sessions() as session:
        found = await session.scalars(
            select(Call).where(Call.campaign_id == campaign_id).order_by(Call.started_at)
        )
        out: dict[str, list[Call]] = {}
        for call in found:
            out.setdefault(call.called_number or "", []).append(call)
        return out


async def trail(server: Server, call_id: str) -> dict[str, CallEvent]:
    async with server.db.sessions() as session:
        found = await session.scalars(
            select(CallEvent).where(CallEvent.call_id == call_id).order_by(CallEvent.id)
        )
        return {e.kind: e for e in found}


async def assert_two_second_rule(server: Server, call: Call) -> str:
    """The live answer's fate within 2 s of the answer, from the call's trail: which one."""
    events = await trail(server, call.id)
    assert "live_answer" in events, events.keys()
    # From the answer itself (the row's answered_at), not from AMD's verdict after it.
    answered = call.answered_at
    assert answered is not None and answered <= events["live_answer"].at
    fate = "agent_connected" if "agent_connected" in events else "abandoned"
    assert fate in events, events.keys()
    waited = (events[fate].at - answered).total_seconds()
    assert waited <= 2.0, f"{call.called_number}: {fate} {waited:.3f} s after the answer"
    return fate


async def test_progressive_puts_every_live_answer_through_and_stores_outcomes(
    server: Server, ami: AMIClient, desk: Desk
) -> None:
    agents = {await nailed_agent(desk, "pam"), await nailed_agent(desk, "pete")}
    people = [number() for _ in range(3)]
    busy, silent = number(), number()
    for n in people:
        await person(ami, n, delay=1, talk=2)
    await line(ami, busy, "busy")
    await line(ami, silent, "noanswer")
    campaign_id = await create(
        server, f"prog-{people[0][-6:]}", "progressive", [*people, busy, silent]
    )
    status, body = await api(server, "POST", f"/api/campaigns/{campaign_id}/start")
    assert status == 200 and body["status"] == "running", body

    rows = await settled(server, campaign_id)
    calls = await calls_of(server, campaign_id)
    for n in people:
        assert len(calls[n]) == 1, calls[n]
        call = calls[n][0]
        assert call.outcome == "connected" and call.agent_id in agents, call.outcome
        assert call.direction.value == "outbound" and call.talk_seconds
        assert await assert_two_second_rule(server, call) == "agent_connected"
        assert rows[n].status == "done" and rows[n].last_outcome == "connected"
        # Progressive: the agent was held for the call while it rang.
        assert (await trail(server, call.id))["dialling"].data["reserved"] in agents
    assert [c.outcome for c in calls[busy]] == ["busy"]
    assert [c.outcome for c in calls[silent]] == ["no_answer"]
    assert rows[busy].status == "pending" and rows[busy].next_attempt_at is not None
    assert rows[silent].status == "pending"

    # The agent's disposition: on the row, in the client's history, on the contact.
    first = calls[people[0]][0]
    status, body = await api(
        server,
        "POST",
        f"/api/campaigns/calls/{first.id}/disposition",
        {"agent_id": first.agent_id, "disposition": "sale", "note": "took the loan"},
    )
    assert status == 200, body
    second = calls[people[1]][0]
    due = (datetime.now(UTC) + timedelta(days=1)).isoformat()
    status, body = await api(
        server,
        "POST",
        f"/api/campaigns/calls/{second.id}/disposition",
        {"agent_id": second.agent_id, "disposition": "callback_personal", "due": due},
    )
    assert status == 200, body
    status, body = await api(
        server,
        "POST",
        f"/api/campaigns/calls/{second.id}/disposition",
        {"agent_id": second.agent_id, "disposition": "callback_queue"},
    )
    assert status == 422 and body["error_id"] == "bad_due", body
    async with server.db.sessions() as session:
        assert (await session.get(Call, first.id)).disposition == "sale"  # type: ignore[union-attr]
        notes = list(
            await session.scalars(select(Interaction.note).where(Interaction.call_id == first.id))
        )
        assert notes == ["[sale] took the loan"]
        callback = await session.scalar(select(Callback).where(Callback.call_id == second.id))
        assert callback is not None and callback.assigned_agent_id == second.agent_id
        assert callback.queue == QUEUE
    rows = await rows_of(server, campaign_id)
    assert rows[people[0]].last_outcome == "sale"

    status, body = await api(server, "GET", f"/api/campaigns/{campaign_id}")
    assert status == 200, body
    figures = body["dialler"]
    assert figures["live_answers"] == 3 and figures["connected"] == 3
    assert figures["abandoned"] == 0
    assert figures["abandonment"]["last_24_hours"]["rate_percent"] == 0.0
    assert figures["dispositions"] == {"sale": 1, "callback_personal": 1}
    for agent in agents:
        await wait_status(desk, agent, "available", message="agents free after the campaign")


async def test_a_live_answer_no_agent_can_take_hears_the_message_and_is_abandoned(
    server: Server, ami: AMIClient, desk: Desk, callers: Callers
) -> None:
    agent = await nailed_agent(desk, "ann")
    client = number()
    await person(ami, client, delay=3, talk=10)
    campaign_id = await create(server, f"gone-{client[-6:]}", "progressive", [client])
    status, _ = await api(server, "POST", f"/api/campaigns/{campaign_id}/start")
    assert status == 200

    async def ringing() -> Call | None:
        calls = (await calls_of(server, campaign_id)).get(client) or []
        return calls[0] if calls else None

    call = await wait_until(ringing, timeout=15, message="the call placed")
    # The agent's phone drops while the client's rings: nobody is left to take the answer.
    nailed = [c for c in await callers.ari.request("GET", "/channels") if agent in c["name"]]
    assert nailed, "the agent's nailed leg"
    desk.logged_in.remove(agent)  # logged out by the loss of their phone
    for channel in nailed:
        with contextlib.suppress(Exception):
            await callers.ari.hangup(channel["id"])

    rows = await settled(server, campaign_id, timeout=45)
    async with server.db.sessions() as session:
        row = await session.get(Call, call.id)
        assert row is not None and row.outcome == "abandoned"
        assert await assert_two_second_rule(server, row) == "abandoned"
        events = await trail(server, call.id)
        assert "dialler_identification" in str(events["abandoned"].data["message"])
        # 72 hours on the do-not-call list, and a callback task in the campaign's queue.
        entry = await session.get(DoNotCall, client)
        assert entry is not None and entry.reason == "abandoned" and entry.expires_at is not None
        hours = (entry.expires_at - datetime.now(UTC)).total_seconds() / 3600
        assert 71 < hours <= 72
        callback = await session.scalar(select(Callback).where(Callback.call_id == call.id))
        assert callback is not None and callback.queue == QUEUE
        assert callback.reason == "abandoned"
        await session.delete(entry)
        await session.commit()
    assert rows[client].status == "done" and rows[client].last_outcome == "abandoned"
    status, body = await api(server, "GET", f"/api/campaigns/{campaign_id}")
    assert body["dialler"]["abandoned"] == 1
    assert body["dialler"]["abandonment"]["whole_run"]["rate_percent"] == 100.0


async def test_predictive_puts_every_live_answer_through_or_gives_the_message(
    server: Server, ami: AMIClient, desk: Desk
) -> None:
    agents = {await nailed_agent(desk, "pia"), await nailed_agent(desk, "paul")}
    people = [number() for _ in range(6)]
    for i, n in enumerate(people):
        await person(ami, n, delay=1 + i % 3, talk=2)
    campaign_id = await create(server, f"pred-{people[0][-6:]}", "predictive", people)
    status, _ = await api(server, "POST", f"/api/campaigns/{campaign_id}/start")
    assert status == 200

    await settled(server, campaign_id, timeout=90)
    calls = await calls_of(server, campaign_id)
    fates = []
    for n in people:
        assert len(calls[n]) == 1, f"{n} called {len(calls[n])} times"
        call = calls[n][0]
        assert call.outcome in ("connected", "abandoned"), call.outcome
        fates.append(await assert_two_second_rule(server, call))
        if call.outcome == "connected":
            assert call.agent_id in agents
    status, body = await api(server, "GET", f"/api/campaigns/{campaign_id}")
    assert body["dialler"]["live_answers"] == 6
    assert body["dialler"]["abandoned"] == fates.count("abandoned")
    # A new campaign has too few answers to estimate from: it paces progressively (and so
    # abandons nobody) until it has.
    assert fates.count("abandoned") == 0


async def test_blending_inbound_callers_come_first(
    server: Server, ami: AMIClient, desk: Desk, callers: Callers
) -> None:
    """An agent in an outbound campaign and an inbound queue: an inbound caller who waits for
    them gets them as soon as their outbound call ends; no outbound call is placed for them
    meanwhile, and the campaign goes on once the inbound call is over."""
    await apply_flow(server.db.sessions, _flow(open_always))
    try:
        await _blending(server, ami, desk, callers)
    finally:
        # The shipped flow again: the tests after this one expect the line as shipped.
        await apply_flow(server.db.sessions, _flow(lambda data: None))


async def _blending(server: Server, ami: AMIClient, desk: Desk, callers: Callers) -> None:
    agent = await nailed_agent(desk, "bea", "new_clients")
    first, second = number(), number()
    await person(ami, first, delay=1, talk=6)
    await person(ami, second, delay=1, talk=1)
    campaign_id = await create(server, f"blend-{first[-6:]}", "progressive", [first, second])
    status, _ = await api(server, "POST", f"/api/campaigns/{campaign_id}/start")
    assert status == 200

    async def on_first() -> Call | None:
        calls = (await calls_of(server, campaign_id)).get(first) or []
        return calls[0] if calls and calls[0].connected_at is not None else None

    outbound = await wait_until(on_first, timeout=20, message="the agent on the first call")
    assert outbound.agent_id == agent
    caller = await call_and_press(callers, "+38761999150", "0")
    await wait_queued(server, caller)  # the agent is busy: the caller waits for them
    inbound = await wait_connected(server, caller, timeout=30)
    assert inbound.agent_id == agent
    placed = (await calls_of(server, campaign_id)).get(second) or []
    assert placed == [], "an outbound call was placed while the inbound caller waited"
    await finish(server, caller)
    rows = await settled(server, campaign_id, timeout=40)
    (later,) = (await calls_of(server, campaign_id))[second]
    assert later.agent_id == agent and later.outcome == "connected"
    assert inbound.connected_at is not None and later.started_at > inbound.connected_at
    assert rows[second].status == "done"


async def test_preview_the_agent_sees_the_contact_then_calls_or_skips(
    server: Server, ami: AMIClient, desk: Desk
) -> None:
    agent = await nailed_agent(desk, "val")
    first, second = number(), number()
    await person(ami, first, delay=1, talk=2)
    await person(ami, second, delay=1, talk=2)
    campaign_id = await create(server, f"preview-{first[-6:]}", "preview", [first, second])
    status, _ = await api(server, "POST", f"/api/campaigns/{campaign_id}/start")
    assert status == 200
    # Preview never dials by itself.
    shown = (await desk.api("GET", f"/api/agents/{agent}/preview"))["contact"]
    assert shown is not None and shown["number"] == first
    assert (await desk.api("GET", f"/api/agents/{agent}/preview"))["contact"] == shown  # held
    assert await calls_of(server, campaign_id) == {}
    rows = await rows_of(server, campaign_id)
    assert rows[first].status == "dialling" and rows[first].agent_id == agent

    placed = await desk.api("POST", f"/api/agents/{agent}/preview/{shown['contact_id']}/call")

    async def talked() -> Call | None:
        calls = (await calls_of(server, campaign_id)).get(first) or []
        return calls[0] if calls and calls[0].ended_at is not None else None

    call = await wait_until(talked, timeout=20, message="the previewed call made and ended")
    assert call.id == placed["call_id"] and call.outcome == "connected"
    assert call.agent_id == agent
    await wait_status(desk, agent, "available", message="the agent free again")

    nxt = (await desk.api("GET", f"/api/agents/{agent}/preview"))["contact"]
    assert nxt is not None and nxt["number"] == second
    status, body = await api(
        server, "POST", f"/api/agents/{agent}/preview/{nxt['contact_id']}/skip", {"reason": ""}
    )
    assert status == 422 and body["error_id"] == "bad_reason", body
    await desk.api(
        "POST", f"/api/agents/{agent}/preview/{nxt['contact_id']}/skip", {"reason": "in hospital"}
    )
    rows = await rows_of(server, campaign_id)
    assert rows[second].status == "skipped" and rows[second].last_outcome == "skipped: in hospital"
    assert (await desk.api("GET", f"/api/agents/{agent}/preview"))["contact"] is None
    assert len(await calls_of(server, campaign_id)) == 1


async def test_with_amd_a_person_is_still_put_through_within_the_two_seconds(
    server: Server, ami: AMIClient, desk: Desk, callers: Callers
) -> None:
    """AMD's verdict eats into the 2 seconds (the machine path: tests/unit/
    test_agent_dialler_fake.py, as no simulated line steers Asterisk's AMD surely): the person
    reaches the agent within them, or hears the message; never put through late."""
    agent = await nailed_agent(desk, "amy")
    human = number()
    await line(ami, human, "human")  # "hello world", then silence, as a person answers
    campaign_id = await create(server, f"amd-{human[-6:]}", "progressive", [human], amd=True)
    status, _ = await api(server, "POST", f"/api/campaigns/{campaign_id}/start")
    assert status == 200

    async def decided() -> Call | None:
        calls = (await calls_of(server, campaign_id)).get(human) or []
        if not calls:
            return None
        kinds = await trail(server, calls[0].id)
        return calls[0] if {"agent_connected", "abandoned"} & set(kinds) else None

    placed = await wait_until(decided, timeout=30, message="the person put through or told")
    with contextlib.suppress(ARINotFound):  # the person's part is over: they hang up
        await callers.ari.hangup(placed.channel_id)
    await settled(server, campaign_id, timeout=30)
    (call,) = (await calls_of(server, campaign_id))[human]
    events = await trail(server, call.id)
    assert events["amd"].data["status"] in ("HUMAN", "NOTSURE"), events["amd"].data
    assert call.answered_at is not None and call.answered_at <= events["amd"].at
    fate = await assert_two_second_rule(server, call)
    assert call.outcome == ("connected" if fate == "agent_connected" else "abandoned")
    if fate == "agent_connected":
        assert call.agent_id == agent


async def test_a_procedural_task_whose_cause_went_away_is_not_called(
    server: Server, ami: AMIClient, desk: Desk
) -> None:
    """Two clients' ID documents expire within the month: procedural tasks, a preview
    campaign. One renews hers before the call: re-checked at dial time, she is not called and
    her contact and task are closed with the reason; the other is called with the purpose and
    script on the agent's desk, and his task is closed as called."""
    agent = await nailed_agent(desk, "ida")
    renewed, expiring = number(), number()
    await person(ami, expiring, delay=1, talk=2)
    soon = (datetime.now(UTC) + timedelta(days=10)).date()
    ids = {}
    for name, num in (("Rena", renewed), ("Ekin", expiring)):
        ids[num] = await desk.client(name, num, document_expiry=soon, language="en")
    result = await generate_procedures(server.db.sessions, datetime.now(UTC))
    assert result.created >= 2
    status, body = await api(
        server,
        "POST",
        "/api/campaigns",
        {
            "name": f"ids-{renewed[-6:]}",
            "mode": "preview",
            "queue": QUEUE,
            "procedure": "document_expiry",
            "settings": campaign_settings(),
        },
    )
    assert status == 200, body
    campaign_id = int(body["id"])
    CREATED.append((server, campaign_id))
    assert body["kind"] == "procedural"
    rows = await rows_of(server, campaign_id)
    assert {renewed, expiring} <= set(rows)
    async with server.db.sessions() as session, session.begin():
        client = await session.get(Client, ids[renewed])
        assert client is not None
        client.document_expiry = soon + timedelta(days=3650)  # renewed since
    status, _ = await api(server, "POST", f"/api/campaigns/{campaign_id}/start")
    assert status == 200

    shown = []
    while (held := (await desk.api("GET", f"/api/agents/{agent}/preview"))["contact"]) is not None:
        if held["number"] != expiring:  # another test's expiring client: not ours to call
            await desk.api(
                "POST", f"/api/agents/{agent}/preview/{held['contact_id']}/skip", {"reason": "x"}
            )
            continue
        shown.append(held)
        await desk.api("POST", f"/api/agents/{agent}/preview/{held['contact_id']}/call")
        break
    (held,) = shown
    assert held["purpose"] and "document" in held["purpose"].lower()
    assert held["script"]

    async def called() -> Call | None:
        calls = (await calls_of(server, campaign_id)).get(expiring) or []
        return calls[0] if calls and calls[0].ended_at is not None else None

    call = await wait_until(called, timeout=20, message="the expiring client called")
    assert call.outcome == "connected" and call.agent_id == agent
    rows = await rows_of(server, campaign_id)
    assert renewed not in (await calls_of(server, campaign_id))
    assert rows[renewed].status == "skipped" and rows[renewed].last_outcome == "document_renewed"
    async with server.db.sessions() as session:
        tasks = {
            t.number: t
            for t in await session.scalars(
                select(ProcedureTask).where(ProcedureTask.number.in_([renewed, expiring]))
            )
        }
    assert (tasks[renewed].status, tasks[renewed].closed_reason) == ("closed", "document_renewed")
    assert (tasks[expiring].status, tasks[expiring].closed_reason) == ("closed", "called")
