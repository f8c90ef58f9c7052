"""Over 500 lines: every read and write of the inquiries' tables in one place, so the
conditional writes (stored once, given once, claimed once, told once) are read side by side.

Written inquiries in the database (``models.tables.Inquiry`` and its messages, attachments
and log): a client's message stored in one transaction, once however often it is read (its
source key, its Message-ID), threaded into the inquiry it answers or opening a new one linked
to the client the sender is, with its escalations on the record; and the reads the API and
the desk need. The decisions are ``core.inquiries``'. Imports models.tables and core."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.enums import ClientType
from core.inquiries import (
    EscalationLevel,
    EscalationStep,
    InquiryChannel,
    InquiryError,
    InquiryEvent,
    InquiryKind,
    InquiryState,
    MessageDirection,
    escalation,
    reply_subject,
    transition,
)
from core.inquiries.routing import WaitingInquiry
from models.audit import add_entry
from models.tables import (
    Agent,
    Client,
    ClientAudit,
    ClientPhone,
    Inquiry,
    InquiryAttachment,
    InquiryLog,
    InquiryMessage,
    InquiryRules,
)

Sessions = async_sessionmaker[AsyncSession]


@dataclass(frozen=True)
class Attachment:
    filename: str
    content_type: str
    content: bytes


@dataclass(frozen=True)
class Arrival:
    """A client's message as an adapter read it, with what was decided of it."""

    channel: str  # core.inquiries.InquiryChannel
    source_key: str  # where it came from, unique: imap:BOX:UIDVALIDITY:UID, meta:MID, form:ID
    sender: str  # an e-mail address, a Facebook / Instagram sender id
    sender_name: str
    subject: str
    text: str  # the new text
    at: datetime
    quoted: str = ""  # the quoted text and the signature, apart
    sender_email: str | None = None  # the address the CRM is searched by
    sender_phone: str | None = None  # E.164: the CRM is searched by it too
    message_id: str | None = None  # an e-mail's Message-ID, kept without its <>
    answers: tuple[str, ...] = ()  # the Message-IDs it answers, strongest first (no <>)
    inquiry_id: int | None = None  # our token in its subject or address
    reply_from: str | None = None  # the mailbox or page it came to
    attachments: tuple[Attachment, ...] = ()
    # A conversation (Facebook, Instagram) has no Message-IDs: a message goes into the
    # sender's latest inquiry on its channel unless that one was closed this long ago.
    conversation: timedelta | None = None


@dataclass(frozen=True)
class NewInquiry:
    """What an arrival opening an inquiry becomes (``usecases.inquiries`` decides it)."""

    kind: InquiryKind
    queue: str
    priority: int
    why: dict[str, Any] = field(default_factory=dict)  # the classification's rule


@dataclass(frozen=True)
class Received:
    inquiry_id: int | None
    created: bool = False  # a new inquiry (else: threaded into inquiry_id)
    duplicate: bool = False  # stored before: nothing done
    state: str | None = None
    escalated: tuple[EscalationStep, ...] = ()


