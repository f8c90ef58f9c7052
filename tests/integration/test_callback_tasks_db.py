"""Callback tasks worked by the agent dialler, on SQLite and PostgreSQL: the feeder makes a
queue's callbacks campaign and copies each due task into it once (whoever runs it, however
often); the claim keeps to the due time, the queue's hours, the do-not-call list and whose own
task it is; two claimers never take one task; every attempt's end and the disposition land on
the task in the contact's transaction."""

from __future__ import annotations

import asyncio
import contextlib
import re
import shlex
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import select

from core.callbacks import FEED_AHEAD, callback_screenpop
from core.dialler import AgentDisposition, CampaignKind
from core.enums import AgentRole
from core.surveys.campaign import Outcome
from dialplan.model import WEEKDAYS
from models.callback_tasks import feed_callbacks
from models.callbacks import add_callback
from models.dialler import Claimed, DiallerStore, RunningAgentCampaign
from models.tables import (
    Agent,
    Call,
    Callback,
    CallbackStatus,
    Campaign,
    CampaignContact,
    CampaignStatus,
    Client,
    Direction,
    DoNotCall,
    FlowVersion,
    Queue,
    QueueMember,
)
from tests.conftest import Database
from tests.integration.test_loans_db import centrala

# A Wednesday morning: inside the legal calling hours the callbacks campaign keeps.
T = datetime(2026, 12, 2, 10, 0, tzinfo=UTC)
QUEUE = "info"


async def _task(
    database: Database,
    number: str,
    *,
    due: datetime = T,
    reason: str = "after_hours",
    queue: str = QUEUE,
    agent: str | None = None,
    client_id: int | None = None,
) -> int:
    async with database.sessions() as session, session.begin():
        task = add_callback(
            session,
            call_id=None,
            client_id=client_id,
            number=number,
            reason=reason,
            queue=queue,
            assigned_agent_id=agent,
            due_at=due,
        )
        await session.flush()
        return task.id


async def _campaign(database: Database, queue: str = QUEUE) -> RunningAgentCampaign:
    running = [
        c for c in await DiallerStore(database.sessions).running() if c.settings.queue == queue
    ]
    assert len(running) == 1 and running[0].kind is CampaignKind.CALLBACKS
    assert running[0].name == f"callbacks-{queue}"
    return running[0]


async def _contacts(database: Database) -> list[CampaignContact]:
    async with database.sessions() as session:
        return list(await session.scalars(select(CampaignContact).order_by(CampaignContact.id)))


async def _get_task(database: Database, task_id: int) -> Callback:
    async with database.sessions() as session:
        task = await session.get(Callback, task_id)
    assert task is not None
    return task


async def _agent(database: Database, agent_id: str, queue: str = QUEUE) -> None:
    async with database.sessions() as session, session.begin():
        if await session.get(Queue, queue) is None:
            session.add(Queue(id=queue, name=queue, settings={}))
        session.add(Agent(id=agent_id, name=agent_id, role=AgentRole.AGENT))
        await session.flush()
        session.add(QueueMember(queue_id=queue, agent_id=agent_id))


async def _call(database: Database, c: Claimed) -> str:
    async with database.sessions() as session, session.begin():
        call = Call(
            channel_id=f"dialler-{c.campaign_id}-{c.contact_id}-{c.attempt}",
            direction=Direction.OUTBOUND,
            handler="dialler",
            called_number=c.number,
            started_at=T,
            campaign_id=c.campaign_id,
        )
        session.add(call)
        await session.flush()
        call_id = call.id
    await DiallerStore(database.sessions).set_call(c.contact_id, call_id)
    return call_id


