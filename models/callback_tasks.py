"""Callback tasks worked by the agent dialler: the feeder that copies due open tasks into their
queue's standing callbacks campaign (made when first needed), the task kept in step with its
contact in the contact's own transaction, and the queue's hours read for the claim. A thin
adapter: the decisions are ``core.callbacks``'s.

The feeder may run in several ``serve``s at once: tasks are read ``FOR UPDATE SKIP LOCKED``
on PostgreSQL, and ``campaign_contacts.callback_id`` is unique, so a task is never a contact
twice (a clash rolls the round back; the next one finds the task taken).

May import: ``core``, ``models``.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

import structlog
from sqlalchemy import exists, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker
from sqlalchemy.sql.elements import ColumnElement

from core.callbacks import (
    FEED_AHEAD,
    TaskStatus,
    callback_purpose,
    callback_settings,
    campaign_name,
    offered_to,
    task_after,
)
from core.dialler import AgentDisposition
from core.surveys.campaign import ContactStatus
from dialplan.hours import is_open
from dialplan.model import Calendar
from models.tables import (
    Callback,
    CallbackStatus,
    Campaign,
    CampaignContact,
    CampaignStatus,
    Client,
    FlowVersion,
    Queue,
    QueueMember,
)

log = structlog.get_logger(__name__)

FLOW = "infoline"  # the flow whose calendars the queues' hours name
OPEN_CONTACT = (ContactStatus.PENDING.value, ContactStatus.DIALLING.value)


@dataclass
class FeedResult:
    fed: dict[str, int] = field(default_factory=dict)  # queue -> tasks added
    campaigns_made: list[str] = field(default_factory=list)
    left: dict[str, str] = field(default_factory=dict)  # queue -> why its tasks wait

    def summary(self) -> str:
        parts = [f"{q}: {n}" for q, n in sorted(self.fed.items())]
        parts += [f"{q}: {why}" for q, why in sorted(self.left.items())]
        return ", ".join(parts) or "nothing due"


async def feed_callbacks(
    sessions: async_sessionmaker[AsyncSession],
    now: datetime,
    queues: Collection[str] | None = None,
) -> FeedResult:
    """Every open task of a queue (``queues``: only those) due within ``FEED_AHEAD`` and in no
    campaign yet becomes a contact of the queue's callbacks campaign, dialled from its due
    time. The campaign is made (running) when a queue first has one, started again when it
    had finished; one an operator paused gets the contacts and waits for them; one they
    stopped gets nothing: it is not restarted behind their back. A number with a contact
    still open waits for it (nobody is rung twice at once)."""
    result = FeedResult()
    try:
        async with sessions() as session, session.begin():
            await _feed(session, now, queues, result)
    except IntegrityError:
        # Another serve fed the same tasks (or made the campaign) at the same moment.
        log.info("callbacks_feed_clashed")
        return FeedResult()
    return result


async def _feed(
    session: AsyncSession, now: datetime, queues: Collection[str] | None, result: FeedResult
) -> None:
    query = (
        select(Callback)
        .where(
            Callback.status == CallbackStatus.OPEN,
            Callback.queue.is_not(None),
            Callback.due_at <= now + FEED_AHEAD,
            ~exists().where(CampaignContact.callback_id == Callback.id),
        )
        .order_by(Callback.due_at, Callback.id)
        .limit(500)
        .with_for_update(skip_locked=True)
    )
    if queues is not None:
        query = query.where(Callback.queue.in_(list(queues)))
    tasks = list(await session.scalars(query))
    by_queue: dict[str, list[Callback]] = defaultdict(list)
    for task in tasks:
        by_queue[str(task.queue)].append(task)
    for queue, waiting in by_queue.items():
        campaign = await _campaign_for(session, queue, result)
        if campaign is None:
            continue
        members = set(
            await session.scalars(select(QueueMember.agent_id).where(QueueMember.queue_id == queue))
        )
        ringing = set(
            await session.scalars(
                select(CampaignContact.number).where(
                    CampaignContact.campaign_id == campaign.id,
                    CampaignContact.status.in_(OPEN_CONTACT),
                )
            )
        )
        for task in waiting:
            if task.number in ringing:
                continue
            ringing.add(task.number)
            client = await session.get(Client, task.client_id) if task.client_id else None
            session.add(
                CampaignContact(
                    campaign_id=campaign.id,
                    client_id=task.client_id,
                    number=task.number,
                    status=ContactStatus.PENDING.value,
                    attempts=0,
                    attempt_history=[],
                    next_attempt_at=task.next_attempt_at or task.due_at,
                    name=client.name if client else None,
                    language=client.language if client else None,
                    timezone=client.timezone if client else None,
                    purpose=callback_purpose(task.reason),
                    callback_id=task.id,
                    callback_agent_id=offered_to(
                        task.assigned_agent_id,
                        client.assigned_manager_id if client else None,
                        members,
                    ),
                )
            )
            result.fed[queue] = result.fed.get(queue, 0) + 1
        # Running, written with the contacts: a dialler that finished the campaign since it
        # was read above (nothing was open then) does not leave these in a finished one.
        await session.flush()
        await session.execute(
            update(Campaign)
            .where(
                Campaign.id == campaign.id,
                Campaign.status.in_([CampaignStatus.RUNNING, CampaignStatus.FINISHED]),
            )
            .values(status=CampaignStatus.RUNNING)
            .execution_options(synchronize_session=False)
        )
    await session.flush()


async def _campaign_for(session: AsyncSession, queue: str, result: FeedResult) -> Campaign | None:
    name = campaign_name(queue)
    campaign = await session.scalar(select(Campaign).where(Campaign.name == name))
    if campaign is None:
        campaign = Campaign(
            name=name,
            kind="callbacks",
            status=CampaignStatus.RUNNING,
            settings=callback_settings(queue).model_dump(mode="json"),
        )
        session.add(campaign)
        await session.flush()
        result.campaigns_made.append(name)
        log.info("callbacks_campaign_made", campaign=name)
    elif campaign.status is CampaignStatus.STOPPED:
        result.left[queue] = f"campaign {name} stopped"
        return None
    elif campaign.status is CampaignStatus.FINISHED:
        campaign.status = CampaignStatus.RUNNING  # nobody stopped it: it ran out of work
    return campaign


# ---- the task in step with its contact ------------------------------------------------------


async def sync_task(
    session: AsyncSession,
    row: CampaignContact,
    now: datetime,
    disposition: AgentDisposition | None = None,
) -> None:
    """The contact's callback task after the contact changed (an attempt's end, a claim's
    check, a skip, the agent's disposition), in the same transaction. A task closed meanwhile
    (done by another call, cancelled by a supervisor) stays as it is."""
    if row.callback_id is None:
        return
    change = task_after(
        ContactStatus(row.status),
        row.attempts,
        row.last_outcome,
        row.next_attempt_at,
        disposition,
    )
    if change is None:
        return
    task = await session.get(Callback, row.callback_id, with_for_update=True)
    if task is None or task.status != CallbackStatus.OPEN:
        return
    task.attempts = change.attempts
    task.last_outcome = change.last_outcome
    task.next_attempt_at = change.next_attempt_at
    if row.last_call_id is not None:
        task.last_call_id = row.last_call_id
    if change.status is TaskStatus.OPEN:
        return
    task.status = CallbackStatus(change.status.value)
    task.closed_reason = change.closed_reason
    task.closed_at = now
    if change.status is TaskStatus.DONE:
        # The caller is served: their other requests to this queue already due go with it
        # (later ones, for another day, stay).
        await session.execute(
            update(Callback)
            .where(
                Callback.number == task.number,
                Callback.queue == task.queue,
                Callback.status == CallbackStatus.OPEN,
                Callback.id != task.id,
                Callback.due_at <= now,
            )
            .values(
                status=CallbackStatus.DONE,
                closed_reason=f"served by callback {task.id}"[:80],
                closed_at=now,
            )
            .execution_options(synchronize_session=False)
        )


# ---- the claim ----------------------------------------------------------------------------


def claimable(agent_id: str | None) -> list[ColumnElement[bool]]:
    """A callbacks campaign's claim conditions: the task still open (a supervisor may have
    closed it), and an agent's own task only for that agent (``agent_id``, in preview),
    the others for the queue (``agent_id`` None)."""
    still_open = exists().where(
        Callback.id == CampaignContact.callback_id, Callback.status == CallbackStatus.OPEN
    )
    own = (
        CampaignContact.callback_agent_id.is_(None)
        if agent_id is None
        else CampaignContact.callback_agent_id == agent_id
    )
    return [CampaignContact.callback_id.is_(None) | still_open, own]


async def queue_open(session: AsyncSession, queue: str, now: datetime) -> bool:
    """Whether ``queue`` is open now by its calendar (the active info-line flow's calendar it
    names); a queue without one, or one not in the database, is always open."""
    row = await session.get(Queue, queue)
    name = (row.settings or {}).get("calendar") if row is not None else None
    if not name:
        return True
    definition = await session.scalar(
        select(FlowVersion.definition).where(FlowVersion.name == FLOW, FlowVersion.active)
    )
    raw = ((definition or {}).get("calendars") or {}).get(name)
    if raw is None:
        return True  # named but not defined: the flow's validator would have said so
    return is_open(Calendar.model_validate(raw), now)


async def agents_with_own_callbacks(
    sessions: async_sessionmaker[AsyncSession],
    campaign_id: int,
    agent_ids: Collection[str],
    now: datetime,
) -> set[str]:
    """Which of ``agent_ids`` have an own callback of the campaign due now: one small read a
    tick, so only they are claimed for."""
    if not agent_ids:
        return set()
    async with sessions() as session:
        found = await session.scalars(
            select(CampaignContact.callback_agent_id)
            .where(
                CampaignContact.campaign_id == campaign_id,
                CampaignContact.status == ContactStatus.PENDING.value,
                CampaignContact.callback_agent_id.in_(list(agent_ids)),
                (CampaignContact.next_attempt_at.is_(None))
                | (CampaignContact.next_attempt_at <= now),
            )
            .distinct()
        )
        return {a for a in found if a is not None}


async def release_claim(
    sessions: async_sessionmaker[AsyncSession], contact_id: int, attempt: int
) -> bool:
    """A contact claimed for ``attempt`` and never dialled (its agent left with it on their
    desk) back to pending, as it was: no attempt counted, the task untouched."""
    async with sessions() as session, session.begin():
        done = await session.execute(
            update(CampaignContact)
            .where(
                CampaignContact.id == contact_id,
                CampaignContact.status == ContactStatus.DIALLING.value,
                CampaignContact.attempts == attempt - 1,
            )
            .values(status=ContactStatus.PENDING.value, agent_id=None)
            .execution_options(synchronize_session=False)
        )
        return bool(getattr(done, "rowcount", 0))
