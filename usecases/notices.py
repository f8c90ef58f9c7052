"""Notices to clients, from the CRM to the provider: ``queue`` puts a kind's message for each
client the contact policy lets through into the outbox (merged from the template in the
client's language, due at the end of their quiet hours; once per client and occasion, however
often it runs), ``birthdays`` does it for the clients born on a day, and ``deliver`` hands the
due messages to their channel's sender (injected: ``mail.smtp``'s, ``sms``', ``viber``'), one
claimer a few messages ahead of the senders, so a `serve` that dies mid-batch leaves those
claimed (taken over after the lease) and may send again only the ones in flight, and a
provider that is down gets them later (``core.notices.retry_at``), none dropped; ``fallbacks``
queues one SMS for each Viber message that failed or had no report in time (the rule is
``core.notices.needs_fallback``'s; ours alone, never the provider's too).

May import ``core``, ``models`` and ``usecases``."""

from __future__ import annotations

import asyncio
import hashlib
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.letters import window_address
from core.notices import (
    CLAIM_LEASE,
    REPORT_GRACE,
    Channel,
    NoticeKind,
    NoticeRequestError,
    NoticeState,
    Plan,
    Policy,
    Skip,
    SupervisorNotice,
    birthday_dates,
    fallback_key,
    fallback_plan,
    merged,
    notice_key,
    plan,
    retry_at,
)
from models import notices as store
from models.notices import Claimed

Sessions = async_sessionmaker[AsyncSession]
log = structlog.get_logger(__name__)
CHUNK = 1000  # clients read and messages written at a time


class NotSent(Exception):
    """A channel's sender could not hand the message over: ``retry`` when the provider is
    down or busy (later), not when it refused this message for good."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.retry = retry


# Hands a claimed message to its provider; the provider's id of it. Raises NotSent.
Send = Callable[[Claimed], Awaitable[str]]


@dataclass(frozen=True)
class NoticeSetup:
    policy: Policy
    senders: Mapping[Channel, Send]
    workers: int = 4  # messages in flight at once
    # A Viber message with no final report this long after its sending falls back to SMS:
    # its validity (the provider drops it then) and core.notices.REPORT_GRACE.
    fallback_after: timedelta = timedelta(seconds=600) + REPORT_GRACE
    # A sending claimed this long ago and not finished (its `serve` died) is taken over.
    lease: timedelta = CLAIM_LEASE
    # A client whose channel is a letter (their preference; no phone, no e-mail) gets one
    # queued for the operators to print (``usecases.letters.waiting``), never sent here.
    letters: bool = False

    def channels(self) -> set[Channel]:
        return set(self.senders) | ({Channel.LETTER} if self.letters else set())


@dataclass
class Queued:
    added: int = 0
    already: int = 0  # had their message (a job run again)
    skipped: Counter[str] = field(default_factory=Counter)  # by the policy's reason

    def summary(self) -> dict[str, object]:
        return {"added": self.added, "already": self.already, "skipped": dict(self.skipped)}


@dataclass
class Composed:
    """A batch of clients' messages merged and planned, not yet written."""

    rows: list[dict[str, object]]
    skipped: Counter[str]
    already: int = 0  # had this very message (its key): not planned again


