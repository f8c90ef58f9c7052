"""Over 500 lines: the agent campaign aggregate's one store (claims, attempts, dispositions,
figures), each a transaction on the same rows; split, the guarded updates would drift apart.

Agent campaigns in the database: claiming contacts to dial, an attempt's end and its
disposition with what they set off (do-not-call, callback tasks), and the abandonment counts
the cap is read from. A thin adapter: the decisions are ``core.dialler``'s and the survey
rules' it reuses (``core.surveys.campaign``).

Claims take due contacts with ``FOR UPDATE SKIP LOCKED`` on PostgreSQL (two `centrala
serve` dialling one campaign each skip what the other holds) and mark them with a guarded
UPDATE (``WHERE status = 'pending' AND attempts = n``), which is also SQLite's whole answer
(it has one writer at a time), so nobody is called twice. A callbacks campaign's claim also
keeps to its queue's hours and gives an agent's own task to that agent only, and every change
of its contact is written to the callback task in the same transaction
(``models.callback_tasks``).

May import: ``core``, ``models``.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.callbacks import callback_screenpop
from core.dialler import (
    AbandonCount,
    AgentCampaignSettings,
    AgentDisposition,
    CampaignKind,
    Consequences,
    after_dial,
    after_disposition,
)
from core.procedures import screenpop_purpose
from core.surveys.campaign import (
    Contact,
    ContactStatus,
    Dial,
    Outcome,
    Skip,
    calling_timezones,
    history_to_json,
    next_action_in_zones,
)
from models.callback_tasks import claimable, queue_open, sync_task
from models.callbacks import add_callback
from models.campaigns import CampaignError, CampaignStore, NewContact, _contact
from models.procedures import recheck_tasks
from models.tables import (
    Call,
    CallEvent,
    Campaign,
    CampaignContact,
    CampaignStatus,
    DoNotCall,
    Interaction,
    ProcedureTask,
)


@dataclass(frozen=True)
class RunningAgentCampaign:
    id: int
    name: str
    kind: CampaignKind
    settings: AgentCampaignSettings


@dataclass(frozen=True)
class Claimed:
    """A contact claimed for one attempt: everything the call and the agent's screen need."""

    campaign_id: int
    contact_id: int
    attempt: int
    number: str
    client_id: int | None
    name: str | None
    language: str | None
    task_id: int | None = None  # a procedural call's task (re-checked before dialling)
    purpose: str | None = None  # its purpose, in words (core.procedures), for the screen-pop
    script: str | None = None  # what the agent says, in the client's language


LIVE_OUTCOMES = (Outcome.CONNECTED.value, Outcome.ABANDONED.value)


class DiallerStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], node: str | None = None) -> None:
        self.sessions = sessions
        self.campaigns = CampaignStore(sessions, node)
        self.node = node  # as CampaignStore.node

    async def create(
        self,
        name: str,
        kind: CampaignKind,
        settings: AgentCampaignSettings,
        contacts: Iterable[NewContact],
    ) -> tuple[int, int]:
        contacts = list(contacts)
        if not contacts:
            raise CampaignError("no_contacts", "nobody to call: the list or segment is empty", 422)
        return await self.campaigns.create(name, None, settings, contacts, kind=kind.value)

    async def running(self) -> list[RunningAgentCampaign]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Campaign).where(
                    Campaign.status == CampaignStatus.RUNNING, Campaign.kind != "survey"
                )
            )
            return [
                RunningAgentCampaign(
                    r.id,
                    r.name,
                    CampaignKind(r.kind),
                    AgentCampaignSettings.model_validate(r.settings),
                )
                for r in rows
            ]

    async def claim(
        self,
        campaign: RunningAgentCampaign,
        now: datetime,
        wanted: int,
        zones: Callable[[str], tuple[str, ...]] | None = None,
        agent_id: str | None = None,
    ) -> list[Claimed]:
        """Up to ``wanted`` due contacts, claimed for their next attempt (status dialling),
        each checked against the rules first: a contact outside its calling window is put
        off to the window's opening, one that may never be called is closed with the
        reason. ``zones``: the time zones a number may be in, for numbers without a client
        zone (the adapter knows the numbering plan)."""
        kept: list[Claimed] = []
        for _ in range(5):  # again while re-checked tasks drop out, a few rounds at most
            claimed = await self._claim_once(campaign, now, wanted - len(kept), zones, agent_id)
            still = await self._still_needed(claimed, now)
            kept += still
            if len(still) == len(claimed) or len(kept) >= wanted:
                break
        return kept

    async def _claim_once(
        self,
        campaign: RunningAgentCampaign,
        now: datetime,
        wanted: int,
        zones: Callable[[str], tuple[str, ...]] | None,
        agent_id: str | None,
    ) -> list[Claimed]:
        if wanted <= 0:
            return []
        rules = campaign.settings.rules.model_copy(update={"segments": None})
        claimed: list[Claimed] = []
        callbacks = campaign.kind is CampaignKind.CALLBACKS
        async with self.sessions() as session, session.begin():
            # A callback is dialled in its queue's hours only (the campaign's one queue).
            if callbacks and not await queue_open(session, campaign.settings.queue, now):
                return []
            rows = list(
                await session.scalars(
                    select(CampaignContact)
                    .where(
                        CampaignContact.campaign_id == campaign.id,
                        CampaignContact.status == ContactStatus.PENDING.value,
                        or_(
                            CampaignContact.next_attempt_at.is_(None),
                            CampaignContact.next_attempt_at <= now,
                        ),
                        *(claimable(agent_id) if callbacks else ()),
                    )
                    .order_by(
                        CampaignContact.next_attempt_at.is_not(None),
                        CampaignContact.next_attempt_at,
                        CampaignContact.id,
                    )
                    .limit(wanted * 3)
                    .with_for_update(skip_locked=True)
                )
            )
            if not rows:
                return []
            facts = await self.campaigns._facts(session, rows, now)
            do_not_call = await self._do_not_call(session, [r.number for r in rows])
            for row in rows:
                if len(claimed) >= wanted:
                    break
                contact = _contact(row, facts[row.id])
                candidates = calling_timezones(contact.client, zones(row.number) if zones else ())
                action = next_action_in_zones(contact, now, rules, candidates, do_not_call)
                if isinstance(action, Dial) and action.at > now:
                    row.next_attempt_at = action.at
                    await sync_task(session, row, now)
                elif isinstance(action, Dial):
                    done = await session.execute(
                        update(CampaignContact)
                        .where(
                            CampaignContact.id == row.id,
                            CampaignContact.status == ContactStatus.PENDING.value,
                            CampaignContact.attempts == action.attempt - 1,
                        )
                        .values(
                            status=ContactStatus.DIALLING.value, agent_id=agent_id, node=self.node
                        )
                        .execution_options(synchronize_session=False)
                    )
                    if getattr(done, "rowcount", 0):
                        shown = _screenpop(row.purpose, contact.client.language)
                        claimed.append(
                            Claimed(
                                campaign.id,
                                row.id,
                                action.attempt,
                                row.number,
                                row.client_id,
                                row.name,
                                contact.client.language,
                                row.task_id,
                                shown["purpose"] if shown else None,
                                shown["script"] if shown else None,
                            )
                        )
                elif isinstance(action, Skip) and action.final:
                    row.status = (
                        ContactStatus.EXHAUSTED.value
                        if action.reason == "max_attempts"
                        else ContactStatus.SKIPPED.value
                    )
                    row.last_outcome = action.reason
                    row.next_attempt_at = None
                    await sync_task(session, row, now)
        return claimed

    async def _still_needed(self, claimed: list[Claimed], now: datetime) -> list[Claimed]:
        """A procedural task is checked again right before its call: one whose cause went
        away (the payment matched since, the document renewed, the loan closed) is not
        called, and its contact is closed with that reason."""
        tasks = [c.task_id for c in claimed if c.task_id is not None]
        if not tasks:
            return claimed
        reasons = await recheck_tasks(self.sessions, tasks, now)
        keep = []
        for c in claimed:
            reason = reasons.get(c.task_id) if c.task_id is not None else None
            if reason is None:
                keep.append(c)
                continue
            async with self.sessions() as session, session.begin():
                await session.execute(
                    update(CampaignContact)
                    .where(
                        CampaignContact.id == c.contact_id,
                        CampaignContact.status == ContactStatus.DIALLING.value,
                        CampaignContact.attempts == c.attempt - 1,
                    )
                    .values(
                        status=ContactStatus.SKIPPED.value,
                        last_outcome=reason[:40],
                        agent_id=None,
                    )
                )
        return keep

    async def _do_not_call(
        self, session: AsyncSession, numbers: list[str]
    ) -> dict[str, datetime | None]:
        rows = await session.execute(
            select(DoNotCall.number, DoNotCall.expires_at).where(DoNotCall.number.in_(numbers))
        )
        return {number: expires for number, expires in rows}

    async def set_call(self, contact_id: int, call_id: str) -> None:
        await self.campaigns.set_call(contact_id, call_id)

    async def finish(
        self,
        campaign: RunningAgentCampaign,
        claimed: Claimed,
        outcome: Outcome,
        now: datetime,
        call_id: str | None,
        agent_id: str | None = None,
    ) -> Contact | None:
        """An attempt's end, applied once (a repeat changes nothing), with its consequences
        in the same transaction: an abandoned number is on the do-not-call list for 72 hours
        and has a callback task in the campaign's queue."""
        async with self.sessions() as session, session.begin():
            row = await session.get(CampaignContact, claimed.contact_id, with_for_update=True)
            if row is None or row.campaign_id != campaign.id:
                return None
            before = _contact(row, (await self.campaigns._facts(session, [row], now))[row.id])
            after, consequences = after_dial(
                before, claimed.attempt, outcome, now, campaign.settings.rules, call_id
            )
            if after is before:
                return before
            _store_contact(row, after, call_id)
            row.agent_id = agent_id if outcome is Outcome.CONNECTED else None
            await sync_task(session, row, now)
            if outcome is Outcome.CONNECTED and row.task_id is not None:
                # The procedural call was made: its task is done (the agent's disposition
                # says how it went), so no later campaign calls the client for it again.
                await session.execute(
                    update(ProcedureTask)
                    .where(ProcedureTask.id == row.task_id, ProcedureTask.status == "open")
                    .values(status="closed", closed_reason="called", closed_at=now)
                )
            await _consequences(session, consequences, row, call_id, campaign, now)
            return after

    async def dispose(
        self,
        call_id: str,
        agent_id: str,
        disposition: AgentDisposition,
        *,
        due: datetime | None,
        note: str | None,
        now: datetime,
    ) -> None:
        """The agent's disposition of an agent-campaign call: on the call row, in the
        client's history, on the contact, with a callback task or a do-not-call entry when it
        asks for one. Raises LookupError for a call that is not an agent's campaign call."""
        async with self.sessions() as session, session.begin():
            call = await session.get(Call, call_id)
            if call is None or call.campaign_id is None:
                raise LookupError(call_id)
            campaign = await session.get(Campaign, call.campaign_id)
            row = await session.scalar(
                select(CampaignContact)
                .where(CampaignContact.last_call_id == call_id)
                .with_for_update()
            )
            if campaign is None or row is None:
                raise LookupError(call_id)
            settings = AgentCampaignSettings.model_validate(campaign.settings)
            before = _contact(row, (await self.campaigns._facts(session, [row], now))[row.id])
            after, consequences = after_disposition(before, disposition, agent_id, due)
            _store_contact(row, after, None)
            await sync_task(session, row, now, disposition)
            call.disposition = disposition.value
            session.add(
                Interaction(
                    client_id=call.client_id,
                    call_id=call_id,
                    agent_id=agent_id,
                    channel="phone",
                    category=_CATEGORY.get(campaign.kind, "sales"),
                    note=f"[{disposition.value}] {note or ''}".strip(),
                )
            )
            session.add(
                CallEvent(
                    call_id=call_id,
                    at=now,
                    kind="disposition",
                    data={"agent_id": agent_id, "code": disposition.value},
                )
            )
            running = RunningAgentCampaign(
                campaign.id, campaign.name, CampaignKind(campaign.kind), settings
            )
            await _consequences(session, consequences, row, call_id, running, now)

    async def skip(
        self, campaign_id: int, claimed: Claimed, reason: str, now: datetime | None = None
    ) -> None:
        """A previewed contact the agent chose not to call: closed in this campaign with
        the agent's reason (only the attempt it was claimed for); a callback's task with it."""
        async with self.sessions() as session, session.begin():
            done = await session.execute(
                update(CampaignContact)
                .where(
                    CampaignContact.id == claimed.contact_id,
                    CampaignContact.campaign_id == campaign_id,
                    CampaignContact.status == ContactStatus.DIALLING.value,
                    CampaignContact.attempts == claimed.attempt - 1,
                )
                .values(
                    status=ContactStatus.SKIPPED.value,
                    last_outcome=f"skipped: {reason}"[:40],
                    agent_id=None,
                )
                .execution_options(synchronize_session=False)
            )
            if getattr(done, "rowcount", 0):
                row = await session.get(CampaignContact, claimed.contact_id)
                if row is not None:
                    await session.refresh(row)
                    await sync_task(session, row, now or datetime.now().astimezone())

    async def under_way(
        self,
    ) -> list[tuple[RunningAgentCampaign, Claimed, str | None, dict[str, Any] | None]]:
        """Every agent-campaign attempt under way, with its call and the call's live state
        (and, under ``row``, the agent and time the call row says it was connected): what a
        restarted dialler must find again on the PBX."""
        async with self.sessions() as session:
            # Dialling: the attempt is not applied yet. Or its call still open: applied at
            # the answer (connected, abandoned), but the talk or the message goes on.
            rows = await session.execute(
                select(CampaignContact, Campaign, Call.live_state, Call.agent_id, Call.connected_at)
                .join(Campaign, Campaign.id == CampaignContact.campaign_id)
                .outerjoin(Call, Call.id == CampaignContact.last_call_id)
                .where(
                    Campaign.kind != "survey",
                    or_(
                        CampaignContact.status == ContactStatus.DIALLING.value,
                        and_(Call.id.is_not(None), Call.ended_at.is_(None)),
                    ),
                    # Another node's attempts are not ours to find again (nor to close).
                    true() if self.node is None else CampaignContact.node == self.node,
                )
            )
            out = []
            for row, campaign, state, call_agent, connected_at in rows:
                dialling = row.status == ContactStatus.DIALLING.value
                running = RunningAgentCampaign(
                    campaign.id,
                    campaign.name,
                    CampaignKind(campaign.kind),
                    AgentCampaignSettings.model_validate(campaign.settings),
                )
                shown = _screenpop(row.purpose, row.language)
                claimed = Claimed(
                    campaign.id,
                    row.id,
                    row.attempts + 1 if dialling else row.attempts,
                    row.number,
                    row.client_id,
                    row.name,
                    row.language,
                    row.task_id,
                    shown["purpose"] if shown else None,
                    shown["script"] if shown else None,
                )
                if call_agent is not None and connected_at is not None:
                    # The row's own word that an agent took the call: the live state is
                    # written behind it, and a kill between the two must not lose it.
                    state = {
                        **(state or {}),
                        "row": {"agent_id": call_agent, "connected_at": connected_at.isoformat()},
                    }
                out.append((running, claimed, row.last_call_id, state))
            return out

    # ---- figures ------------------------------------------------------------------------------

    async def abandon_count(self, campaign_id: int, since: datetime | None) -> AbandonCount:
        async with self.sessions() as session:
            query = (
                select(Call.outcome, func.count())
                .where(Call.campaign_id == campaign_id)
                .group_by(Call.outcome)
            )
            if since is not None:
                query = query.where(Call.started_at >= since)
            counts = {outcome: n for outcome, n in await session.execute(query)}
        connected = counts.get(Outcome.CONNECTED.value, 0)
        abandoned = counts.get(Outcome.ABANDONED.value, 0)
        return AbandonCount(
            live=connected + abandoned,
            abandoned=abandoned,
            machines=counts.get(Outcome.MACHINE.value, 0),
        )

    async def live_answers(self, campaign_id: int, since: datetime) -> list[tuple[datetime, bool]]:
        """(answered at, abandoned) of each live answer since ``since``, in time order: the
        rolling windows' worst is read from these."""
        async with self.sessions() as session:
            rows = await session.execute(
                select(Call.started_at, Call.outcome)
                .where(
                    Call.campaign_id == campaign_id,
                    Call.started_at >= since,
                    Call.outcome.in_(LIVE_OUTCOMES),
                )
                .order_by(Call.started_at)
            )
            return [(at, outcome == Outcome.ABANDONED.value) for at, outcome in rows]

    async def figures(self, campaign_id: int, now: datetime) -> dict[str, Any]:
        """The status screen's figures: dials, live answers, connected, abandoned (whole run,
        worst rolling 24 hours, 30 days, last hour) and dispositions."""
        settings_rate = 0.0
        async with self.sessions() as session:
            campaign = await session.get(Campaign, campaign_id)
            if campaign is None:
                raise CampaignError("unknown_campaign", f"no campaign {campaign_id}", 404)
            if campaign.kind != "survey":
                settings_rate = AgentCampaignSettings.model_validate(
                    campaign.settings
                ).amd_false_positive_rate
            outcomes = Counter(
                {
                    str(o): n
                    for o, n in await session.execute(
                        select(Call.outcome, func.count())
                        .where(Call.campaign_id == campaign_id)
                        .group_by(Call.outcome)
                    )
                }
            )
            dispositions = {
                str(d): n
                for d, n in await session.execute(
                    select(Call.disposition, func.count())
                    .where(Call.campaign_id == campaign_id, Call.disposition.is_not(None))
                    .group_by(Call.disposition)
                )
            }
        windows = {
            "whole_run": None,
            "last_30_days": now - timedelta(days=30),
            "last_24_hours": now - timedelta(hours=24),
            "last_hour": now - timedelta(hours=1),
        }
        abandonment: dict[str, Any] = {}
        for label, since in windows.items():
            count = await self.abandon_count(campaign_id, since)
            rate = count.rate(settings_rate)
            abandonment[label] = {
                "live": count.live,
                "abandoned": count.abandoned,
                "rate_percent": None if rate is None else round(rate * 100, 2),
            }
        worst = worst_rolling(await self.live_answers(campaign_id, now - timedelta(days=30)))
        abandonment["worst_rolling_24_hours_percent"] = (
            None if worst is None else round(worst * 100, 2)
        )
        dials = sum(outcomes.values())
        return {
            "dials": dials,
            "in_progress": outcomes.get("None", 0),
            "live_answers": outcomes.get(Outcome.CONNECTED.value, 0)
            + outcomes.get(Outcome.ABANDONED.value, 0),
            "connected": outcomes.get(Outcome.CONNECTED.value, 0),
            "abandoned": outcomes.get(Outcome.ABANDONED.value, 0),
            "outcomes": {k: v for k, v in outcomes.items() if k != "None"},
            "abandonment": abandonment,
            "dispositions": dispositions,
        }