async def receive(
    sessions: Sessions, arrival: Arrival, new: NewInquiry, *, supervisor: str | None
) -> Received:
    """Stores ``arrival`` once: threaded into the inquiry it answers (the client wrote
    again: a waiting or closed one is open again), or as a new inquiry ``new`` says, linked
    to the client whose e-mail or phone it came from, its escalations recorded."""
    async with sessions() as session, session.begin():
        if await _stored(session, arrival):
            return Received(None, duplicate=True)
        inquiry = await _thread_of(session, arrival)
        if inquiry is not None:
            after = transition(InquiryState(inquiry.state), InquiryEvent.CLIENT_MESSAGE)
            if after != inquiry.state:
                session.add(_log(inquiry.id, arrival.at, "state", after))
                inquiry.state = after
                inquiry.closed_at = None
            inquiry.updated_at = arrival.at
            await _add_message(session, inquiry.id, arrival)
            return Received(inquiry.id, state=inquiry.state)
        client_id, manager = await _client_of(session, arrival)
        inquiry = Inquiry(
            channel=arrival.channel,
            kind=str(new.kind),
            kind_by="rules",
            state=str(InquiryState.NEW),
            subject=arrival.subject[:300],
            client_id=client_id,
            sender=arrival.sender[:254],
            sender_name=arrival.sender_name[:200],
            sender_phone=arrival.sender_phone,
            reply_from=arrival.reply_from,
            queue=new.queue,
            priority=new.priority,
            created_at=arrival.at,
            updated_at=arrival.at,
        )
        session.add(inquiry)
        await session.flush()
        session.add(_log(inquiry.id, arrival.at, "state", InquiryState.NEW, why=new.why))
        steps = escalation(new.kind, supervisor=supervisor, manager=manager)
        for step in steps:
            session.add(
                InquiryLog(
                    inquiry_id=inquiry.id,
                    at=arrival.at,
                    kind="escalate",
                    data={"level": str(step.level), "to": step.to, "notified": False},
                )
            )
        await _add_message(session, inquiry.id, arrival)
        return Received(inquiry.id, created=True, state=inquiry.state, escalated=steps)


def _log(
    inquiry_id: int,
    at: datetime,
    kind: str,
    state: str | None = None,
    *,
    actor: str | None = None,
    **data: Any,
) -> InquiryLog:
    return InquiryLog(
        inquiry_id=inquiry_id, at=at, kind=kind, state=None if state is None else str(state),
        actor=actor, data=data,
    )  # fmt: skip


async def _stored(session: AsyncSession, arrival: Arrival) -> bool:
    """The same message read before: its source key, or its Message-ID (the same e-mail in
    two mailboxes, or read again after the mailbox was rebuilt: a new UIDVALIDITY)."""
    found = await session.scalar(
        select(InquiryMessage.id).where(InquiryMessage.source_key == arrival.source_key)
    )
    if found is None and arrival.message_id:
        found = await session.scalar(
            select(InquiryMessage.id)
            .where(
                InquiryMessage.message_id == arrival.message_id,
                InquiryMessage.direction == str(MessageDirection.IN),
            )
            .limit(1)
        )
    return found is not None


async def _thread_of(session: AsyncSession, arrival: Arrival) -> Inquiry | None:
    """The inquiry ``arrival`` answers: by the Message-IDs it names (strongest first), then
    by our token, the token only when the sender is the inquiry's (a token is guessable:
    anyone's mail must not land in someone else's inquiry)."""
    if arrival.answers:
        rows = await session.execute(
            select(InquiryMessage.message_id, InquiryMessage.inquiry_id).where(
                InquiryMessage.message_id.in_(list(arrival.answers))
            )
        )
        by_id = {m: i for m, i in rows}
        for message_id in arrival.answers:
            if message_id in by_id:
                return await session.get(Inquiry, by_id[message_id])
    if arrival.inquiry_id is not None:
        inquiry = await session.get(Inquiry, arrival.inquiry_id)
        if inquiry is not None and inquiry.sender.lower() == arrival.sender.lower():
            return inquiry
    if arrival.conversation is not None:
        latest = await session.scalar(
            select(Inquiry)
            .where(Inquiry.channel == arrival.channel, Inquiry.sender == arrival.sender)
            .order_by(Inquiry.id.desc())
            .limit(1)
        )
        if latest is not None and (
            latest.closed_at is None or arrival.at - latest.closed_at < arrival.conversation
        ):
            return latest
    return None


