"""The written inquiries' wiring for `serve` and the CLI: the inquiries mailboxes read over
IMAP (``read_mailbox``: each message an arrival, ``mail_arrival``), the senders the agents'
answers leave by (e-mail through the SMTP server of the settings, from the mailbox the
inquiry came to; Facebook and Instagram through Meta's Send API, inside its reply window)
and the inquiries' setup from the settings."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from centrala.mailing import hand_over, smtp_server
from centrala.meta_inbox import meta_account
from centrala.settings import Settings
from core.inquiries import InquiryChannel
from core.inquiries.mail import answer_email, escalation_email
from core.inquiries.meta import may_reply
from mail.imap import Fetched, ImapMailbox, MailboxReader, run_mailbox
from mail.inbound import parse_mail
from meta.graph import MetaSendError, send_text
from models.inquiries import Answer, Arrival, Escalated
from models.inquiries import Attachment as MessageAttachment
from usecases.inquiries import AnswerSend, InquirySetup, receive
from usecases.notices import NotSent

Sessions = async_sessionmaker[AsyncSession]
log = structlog.get_logger(__name__)


def inquiry_setup(settings: Settings) -> InquirySetup:
    return InquirySetup(queue=settings.inquiries_queue, supervisor=settings.inquiries_supervisor)


def answer_senders(settings: Settings) -> dict[str, AnswerSend]:
    """By channel: ``email`` when an SMTP host is set, ``facebook`` and ``instagram`` when a
    Page access token is."""
    senders: dict[str, AnswerSend] = {}
    if settings.smtp_host:
        server = smtp_server(settings)

        async def by_email(answer: Answer) -> str:
            # From the mailbox the client wrote to (their answer comes back to it).
            sender = answer.reply_from if answer.reply_from and "@" in answer.reply_from else None
            sender = sender or settings.smtp_from
            message = answer_email(
                answer.id,
                sender=sender,
                to=answer.to,
                subject=answer.subject,
                text=answer.text,
                answers=answer.answers,
                now=datetime.now(UTC),
                domain=sender.rpartition("@")[2] or "localhost",
                automatic=answer.automatic,
            )
            return await hand_over(server, message)

        senders[str(InquiryChannel.EMAIL)] = by_email
    account = meta_account(settings)
    if account is not None:

        async def by_meta(answer: Answer) -> str:
            if not may_reply(answer.last_in_at, datetime.now(UTC)):
                raise NotSent(
                    "Meta's 24-hour reply window is closed: write by another channel",
                    retry=False,
                )
            try:
                return await send_text(
                    account, answer.to, answer.text, platform=InquiryChannel(answer.channel)
                )
            except MetaSendError as exc:
                raise NotSent(exc.reason, retry=exc.retry) from exc

        senders[str(InquiryChannel.FACEBOOK)] = by_meta
        senders[str(InquiryChannel.INSTAGRAM)] = by_meta
    return senders


# ---- e-mail in -------------------------------------------------------------------------------


def mail_arrival(
    mailbox: ImapMailbox, address: str | None, fetched: Fetched, at: datetime
) -> Arrival | None:
    """A message read from an inquiries mailbox as an arrival; None for one a machine sent
    (an out-of-office reply, a bounce: never a client, never answered, or two responders
    would answer each other forever). Its time is when we read it (a Date header is the
    sender's clock)."""
    parsed = parse_mail(fetched.raw)
    if parsed.is_auto_reply() or not parsed.from_address:
        return None
    reply = parsed.reply()
    key = parsed.thread_key()
    quoted = "\n\n".join(x for x in (reply.quoted, reply.signature) if x)
    return Arrival(
        channel=str(InquiryChannel.EMAIL),
        source_key=f"imap:{mailbox.name}:{fetched.uidvalidity}:{fetched.uid}"[:300],
        sender=parsed.from_address,
        sender_name=parsed.from_name,
        subject=parsed.subject or "",
        text=reply.new or parsed.text,
        quoted=quoted,
        at=at,
        sender_email=parsed.from_address,
        message_id=parsed.message_id,
        answers=key.message_ids,
        inquiry_id=key.inquiry_id,
        reply_from=address,
        attachments=tuple(
            MessageAttachment(a.filename, a.content_type, a.data) for a in parsed.attachments
        ),
    )


async def read_mailbox(
    sessions: Sessions, setup: InquirySetup, mailbox: ImapMailbox, address: str | None,
    stop: asyncio.Event,
) -> None:  # fmt: skip
    """One inquiries mailbox read until ``stop``: each message stored once (its mailbox,
    UIDVALIDITY and UID; its Message-ID), marked seen only once stored, so a `serve` that
    dies mid-way reads the rest, and the one it was on, again."""

    async def handle(fetched: Fetched) -> None:
        arrival = mail_arrival(mailbox, address, fetched, datetime.now(UTC))
        if arrival is None:
            log.info("inquiry_mail_from_a_machine", mailbox=mailbox.name, uid=fetched.uid)
            return
        await receive(sessions, setup, arrival)

    await run_mailbox(MailboxReader(mailbox), handle, stop=stop)


def escalation_teller(
    settings: Settings, desk_of: Callable[[], Any]
) -> Callable[[Escalated], Awaitable[None]]:
    """Tells an agent an inquiry is escalated to them: on their desk when it is open (the
    running `serve`'s, ``desk_of``), and by e-mail when they have an address and an SMTP
    server is set. A mail server that is away raises (told again next time); one that
    refuses the address for good is logged, not retried."""
    server = smtp_server(settings) if settings.smtp_host else None
    domain = settings.smtp_from.rpartition("@")[2] or "localhost"

    async def tell(escalated: Escalated) -> None:
        desk = desk_of()
        if desk is not None:
            await desk.notifier.to_agent(
                escalated.to,
                {"type": "inquiry_escalated", "id": escalated.inquiry_id, "level": escalated.level},
            )
        if server is None or not escalated.email:
            return
        message = escalation_email(
            escalated.inquiry_id,
            kind=escalated.kind,
            level=escalated.level,
            subject=escalated.subject,
            sender=settings.smtp_from,
            to=escalated.email,
            link=f"{settings.effective_public_url}/desk",
            language=escalated.language,
            now=datetime.now(UTC),
            domain=domain,
        )
        try:
            await hand_over(server, message)
        except NotSent as exc:
            if exc.retry:
                raise
            log.warning("inquiry_escalation_mail_refused", to=escalated.to, error=str(exc))

    return tell