async def test_the_feeder_makes_the_campaign_and_copies_each_due_task_once(
    database: Database,
) -> None:
    due = await _task(database, "+38761100001")
    soon = await _task(database, "+38761100002", due=T + FEED_AHEAD - timedelta(minutes=1))
    later = await _task(database, "+38761100003", due=T + timedelta(days=1))
    twice = await _task(database, "+38761100001", reason="callback_requested")  # same caller
    await _task(database, "+38761100004", queue="sales")

    first = await feed_callbacks(database.sessions, T, queues=[QUEUE])
    assert first.campaigns_made == ["callbacks-info"] and first.fed == {QUEUE: 2}
    # Again, and from two `serve`s at once: nothing more.
    again = await asyncio.gather(
        feed_callbacks(database.sessions, T, queues=[QUEUE]),
        feed_callbacks(database.sessions, T, queues=[QUEUE]),
    )
    assert [r.fed for r in again] == [{}, {}]
    campaign = await _campaign(database)
    rows = await _contacts(database)
    assert [(r.callback_id, r.next_attempt_at) for r in rows] == [
        (due, T),
        (soon, T + FEED_AHEAD - timedelta(minutes=1)),
    ]
    assert all(r.campaign_id == campaign.id and r.status == "pending" for r in rows)
    assert later not in {r.callback_id for r in rows}
    # The same caller's second request waits while the first is open: nobody rung twice.
    assert twice not in {r.callback_id for r in rows}
    shown = callback_screenpop(rows[0].purpose, None)
    assert shown is not None and shown["reason"] == "after_hours"

    # A stopped campaign is not fed (nor made again); a finished one starts again.
    async with database.sessions() as session, session.begin():
        row = await session.get(Campaign, campaign.id)
        assert row is not None
        row.status = CampaignStatus.STOPPED
    stopped = await feed_callbacks(database.sessions, T + timedelta(days=1))
    assert stopped.left == {QUEUE: "campaign callbacks-info stopped"}
    assert "callbacks-info" not in stopped.campaigns_made
    assert stopped.campaigns_made == ["callbacks-sales"]  # every queue, without a filter
    async with database.sessions() as session, session.begin():
        row = await session.get(Campaign, campaign.id)
        assert row is not None
        row.status = CampaignStatus.FINISHED
    resumed = await feed_callbacks(database.sessions, T + timedelta(days=1), queues=[QUEUE])
    assert resumed.fed == {QUEUE: 1}  # the later task (the same caller's waits on)
    async with database.sessions() as session:
        row = await session.get(Campaign, campaign.id)
        assert row is not None and row.status is CampaignStatus.RUNNING


async def test_the_claim_keeps_to_due_time_queue_hours_and_do_not_call(
    database: Database,
) -> None:
    await _task(database, "+38761200001", due=T + timedelta(minutes=3))
    barred = await _task(database, "+38761200002")
    async with database.sessions() as session, session.begin():
        session.add(DoNotCall(number="+38761200002", reason="asked"))
    await feed_callbacks(database.sessions, T)
    campaign = await _campaign(database)
    store = DiallerStore(database.sessions)

    assert await store.claim(campaign, T, 5) == []  # not due yet; the barred one not dialled
    task = await _get_task(database, barred)
    assert (task.status, task.closed_reason, task.attempts) == (
        CallbackStatus.CANCELLED,
        "do_not_call",
        0,
    )

    # The queue closed by its calendar (the info-line flow's): nothing, though it is due.
    closed = {d: ["00:00-00:01"] for d in WEEKDAYS}
    async with database.sessions() as session, session.begin():
        session.add(Queue(id=QUEUE, name=QUEUE, settings={"calendar": "office"}))
        session.add(
            FlowVersion(
                name="infoline",
                version=1,
                checksum="x" * 64,
                active=True,
                definition={"calendars": {"office": {"timezone": "UTC", "weekly": closed}}},
            )
        )
    at = T + timedelta(minutes=3)
    assert await store.claim(campaign, at, 5) == []
    async with database.sessions() as session, session.begin():
        flow = await session.scalar(select(FlowVersion))
        assert flow is not None
        flow.definition = {
            "calendars": {
                "office": {"timezone": "UTC", "weekly": {d: ["09:00-17:00"] for d in WEEKDAYS}}
            }
        }
    (claimed,) = await store.claim(campaign, at, 5)
    assert claimed.number == "+38761200001" and claimed.attempt == 1
    assert claimed.purpose == "Callback: called after hours"