async def _client_of(session: AsyncSession, arrival: Arrival) -> tuple[int | None, str | None]:
    """The client the sender is (their e-mail, else their phone; the lowest id when several
    share it), and their responsible manager."""
    client = None
    if arrival.sender_email:
        client = await session.scalar(
            select(Client)
            .where(func.lower(Client.email) == arrival.sender_email.lower())
            .order_by(Client.id)
            .limit(1)
        )
    if client is None and arrival.sender_phone:
        client = await session.scalar(
            select(Client)
            .join(ClientPhone, ClientPhone.client_id == Client.id)
            .where(ClientPhone.number == arrival.sender_phone)
            .order_by(Client.id)
            .limit(1)
        )
    if client is None:
        return None, None
    return client.id, client.assigned_manager_id


async def _add_message(session: AsyncSession, inquiry_id: int, arrival: Arrival) -> None:
    message = InquiryMessage(
        inquiry_id=inquiry_id,
        direction=str(MessageDirection.IN),
        at=arrival.at,
        source_key=arrival.source_key,
        message_id=arrival.message_id,
        subject=arrival.subject[:300],
        text=arrival.text,
        quoted=arrival.quoted,
    )
    session.add(message)
    await session.flush()
    for a in arrival.attachments:
        session.add(
            InquiryAttachment(
                message_id=message.id,
                filename=a.filename[:200],
                content_type=a.content_type[:120],
                size=len(a.content),
                content=a.content,
            )
        )


# ---- reads ---------------------------------------------------------------------------------


async def page(
    sessions: Sessions,
    *,
    state: str | None = None,
    kind: str | None = None,
    queue: str | None = None,
    owner_id: str | None = None,
    client_id: int | None = None,
    before: int | None = None,
    limit: int = 100,
) -> list[Inquiry]:
    """Inquiries newest first, those matching the filters, with ids below ``before``."""
    stmt = select(Inquiry)
    for column, value in (
        (Inquiry.state, state),
        (Inquiry.kind, kind),
        (Inquiry.queue, queue),
        (Inquiry.owner_id, owner_id),
        (Inquiry.client_id, client_id),
    ):
        if value is not None:
            stmt = stmt.where(column == value)
    if before is not None:
        stmt = stmt.where(Inquiry.id < before)
    async with sessions() as session:
        return list(await session.scalars(stmt.order_by(Inquiry.id.desc()).limit(limit)))


@dataclass(frozen=True)
class Thread:
    inquiry: Inquiry
    messages: list[InquiryMessage]
    attachments: dict[int, list[tuple[int, str, str, int]]]  # message id -> (id, name, type, size)
    log: list[InquiryLog]
    client_name: str | None = None
    client_language: str | None = None

    def language(self) -> str | None:
        """The language to answer in: the client's, else the one their words matched."""
        if self.client_language:
            return self.client_language
        why = self.log[0].data.get("why") if self.log else None
        return why.get("language") if isinstance(why, dict) else None

    def history(self) -> list[tuple[datetime, InquiryState]]:
        """The states with their times, for ``core.inquiries.sla_status``."""
        return [(e.at, InquiryState(e.state)) for e in self.log if e.state is not None]

    def escalations_done(self) -> set[EscalationLevel]:
        return {EscalationLevel(e.data["level"]) for e in self.log if e.kind == "escalate"}


async def thread(sessions: Sessions, inquiry_id: int) -> Thread | None:
    async with sessions() as session:
        inquiry = await session.get(Inquiry, inquiry_id)
        if inquiry is None:
            return None
        messages = list(
            await session.scalars(
                select(InquiryMessage)
                .where(InquiryMessage.inquiry_id == inquiry_id)
                .order_by(InquiryMessage.at, InquiryMessage.id)
            )
        )
        attachments: dict[int, list[tuple[int, str, str, int]]] = {}
        ids = [m.id for m in messages]
        if ids:
            rows = await session.execute(
                select(
                    InquiryAttachment.message_id,
                    InquiryAttachment.id,
                    InquiryAttachment.filename,
                    InquiryAttachment.content_type,
                    InquiryAttachment.size,
                )
                .where(InquiryAttachment.message_id.in_(ids))
                .order_by(InquiryAttachment.id)
            )
            for message_id, aid, name, ctype, size in rows:
                attachments.setdefault(message_id, []).append((aid, name, ctype, size))
        log = list(
            await session.scalars(
                select(InquiryLog)
                .where(InquiryLog.inquiry_id == inquiry_id)
                .order_by(InquiryLog.at, InquiryLog.id)
            )
        )
        client = (
            await session.get(Client, inquiry.client_id) if inquiry.client_id is not None else None
        )
        return Thread(
            inquiry,
            messages,
            attachments,
            log,
            client.name if client is not None else None,
            client.language if client is not None else None,
        )


