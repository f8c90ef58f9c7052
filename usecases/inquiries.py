"""Written inquiries from arrival to answer: a client's message (an e-mail, the contact form,
a Facebook / Instagram message) classified by the admin's rules and stored once, threaded
into the inquiry it answers or opening a new one (escalated when its kind says so:
``core.inquiries.escalation``); an agent's reply, assignment, kind change, note or closing
(``act``); and each inquiry's SLA now (``sla_of``).

May import ``core``, ``models`` and ``usecases``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.acd import Agent
from core.inquiries import (
    DEFAULT_RULES,
    DEFAULT_SLA,
    ESCALATED_KINDS,
    ContactForm,
    InquiryChannel,
    InquiryError,
    InquiryEvent,
    InquiryKind,
    Rules,
    SlaStatus,
    SlaTargets,
    check_rules,
    classify,
    routing,
    sla_status,
)
from core.inquiries.meta import MetaMessage
from core.inquiries.rules import rules_document
from core.notices import CLAIM_LEASE, retry_at
from dialplan.model import Calendar
from models import inquiries as store
from models.flows import active_flow
from models.inquiries import Arrival, NewInquiry, Received, Thread
from models.tables import Inquiry
from usecases.notices import Delivered, NotSent

Sessions = async_sessionmaker[AsyncSession]
log = structlog.get_logger(__name__)


@dataclass
class InquirySetup:
    """The operators' settings for written inquiries. `serve` keeps ``rules`` and
    ``calendars`` up to date in place (an admin's save, a publish)."""

    rules: Rules = DEFAULT_RULES
    queue: str = "general"  # the ACD queue they wait in
    supervisor: str | None = None  # the agent id escalations go to first
    sla: Mapping[InquiryKind, SlaTargets] = field(default_factory=lambda: dict(DEFAULT_SLA))
    calendar: Calendar | None = None  # business time when the queue has no calendar
    # Each queue's business calendar (the live flow's: ``queue_calendars``), the SLA's clock;
    # `serve` keeps it up to date in place (a publish changes the hours).
    calendars: dict[str, Calendar] = field(default_factory=dict)

    def calendar_for(self, queue: str) -> Calendar | None:
        return self.calendars.get(queue, self.calendar)


async def queue_calendars(sessions: Sessions, flow: str = "infoline") -> dict[str, Calendar]:
    """The calendars of the live flow's queues: an inquiry waiting in a queue counts its SLA
    in that queue's opening hours (nights, weekends and holidays do not count)."""
    found = await active_flow(sessions, flow)
    if found is None:
        return {}
    _, live = found
    return {
        queue_id: live.calendars[q.calendar]
        for queue_id, q in live.queues.items()
        if q.calendar is not None and q.calendar in live.calendars
    }


async def receive(sessions: Sessions, setup: InquirySetup, arrival: Arrival) -> Received:
    """``arrival`` stored once: into the inquiry it answers, or as a new one of the kind
    the rules give (what goes to the supervisor first in the queue)."""
    kind, match = classify(
        arrival.subject,
        arrival.text,
        arrival.sender_email or arrival.sender,
        InquiryChannel(arrival.channel),
        setup.rules,
    )
    new = NewInquiry(
        kind,
        setup.queue,
        priority=1 if kind in ESCALATED_KINDS else 0,
        why={"source": match.source, "rule": match.rule, "language": match.language},
    )
    received = await store.receive(sessions, arrival, new, supervisor=setup.supervisor)
    bound = log.bind(inquiry_id=received.inquiry_id, source_key=arrival.source_key)
    if received.duplicate:
        bound.info("inquiry_message_again")
    elif received.created:
        bound.info(
            "inquiry_opened",
            channel=arrival.channel,
            kind=str(kind),
            escalated=[str(s.level) for s in received.escalated],
        )
    else:
        bound.info("inquiry_message_threaded", state=received.state)
    return received


def form_arrival(form: ContactForm, form_id: str, at: datetime, subject: str) -> Arrival:
    """The contact form's post as an arrival (``form_id``: the post's own id, so a post
    sent twice by a double click is stored once)."""
    return Arrival(
        channel=str(InquiryChannel.WEB_FORM),
        source_key=f"form:{form_id}",
        sender=form.email or form.phone or "",
        sender_name=form.name,
        subject=subject,
        text=form.message,
        at=at,
        sender_email=form.email,
        sender_phone=form.phone,
    )


# A Facebook / Instagram message goes into the sender's latest inquiry, unless it was closed
# longer ago than this: then it is a new matter.
CONVERSATION_GAP = timedelta(days=7)


def meta_arrival(m: MetaMessage) -> Arrival | None:
    """A Facebook / Instagram message as an arrival (None for our own echoes: the answers
    the desk sent are on the record already, from the Page's inbox they are not ours)."""
    if m.is_echo:
        return None
    lines = [m.text] if m.text else []
    if m.postback:
        lines.append(f"[{m.postback}]")
    lines += [f"[{a.type}] {a.url or ''}".rstrip() for a in m.attachments]
    if m.unsupported:
        lines.append("[unsupported]")
    text = "\n".join(lines)
    first = " ".join(text.split())
    subject = first[:80] + ("…" if len(first) > 80 else "") or str(m.platform)
    return Arrival(
        channel=str(m.platform),
        source_key=f"meta:{m.mid}",
        sender=m.sender_id,
        sender_name="",
        subject=subject,
        text=text,
        at=m.timestamp,
        reply_from=m.page_id,
        conversation=CONVERSATION_GAP,
    )


async def receive_meta(
    sessions: Sessions, setup: InquirySetup, messages: Sequence[MetaMessage]
) -> list[Received]:
    """The webhook's messages, each stored once by its ``mid`` (Meta delivers again after
    an error: the ones stored before are duplicates then)."""
    return [
        await receive(sessions, setup, arrival)
        for arrival in map(meta_arrival, messages)
        if arrival is not None
    ]


def sla_of(thread: Thread, now: datetime, setup: InquirySetup) -> SlaStatus:
    targets = setup.sla[InquiryKind(thread.inquiry.kind)]
    return sla_status(
        thread.history(),
        now,
        setup.calendar_for(thread.inquiry.queue),
        targets,
        first_response_at=thread.inquiry.first_response_at,
    )


# ---- an agent's moves ------------------------------------------------------------------------


async def thread_or_404(sessions: Sessions, inquiry_id: int) -> Thread:
    found = await store.thread(sessions, inquiry_id)
    if found is None:
        raise InquiryError("not_found", f"no inquiry {inquiry_id}", status=404)
    return found


async def reply(
    sessions: Sessions, inquiry_id: int, agent_id: str | None, text: str, at: datetime
) -> Inquiry:
    """An agent's answer, queued to leave by the channel the inquiry came in; the inquiry
    waits for the client (the SLA clock stops)."""
    text = text.strip()
    if not text:
        raise InquiryError("bad_reply", "an answer needs its text", status=400)
    return await _act(sessions, inquiry_id, InquiryEvent.REPLY, at, agent_id, answer=text)


async def _act(
    sessions: Sessions,
    inquiry_id: int,
    event: InquiryEvent | None,
    at: datetime,
    actor: str | None,
    *,
    owner_id: str | None = None,
    kind: InquiryKind | None = None,
    answer: str | None = None,
    note: str | None = None,
) -> Inquiry:
    try:
        return await store.act(
            sessions, inquiry_id, event, at, actor,
            owner_id=owner_id, kind=kind, answer=answer, note=note,
        )  # fmt: skip
    except LookupError:
        raise InquiryError("not_found", f"no inquiry {inquiry_id}", status=404) from None


async def assign(
    sessions: Sessions, inquiry_id: int, actor: str | None, owner_id: str, at: datetime
) -> Inquiry:
    return await _act(sessions, inquiry_id, InquiryEvent.ASSIGN, at, actor, owner_id=owner_id)


async def close(sessions: Sessions, inquiry_id: int, actor: str | None, at: datetime) -> Inquiry:
    return await _act(sessions, inquiry_id, InquiryEvent.CLOSE, at, actor)


async def reclassify(
    sessions: Sessions, inquiry_id: int, actor: str | None, kind: InquiryKind, at: datetime
) -> Inquiry:
    return await _act(sessions, inquiry_id, None, at, actor, kind=kind)


async def note(
    sessions: Sessions, inquiry_id: int, actor: str | None, text: str, at: datetime
) -> Inquiry:
    if not text.strip():
        raise InquiryError("bad_note", "a note needs its text", status=400)
    return await _act(sessions, inquiry_id, None, at, actor, note=text.strip())


@dataclass(frozen=True)
class Late:
    """An inquiry not closed whose SLA is missed (``breached``) or 80% used."""

    inquiry: store.OpenInquiry
    sla: SlaStatus


async def late(sessions: Sessions, setup: InquirySetup, now: datetime) -> list[Late]:
    """The inquiries not closed that have breached their SLA or come near it, the breached
    first, each group oldest first."""
    found = []
    for inquiry in await store.not_closed(sessions):
        if not inquiry.history:
            continue
        sla = sla_status(
            inquiry.history,
            now,
            setup.calendar_for(inquiry.queue),
            setup.sla[InquiryKind(inquiry.kind)],
            first_response_at=inquiry.first_response_at,
        )
        if sla.breached or sla.near_breach:
            found.append(Late(inquiry, sla))
    return sorted(found, key=lambda x: not x.sla.breached)


# ---- the answers leave -----------------------------------------------------------------------


# Sends a claimed answer by its channel; the provider's id of it. Raises NotSent (the
# notices', whose senders' errors are the same: retry when the provider is down).
AnswerSend = Callable[[store.Answer], Awaitable[str]]


async def send_answers(
    sessions: Sessions,
    senders: Mapping[str, AnswerSend],
    now: Callable[[], datetime],
    *,
    lease: timedelta = CLAIM_LEASE,
    batch: int = 20,
) -> Delivered:
    """Sends the agents' answers due, each by the channel its inquiry came in (``senders``
    by channel: e-mail for the mail and the contact form, Meta's for Facebook and
    Instagram), until none is due. An answer a `serve` died sending is taken over after the
    lease; a provider that is down gets it later (``core.notices.retry_at``'s waits)."""
    done = Delivered()
    while claimed := await store.claim_answers(sessions, now(), batch, lease):
        for answer in claimed:
            bound = log.bind(inquiry_id=answer.inquiry_id, answer_id=answer.id)
            channel = "email" if answer.channel == InquiryChannel.WEB_FORM else answer.channel
            sender = senders.get(channel)
            try:
                if sender is None:
                    raise NotSent(f"no {channel} sender is configured", retry=True)
                provider_id = await sender(answer)
            except NotSent as exc:
                at = now()
                again = retry_at(answer.attempts, at, answer.queued_at) if exc.retry else None
                await store.answer_not_sent(sessions, answer.id, str(exc), again)
                if again is None:
                    done.failed += 1
                    bound.warning("inquiry_answer_failed", error=str(exc))
                else:
                    done.retried += 1
                    bound.info("inquiry_answer_retry", error=str(exc), at=again.isoformat())
                continue
            await store.answer_sent(sessions, answer.id, provider_id)
            done.sent += 1
            bound.info("inquiry_answer_sent", provider_id=provider_id)
        if len(claimed) < batch:
            break
    return done


# ---- the ACD gives the waiting inquiries out -------------------------------------------------


async def route(
    sessions: Sessions, agents: Iterable[Agent], now: datetime
) -> list[tuple[int, str]]:
    """Gives the waiting inquiries to the free agents of their queues
    (``core.inquiries.routing.assign``); the pairs made (one another instance or an agent
    made first is left out)."""
    waiting = await store.waiting_for_agents(sessions)
    pairs = routing.assign(agents, await store.held(sessions), waiting)
    given = []
    for inquiry_id, agent_id in pairs:
        if await store.give(sessions, inquiry_id, agent_id, now):
            given.append((inquiry_id, agent_id))
            log.info("inquiry_given", inquiry_id=inquiry_id, agent_id=agent_id)
    return given


async def board(sessions: Sessions, setup: InquirySetup, now: datetime) -> dict[str, object]:
    """The wallboard's written inquiries: how many wait for an agent, are worked on, wait
    for the client; how many have breached their SLA or come near it, and the ten most
    urgent of those (the breached first). The breached ones are escalated on the way
    (``escalate_breaches``)."""
    counts = await store.backlog(sessions)
    by_state: dict[str, int] = {}
    for (_, state), n in counts.items():
        by_state[state] = by_state.get(state, 0) + n
    overdue = await late(sessions, setup, now)
    await escalate_breaches(sessions, setup, overdue, now)
    return {
        "new": by_state.get("new", 0),
        "open": by_state.get("open", 0),
        "waiting": by_state.get("waiting", 0),
        "breached": sum(1 for x in overdue if x.sla.breached),
        "near": sum(1 for x in overdue if not x.sla.breached),
        "late": [
            {
                "id": x.inquiry.id,
                "kind": x.inquiry.kind,
                "state": x.inquiry.state,
                "owner": x.inquiry.owner_id,
                "breached": x.sla.breached,
                "due": (
                    due.isoformat()
                    if (due := x.sla.first_response_due or x.sla.resolution_due)
                    else None
                ),
            }
            for x in overdue[:10]
        ],
    }


def _iso(at: datetime | None) -> str | None:
    return at.isoformat() if at is not None else None


async def tell_escalations(
    sessions: Sessions, tell: Callable[[store.Escalated], Awaitable[None]], now: datetime
) -> int:
    """Each escalation's agent told (``tell``: their desk, their e-mail), once: marked told
    only after; one that could not be told (the mail server away) is told next time."""
    done = 0
    for escalated in await store.escalations_to_tell(sessions):
        await tell(escalated)
        await store.told(sessions, escalated.log_id, now)
        log.info(
            "inquiry_escalation_told",
            inquiry_id=escalated.inquiry_id,
            to=escalated.to,
            level=escalated.level,
        )
        done += 1
    return done


async def escalate_breaches(
    sessions: Sessions, setup: InquirySetup, overdue: Sequence[Late], now: datetime
) -> int:
    """Each inquiry past its SLA goes to the supervisor (``core.inquiries.escalation`` for a
    breached one), once: those the supervisor has already are left alone."""
    done = 0
    for x in overdue:
        if not x.sla.breached or "supervisor" in x.inquiry.escalated:
            continue
        steps = await store.escalate(sessions, x.inquiry.id, now, None, supervisor=setup.supervisor)
        if steps:
            done += 1
            log.info("inquiry_breach_escalated", inquiry_id=x.inquiry.id, to=[s.to for s in steps])
    return done


async def current_rules(sessions: Sessions) -> tuple[int, Rules]:
    """The admin's rules and their version (0 and the shipped rules when none is saved)."""
    stored = await store.stored_rules(sessions)
    if stored is None:
        return 0, DEFAULT_RULES
    version, document = stored
    return version, check_rules(document)


async def edit_rules(
    sessions: Sessions, document: object, version: object, actor: str, at: datetime
) -> tuple[int, Rules]:
    """An admin's rules document saved over ``version``: checked first (``RulesError``
    names the place), refused if someone saved meanwhile (409 ``rules_changed``)."""
    if not isinstance(version, int) or isinstance(version, bool) or version < 0:
        raise InquiryError("bad_version", "version: the version you edited", status=400)
    rules = check_rules(document)
    saved = await store.save_rules(sessions, rules_document(rules), version, actor, at)
    if saved is None:
        raise InquiryError(
            "rules_changed", "the rules were saved by someone else meanwhile: load them again"
        )
    return saved, rules
