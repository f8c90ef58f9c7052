"""Over 500 lines: the campaign aggregate's one store (campaign, contacts, attempts, claims).

Survey campaigns in the database: the campaign, its contacts and every attempt's state.

The dialler (``ari_app.campaigns``) asks the pure rules (``core.surveys.campaign``) what to do and
writes the answer here. Every state change is a guarded UPDATE (``WHERE status = ... AND
attempts = ...``), so two ticks, a replayed event or a restarted process can never claim a
contact twice or apply an attempt's result twice.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from sqlalchemy import func, or_, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import DomainError
from core.ids import MAX_ROW_ID, row_id
from core.surveys.campaign import (
    CampaignSettings,
    ClientFacts,
    Contact,
    ContactStatus,
    Outcome,
    after_attempt,
    history_from_json,
    history_to_json,
)
from models.segments import SURVEYED_STATUSES, last_surveyed
from models.tables import (
    Call,
    Campaign,
    CampaignContact,
    CampaignStatus,
    Client,
    DoNotCall,
)

if TYPE_CHECKING:
    from core.dialler import AgentCampaignSettings
    from core.surveys.contacts import ContactRow


class CampaignError(DomainError):
    """A campaign command that cannot be done; ``error_id`` is stable for API clients."""

    def __init__(self, error_id: str, message: str, status: int = 409, **details: Any) -> None:
        super().__init__(message, error_id=error_id, status=status, details=details)


@dataclass(frozen=True)
class NewContact:
    number: str  # E.164
    client_id: int | None = None
    segment: str | None = None
    name: str | None = None
    language: str | None = None
    timezone: str | None = None
    # A procedural call (agent campaigns): its procedure_tasks row, re-checked right before
    # dialling, and its purpose (core.procedures.ProcedureKind) for the screen-pop.
    task_id: int | None = None
    purpose: str | None = None


@dataclass(frozen=True)
class RunningCampaign:
    id: int
    name: str
    survey_id: int
    settings: CampaignSettings


@dataclass(frozen=True)
class DueContact:
    contact: Contact
    campaign_id: int
    name: str | None


def _contact(row: CampaignContact, facts: ClientFacts) -> Contact:
    return Contact(
        contact_id=row.id,
        client=facts,
        status=ContactStatus(row.status),
        attempts=row.attempts,
        next_attempt_at=row.next_attempt_at,
        last_outcome=row.last_outcome,
        history=history_from_json(row.attempt_history or []),
    )


class CampaignStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], node: str | None = None) -> None:
        self.sessions = sessions
        # The Asterisk node this store's dialler calls from (several nodes): written on each
        # claim; a restarted dialler finds again only its own node's attempts.
        self.node = node

    # ---- campaigns ------------------------------------------------------------------------

    async def create(
        self,
        name: str,
        survey_id: int | None,
        settings: CampaignSettings | AgentCampaignSettings,
        contacts: Iterable[NewContact],
        *,
        kind: str = "survey",
    ) -> tuple[int, int]:
        """A draft campaign with its contacts (a number once per campaign). Returns (id,
        contacts). ``kind``: a survey, or an agent campaign's (core.dialler.CampaignKind)."""
        rows = {c.number: c for c in contacts}  # the first of a duplicated number stays
        async with self.sessions() as session:
            try:
                async with session.begin():
                    campaign = Campaign(
                        name=name,
                        kind=kind,
                        status=CampaignStatus.DRAFT,
                        survey_id=survey_id,
                        settings=settings.model_dump(mode="json"),
                    )
                    session.add(campaign)
                    await session.flush()
                    session.add_all(
                        CampaignContact(
                            campaign_id=campaign.id,
                            client_id=c.client_id,
                            number=c.number,
                            status=ContactStatus.PENDING.value,
                            attempts=0,
                            attempt_history=[],
                            segment=c.segment,
                            name=c.name,
                            language=c.language,
                            timezone=c.timezone,
                            task_id=c.task_id,
                            purpose=c.purpose,
                        )
                        for c in rows.values()
                    )
            except IntegrityError as exc:
                raise CampaignError("campaign_exists", f"a campaign {name!r} exists") from exc
            return campaign.id, len(rows)

    async def find(self, name_or_id: str | int) -> Campaign:
        async with self.sessions() as session:
            if isinstance(name_or_id, int) or str(name_or_id).isdigit():
                campaign_id = name_or_id if isinstance(name_or_id, int) else row_id(name_or_id)
                valid = campaign_id is not None and 0 < campaign_id <= MAX_ROW_ID
                row = await session.get(Campaign, campaign_id) if valid else None
            else:
                row = await session.scalar(select(Campaign).where(Campaign.name == name_or_id))
        if row is None:
            raise CampaignError("unknown_campaign", f"no campaign {name_or_id!r}", 404)
        return row

    async def all(self) -> list[Campaign]:
        async with self.sessions() as session:
            return list(await session.scalars(select(Campaign).order_by(Campaign.id)))

    async def set_status(self, name_or_id: str | int, wanted: CampaignStatus) -> Campaign:
        """start (draft/paused → running), pause (running → paused), stop (→ stopped, for
        good). Calls under way finish their survey either way."""
        allowed = {
            CampaignStatus.RUNNING: {CampaignStatus.DRAFT, CampaignStatus.PAUSED},
            CampaignStatus.PAUSED: {CampaignStatus.RUNNING},
            CampaignStatus.STOPPED: {
                CampaignStatus.DRAFT,
                CampaignStatus.RUNNING,
                CampaignStatus.PAUSED,
            },
        }[wanted]
        campaign = await self.find(name_or_id)
        if campaign.status == wanted:
            return campaign
        if campaign.status not in allowed:
            raise CampaignError(
                "bad_campaign_state",
                f"campaign {campaign.name!r} is {campaign.status.value}, cannot become "
                f"{wanted.value}",
            )
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(Campaign)
                .where(Campaign.id == campaign.id, Campaign.status == campaign.status)
                .values(status=wanted)
            )
        return await self.find(campaign.id)

    async def running(self) -> list[RunningCampaign]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Campaign).where(
                    Campaign.status == CampaignStatus.RUNNING, Campaign.kind == "survey"
                )
            )
            return [
                RunningCampaign(
                    r.id, r.name, r.survey_id or 0, CampaignSettings.model_validate(r.settings)
                )
                for r in rows
            ]

    async def finish_if_done(self, campaign_id: int) -> bool:
        """A running campaign with nobody left to call or on the line is finished, by one
        conditional write after the campaign's row is locked: a count read first and the
        update written after could finish a campaign the callbacks' feeder gave a contact in
        between (seen in CI: the contact pending in a finished campaign)."""
        still_open = (
            select(CampaignContact.id)
            .where(
                CampaignContact.campaign_id == campaign_id,
                CampaignContact.status.in_(
                    [ContactStatus.PENDING.value, ContactStatus.DIALLING.value]
                ),
            )
            .exists()
        )
        async with self.sessions() as session, session.begin():
            # PostgreSQL: wait for a feeder holding the campaign's row (it writes it with its
            # contacts), so the statement below sees what it committed.
            await session.execute(
                select(Campaign.id).where(Campaign.id == campaign_id).with_for_update()
            )
            result = await session.execute(
                update(Campaign)
                .where(
                    Campaign.id == campaign_id,
                    Campaign.status == CampaignStatus.RUNNING,
                    ~still_open,
                )
                .values(status=CampaignStatus.FINISHED)
                .execution_options(synchronize_session=False)
            )
            return bool(getattr(result, "rowcount", 0))

    # ---- contacts -------------------------------------------------------------------------

    async def dialling(self, campaign_id: int) -> int:
        async with self.sessions() as session:
            return int(
                await session.scalar(
                    select(func.count())
                    .select_from(CampaignContact)
                    .where(
                        CampaignContact.campaign_id == campaign_id,
                        CampaignContact.status == ContactStatus.DIALLING.value,
                    )
                )
                or 0
            )

    async def due(self, campaign_id: int, now: datetime, limit: int) -> list[DueContact]:
        """Pending contacts whose time has come, the longest waiting first, with what the
        rules need to know about their clients."""
        async with self.sessions() as session:
            rows = list(
                await session.scalars(
                    select(CampaignContact)
                    .where(
                        CampaignContact.campaign_id == campaign_id,
                        CampaignContact.status == ContactStatus.PENDING.value,
                        or_(
                            CampaignContact.next_attempt_at.is_(None),
                            CampaignContact.next_attempt_at <= now,
                        ),
                    )
                    .order_by(
                        CampaignContact.next_attempt_at.is_not(None),
                        CampaignContact.next_attempt_at,
                        CampaignContact.id,
                    )
                    .limit(limit)
                )
            )
            if not rows:
                return []
            facts = await self._facts(session, rows, now)
        return [DueContact(_contact(r, facts[r.id]), campaign_id, r.name) for r in rows]

    async def _facts(
        self, session: AsyncSession, rows: list[CampaignContact], now: datetime
    ) -> dict[int, ClientFacts]:
        """The rules' facts per contact row: its own language and zone, else its client's;
        last surveyed by client (``models.segments``) or by this number, whichever is later."""
        client_ids = {r.client_id for r in rows if r.client_id is not None}
        numbers = {r.number for r in rows}
        clients: dict[int, Client] = {}
        surveyed_client: dict[int, datetime] = {}
        if client_ids:
            for c in await session.scalars(select(Client).where(Client.id.in_(client_ids))):
                clients[c.id] = c
            surveyed_client = await last_surveyed(session, sorted(client_ids), now)
        surveyed_number = {
            number: at
            for number, at in await session.execute(
                select(Call.called_number, func.max(Call.started_at))
                .where(Call.called_number.in_(numbers), Call.survey_status.in_(SURVEYED_STATUSES))
                .group_by(Call.called_number)
            )
        }
        out = {}
        for r in rows:
            client = clients.get(r.client_id) if r.client_id is not None else None
            seen = [
                t
                for t in (
                    surveyed_number.get(r.number),
                    surveyed_client.get(r.client_id) if r.client_id is not None else None,
                )
                if t is not None
            ]
            out[r.id] = ClientFacts(
                client_id=r.client_id,
                number=r.number,
                timezone=r.timezone or (client.timezone if client is not None else None),
                last_surveyed_at=max(seen) if seen else None,
                assigned_manager=client.assigned_manager_id if client is not None else None,
                language=r.language or (client.language if client is not None else None),
            )
        return out

    async def do_not_call(self) -> dict[str, datetime | None]:
        async with self.sessions() as session:
            rows = await session.execute(select(DoNotCall.number, DoNotCall.expires_at))
            return {number: expires for number, expires in rows}

    async def claim(self, contact_id: int, attempt: int) -> bool:
        """Mark the contact as being dialled for ``attempt``; False when someone else did, or
        the contact changed meanwhile (then it is not dialled)."""
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                update(CampaignContact)
                .where(
                    CampaignContact.id == contact_id,
                    CampaignContact.status == ContactStatus.PENDING.value,
                    CampaignContact.attempts == attempt - 1,
                )
                .values(status=ContactStatus.DIALLING.value, node=self.node)
            )
            return bool(getattr(result, "rowcount", 0))

    async def defer(self, contact_id: int, at: datetime) -> None:
        """Not now: the contact's next calling window opens at ``at``."""
        await self._update_pending(contact_id, next_attempt_at=at)

    async def close_contact(self, contact_id: int, status: ContactStatus, reason: str) -> None:
        """Never call this contact in this campaign (do-not-call, surveyed recently, ...)."""
        await self._update_pending(
            contact_id, status=status.value, last_outcome=reason, next_attempt_at=None
        )

    async def _update_pending(self, contact_id: int, **values: Any) -> None:
        """Change a contact still waiting to be called (not one being dialled or done)."""
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(CampaignContact)
                .where(
                    CampaignContact.id == contact_id,
                    CampaignContact.status == ContactStatus.PENDING.value,
                )
                .values(**values)
            )

    async def set_call(self, contact_id: int, call_id: str) -> None:
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(CampaignContact)
                .where(CampaignContact.id == contact_id)
                .values(last_call_id=call_id)
            )

    async def apply(
        self,
        campaign_id: int,
        contact_id: int,
        attempt: int,
        outcome: Outcome,
        now: datetime,
        call_id: str | None,
    ) -> Contact | None:
        """Apply an attempt's result with the campaign's retry rules (idempotent: an
        attempt already applied changes nothing). None when the contact is unknown."""
        async with self.sessions() as session, session.begin():
            return await apply_outcome(
                session, campaign_id, contact_id, attempt, outcome, now, call_id
            )

    async def attempt(
        self, campaign_id: int, contact_id: int, attempt: int
    ) -> tuple[RunningCampaign, DueContact, str] | None:
        """The campaign, contact and call of an attempt under way (to adopt its call after a
        restart); None when that attempt is not the one under way."""
        async with self.sessions() as session:
            campaign = await session.get(Campaign, campaign_id)
            row = await session.get(CampaignContact, contact_id)
            if (
                campaign is None
                or row is None
                or row.campaign_id != campaign_id
                or row.status != ContactStatus.DIALLING.value
                or row.attempts != attempt - 1
                or row.last_call_id is None
            ):
                return None
            facts = await self._facts(session, [row], datetime.now(UTC))
        running = RunningCampaign(
            campaign.id,
            campaign.name,
            campaign.survey_id or 0,
            CampaignSettings.model_validate(campaign.settings),
        )
        return (
            running,
            DueContact(_contact(row, facts[row.id]), campaign_id, row.name),
            row.last_call_id,
        )

    async def dialling_contacts(self) -> list[tuple[int, int, int, str | None]]:
        """(campaign, contact, attempt, call id) of every attempt under way: what a restarted
        dialler must find again on the PBX."""
        async with self.sessions() as session:
            rows = await session.execute(
                select(
                    CampaignContact.campaign_id,
                    CampaignContact.id,
                    CampaignContact.attempts,
                    CampaignContact.last_call_id,
                )
                .join(Campaign, Campaign.id == CampaignContact.campaign_id)
                .where(
                    CampaignContact.status == ContactStatus.DIALLING.value,
                    Campaign.kind == "survey",
                    true() if self.node is None else CampaignContact.node == self.node,
                )
            )
            return [(c, i, a + 1, call) for c, i, a, call in rows]

    async def progress(self, campaign_id: int) -> dict[str, Any]:
        """Counts for the status screen: contacts by state and by last outcome."""
        async with self.sessions() as session:
            by_status = Counter(
                {
                    s: int(n)
                    for s, n in await session.execute(
                        select(CampaignContact.status, func.count())
                        .where(CampaignContact.campaign_id == campaign_id)
                        .group_by(CampaignContact.status)
                    )
                }
            )
            by_outcome = {
                (o or "none"): int(n)
                for o, n in await session.execute(
                    select(CampaignContact.last_outcome, func.count())
                    .where(CampaignContact.campaign_id == campaign_id)
                    .group_by(CampaignContact.last_outcome)
                )
            }
            attempts = int(
                await session.scalar(
                    select(func.coalesce(func.sum(CampaignContact.attempts), 0)).where(
                        CampaignContact.campaign_id == campaign_id
                    )
                )
                or 0
            )
            next_call = await session.scalar(
                select(func.min(CampaignContact.next_attempt_at)).where(
                    CampaignContact.campaign_id == campaign_id,
                    CampaignContact.status == ContactStatus.PENDING.value,
                )
            )
        total = sum(by_status.values())
        finished = sum(
            by_status[s.value]
            for s in (
                ContactStatus.DONE,
                ContactStatus.EXHAUSTED,
                ContactStatus.INVALID,
                ContactStatus.SKIPPED,
            )
        )
        # A contact being dialled has its attempt under way: a call, counted now (the
        # attempt's number is written only when its result is).
        in_progress = by_status[ContactStatus.DIALLING.value]
        return {
            "contacts": total,
            "finished": finished,
            "percent_done": round(100 * finished / total, 1) if total else 100.0,
            "attempts": attempts + in_progress,
            "in_progress": in_progress,
            "by_status": dict(sorted(by_status.items())),
            "by_outcome": dict(sorted(by_outcome.items())),
            # The earliest retry or window opening waiting (None: due now, or nobody left).
            "next_call_at": next_call.isoformat() if next_call is not None else None,
        }


