"""The notices' wiring that `serve` and `centrala notices` share: the contact policy from the
settings and a sender per configured channel (e-mail through the SMTP server of the
settings, with its unsubscribe link), as ``usecases.notices.NoticeSetup``."""

from __future__ import annotations

from datetime import UTC, datetime

from centrala.settings import Settings
from core.notices import Channel, notice_email
from mail.smtp import MailNotSent, SmtpServer, send
from models.notices import Claimed
from usecases.notices import NoticeSetup, NotSent, Send
from web.unsubscribe import unsubscribe_token


def email_sender(settings: Settings) -> Send:
    server = SmtpServer(
        host=settings.smtp_host or "",
        port=settings.smtp_port,
        security=settings.smtp_security,
        user=settings.smtp_user,
        password=settings.smtp_password,
        timeout=settings.smtp_timeout_seconds,
    )
    secret = settings.effective_web_secret()
    base = settings.effective_public_url
    domain = settings.smtp_from.rpartition("@")[2]

    async def sending(message: Claimed) -> str:
        token = unsubscribe_token(secret, message.client_id, message.language)
        email = notice_email(
            message.id,
            sender=settings.smtp_from,
            to=message.address,
            subject=message.subject,
            text=message.body,
            html_body=message.html,
            unsubscribe_url=f"{base}/unsubscribe/{token}",
            language=message.language,
            now=datetime.now(UTC),
            domain=domain,
        )
        try:
            await send(server, email)
        except MailNotSent as exc:
            raise NotSent(str(exc), retry=not exc.permanent) from exc
        return str(email["Message-ID"])

    return sending


def notice_setup(settings: Settings) -> NoticeSetup:
    senders: dict[Channel, Send] = {}
    if settings.smtp_host:
        senders[Channel.EMAIL] = email_sender(settings)
    return NoticeSetup(settings.notice_policy, senders, workers=settings.notices_workers)
