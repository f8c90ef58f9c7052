"""Survey campaigns on the real Asterisk: `centrala serve` dials simulated clients
(tests/asterisk [test-clients]: a person who presses keys and speaks, an answering machine
with a long greeting, a busy line, a phone nobody picks up), on SQLite and PostgreSQL."""

from __future__ import annotations

import contextlib
import random
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from ari_app.ami import AMIActionError, AMIClient
from core.enums import AgentRole
from core.surveys.campaign import CampaignRules, CampaignSettings, RetryRule
from core.surveys.nps import nps
from dialplan.model import WEEKDAYS, Calendar
from models.campaigns import CampaignStore, NewContact
from models.surveys import active_survey
from models.tables import (
    Agent,
    Call,
    Callback,
    CallEvent,
    CampaignContact,
    CampaignStatus,
    Client,
    DoNotCall,
    SurveyAnswer,
)
from tests.integration.conftest import PBX, Server
from tests.support import wait_until


@pytest.fixture(scope="session")
async def ami(pbx: PBX) -> AsyncIterator[AMIClient]:
    s = pbx.settings
    client = AMIClient(s.ami_host, s.ami_port, s.ami_user, s.ami_secret)
    await client.start()
    await client.wait_connected(10)
    yield client
    await client.stop()


def number() -> str:
    return f"+3876{random.randrange(10**7, 10**8)}"


async def simulate(ami: AMIClient, num: str, kind: str, **keys: str) -> None:
    """Tell [test-clients] how the client on ``num`` behaves (see extensions_test.conf)."""
    await ami.action("DBPut", {"Family": "sim", "Key": num, "Val": kind})
    for suffix in ("keys", "say", "keys2"):
        value = keys.get(suffix, "")
        if value:
            await ami.action("DBPut", {"Family": "sim", "Key": f"{num}-{suffix}", "Val": value})
        else:
            with contextlib.suppress(AMIActionError):  # nothing there to delete
                await ami.action("DBDel", {"Family": "sim", "Key": f"{num}-{suffix}"})


def around_now(hours_before: int = 1, hours_after: int = 2) -> Calendar:
    """A calling window open now on a UTC clock, closed twelve hours away from it."""
    hour = datetime.now(UTC).hour
    ranges = []
    start, end = hour - hours_before, hour + hours_after
    if start < 0:
        ranges += [f"{start + 24:02d}:00-24:00"]
        start = 0
    if end > 24:
        ranges += [f"00:00-{end - 24:02d}:00"]
        end = 24
    ranges.append(f"{start:02d}:00-{end:02d}:00")
    return Calendar(timezone="UTC", weekly={d: sorted(ranges) for d in WEEKDAYS})


def settings(**overrides: Any) -> CampaignSettings:
    rules = CampaignRules(
        window=around_now(),
        legal=Calendar(timezone="UTC", weekly={d: ["00:00-24:00"] for d in WEEKDAYS}),
        retries={
            "busy": RetryRule(delay_minutes=15, max_attempts=3),
            "no_answer": RetryRule(delay_minutes=120, max_attempts=3),
            "machine": RetryRule(delay_minutes=240, max_attempts=2),
            "failed": RetryRule(delay_minutes=30, max_attempts=3),
        },
    )
    values: dict[str, Any] = {
        "rules": rules,
        "concurrency": 10,
        "ring_seconds": 5,
        "followup_queue": "new_clients",
    }
    return CampaignSettings(**{**values, **overrides})


async def make_client(server: Server, num: str, manager: str | None = None) -> int:
    async with server.db.sessions() as session, session.begin():
        if manager is not None and await session.get(Agent, manager) is None:
            session.add(Agent(id=manager, name=f"Manager {manager}", role=AgentRole.MANAGER))
            await session.flush()
        client = Client(
            external_id=f"c{num}", name=f"Client {num}", language="en", assigned_manager_id=manager
        )
        session.add(client)
        await session.flush()
        return client.id


async def contacts_of(server: Server, campaign_id: int) -> dict[str, CampaignContact]:
    async with server.db.sessions() as session:
        rows = await session.scalars(
            select(CampaignContact).where(CampaignContact.campaign_id == campaign_id)
        )
        return {r.number: r for r in rows}