async def attachment(
    sessions: Sessions, inquiry_id: int, attachment_id: int
) -> InquiryAttachment | None:
    """An attachment of one of the inquiry's messages (None: no such, or another's)."""
    async with sessions() as session:
        return await session.scalar(
            select(InquiryAttachment)
            .join(InquiryMessage, InquiryMessage.id == InquiryAttachment.message_id)
            .where(InquiryAttachment.id == attachment_id, InquiryMessage.inquiry_id == inquiry_id)
        )


async def backlog(sessions: Sessions) -> dict[tuple[str, str], int]:
    """Inquiries not closed, by (kind, state)."""
    async with sessions() as session:
        rows = await session.execute(
            select(Inquiry.kind, Inquiry.state, func.count())
            .where(Inquiry.state != str(InquiryState.CLOSED))
            .group_by(Inquiry.kind, Inquiry.state)
        )
        return {(str(k), str(s)): int(n) for k, s, n in rows}


# ---- an agent's actions ----------------------------------------------------------------------


async def act(
    sessions: Sessions,
    inquiry_id: int,
    event: InquiryEvent | None,
    at: datetime,
    actor: str | None,  # an agent, or None: the API's host token (no agent)
    *,
    owner_id: str | None = None,
    kind: InquiryKind | None = None,
    answer: str | None = None,  # a reply's text
    note: str | None = None,
) -> Inquiry:
    """An agent's move on an inquiry, in one transaction: the state ``event`` leads to
    (``core.inquiries.transition``: a move not allowed is refused, nothing written), a new
    owner, a new kind, an answer to send (queued under our ``Re: … [#INQ-n]`` subject, the
    first response's time; refused, 409 ``no_written_channel``, for a contact form that left
    a phone only) or an internal note; each on the inquiry's log."""
    async with sessions() as session, session.begin():
        inquiry = await session.get(Inquiry, inquiry_id, with_for_update=True)
        if inquiry is None:
            raise LookupError(inquiry_id)
        if (
            answer is not None
            and inquiry.channel == InquiryChannel.WEB_FORM
            and "@" not in inquiry.sender
        ):
            raise InquiryError("no_written_channel", "the client left a phone only: call them back")
        if event is not None:
            after = transition(InquiryState(inquiry.state), event)
            if after != inquiry.state:
                session.add(_log(inquiry.id, at, "state", after, actor=actor, event=str(event)))
                inquiry.state = after
                inquiry.closed_at = at if after == InquiryState.CLOSED else None
        if owner_id is not None and owner_id != inquiry.owner_id:
            session.add(_log(inquiry.id, at, "assign", None, actor=actor, owner=owner_id))
            inquiry.owner_id = owner_id
        if kind is not None and kind != inquiry.kind:
            session.add(_log(inquiry.id, at, "kind", None, actor=actor, old=inquiry.kind, new=kind))
            inquiry.kind, inquiry.kind_by = str(kind), actor or "api"
        if answer is not None:
            session.add(
                InquiryMessage(
                    inquiry_id=inquiry.id, direction=str(MessageDirection.OUT), at=at,
                    author_id=actor, subject=reply_subject(inquiry.subject, inquiry.id),
                    text=answer, send_state="queued",
                )
            )  # fmt: skip
            if inquiry.first_response_at is None:
                inquiry.first_response_at = at
        if note is not None:
            session.add(
                InquiryMessage(
                    inquiry_id=inquiry.id, direction=str(MessageDirection.NOTE), at=at,
                    author_id=actor, text=note,
                )
            )  # fmt: skip
        inquiry.updated_at = at
        await session.flush()
        return inquiry


