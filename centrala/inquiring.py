"""The written inquiries' wiring for `serve` and the CLI: the senders the agents' answers
leave by (e-mail through the SMTP server of the settings, from the mailbox the inquiry came
to; Facebook and Instagram through Meta's Send API, inside its reply window) and the
inquiries' setup from the settings."""

from __future__ import annotations

from datetime import UTC, datetime

from centrala.mailing import smtp_server
from centrala.meta_inbox import meta_account
from centrala.settings import Settings
from core.inquiries import InquiryChannel
from core.inquiries.mail import answer_email
from core.inquiries.meta import may_reply
from mail.smtp import MailNotSent, send
from meta.graph import MetaSendError, send_text
from models.inquiries import Answer
from usecases.inquiries import AnswerNotSent, AnswerSend, InquirySetup


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
            )
            try:
                await send(server, message)
            except MailNotSent as exc:
                raise AnswerNotSent(str(exc), retry=not exc.permanent) from exc
            return str(message["Message-ID"])

        senders[str(InquiryChannel.EMAIL)] = by_email
    account = meta_account(settings)
    if account is not None:

        async def by_meta(answer: Answer) -> str:
            if not may_reply(answer.last_in_at, datetime.now(UTC)):
                raise AnswerNotSent(
                    "Meta's 24-hour reply window is closed: write by another channel",
                    retry=False,
                )
            try:
                return await send_text(
                    account, answer.to, answer.text, platform=InquiryChannel(answer.channel)
                )
            except MetaSendError as exc:
                raise AnswerNotSent(exc.reason, retry=exc.retry) from exc

        senders[str(InquiryChannel.FACEBOOK)] = by_meta
        senders[str(InquiryChannel.INSTAGRAM)] = by_meta
    return senders