def worst_rolling(
    answers: list[tuple[datetime, bool]], window: timedelta = timedelta(hours=24)
) -> float | None:
    """The highest abandonment rate over any ``window`` ending at a live answer (a window
    with its own first answer counts from there). ``answers``: (at, abandoned), in time order."""
    worst: float | None = None
    start = 0
    abandoned = 0
    for end, (at, was_abandoned) in enumerate(answers):
        abandoned += was_abandoned
        while answers[start][0] <= at - window:
            abandoned -= answers[start][1]
            start += 1
        rate = abandoned / (end - start + 1)
        worst = rate if worst is None else max(worst, rate)
    return worst


_CATEGORY = {"procedural": "procedural", "callbacks": "callback"}


def _screenpop(purpose: str | None, language: str | None) -> dict[str, str] | None:
    """A procedural task's purpose and script, or a callback's reason."""
    return screenpop_purpose(purpose, language) or callback_screenpop(purpose, language)


def _store_contact(row: CampaignContact, after: Contact, call_id: str | None) -> None:
    row.status = after.status.value
    row.attempts = after.attempts
    row.next_attempt_at = after.next_attempt_at
    row.last_outcome = after.last_outcome
    row.attempt_history = history_to_json(after.history)
    if call_id is not None:
        row.last_call_id = call_id


async def _consequences(
    session: AsyncSession,
    c: Consequences,
    row: CampaignContact,
    call_id: str | None,
    campaign: RunningAgentCampaign,
    now: datetime,
) -> None:
    if c.do_not_call_forever or c.do_not_call_until is not None:
        entry = await session.get(DoNotCall, row.number, with_for_update=True)
        until = None if c.do_not_call_forever else c.do_not_call_until
        if entry is None:
            session.add(DoNotCall(number=row.number, reason=c.reason, expires_at=until))
        elif entry.expires_at is not None and (until is None or until > entry.expires_at):
            # Never shorten an entry: a permanent one stays permanent.
            entry.expires_at, entry.reason = until, c.reason
    if c.callback_due is not None:
        add_callback(
            session,
            call_id=call_id,
            client_id=row.client_id,
            number=row.number,
            reason=c.reason or "campaign",
            queue=campaign.settings.queue,
            assigned_agent_id=c.callback_agent,
            due_at=c.callback_due,
            event="callback_scheduled" if call_id else None,
            event_data={"reason": c.reason, "due": c.callback_due.isoformat()},
            at=now,
        )