async def escalate(
    sessions: Sessions,
    inquiry_id: int,
    at: datetime,
    actor: str | None,
    *,
    supervisor: str | None,
) -> tuple[EscalationStep, ...]:
    """An agent escalates the inquiry by hand (it is late, or it needs someone senior): the
    levels ``core.inquiries.escalation`` gives a breached one, less those already on the
    record, recorded in one transaction (nobody notified twice)."""
    async with sessions() as session, session.begin():
        inquiry = await session.get(Inquiry, inquiry_id, with_for_update=True)
        if inquiry is None:
            raise LookupError(inquiry_id)
        done = {
            EscalationLevel(d["level"])
            for d in await session.scalars(
                select(InquiryLog.data).where(
                    InquiryLog.inquiry_id == inquiry_id, InquiryLog.kind == "escalate"
                )
            )
        }
        manager = None
        if inquiry.client_id is not None:
            manager = await session.scalar(
                select(Client.assigned_manager_id).where(Client.id == inquiry.client_id)
            )
        steps = escalation(
            InquiryKind(inquiry.kind), supervisor=supervisor, manager=manager, breached=True,
            done=done,
        )  # fmt: skip
        for step in steps:
            session.add(
                _log(inquiry_id, at, "escalate", None, level=str(step.level), to=step.to,
                     notified=False, actor=actor)
            )  # fmt: skip
        if steps:
            inquiry.updated_at = at
        return steps


@dataclass(frozen=True)
class OpenInquiry:
    id: int
    kind: str
    state: str
    queue: str
    subject: str
    owner_id: str | None
    first_response_at: datetime | None
    history: list[tuple[datetime, InquiryState]]
    escalated: frozenset[str] = frozenset()  # the levels it went to


async def not_closed(sessions: Sessions, limit: int = 10_000) -> list[OpenInquiry]:
    """The inquiries not closed (oldest first, ``limit`` at most) with their states' history:
    two reads, however many (the SLA of each, for the backlog and the wallboard)."""
    async with sessions() as session:
        rows = list(
            await session.scalars(
                select(Inquiry)
                .where(Inquiry.state != str(InquiryState.CLOSED))
                .order_by(Inquiry.created_at, Inquiry.id)
                .limit(limit)
            )
        )
        history: dict[int, list[tuple[datetime, InquiryState]]] = {r.id: [] for r in rows}
        levels: dict[int, set[str]] = {}
        ids = list(history)
        for start in range(0, len(ids), 1000):
            chunk = ids[start : start + 1000]
            for inquiry_id, at, state, kind, data in await session.execute(
                select(
                    InquiryLog.inquiry_id,
                    InquiryLog.at,
                    InquiryLog.state,
                    InquiryLog.kind,
                    InquiryLog.data,
                )
                .where(
                    InquiryLog.inquiry_id.in_(chunk),
                    InquiryLog.state.is_not(None) | (InquiryLog.kind == "escalate"),
                )
                .order_by(InquiryLog.at, InquiryLog.id)
            ):
                if kind == "escalate":
                    levels.setdefault(inquiry_id, set()).add(str(data.get("level")))
                else:
                    history[inquiry_id].append((at, InquiryState(str(state))))
    return [
        OpenInquiry(
            r.id,
            r.kind,
            r.state,
            r.queue,
            r.subject,
            r.owner_id,
            r.first_response_at,
            history[r.id],
            frozenset(levels.get(r.id, ())),
        )
        for r in rows
    ]