async def _compose(
    sessions: Sessions,
    setup: NoticeSetup,
    kind: NoticeKind,
    client_ids: Sequence[int],
    now: datetime,
    *,
    occasion: str,
    topic: str | None,
    channel: Channel | None,
    product: str | None,
    message: str | None,
) -> AsyncIterator[Composed]:
    """The outbox rows of ``client_ids`` the policy lets through, ``CHUNK`` clients at a
    time, with why the others are not messaged."""
    since = now - timedelta(days=setup.policy.cap_days)
    for start in range(0, len(client_ids), CHUNK):
        batch = Composed([], Counter())
        chunk = client_ids[start : start + CHUNK]
        # This message's own earlier copy would count as today's contact about it: a job
        # run again is "already", not "contacted today".
        had = await store.existing_keys(sessions, [notice_key(kind, c, occasion) for c in chunk])
        for client in await store.recipients(sessions, chunk, since):
            if notice_key(kind, client.recipient.client_id, occasion) in had:
                batch.already += 1
                continue
            decided = plan(
                kind,
                client.recipient,
                now,
                setup.channels(),
                setup.policy,
                topic=topic,
                channel=channel,
            )
            if not isinstance(decided, Plan):
                batch.skipped[decided.reason] += 1
                continue
            address = decided.address
            if decided.channel is Channel.LETTER:  # kept as its window shows it, name first
                lines = window_address(client.name, address)
                if isinstance(lines, Skip):
                    batch.skipped[lines.reason] += 1
                    continue
                address = "\n".join(lines)
            language, text = merged(kind, client, product=product, message=message)
            batch.rows.append(
                {
                    "key": notice_key(kind, client.recipient.client_id, occasion),
                    "client_id": client.recipient.client_id,
                    "kind": str(kind),
                    "channel": str(decided.channel),
                    "language": language,
                    "address": address,
                    "topic": topic,
                    "subject": text.subject,
                    "body": text.text,
                    "html": text.html,
                    "state": str(NoticeState.QUEUED),
                    "attempts": 0,
                    "not_before": decided.not_before,
                    "created_at": now,
                }
            )
        yield batch


async def queue(
    sessions: Sessions,
    setup: NoticeSetup,
    kind: NoticeKind,
    client_ids: Sequence[int],
    now: datetime,
    *,
    occasion: str,
    topic: str | None = None,
    channel: Channel | None = None,
    product: str | None = None,
    message: str | None = None,
) -> Queued:
    """A ``kind`` message for each of ``client_ids`` the policy allows, once per
    ``occasion`` (a birthday's year, an offer campaign's name)."""
    result = Queued()
    async for batch in _compose(
        sessions, setup, kind, client_ids, now, occasion=occasion, topic=topic,
        channel=channel, product=product, message=message,
    ):  # fmt: skip
        result.skipped.update(batch.skipped)
        added = await store.add(sessions, batch.rows)
        result.added += added
        result.already += batch.already + len(batch.rows) - added
    return result


# ---- a supervisor's notice ---------------------------------------------------------------


async def clients_of(sessions: Sessions, notice: SupervisorNotice, now: datetime) -> list[int]:
    """The clients a supervisor's notice is for: the segment's (from their loans), or the
    listed ones, every one of them known (else nothing is sent: NoticeRequestError)."""
    if notice.segment is not None:
        return await store.segment_clients(sessions, notice.segment, now)
    found = await store.ids_of(sessions, notice.external_ids)
    if unknown := [e for e in notice.external_ids if e not in found]:
        shown = ", ".join(unknown[:10]) + (" …" if len(unknown) > 10 else "")
        raise NoticeRequestError(
            "clients", f"{len(unknown)} unknown external_id(s): {shown}; nothing was sent"
        )
    return [found[e] for e in notice.external_ids]


async def send_notice(
    sessions: Sessions, setup: NoticeSetup, notice: SupervisorNotice, now: datetime, day: date
) -> Queued:
    """A supervisor's notice queued for its clients (once per client for the same text on
    the same ``day``, the call centre's); the senders send it."""
    ids = await clients_of(sessions, notice, now)
    result = await queue(
        sessions, setup, notice.kind, ids, now, occasion=occasion_of(day, notice.text),
        topic=notice.topic, channel=notice.channel, product=notice.product,
        message=notice.message,
    )  # fmt: skip
    log.info("supervisor_notice_queued", kind=str(notice.kind), **result.summary())
    return result


@dataclass
class Preview:
    """What sending a notice would do, nothing written: how many clients get it by which
    channel, how many had it already, who not and why, and one real message per language."""

    clients: int = 0
    by_channel: Counter[str] = field(default_factory=Counter)
    already: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    samples: dict[str, dict[str, str]] = field(default_factory=dict)  # by language

    def as_json(self) -> dict[str, object]:
        return {
            "clients": self.clients,
            "by_channel": dict(self.by_channel),
            "already": self.already,
            "skipped": dict(self.skipped),
            "samples": [{"language": k, **v} for k, v in sorted(self.samples.items())],
        }


