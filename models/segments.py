"""The campaign's CRM segment query: ClientFacts read from the tables, and the target list of
a campaign's segments. A thin adapter: which segment a client is in stays pure in
core.surveys.campaign; here are only the queries.

The facts come from three set-based queries (clients with their first phone, loan aggregates,
the last survey call), each a GROUP BY over the whole table or a chunk of ids, merged in
memory: 100 000 clients cost three round trips, not one per client.

Loan activity (for the dormant segment: a loan opened or closed, a matched payment on one of
the client's loans, ``ClientFacts.last_activity_at``) is read only when asked for
(``activity=True``; ``select_targets`` asks when a dormant segment is wanted), inside the
same loan query: the payments' latest per loan joined in, still three round trips.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import func, or_, select, true
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.surveys.campaign import SURVEYED, ClientFacts, Segment, SegmentRules, counted_segment
from models.tables import Call, Client, ClientPhone, Loan, Payment

# The survey calls that count for the frequency cap: someone answered and the survey ran.
SURVEYED_STATUSES = tuple(sorted(outcome.value for outcome in SURVEYED))
_IN_CHUNK = 1000  # ids per IN (...): three queries' worth stays under SQLite's 32766 parameters


@dataclass(frozen=True)
class _LoanFacts:
    first_loan_at: datetime
    open_loans: int
    last_loan_closed_at: datetime | None
    last_activity_at: datetime | None = None


async def client_facts(
    sessions: async_sessionmaker[AsyncSession],
    *,
    client_ids: Collection[int] | None = None,
    now: datetime,
    activity: bool = False,
    phoneless: bool = False,
) -> list[ClientFacts]:
    """Facts as they stood at ``now`` for each client with a phone (``client_ids``, or every
    client; ``phoneless``: those with none too, their number empty: an e-mail or a letter
    needs none), ordered by client id. The number is the client's first phone (the lowest
    ``client_phones.id``). Loans opened and survey calls started after ``now`` are not seen
    yet, and a loan closed after ``now`` is still open, so a past ``now`` replays a past day.
    ``activity``: fill ``last_activity_at`` too (payments after ``now`` are not seen either)."""
    async with sessions() as session:
        if client_ids is None:
            return await _facts(session, None, now, activity, phoneless)
        ids = sorted(set(client_ids))
        facts: list[ClientFacts] = []
        for start in range(0, len(ids), _IN_CHUNK):
            chunk = ids[start : start + _IN_CHUNK]
            facts += await _facts(session, chunk, now, activity, phoneless)
        return facts


async def select_targets(
    sessions: async_sessionmaker[AsyncSession],
    segments: Collection[Segment] | None,
    rules: SegmentRules,
    now: datetime,
    *,
    phoneless: bool = False,
) -> list[tuple[ClientFacts, Segment | None]]:
    """A campaign's target list: the clients in any of ``segments`` (None: every client with a
    phone), each with the segment it is counted in (core.surveys.campaign.counted_segment).
    ``phoneless``: clients with no phone too (a notice's, by e-mail or letter)."""
    targets: list[tuple[ClientFacts, Segment | None]] = []
    activity = segments is not None and Segment.DORMANT in segments
    for client in await client_facts(sessions, now=now, activity=activity, phoneless=phoneless):
        segment = counted_segment(client, now, rules, segments)
        if segments is None or segment is not None:
            targets.append((client, segment))
    return targets


async def segment_members(
    sessions: async_sessionmaker[AsyncSession], segment: Segment, rules: SegmentRules, now: datetime
) -> list[int]:
    """The ids of the clients in ``segment`` by their loans as they stood at ``now``, with a
    phone or without (a notice by e-mail or letter needs none; ``select_targets`` is for
    calling), ordered by id."""
    async with sessions() as session:
        loans = await _loan_facts(session, None, now, activity=segment is Segment.DORMANT)
    return [
        client_id
        for client_id, loan in sorted(loans.items())
        if counted_segment(
            ClientFacts(
                client_id=client_id,
                number="",
                first_loan_at=loan.first_loan_at,
                open_loans=loan.open_loans,
                last_loan_closed_at=loan.last_loan_closed_at,
                last_activity_at=loan.last_activity_at,
            ),
            now,
            rules,
            [segment],
        )
        is segment
    ]


async def _facts(
    session: AsyncSession,
    ids: Sequence[int] | None,
    now: datetime,
    activity: bool = False,
    phoneless: bool = False,
) -> list[ClientFacts]:
    loans = await _loan_facts(session, ids, now, activity)
    surveyed = await last_surveyed(session, ids, now)
    facts = []
    phones = await _first_phones(session, ids, phoneless)
    for client_id, number, manager, language, timezone in phones:
        loan = loans.get(client_id)
        facts.append(
            ClientFacts(
                client_id=client_id,
                number=number,
                timezone=timezone,
                first_loan_at=loan.first_loan_at if loan else None,
                open_loans=loan.open_loans if loan else 0,
                last_loan_closed_at=loan.last_loan_closed_at if loan else None,
                last_surveyed_at=surveyed.get(client_id),
                assigned_manager=manager,
                language=language,
                last_activity_at=loan.last_activity_at if loan else None,
            )
        )
    return facts


async def _first_phones(
    session: AsyncSession, ids: Sequence[int] | None, phoneless: bool = False
) -> list[tuple[int, str, str | None, str | None, str | None]]:
    first = select(ClientPhone.client_id, func.min(ClientPhone.id).label("phone_id")).group_by(
        ClientPhone.client_id
    )
    if ids is not None:
        first = first.where(ClientPhone.client_id.in_(ids))
    first_phone = first.subquery()
    rows = await session.execute(
        select(
            Client.id,
            ClientPhone.number,
            Client.assigned_manager_id,
            Client.language,
            Client.timezone,
        )
        .join(first_phone, first_phone.c.client_id == Client.id, isouter=phoneless)
        .join(ClientPhone, ClientPhone.id == first_phone.c.phone_id, isouter=phoneless)
        .where(Client.id.in_(ids) if ids is not None else true())
        .order_by(Client.id)
    )
    return [
        (client_id, number or "", manager, language, zone)
        for client_id, number, manager, language, zone in rows
    ]


async def _loan_facts(
    session: AsyncSession, ids: Sequence[int] | None, now: datetime, activity: bool = False
) -> dict[int, _LoanFacts]:
    still_open = or_(Loan.closed_at.is_(None), Loan.closed_at > now)
    columns = [
        Loan.client_id,
        func.min(Loan.opened_at),
        func.count().filter(still_open),
        func.max(Loan.closed_at).filter(Loan.closed_at <= now),
    ]
    query = select(*columns).where(Loan.opened_at <= now).group_by(Loan.client_id)
    if activity:
        # One row per loan: the subquery is grouped by loan, so the counts above still hold.
        paid = (
            select(Payment.loan_id, func.max(Payment.paid_at).label("last_paid"))
            .where(Payment.matched, Payment.loan_id.is_not(None), Payment.paid_at <= now)
            .group_by(Payment.loan_id)
            .subquery()
        )
        query = query.add_columns(func.max(Loan.opened_at), func.max(paid.c.last_paid)).outerjoin(
            paid, paid.c.loan_id == Loan.id
        )
    if ids is not None:
        query = query.where(Loan.client_id.in_(ids))
    facts: dict[int, _LoanFacts] = {}
    for row in await session.execute(query):
        client_id, first, open_count = cast(tuple[int, datetime, int], tuple(row[:3]))
        times = cast(list[datetime | None], list(row[3:]))  # last closed [, opened, paid]
        last = max((t for t in times if t is not None), default=None) if activity else None
        facts[client_id] = _LoanFacts(first, int(open_count), times[0], last)
    return facts


async def last_surveyed(
    session: AsyncSession, ids: Sequence[int] | None, now: datetime
) -> dict[int, datetime]:
    """When each client (``ids``, or every client) last took part in a survey call (any
    campaign, or after a call), as of ``now``: the frequency cap's clock."""
    query = (
        select(Call.client_id, func.max(Call.started_at))
        .where(
            Call.client_id.is_not(None),
            Call.survey_id.is_not(None),
            Call.survey_status.in_(SURVEYED_STATUSES),
            Call.started_at <= now,
        )
        .group_by(Call.client_id)
    )
    if ids is not None:
        query = query.where(Call.client_id.in_(ids))
    rows = await session.execute(query)
    return {client_id: at for client_id, at in rows if client_id is not None}