# ---- the answers to send -------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """An agent's answer claimed for sending, with what its channel needs."""

    id: int
    inquiry_id: int
    channel: str
    to: str  # the inquiry's sender: an e-mail address, a Facebook / Instagram id
    reply_from: str | None  # the mailbox it came to, the Page it was sent to
    subject: str
    text: str
    attempts: int
    queued_at: datetime
    answers: tuple[str, ...]  # the thread's Message-IDs, oldest first (an e-mail's References)
    last_in_at: datetime | None  # the client's latest message (Meta's reply window)
    automatic: bool = False  # Centrala's own (a receipt): Auto-Submitted


async def claim_answers(
    sessions: Sessions, now: datetime, limit: int, lease: timedelta
) -> list[Answer]:
    """Up to ``limit`` answers due for sending, claimed by this instance (sending): queued
    ones whose time has come, and those a dead instance claimed (past the lease). Each claim
    a conditional write: another instance that read the same row finds it taken."""
    due = (
        (InquiryMessage.send_state == "queued")
        & (InquiryMessage.next_attempt_at.is_(None) | (InquiryMessage.next_attempt_at <= now))
    ) | ((InquiryMessage.send_state == "sending") & (InquiryMessage.claimed_at < now - lease))
    claimed: list[Answer] = []
    async with sessions() as session, session.begin():
        ids = list(
            await session.scalars(
                select(InquiryMessage.id)
                .where(InquiryMessage.send_state.in_(["queued", "sending"]), due)
                .order_by(InquiryMessage.at, InquiryMessage.id)
                .limit(limit)
            )
        )
        for message_id in ids:
            taken = await session.scalar(
                update(InquiryMessage)
                .where(InquiryMessage.id == message_id, due)
                .values(send_state="sending", claimed_at=now, attempts=InquiryMessage.attempts + 1)
                .returning(InquiryMessage.inquiry_id)
            )
            if taken is None:
                continue
            message = await session.get(InquiryMessage, message_id)
            inquiry = await session.get(Inquiry, taken)
            assert message is not None and inquiry is not None
            thread = list(
                await session.execute(
                    select(InquiryMessage.message_id, InquiryMessage.direction, InquiryMessage.at)
                    .where(InquiryMessage.inquiry_id == taken, InquiryMessage.id != message_id)
                    .order_by(InquiryMessage.at, InquiryMessage.id)
                )
            )
            claimed.append(
                Answer(
                    id=message_id,
                    inquiry_id=taken,
                    channel=inquiry.channel,
                    to=inquiry.sender,
                    reply_from=inquiry.reply_from,
                    subject=message.subject,
                    text=message.text,
                    attempts=message.attempts,
                    queued_at=message.at,
                    answers=tuple(m for m, _, _ in thread if m),
                    last_in_at=max(
                        (at for _, d, at in thread if d == str(MessageDirection.IN)), default=None
                    ),
                    automatic=message.automatic,
                )
            )
    return claimed


async def answer_sent(sessions: Sessions, message_id: int, provider_id: str) -> None:
    """Sent: the provider's id kept (an e-mail's Message-ID also as the message's own, so
    the client's answer to it threads back)."""
    async with sessions() as session, session.begin():
        await session.execute(
            update(InquiryMessage)
            .where(InquiryMessage.id == message_id, InquiryMessage.send_state == "sending")
            .values(
                send_state="sent",
                provider_id=provider_id[:300],
                message_id=provider_id.strip("<>")[:300] if "@" in provider_id else None,
                claimed_at=None,
                error=None,
            )
        )


async def answer_not_sent(
    sessions: Sessions, message_id: int, error: str, again_at: datetime | None
) -> None:
    """Not sent: queued again at ``again_at`` (the provider was down), or failed for good
    (None: refused, the reply window closed) with why, for the desk to show."""
    values: dict[str, Any] = {"claimed_at": None, "error": error[:500]}
    if again_at is None:
        values["send_state"] = "failed"
    else:
        values.update(send_state="queued", next_attempt_at=again_at)
    async with sessions() as session, session.begin():
        await session.execute(
            update(InquiryMessage)
            .where(InquiryMessage.id == message_id, InquiryMessage.send_state == "sending")
            .values(**values)
        )