async def preview(
    sessions: Sessions, setup: NoticeSetup, notice: SupervisorNotice, now: datetime, day: date
) -> Preview:
    ids = await clients_of(sessions, notice, now)
    shown = Preview(clients=len(ids))
    async for batch in _compose(
        sessions, setup, notice.kind, ids, now, occasion=occasion_of(day, notice.text),
        topic=notice.topic, channel=notice.channel, product=notice.product,
        message=notice.message,
    ):  # fmt: skip
        shown.skipped.update(batch.skipped)
        shown.already += batch.already
        for row in batch.rows:
            shown.by_channel[str(row["channel"])] += 1
            shown.samples.setdefault(
                str(row["language"]),
                {
                    "channel": str(row["channel"]),
                    "subject": str(row["subject"]),
                    "text": str(row["body"]),
                    "html": str(row["html"]),
                },
            )
    return shown


async def birthdays(sessions: Sessions, setup: NoticeSetup, day: date, now: datetime) -> Queued:
    """The birthday greetings of ``day`` (once each per year)."""
    clients = await store.born_between(sessions, birthday_dates(day))
    result = await queue(sessions, setup, NoticeKind.BIRTHDAY, clients, now, occasion=str(day.year))
    log.info("birthday_notices_queued", day=day.isoformat(), **result.summary())
    return result


async def document_expiries(
    sessions: Sessions, setup: NoticeSetup, day: date, now: datetime, days_before: int
) -> Queued:
    """The notices of ID documents expiring ``days_before`` days after ``day`` (once per
    client and document: its date is the occasion)."""
    expiry = day + timedelta(days=days_before)
    clients = await store.expiring_on(sessions, expiry)
    result = await queue(
        sessions, setup, NoticeKind.DOCUMENT_EXPIRY, clients, now, occasion=expiry.isoformat()
    )
    log.info("document_notices_queued", expiry=expiry.isoformat(), **result.summary())
    return result


def occasion_of(day: date, text: str) -> str:
    """A supervisor's notice's occasion: its day and text (with the kind, the key), so the
    same notice sent again that day adds nothing, and another one is another occasion."""
    digest = hashlib.sha256(text.encode()).hexdigest()[:10]
    return f"{day.isoformat()}-{digest}"


@dataclass
class Delivered:
    sent: int = 0
    retried: int = 0
    failed: int = 0


async def deliver(
    sessions: Sessions,
    setup: NoticeSetup,
    now: Callable[[], datetime],
    *,
    limit: int | None = None,
    stop: asyncio.Event | None = None,
) -> Delivered:
    """Sends the due messages (``limit`` at most) with ``setup.workers`` senders, until none
    is due. One claimer takes them a few at a time (one conditional write for the few), at
    most twice the senders' number ahead of them; one writer records what the provider took
    a batch at a time. A `serve` that dies leaves those claimed, taken over after the lease,
    and those being sent or taken but not yet recorded: the only ones that may go twice.
    ``stop`` set: no more claims; those claimed are sent and recorded, and it returns (a
    `serve` stopping lets it finish instead of cancelling its writes half-way)."""
    done = Delivered()
    senders = max(1, setup.workers)
    waiting: asyncio.Queue[Claimed | None] = asyncio.Queue(maxsize=2 * senders)
    # The senders' results, recorded a batch at a time by one writer (``store.sent_many``):
    # each message's own transaction made the database the bottleneck. A message taken by
    # the provider stays "sending" until its batch commits: the kill test's "in flight".
    taken: asyncio.Queue[tuple[int, datetime, str] | None] = asyncio.Queue()

    async def claimer() -> None:
        left = limit
        while (left is None or left > 0) and not (stop is not None and stop.is_set()):
            batch = min(senders, left or senders)
            claimed = await store.claim_due(sessions, now(), batch, setup.lease)
            if not claimed:
                break
            for message in claimed:
                await waiting.put(message)
            if left is not None:
                left -= len(claimed)
        # The senders' end, once every claim is queued. Not in a ``finally``: cancelled (a
        # `serve` stopping) or failed, the task group cancels the senders itself, and a put
        # on a full queue nobody reads any more would hang the stop for ever.
        for _ in range(senders):
            await waiting.put(None)

    async def sender() -> None:
        while (message := await waiting.get()) is not None:
            await _send_one(sessions, setup, message, now, done, taken)

    async def recorder() -> None:
        finished = False
        while not finished:
            batch = [await taken.get()]
            while not taken.empty() and len(batch) < CHUNK:
                batch.append(taken.get_nowait())
            finished = None in batch
            await store.sent_many(sessions, [x for x in batch if x is not None])

    async with asyncio.TaskGroup() as group:
        writer = group.create_task(recorder())
        async with asyncio.TaskGroup() as sending:
            sending.create_task(claimer())
            for _ in range(senders):
                sending.create_task(sender())
        await taken.put(None)  # every result is in: the last batch, then the writer ends
        await writer
    return done