async def calls_to(server: Server, num: str) -> list[Call]:
    async with server.db.sessions() as session:
        rows = await session.scalars(
            select(Call).where(Call.called_number == num).order_by(Call.started_at)
        )
        return list(rows)


async def answers_of(server: Server, call_id: str) -> dict[str, SurveyAnswer]:
    async with server.db.sessions() as session:
        rows = await session.scalars(select(SurveyAnswer).where(SurveyAnswer.call_id == call_id))
        return {a.question_key: a for a in rows}


async def api(server: Server, method: str, path: str, body: Any = None) -> tuple[int, Any]:
    token = (server.data_dir / "api-token").read_text().strip()
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method, server.url + path, json=body, headers={"Authorization": f"Bearer {token}"}
        ) as resp,
    ):
        return resp.status, await resp.json()


# Keys: "w" is half a second. The person waits for AMD (about 3 s) and the prompt to start.
CONSENT = "wwwwww1"
NEXT = "wwww"


async def test_campaign_surveys_people_detects_machines_and_retries_by_rule(
    server: Server, ami: AMIClient
) -> None:
    store = CampaignStore(server.db.sessions)
    stored = await active_survey(server.db.sessions, "nps")
    assert stored is not None
    promoter, detractor, machine, busy, silent, barred, asleep = (number() for _ in range(7))
    await simulate(ami, promoter, "human", keys=f"{CONSENT}{NEXT}9{NEXT}1")
    # A detractor: 3, then a key skips the "why?" prompt to the tone, and they speak.
    await simulate(
        ami, detractor, "human", keys=f"{CONSENT}{NEXT}3{NEXT}5", say="hello-world", keys2="ww1"
    )
    await simulate(ami, machine, "machine")
    await simulate(ami, busy, "busy")
    await simulate(ami, silent, "noanswer")
    await simulate(ami, barred, "human", keys=f"{CONSENT}{NEXT}9")
    await simulate(ami, asleep, "human", keys=f"{CONSENT}{NEXT}9")
    detractor_client = await make_client(server, detractor, manager=f"mgr-{detractor[-4:]}")
    promoter_client = await make_client(server, promoter)
    async with server.db.sessions() as session, session.begin():
        session.add(DoNotCall(number=barred, reason="asked not to be called"))
    campaign_id, count = await store.create(
        f"nps-{promoter[-6:]}",
        stored.id,
        settings(),
        [
            NewContact(promoter, promoter_client, segment="active", timezone="UTC"),
            NewContact(detractor, detractor_client, segment="new", timezone="UTC"),
            NewContact(machine, timezone="UTC"),
            NewContact(busy, timezone="UTC"),
            NewContact(silent, timezone="UTC"),
            NewContact(barred, timezone="UTC"),
            # Twelve hours ahead: the window is closed there now.
            NewContact(asleep, timezone="Etc/GMT-12"),
        ],
    )
    assert count == 7
    status, body = await api(server, "POST", f"/api/campaigns/{campaign_id}/start")
    assert status == 200, body
    assert body["status"] == "running"

    async def first_pass() -> dict[str, CampaignContact] | None:
        rows = await contacts_of(server, campaign_id)
        settled = all(r.status != "dialling" for r in rows.values())
        tried = all(r.attempts >= 1 for n, r in rows.items() if n not in (barred, asleep))
        return rows if settled and tried else None

    rows = await wait_until(first_pass, timeout=90, message="every contact tried once")

    # The promoter and the detractor took the survey; their answers are stored.
    for num in (promoter, detractor):
        assert rows[num].status == "done" and rows[num].last_outcome == "completed", num

    async def survey_calls_closed() -> tuple[Call, Call] | None:
        # The contact is done the moment the survey ends; the detractor's follow-up is written
        # after that, and the call's row is closed only at the hang-up that comes later still.
        (promoter_call,) = await calls_to(server, promoter)
        (detractor_call,) = await calls_to(server, detractor)
        closed = promoter_call.ended_at is not None and detractor_call.ended_at is not None
        return (promoter_call, detractor_call) if closed else None

    promoter_call, detractor_call = await wait_until(
        survey_calls_closed, timeout=30, message="the survey calls' hang-ups"
    )
    assert promoter_call.survey_status == detractor_call.survey_status == "completed"
    assert promoter_call.survey_id == stored.id and promoter_call.client_id == promoter_client
    given = await answers_of(server, promoter_call.id)
    assert given["recommend"].value_int == 9 and given["may_call_back"].value_int == 1
    assert "why" not in given  # only detractors are asked why
    given_d = await answers_of(server, detractor_call.id)
    assert given_d["recommend"].value_int == 3
    assert given_d["why"].recording == f"survey-{detractor_call.id}-why"
    assert given_d["recommend"].client_id == detractor_client
    assert given_d["recommend"].survey_id == stored.id
    assert nps([given["recommend"].value_int, given_d["recommend"].value_int]).score == 0.0

    # The detractor's manager gets a callback task, the promoter none.
    async with server.db.sessions() as session:
        callbacks = list(
            await session.scalars(
                select(Callback).where(Callback.call_id.in_([promoter_call.id, detractor_call.id]))
            )
        )
        amd = await session.scalar(
            select(CallEvent)
            .join(Call)
            .where(Call.called_number == machine, CallEvent.kind == "amd")
        )
    assert [(c.call_id, c.reason, c.assigned_agent_id) for c in callbacks] == [
        (detractor_call.id, "nps_detractor", f"mgr-{detractor[-4:]}")
    ]

    # The machine was detected on its audio and hung up on; tried again in 4 hours.
    assert amd is not None and amd.data["status"] == "MACHINE"
    now = datetime.now(UTC)
    for num, outcome, minutes in (
        (machine, "machine", 240),
        (busy, "busy", 15),
        (silent, "no_answer", 120),
    ):
        row = rows[num]
        assert (row.status, row.last_outcome, row.attempts) == ("pending", outcome, 1), num
        assert row.next_attempt_at is not None
        due_in = (row.next_attempt_at - now).total_seconds() / 60
        assert minutes - 3 < due_in <= minutes, (num, due_in)
    (machine_call,) = await calls_to(server, machine)
    assert machine_call.outcome == "machine" and machine_call.survey_status is None

    # Nobody on the do-not-call list, nobody outside their window was called.
    assert (rows[barred].status, rows[barred].last_outcome) == ("skipped", "do_not_call")
    assert rows[asleep].status == "pending" and rows[asleep].attempts == 0
    assert rows[asleep].next_attempt_at is not None and rows[asleep].next_attempt_at > now
    assert await calls_to(server, barred) == [] and await calls_to(server, asleep) == []

    # The busy client's retry comes due: dialled again as attempt 2, and this time declines.
    await simulate(ami, busy, "human", keys=f"{CONSENT[:-1]}2")
    async with server.db.sessions() as session, session.begin():
        row = await session.get(CampaignContact, rows[busy].id)
        assert row is not None
        row.next_attempt_at = datetime.now(UTC) - timedelta(seconds=1)

    async def busy_done() -> CampaignContact | None:
        row = (await contacts_of(server, campaign_id))[busy]
        return row if row.status == "done" else None

    row = await wait_until(busy_done, timeout=40, message="the retried client")
    assert (row.attempts, row.last_outcome) == (2, "refused")

    async def busy_calls_ended() -> list[Call] | None:
        calls = await calls_to(server, busy)
        return calls if all(c.ended_at is not None for c in calls) else None

    calls = await wait_until(busy_calls_ended, timeout=20, message="the goodbye")
    assert [c.outcome for c in calls] == ["busy", "refused"]

    # The campaign's report: one promoter and one detractor, by segment.
    status, report = await api(
        server, "GET", f"/api/surveys/nps/report?campaign=nps-{promoter[-6:]}"
    )
    assert status == 200, report
    overall = report["nps"]
    assert (overall["promoters"], overall["detractors"], overall["nps"]) == (1, 1, 0.0)
    assert report["by_segment"]["active"]["promoters"] == 1
    assert report["by_segment"]["new"]["detractors"] == 1
    # Five contacts dialled, two reached a person and both completed.
    assert report["rates"]["contacts"] == 5 and report["rates"]["completed"] == 2

    status, body = await api(server, "GET", f"/api/campaigns/{campaign_id}")
    assert status == 200 and body["progress"]["contacts"] == 7
    assert body["progress"]["by_status"]["done"] == 3
    status, body = await api(server, "POST", f"/api/campaigns/{campaign_id}/stop")
    assert status == 200 and body["status"] == CampaignStatus.STOPPED.value
    status, body = await api(server, "POST", f"/api/campaigns/{campaign_id}/start")
    assert status == 409 and body["error_id"] == "bad_campaign_state"