# ---- the ACD's reads and writes --------------------------------------------------------------


async def waiting_for_agents(sessions: Sessions, limit: int = 200) -> list[WaitingInquiry]:
    """The new inquiries nobody holds, the most urgent and oldest first."""
    async with sessions() as session:
        rows = await session.execute(
            select(Inquiry.id, Inquiry.queue, Inquiry.priority, Inquiry.created_at)
            .where(Inquiry.state == str(InquiryState.NEW), Inquiry.owner_id.is_(None))
            .order_by(Inquiry.priority.desc(), Inquiry.created_at, Inquiry.id)
            .limit(limit)
        )
        return [WaitingInquiry(i, q, p, at) for i, q, p, at in rows]


async def held(sessions: Sessions) -> dict[str, int]:
    """How many inquiries each agent works on (new or open, theirs; one waiting for the
    client does not hold them)."""
    async with sessions() as session:
        rows = await session.execute(
            select(Inquiry.owner_id, func.count())
            .where(
                Inquiry.owner_id.is_not(None),
                Inquiry.state.in_([str(InquiryState.NEW), str(InquiryState.OPEN)]),
            )
            .group_by(Inquiry.owner_id)
        )
        return {str(owner): int(n) for owner, n in rows}


async def give(sessions: Sessions, inquiry_id: int, agent_id: str, at: datetime) -> bool:
    """The ACD gives a waiting inquiry to an agent: only if it is still new and nobody's (an
    agent took it meanwhile, another instance gave it); on the log."""
    async with sessions() as session, session.begin():
        done = await session.execute(
            update(Inquiry)
            .where(
                Inquiry.id == inquiry_id,
                Inquiry.state == str(InquiryState.NEW),
                Inquiry.owner_id.is_(None),
            )
            .values(owner_id=agent_id, state=str(InquiryState.OPEN), updated_at=at)
            .returning(Inquiry.id)
        )
        if done.first() is None:
            return False
        session.add(_log(inquiry_id, at, "assign", None, owner=agent_id, by="acd"))
        session.add(_log(inquiry_id, at, "state", InquiryState.OPEN))
        return True


@dataclass(frozen=True)
class Escalated:
    """An escalation whose agent is not yet told."""

    log_id: int
    inquiry_id: int
    to: str  # the agent's id
    level: str
    kind: str
    subject: str
    email: str | None  # the agent's
    language: str  # their desk's


async def escalations_to_tell(sessions: Sessions, limit: int = 100) -> list[Escalated]:
    async with sessions() as session:
        rows = await session.execute(
            select(InquiryLog, Inquiry.kind, Inquiry.subject)
            .join(Inquiry, Inquiry.id == InquiryLog.inquiry_id)
            .where(InquiryLog.kind == "escalate", InquiryLog.notified_at.is_(None))
            .order_by(InquiryLog.id)
            .limit(limit)
        )
        found = []
        for entry, kind, subject in rows:
            to = str(entry.data.get("to") or "")
            agent = await session.get(Agent, to) if to else None
            found.append(
                Escalated(
                    log_id=entry.id,
                    inquiry_id=entry.inquiry_id,
                    to=to,
                    level=str(entry.data.get("level") or ""),
                    kind=kind,
                    subject=subject,
                    email=agent.email if agent is not None else None,
                    language=str(agent.language.value) if agent is not None else "bs",
                )
            )
        return found


async def told(sessions: Sessions, log_id: int, at: datetime) -> None:
    async with sessions() as session, session.begin():
        await session.execute(
            update(InquiryLog)
            .where(InquiryLog.id == log_id, InquiryLog.notified_at.is_(None))
            .values(notified_at=at)
        )


