"""Over 500 lines: every read and write of the outbox in one place, so its claims, reports
and fallbacks are checked against each other.

The notices' outbox and opt-outs (``Notice``, ``ContactOptOut``): what the contact policy
reads of a client (``recipients``), adding messages once each (their key is unique),
claiming the due ones (``FOR UPDATE SKIP LOCKED`` on PostgreSQL: instances never take the
same message; SQLite has one writer), recording each sending's outcome and the providers'
reports (forward only: ``core.notices.after_report``), Viber's fallbacks to SMS (each decided
once), and the counts. The rules are ``core.notices``'. Imports models.tables and core."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, bindparam, delete, func, literal_column, or_, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.letters import PRINTED
from core.notices import (
    CLAIM_LEASE,
    FINAL,
    NO_REPORT,
    OFFER_CAMPAIGNS,
    OFFER_TOPIC,
    Addressee,
    Channel,
    Contact,
    NoticeState,
    Recipient,
    after_report,
    moved_by,
    needs_fallback,
)
from core.phones import normalise
from core.surveys.campaign import Segment, SegmentRules
from models.segments import segment_members
from models.tables import (
    Call,
    Campaign,
    Client,
    ClientPhone,
    ContactOptOut,
    Direction,
    DoNotCall,
    Notice,
    NoticeReport,
)

Sessions = async_sessionmaker[AsyncSession]


async def recipients(
    sessions: Sessions, client_ids: Sequence[int], since: datetime
) -> list[Addressee]:
    """The clients with what the policy needs: their first number, e-mail, opt-outs, whether
    their number is on the DNC list, and their contacts (messages, outbound calls) since
    ``since`` (the frequency cap's window)."""
    if not client_ids:
        return []
    async with sessions() as session:
        clients = list(
            await session.scalars(
                select(Client).where(Client.id.in_(client_ids)).order_by(Client.id)
            )
        )
        phones: dict[int, str] = {}
        for cid, number in await session.execute(
            select(ClientPhone.client_id, ClientPhone.number)
            .where(ClientPhone.client_id.in_(client_ids))
            .order_by(ClientPhone.id)
        ):
            phones.setdefault(int(cid), str(number))
        blocked = set(
            await session.scalars(
                select(DoNotCall.number).where(DoNotCall.number.in_(list(phones.values())))
            )
        )
        opted: dict[int, set[Channel]] = defaultdict(set)
        for cid, channel in await session.execute(
            select(ContactOptOut.client_id, ContactOptOut.channel).where(
                ContactOptOut.client_id.in_(client_ids)
            )
        ):
            opted[int(cid)].add(Channel(channel))
        contacts: dict[int, list[Contact]] = defaultdict(list)
        for cid, at, channel, topic in await session.execute(
            select(Notice.client_id, Notice.created_at, Notice.channel, Notice.topic).where(
                Notice.client_id.in_(client_ids),
                Notice.created_at >= since,
                Notice.state.not_in([NoticeState.FAILED, NoticeState.EXPIRED]),
            )
        ):
            contacts[int(cid)].append(Contact(at, str(channel), topic))
        for call_client, at, kind in await session.execute(
            select(Call.client_id, Call.started_at, Campaign.kind)
            .outerjoin(Campaign, Campaign.id == Call.campaign_id)
            .where(
                Call.client_id.in_(client_ids),
                Call.direction == Direction.OUTBOUND,
                Call.started_at >= since,
            )
        ):
            # A sales or leads campaign's call was about an offer (core.notices.OFFER_TOPIC).
            topic = OFFER_TOPIC if kind in OFFER_CAMPAIGNS else None
            contacts[int(call_client or 0)].append(Contact(at, "voice", topic))
    rows = []
    for c in clients:
        phone = phones.get(c.id)
        rows.append(
            Addressee(
                Recipient(
                    client_id=c.id,
                    language=c.language or "bs",
                    zone=c.timezone,
                    phone=phone,
                    email=c.email,
                    postal_address=c.postal_address,
                    preferred=Channel(c.preferred_channel) if c.preferred_channel else None,
                    opted_out=frozenset(opted[c.id]),
                    do_not_call=phone is not None and phone in blocked,
                    contacts=tuple(contacts[c.id]),
                ),
                c.name,
                c.document_expiry,
            )
        )
    return rows


async def born_between(sessions: Sessions, months_days: Iterable[tuple[int, int]]) -> list[int]:
    """The ids of the clients whose birthday falls on one of ``months_days``."""
    wanted = set(months_days)
    found = []
    async with sessions() as session:
        result = await session.stream(
            select(Client.id, Client.birthday).where(Client.birthday.is_not(None))
        )
        async for cid, born in result:
            if born is not None and (born.month, born.day) in wanted:
                found.append(int(cid))
    return found


async def expiring_on(sessions: Sessions, day: date) -> list[int]:
    """The ids of the clients whose ID document expires on ``day``."""
    async with sessions() as session:
        return [
            int(c)
            for c in await session.scalars(
                select(Client.id).where(Client.document_expiry == day).order_by(Client.id)
            )
        ]


async def ids_of(sessions: Sessions, external_ids: Sequence[str]) -> dict[str, int]:
    """The clients' ids by their external ids (those found)."""
    found: dict[str, int] = {}
    async with sessions() as session:
        for start in range(0, len(external_ids), 1000):
            chunk = list(external_ids[start : start + 1000])
            for ext, cid in await session.execute(
                select(Client.external_id, Client.id).where(Client.external_id.in_(chunk))
            ):
                found[str(ext)] = int(cid)
    return found


async def existing_keys(sessions: Sessions, keys: Sequence[str]) -> set[str]:
    """Which of ``keys`` the outbox has (a preview's "had it already")."""
    found: set[str] = set()
    async with sessions() as session:
        for start in range(0, len(keys), 1000):
            chunk = list(keys[start : start + 1000])
            found.update(await session.scalars(select(Notice.key).where(Notice.key.in_(chunk))))
    return found


async def segment_clients(sessions: Sessions, segment: str, now: datetime) -> list[int]:
    """The ids of a CRM segment's clients (new, active, inactive, dormant: from their
    loans), with a phone or without."""
    return await segment_members(sessions, Segment(segment), SegmentRules(), now)


async def add(sessions: Sessions, rows: Sequence[dict[str, object]]) -> int:
    """The messages added (a key already there is left as it is: a job run twice adds none)."""
    if not rows:
        return 0
    async with sessions() as session, session.begin():
        return await _insert(session, rows)


async def add_keys(sessions: Sessions, rows: Sequence[dict[str, object]]) -> set[str]:
    """The keys of the messages added (``add``'s, telling which): a printed letter's row
    another batch wrote first is not among them."""
    added: set[str] = set()
    for start in range(0, len(rows), 1000):
        chunk = list(rows[start : start + 1000])
        async with sessions() as session, session.begin():
            stmt = _insert_new(session).values(chunk).returning(Notice.key)
            added.update(await session.scalars(stmt))
    return added


async def letters_waiting(sessions: Sessions, limit: int) -> list[Notice]:
    """The queued letters, oldest first, ``limit`` at most (the operators' next batch)."""
    async with sessions() as session:
        return list(
            await session.scalars(
                select(Notice)
                .where(Notice.state == NoticeState.QUEUED, Notice.channel == str(Channel.LETTER))
                .order_by(Notice.id)
                .limit(limit)
            )
        )


async def letters_printed(
    sessions: Sessions, ids: Sequence[int], now: datetime, *, refused: Sequence[int] = ()
) -> set[int]:
    """Marks the queued letters ``ids`` printed (sent, provider id ``printed``), and those
    ``refused`` failed (their client opted out of letters since they were queued); each
    only if still queued. The ids of ``ids`` this marked: another batch took the others."""
    marked: set[int] = set()
    async with sessions() as session, session.begin():
        for start in range(0, len(ids), 1000):
            chunk = list(ids[start : start + 1000])
            marked.update(
                await session.scalars(
                    update(Notice)
                    .where(Notice.id.in_(chunk), Notice.state == NoticeState.QUEUED)
                    .values(
                        state=NoticeState.SENT,
                        sent_at=now,
                        provider_id=PRINTED,
                        attempts=Notice.attempts + 1,
                    )
                    .returning(Notice.id)
                )
            )
        if refused:
            await session.execute(
                update(Notice)
                .where(Notice.id.in_(list(refused)), Notice.state == NoticeState.QUEUED)
                .values(state=NoticeState.FAILED, final_at=now, error="opted out of letters")
            )
    return marked


async def by_keys(sessions: Sessions, keys: Sequence[str]) -> dict[str, Notice]:
    """The messages of ``keys`` the outbox has (a reprint's letters, as they were kept)."""
    found: dict[str, Notice] = {}
    async with sessions() as session:
        for start in range(0, len(keys), 1000):
            chunk = list(keys[start : start + 1000])
            for row in await session.scalars(select(Notice).where(Notice.key.in_(chunk))):
                found[row.key] = row
    return found


def _insert_new(session: AsyncSession) -> Any:
    """An INSERT of notices that leaves a key already there as it is."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    return insert(Notice).on_conflict_do_nothing(index_elements=["key"])


async def _insert(session: AsyncSession, rows: Sequence[dict[str, object]]) -> int:
    result = await session.execute(_insert_new(session).values(list(rows)))
    return int(getattr(result, "rowcount", 0) or 0)


@dataclass(frozen=True)
class Claimed:
    id: int
    client_id: int
    language: str
    channel: Channel
    address: str
    subject: str
    body: str
    html: str
    attempts: int
    created_at: datetime


async def claim_due(
    sessions: Sessions, now: datetime, limit: int, lease: timedelta = CLAIM_LEASE
) -> list[Claimed]:
    """Up to ``limit`` due messages claimed for sending by this instance (state sending):
    queued ones whose time has come, and those a dead instance claimed (past the lease).
    Each claim is one conditional write: an instance that read the same row a moment before
    finds it no longer due (SQLite has no SKIP LOCKED; PostgreSQL's skips the rows another
    instance holds)."""
    # A queued letter waits for the operators to print it (usecases.letters), never sent.
    letter: Any = literal_column(f"'{Channel.LETTER}'")
    due = or_(
        (Notice.state == NoticeState.QUEUED)
        & (Notice.channel != letter)
        & (Notice.not_before <= now)
        & (Notice.next_attempt_at.is_(None) | (Notice.next_attempt_at <= now)),
        (Notice.state == NoticeState.SENDING) & (Notice.claimed_at < now - lease),
    )
    claimed = []
    async with sessions() as session, session.begin():
        # The two kinds of due apart: each an index range (state, not_before), not a scan.
        ids = list(
            await session.scalars(
                select(Notice.id)
                .where(
                    Notice.state == NoticeState.QUEUED,
                    Notice.channel != letter,
                    Notice.not_before <= now,
                    Notice.next_attempt_at.is_(None) | (Notice.next_attempt_at <= now),
                )
                .order_by(Notice.not_before, Notice.id)
                .limit(limit)
                .with_for_update(skip_locked=True)
            )
        )
        if len(ids) < limit:
            ids += await session.scalars(
                select(Notice.id)
                .where(Notice.state == NoticeState.SENDING, Notice.claimed_at < now - lease)
                .order_by(Notice.id)
                .limit(limit - len(ids))
                .with_for_update(skip_locked=True)
            )
        if not ids:
            return []
        # One conditional write for the few: a row another instance took between the read
        # and this write is no longer due, and left out.
        rows = await session.execute(
            update(Notice)
            .where(Notice.id.in_(ids), due)
            .values(state=NoticeState.SENDING, claimed_at=now, attempts=Notice.attempts + 1)
            .returning(
                Notice.id,
                Notice.client_id,
                Notice.language,
                Notice.channel,
                Notice.address,
                Notice.subject,
                Notice.body,
                Notice.html,
                Notice.attempts,
                Notice.created_at,
                Notice.not_before,
            )
        )
        for row in sorted(rows, key=lambda r: (r.not_before, r.id)):  # the oldest due first
            claimed.append(
                Claimed(
                    row.id,
                    row.client_id,
                    row.language,
                    Channel(row.channel),
                    row.address,
                    row.subject,
                    row.body,
                    row.html,
                    row.attempts,
                    row.created_at,
                )
            )
    return claimed


async def sent_many(sessions: Sessions, taken: Sequence[tuple[int, datetime, str]]) -> None:
    """``sent`` for several messages (id, when, the provider's id) in one transaction: the
    senders' results recorded as they come, a batch at a time; then the reports on any of
    them that came first applied. A report kept before this commit is found by the read
    after it; one kept after it finds the notice by itself (``report``)."""
    if not taken:
        return
    async with sessions() as session, session.begin():
        notices = cast(Table, Notice.__table__)  # a plain executemany, not the ORM's bulk update
        table = notices.c
        await session.execute(
            update(notices)
            .where(table.id == bindparam("notice_id"), table.state == str(NoticeState.SENDING))
            .values(
                state=str(NoticeState.SENT),
                sent_at=bindparam("at"),
                provider_id=bindparam("pid"),
                claimed_at=None,
            ),
            [{"notice_id": i, "at": at, "pid": pid} for i, at, pid in taken],
        )
    async with sessions() as session:
        early = set(
            await session.scalars(
                select(NoticeReport.provider_id).where(
                    NoticeReport.provider_id.in_([pid for _, _, pid in taken])
                )
            )
        )
    for provider_id in sorted(early):
        await _apply_reports(sessions, provider_id)


async def sent(sessions: Sessions, notice_id: int, now: datetime, provider_id: str) -> None:
    """The provider took the message: its id kept, then any report on it that came first
    applied (see ``report``)."""
    await sent_many(sessions, [(notice_id, now, provider_id)])


async def failed(
    sessions: Sessions, notice_id: int, now: datetime, error: str, again: datetime | None
) -> None:
    """A sending that did not go: queued for ``again``, or failed for good (None)."""
    async with sessions() as session, session.begin():
        values: dict[str, object] = {"error": error[:500], "claimed_at": None}
        if again is not None:
            values.update(state=NoticeState.QUEUED, next_attempt_at=again)
        else:
            values.update(state=NoticeState.FAILED, final_at=now)
        await session.execute(
            update(Notice)
            .where(Notice.id == notice_id, Notice.state == NoticeState.SENDING)
            .values(**values)
        )


async def report(
    sessions: Sessions, provider_id: str, state: NoticeState, at: datetime, error: str | None
) -> bool:
    """A provider's report on its message ``provider_id``: kept first, then applied when a
    notice has that id (now, or when ``sent`` records it: a receipt may come before). Each
    side writes before it looks for the other, so one of them always applies it; the one
    that deletes the kept report applies it, once; and a report only moves a notice forward
    (``after_report``), whatever the order. Whether a notice has the id yet."""
    # Most reports come after the sending is recorded: applied at once by one conditional
    # write (forward only), or found to have been overtaken.
    values: dict[str, object] = {"state": state}
    if state in FINAL:
        values["final_at"] = at
    if error:
        values["error"] = error[:500]
    async with sessions() as session, session.begin():
        moved = await session.execute(
            update(Notice)
            .where(Notice.provider_id == provider_id, Notice.state.in_(moved_by(state)))
            .values(**values)
            .returning(Notice.id)
        )
        if moved.first() is not None:
            return True
        now_in = await session.scalar(select(Notice.state).where(Notice.provider_id == provider_id))
        # Overtaken: a later state is recorded. Not if the sending committed between the two
        # statements (a new snapshot each): then, as when there is no notice yet, kept.
        if now_in is not None and NoticeState(now_in) not in moved_by(state):
            return True
    async with sessions() as session, session.begin():
        session.add(NoticeReport(provider_id=provider_id, state=state, at=at, error=error))
    return await _apply_reports(sessions, provider_id)


def _apply(row: Notice, reports: Iterable[tuple[str, datetime, str | None]]) -> None:
    for state, at, error in sorted(reports, key=lambda r: r[1]):
        new = after_report(NoticeState(row.state), NoticeState(state))
        if new is not NoticeState(row.state):
            row.state = new
            if new in FINAL:
                row.final_at = at
            if error:
                row.error = error[:500]


async def _apply_reports(sessions: Sessions, provider_id: str, *, look: bool = False) -> bool:
    """The reports kept for ``provider_id`` applied to its notice, if it has one yet
    (``look``: only when a cheap read finds some kept, the sending's usual case)."""
    if look:
        async with sessions() as session:
            kept_any = await session.scalar(
                select(NoticeReport.id).where(NoticeReport.provider_id == provider_id).limit(1)
            )
        if kept_any is None:
            return True
    async with sessions() as session, session.begin():
        row = await session.scalar(
            select(Notice).where(Notice.provider_id == provider_id).with_for_update()
        )
        if row is None:
            return False
        kept = (
            await session.execute(
                delete(NoticeReport)
                .where(NoticeReport.provider_id == provider_id)
                .returning(NoticeReport.state, NoticeReport.at, NoticeReport.error)
            )
        ).all()
        _apply(row, [(state, at, error) for state, at, error in kept])
        return True


@dataclass(frozen=True)
class FallingBack:
    """A Viber message that may need its SMS (``core.notices.needs_fallback``)."""

    id: int
    key: str
    client_id: int
    kind: str
    language: str
    topic: str | None
    subject: str
    body: str
    html: str


async def fallbacks_due(
    sessions: Sessions, now: datetime, wait: timedelta, limit: int
) -> list[FallingBack]:
    """Up to ``limit`` Viber messages with no fallback decided yet that failed, expired, or
    were sent ``wait`` ago with no final report (``fall_back`` decides each)."""
    silent = (Notice.state == NoticeState.SENT) & (Notice.sent_at <= now - wait)
    async with sessions() as session:
        rows = await session.execute(
            select(
                Notice.id,
                Notice.key,
                Notice.client_id,
                Notice.kind,
                Notice.language,
                Notice.topic,
                Notice.subject,
                Notice.body,
                Notice.html,
            )
            .where(
                # Literal, as the partial index's condition is: the planners prove it then.
                Notice.channel == literal_column(f"'{Channel.VIBER}'"),
                Notice.fallback_at.is_(None),
                Notice.state.in_([NoticeState.FAILED, NoticeState.EXPIRED]) | silent,
            )
            # In no order: "ORDER BY id" led PostgreSQL to walk the primary key past every
            # message (120 ms at 100 000) instead of the partial index (0.1 ms).
            .limit(limit)
        )
        return [FallingBack(*row) for row in rows]


async def fall_back(
    sessions: Sessions,
    decisions: Mapping[int, dict[str, object] | None],
    now: datetime,
    wait: timedelta,
) -> set[int]:
    """Viber messages' fallbacks decided, in one transaction: each message (by its id in
    ``decisions``; locked, looked at again: a delivery report may have come meanwhile)
    marked, expired when it had no report ("no delivery report in time"), and its SMS (None:
    the policy allows none) added under its own key, so there is one however often this
    runs. The ids decided now."""
    decided = set()
    async with sessions() as session, session.begin():
        rows = await session.scalars(
            # Locked in id order: two sweeps at once (serve's round, a report's) never
            # wait for each other in a circle.
            select(Notice)
            .where(Notice.id.in_(list(decisions)))
            .order_by(Notice.id)
            .with_for_update()
        )
        texts = []
        for row in rows:
            state = NoticeState(row.state)
            if row.fallback_at is not None or not needs_fallback(
                Channel(row.channel), state, row.sent_at, now, wait
            ):
                continue
            if state is NoticeState.SENT:
                row.state, row.final_at, row.error = NoticeState.EXPIRED, now, NO_REPORT
            row.fallback_at = now
            decided.add(row.id)
            sms = decisions[row.id]
            if sms is not None:
                texts.append({**sms, "fallback_of": row.id})
        await session.flush()
        if texts:
            # Many parameter sets, not one statement of them all: compiling a VALUES list
            # of a thousand rows took most of a sweep's time.
            await session.execute(_insert_new(session), texts)
    return decided


async def opted_out_of(sessions: Sessions, client_ids: Sequence[int], channel: Channel) -> set[int]:
    """Which of ``client_ids`` opted out of ``channel``."""
    found: set[int] = set()
    async with sessions() as session:
        for start in range(0, len(client_ids), 1000):
            chunk = list(client_ids[start : start + 1000])
            found.update(
                await session.scalars(
                    select(ContactOptOut.client_id).where(
                        ContactOptOut.client_id.in_(chunk), ContactOptOut.channel == str(channel)
                    )
                )
            )
    return found


async def opt_out(
    sessions: Sessions, client_id: int, channel: Channel, at: datetime, source: str
) -> None:
    """The client wants no more messages on ``channel`` (said once is enough)."""
    async with sessions() as session, session.begin():
        if await session.get(ContactOptOut, (client_id, str(channel))) is None:
            session.add(
                ContactOptOut(client_id=client_id, channel=str(channel), at=at, source=source)
            )


async def clients_of_number(sessions: Sessions, number: str, region: str) -> list[int]:
    """The clients with ``number`` (a STOP reply's sender) on file."""
    try:
        e164 = normalise(number, region)
    except ValueError:
        return []
    async with sessions() as session:
        return [
            int(c)
            for c in await session.scalars(
                select(ClientPhone.client_id).where(ClientPhone.number == e164)
            )
        ]


async def counts(
    sessions: Sessions, since: datetime | None = None
) -> dict[tuple[str, str, str], int]:
    """Messages by (kind, channel, state), those created since ``since`` (default: all)."""
    stmt = select(Notice.kind, Notice.channel, Notice.state, func.count()).group_by(
        Notice.kind, Notice.channel, Notice.state
    )
    if since is not None:
        stmt = stmt.where(Notice.created_at >= since)
    async with sessions() as session:
        return {(str(k), str(c), str(s)): int(n) for k, c, s, n in await session.execute(stmt)}


async def backlog(sessions: Sessions) -> dict[tuple[str, str], int]:
    """Messages not yet handed over, by (channel, state): queued (waiting for their time or
    their next attempt) and sending (/metrics' outbox backlog)."""
    waiting = [NoticeState.QUEUED, NoticeState.SENDING]
    async with sessions() as session:
        rows = await session.execute(
            select(Notice.channel, Notice.state, func.count())
            .where(Notice.state.in_(waiting))
            .group_by(Notice.channel, Notice.state)
        )
        return {(str(c), str(s)): int(n) for c, s, n in rows}


async def history(sessions: Sessions, client_id: int, limit: int = 50) -> list[Notice]:
    """A client's messages, newest first (the desk shows them beside the calls)."""
    return await page(sessions, client_id=client_id, limit=limit)


async def page(
    sessions: Sessions,
    *,
    client_id: int | None = None,
    kind: str | None = None,
    channel: str | None = None,
    state: str | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[Notice]:
    """Messages newest first, those matching the filters, with ids below ``before`` (the
    next page's cursor: the last one's id)."""
    stmt = select(Notice)
    for column, value in (
        (Notice.client_id, client_id),
        (Notice.kind, kind),
        (Notice.channel, channel),
        (Notice.state, state),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if before is not None:
        stmt = stmt.where(Notice.id < before)
    async with sessions() as session:
        return list(await session.scalars(stmt.order_by(Notice.id.desc()).limit(limit)))