async def test_a_crash_mid_campaign_loses_and_duplicates_nothing(
    server: Server, ami: AMIClient
) -> None:
    store = CampaignStore(server.db.sessions)
    stored = await active_survey(server.db.sessions, "nps")
    assert stored is not None
    people = [number() for _ in range(3)]
    ringing = number()
    for num in people:
        # Consent and a 9, then a long pause before the last answer: the crash falls there.
        # A key pressed while `serve` is still starting is lost, as it would be for anyone:
        # they press it again 6 s on, while the question still waits (6 s, 2 re-prompts).
        await simulate(
            ami, num, "human", keys=f"{CONSENT}{NEXT}9", keys2="w" * 24 + "1" + "w" * 12 + "1"
        )
    await simulate(ami, ringing, "noanswer")
    campaign_id, _ = await store.create(
        f"crash-{people[0][-6:]}",
        stored.id,
        # The unanswered one still rings when serve is back, however long its restart.
        settings(ring_seconds=45),
        [NewContact(n, timezone="UTC") for n in [*people, ringing]],
    )
    await store.set_status(campaign_id, CampaignStatus.RUNNING)

    async def all_scored() -> bool:
        for num in people:
            calls = await calls_to(server, num)
            if len(calls) != 1 or "recommend" not in await answers_of(server, calls[0].id):
                return False
        return True

    await wait_until(all_scored, timeout=60, message="three scores")
    await server.crash_and_restart()

    async def finished() -> dict[str, CampaignContact] | None:
        rows = await contacts_of(server, campaign_id)
        return rows if all(r.status != "dialling" for r in rows.values()) else None

    rows = await wait_until(finished, timeout=90, message="the campaign after the restart")
    for num in people:
        (call,) = await calls_to(server, num)  # called once, never again
        assert (rows[num].status, rows[num].attempts) == ("done", 1), num
        given = await answers_of(server, call.id)
        assert given["recommend"].value_int == 9, num  # kept across the crash
        assert given["may_call_back"].value_int == 1, num  # answered after it
        assert call.survey_status == "completed"
    assert (rows[ringing].attempts, rows[ringing].last_outcome) == (1, "no_answer")
    assert len(await calls_to(server, ringing)) == 1
    lines = server.log_lines()
    assert any(line.get("event") == "survey_call_resumed" for line in lines)

    async def hung_up() -> bool:
        # The survey's goodbye plays after the answers are stored: wait for the channels to
        # go, or the other database's run of this test (its campaign and contacts numbered
        # alike, so the same channel ids) finds them still up.
        calls = [c for num in [*people, ringing] for c in await calls_to(server, num)]
        return all(c.ended_at is not None for c in calls)

    await wait_until(hung_up, timeout=30, message="the campaign's calls hung up")


async def test_a_machine_hears_a_short_message_when_the_campaign_says_so(
    server: Server, ami: AMIClient
) -> None:
    store = CampaignStore(server.db.sessions)
    stored = await active_survey(server.db.sessions, "nps")
    assert stored is not None
    machine = number()
    await simulate(ami, machine, "machine")
    campaign_id, _ = await store.create(
        f"message-{machine[-6:]}",
        stored.id,
        settings(machine_action="message", machine_prompt="machine_message"),
        [NewContact(machine, timezone="UTC", language="en")],
    )
    await store.set_status(campaign_id, CampaignStatus.RUNNING)

    async def ended() -> Call | None:
        calls = await calls_to(server, machine)
        return calls[0] if calls and calls[0].ended_at is not None else None

    call = await wait_until(ended, timeout=40, message="the machine's call")
    assert call.outcome == "machine" and call.survey_status is None
    kinds = await server.event_kinds(call.id)
    assert "machine_message" in kinds
    # AMD takes about 2.5 s; the message (about 6 s) is played to its end before we hang up.
    assert call.talk_seconds is not None and call.talk_seconds > 5
    row = (await contacts_of(server, campaign_id))[machine]
    assert (row.status, row.last_outcome) == ("pending", "machine")