async def _send_one(
    sessions: Sessions,
    setup: NoticeSetup,
    message: Claimed,
    now: Callable[[], datetime],
    done: Delivered,
    taken: asyncio.Queue[tuple[int, datetime, str] | None],
) -> None:
    bound = log.bind(notice_id=message.id, channel=str(message.channel), attempt=message.attempts)
    sender = setup.senders.get(message.channel)
    try:
        if sender is None:
            raise NotSent(f"no {message.channel} provider is configured", retry=True)
        provider_id = await sender(message)
    except NotSent as exc:
        at = now()
        again = retry_at(message.attempts, at, message.created_at) if exc.retry else None
        await store.failed(sessions, message.id, at, str(exc), again)
        if again is None:
            done.failed += 1
            bound.warning("notice_failed", error=str(exc))
        else:
            done.retried += 1
            bound.info("notice_retry", error=str(exc), retry_at=again.isoformat())
        return
    await taken.put((message.id, now(), provider_id))
    done.sent += 1
    bound.info("notice_sent", provider_id=provider_id)


@dataclass
class Fallbacks:
    queued: int = 0  # SMS queued for failed or silent Viber messages
    skipped: Counter[str] = field(default_factory=Counter)  # no SMS, by the policy's reason


async def fallbacks(sessions: Sessions, setup: NoticeSetup, now: datetime) -> Fallbacks:
    """One SMS, under the contact policy's SMS rules and quiet hours, for each Viber message
    that was refused, reported undeliverable, rejected or expired, or has had no final
    report for ``setup.fallback_after`` (it is marked expired then); each decided once,
    however often this runs or a report repeats (``store.fall_back``)."""
    done = Fallbacks()
    wait = setup.fallback_after
    while due := await store.fallbacks_due(sessions, now, wait, CHUNK):
        ids = sorted({m.client_id for m in due})
        clients = {c.recipient.client_id: c for c in await store.recipients(sessions, ids, now)}
        decisions: dict[int, dict[str, object] | None] = {}
        reasons: dict[int, str] = {}
        for message in due:
            client = clients.get(message.client_id)
            decided: Plan | Skip = (
                fallback_plan(
                    NoticeKind(message.kind),
                    client.recipient,
                    now,
                    setup.senders.keys(),  # an SMS: letters are not a fallback
                    setup.policy,
                )
                if client is not None
                else Skip("no_client")
            )
            if isinstance(decided, Skip):
                decisions[message.id], reasons[message.id] = None, decided.reason
                continue
            decisions[message.id] = {
                "key": fallback_key(message.key),
                "client_id": message.client_id,
                "kind": message.kind,
                "channel": str(decided.channel),
                "language": message.language,
                "address": decided.address,
                "topic": message.topic,
                "subject": message.subject,
                "body": message.body,
                "html": message.html,
                "state": str(NoticeState.QUEUED),
                "attempts": 0,
                "not_before": decided.not_before,
                "created_at": now,
            }
        # Those delivered meanwhile, or decided by another instance, are left out.
        for viber_id in sorted(await store.fall_back(sessions, decisions, now, wait)):
            if viber_id in reasons:
                done.skipped[reasons[viber_id]] += 1
                log.info("viber_fallback_skipped", notice_id=viber_id, reason=reasons[viber_id])
            else:
                done.queued += 1
                log.info("viber_fallback_queued", notice_id=viber_id)
        if len(due) < CHUNK:
            break
    return done