async def test_two_claimers_never_take_one_task(database: Database) -> None:
    numbers = [f"+387613{i:05d}" for i in range(30)]
    for n in numbers:
        await _task(database, n)
    await feed_callbacks(database.sessions, T)
    campaign = await _campaign(database)
    one, other = DiallerStore(database.sessions), DiallerStore(database.sessions)
    taken: list[int] = []
    for _ in range(10):
        batches = await asyncio.gather(*(s.claim(campaign, T, 4) for s in (one, other) * 3))
        taken += [c.contact_id for batch in batches for c in batch]
        if not any(batches):
            break
    assert len(taken) == len(set(taken)) == 30


async def test_an_own_task_is_claimed_only_for_its_agent(database: Database) -> None:
    await _agent(database, "amra")
    await _agent(database, "dino", queue="sales")
    async with database.sessions() as session, session.begin():
        session.add(Agent(id="zlata", name="zlata", role=AgentRole.AGENT))  # in no queue
        managed = Client(external_id="K1", name="Key client", assigned_manager_id="amra")
        other = Client(external_id="K2", name="Their client", assigned_manager_id="dino")
        session.add_all([managed, other])
        await session.flush()
        ids = managed.id, other.id
    await _task(database, "+38761400001", agent="zlata")  # assigned: theirs
    await _task(database, "+38761400002", client_id=ids[0])  # the manager works the queue
    await _task(database, "+38761400003", client_id=ids[1])  # a manager of another queue
    await feed_callbacks(database.sessions, T)
    rows = {r.number: r.callback_agent_id for r in await _contacts(database)}
    assert rows == {"+38761400001": "zlata", "+38761400002": "amra", "+38761400003": None}
    campaign = await _campaign(database)
    store = DiallerStore(database.sessions)
    assert [c.number for c in await store.claim(campaign, T, 5)] == ["+38761400003"]
    assert await store.claim(campaign, T, 5, agent_id="dino") == []
    (own,) = await store.claim(campaign, T, 5, agent_id="amra")
    assert own.number == "+38761400002"
    # Skipped by the agent from their desk: the task is cancelled with their reason.
    await store.skip(campaign.id, own, "called us already", T)
    task = await _get_task(database, rows_task(await _contacts(database), own.contact_id))
    assert task.status is CallbackStatus.CANCELLED
    assert task.closed_reason == "skipped: called us already"


def rows_task(rows: list[CampaignContact], contact_id: int) -> int:
    (task_id,) = [r.callback_id for r in rows if r.id == contact_id]
    assert task_id is not None
    return task_id


async def test_each_attempt_and_the_disposition_land_on_the_task(database: Database) -> None:
    task_id = await _task(database, "+38761500001")
    served_too = await _task(database, "+38761500001", reason="callback_requested")
    tomorrow = await _task(database, "+38761500001", due=T + timedelta(days=1))
    await _agent(database, "amra")
    await feed_callbacks(database.sessions, T)
    campaign = await _campaign(database)
    store = DiallerStore(database.sessions)

    (first,) = await store.claim(campaign, T, 1)
    call_1 = await _call(database, first)
    await store.finish(campaign, first, Outcome.NO_ANSWER, T, call_1)
    await store.finish(campaign, first, Outcome.NO_ANSWER, T, call_1)  # a repeat: no change
    task = await _get_task(database, task_id)
    assert (task.status, task.attempts, task.last_outcome, task.last_call_id) == (
        CallbackStatus.OPEN,
        1,
        "no_answer",
        call_1,
    )
    assert task.next_attempt_at == T + timedelta(minutes=30)
    assert await store.claim(campaign, T + timedelta(minutes=29), 1) == []

    at = T + timedelta(minutes=30)
    (second,) = await store.claim(campaign, at, 1)
    assert second.attempt == 2
    call_2 = await _call(database, second)
    await store.finish(campaign, second, Outcome.CONNECTED, at, call_2, agent_id="amra")
    task = await _get_task(database, task_id)
    assert (task.status, task.attempts, task.last_outcome) == (CallbackStatus.OPEN, 2, "connected")
    await store.dispose(
        call_2, "amra", AgentDisposition.INTERESTED, due=None, note="rang back", now=at
    )
    task = await _get_task(database, task_id)
    assert (task.status, task.closed_reason, task.last_call_id, task.closed_at) == (
        CallbackStatus.DONE,
        "interested",
        call_2,
        at,
    )
    # Their other request already due was served by this call; tomorrow's stays.
    assert (await _get_task(database, served_too)).status is CallbackStatus.DONE
    assert (await _get_task(database, tomorrow)).status is CallbackStatus.OPEN
    async with database.sessions() as session:
        call = await session.get(Call, call_2)
    assert call is not None and call.disposition == "interested" and call.campaign_id == campaign.id