async def create_campaign(
    sessions: async_sessionmaker[AsyncSession],
    name: str,
    survey_name: str,
    settings: CampaignSettings,
    rows: Sequence[ContactRow] | None,
    now: datetime,
) -> tuple[int, int]:
    """A draft campaign asking ``survey_name``'s active version: of the contacts in ``rows``
    (an imported list), or else of the clients in ``settings.rules.segments``. Returns (id,
    contacts)."""
    from models.sources import ListSource, SegmentSource, contacts_for
    from models.surveys import active_survey

    stored = await active_survey(sessions, survey_name)
    if stored is None:
        raise CampaignError("unknown_survey", f"no survey {survey_name!r}: `survey apply` it", 404)
    rules = settings.rules
    segments = tuple(rules.segments) if rules.segments is not None else None
    source = (
        ListSource(tuple(rows))
        if rows is not None
        else SegmentSource(segments, rules.segment_rules)
    )
    contacts = await contacts_for(sessions, source, now)
    if not contacts:
        raise CampaignError("no_contacts", "nobody to call: the list or segments are empty", 422)
    return await CampaignStore(sessions).create(name, stored.id, settings, contacts)


async def apply_outcome(
    session: AsyncSession,
    campaign_id: int,
    contact_id: int,
    attempt: int,
    outcome: Outcome,
    now: datetime,
    call_id: str | None,
) -> Contact | None:
    """``CampaignStore.apply`` in the caller's transaction (the call log's, when the
    outcome goes through its ordered writes and the journal)."""
    campaign = await session.get(Campaign, campaign_id)
    row = await session.get(CampaignContact, contact_id, with_for_update=True)
    if campaign is None or row is None or row.campaign_id != campaign_id:
        return None
    settings = CampaignSettings.model_validate(campaign.settings)
    before = _contact(row, ClientFacts(client_id=row.client_id, number=row.number))
    if attempt <= before.attempts:
        return before
    after = after_attempt(before, attempt, outcome, now, settings.rules, call_id)
    row.status = after.status.value
    row.attempts = after.attempts
    row.next_attempt_at = after.next_attempt_at
    row.last_outcome = after.last_outcome
    row.attempt_history = history_to_json(after.history)
    if call_id is not None:
        row.last_call_id = call_id
    await session.flush()
    return after


async def apply_outcome_op(session: AsyncSession, op: dict[str, Any], replay: bool) -> Any:
    """An attempt's outcome from the call log's ordered writes (journaled while the database
    is away); idempotent by attempt number, so a replay changes nothing twice."""
    return await apply_outcome(
        session,
        op["campaign_id"],
        op["contact_id"],
        op["attempt"],
        Outcome(op["outcome"]),
        op["at"],
        op["call_id"],
    )