async def add_receipt(
    sessions: Sessions, inquiry_id: int, subject: str, text: str, at: datetime
) -> None:
    """Centrala's own receipt to the client (queued to leave by e-mail like an answer, but
    no agent's: the inquiry's state and first response stay as they are)."""
    async with sessions() as session, session.begin():
        session.add(
            InquiryMessage(
                inquiry_id=inquiry_id,
                direction=str(MessageDirection.OUT),
                at=at,
                subject=subject[:300],
                text=text,
                automatic=True,
                send_state="queued",
            )
        )


async def link_client(
    sessions: Sessions,
    inquiry_id: int,
    at: datetime,
    actor: str | None,
    *,
    client_id: int | None = None,
    name: str | None = None,
) -> int:
    """Links an inquiry from a sender the CRM did not know to a client: an existing one
    (``client_id``), or a new one made from the sender (``name``, their e-mail and phone).
    A client with no e-mail on file gets the sender's, so their next mail links by itself;
    the change is on the client's audit trail, the link on the inquiry's log. The client's
    id; LookupError for an unknown inquiry or client."""
    async with sessions() as session, session.begin():
        inquiry = await session.get(Inquiry, inquiry_id, with_for_update=True)
        if inquiry is None:
            raise LookupError("inquiry")
        if client_id is not None:
            client = await session.get(Client, client_id)
            if client is None:
                raise LookupError("client")
        else:
            client = Client(
                external_id=f"desk-{uuid.uuid4().hex[:12]}",
                name=(name or inquiry.sender_name or inquiry.sender)[:200],
                client_type=ClientType.NEW,
                phones=[ClientPhone(number=inquiry.sender_phone)] if inquiry.sender_phone else [],
            )
            session.add(client)
            await session.flush()
            session.add(ClientAudit(client_id=client.id, agent_id=actor, field="created",
                                    new_value=client.name))  # fmt: skip
        by_mail = inquiry.channel in (InquiryChannel.EMAIL, InquiryChannel.WEB_FORM)
        if by_mail and "@" in inquiry.sender and not client.email:
            client.email = inquiry.sender
            session.add(ClientAudit(client_id=client.id, agent_id=actor, field="email",
                                    new_value=inquiry.sender))  # fmt: skip
        session.add(_log(inquiry.id, at, "client", None, actor=actor, client_id=client.id))
        inquiry.client_id, inquiry.updated_at = client.id, at
        return client.id


# ---- the admin's classification rules --------------------------------------------------------


async def stored_rules(sessions: Sessions) -> tuple[int, dict[str, Any]] | None:
    """The admin's rules document and its version, or None when none was saved yet."""
    async with sessions() as session:
        row = await session.get(InquiryRules, 1)
        return (row.version, dict(row.document)) if row is not None else None


async def save_rules(
    sessions: Sessions, document: dict[str, Any], version: int, actor: str, at: datetime
) -> int | None:
    """Saves the rules over ``version`` (0: the shipped ones, none saved yet); the new
    version, or None when someone saved another meanwhile (nothing written). On the audit
    trail."""
    try:
        async with sessions() as session, session.begin():
            row = await session.get(InquiryRules, 1, with_for_update=True)
            if (row.version if row is not None else 0) != version:
                return None
            if row is None:
                session.add(
                    InquiryRules(id=1, version=1, document=document, updated_by=actor or None,
                                 updated_at=at)
                )  # fmt: skip
            else:
                row.version, row.document = version + 1, document
                row.updated_by, row.updated_at = actor or None, at
            add_entry(session, actor or "api", "inquiry_rules.edit", "inquiry_rules",
                      {"version": version + 1})  # fmt: skip
            await session.flush()
            return version + 1
    except IntegrityError:  # two first saves at once: the other one won
        return None