async def test_attempts_exhausted_cancel_the_task(database: Database) -> None:
    task_id = await _task(database, "+38761600001")
    await feed_callbacks(database.sessions, T)
    campaign = await _campaign(database)
    store = DiallerStore(database.sessions)
    at = T
    for _ in range(campaign.settings.rules.retries["busy"].max_attempts):
        (c,) = await store.claim(campaign, at, 1)
        await store.finish(campaign, c, Outcome.BUSY, at, await _call(database, c))
        at += timedelta(minutes=10)
    task = await _get_task(database, task_id)
    assert (task.status, task.attempts, task.closed_reason) == (
        CallbackStatus.CANCELLED,
        4,
        "max_attempts",
    )
    assert await store.claim(campaign, at + timedelta(days=1), 1) == []


def readme_callback_commands() -> list[list[str]]:
    """The commands of the README's callbacks block, split as a shell would."""
    readme = Path(__file__).resolve().parents[2] / "README.md"
    text = readme.read_text().split("### Callbacks: the dialler works the callback tasks", 1)[1]
    block = re.search(r"```sh\n(.*?)```", text, re.S)
    assert block is not None, "the callbacks' command block is gone from the README"
    lines = [line.split("  #")[0].strip() for line in block.group(1).splitlines()]
    return [shlex.split(line)[1:] for line in lines if line.startswith("centrala ")]


async def test_the_readme_callback_commands(database: Database) -> None:
    await _task(database, "+38761700001", queue="sales")
    await feed_callbacks(database.sessions, T)
    status, pause, stop = readme_callback_commands()
    code, out, err = await centrala(database, *status)
    assert code == 0, err
    assert "callbacks-sales (id 1): running, 0/1 contacts finished" in out

    code, out, err = await centrala(database, *pause)
    assert code == 0 and "campaign callbacks-sales: paused" in out, err
    await _task(database, "+38761700002", queue="sales")
    fed = await feed_callbacks(database.sessions, T)
    assert fed.fed == {"sales": 1}  # paused: still fed, not dialled
    campaign = await DiallerStore(database.sessions).campaigns.find("callbacks-sales")
    assert campaign.status is CampaignStatus.PAUSED

    code, out, err = await centrala(database, *stop)
    assert code == 0 and "campaign callbacks-sales: stopped" in out, err
    await _task(database, "+38761700003", queue="sales")
    left = await feed_callbacks(database.sessions, T)
    assert left.fed == {} and left.campaigns_made == []
    campaign = await DiallerStore(database.sessions).campaigns.find("callbacks-sales")
    assert campaign.status is CampaignStatus.STOPPED


async def test_serve_feeds_the_callbacks_on_its_schedule(database: Database) -> None:
    """`serve`'s scheduled feeder (``callbacks_feed_seconds``): its first run at start makes
    the queue's campaign with the task due now; a task added later is fed on a later run."""
    from aiohttp import web

    from centrala.service import SESSIONS, SETTINGS, callbacks_ctx
    from centrala.settings import Settings
    from tests.support import wait_until

    now = datetime.now(UTC)
    first = await _task(database, "+38761100011", due=now - timedelta(minutes=1))
    app = web.Application()
    app[SETTINGS] = Settings(callbacks_feed_seconds=0.2)
    app[SESSIONS] = database.sessions
    ctx = callbacks_ctx(app)
    await anext(ctx)
    try:

        async def fed(task_id: int) -> bool:
            return task_id in {r.callback_id for r in await _contacts(database)}

        await wait_until(lambda: fed(first), timeout=10, message="the first run, at start")
        later = await _task(database, "+38761100012", due=now)
        await wait_until(lambda: fed(later), timeout=10, message="a later run")
        async with database.sessions() as session:
            names = list(await session.scalars(select(Campaign.name)))
        assert names == ["callbacks-info"]
    finally:
        with contextlib.suppress(StopAsyncIteration):
            await anext(ctx)
