"""The e-mail's wiring that `serve` and `centrala reports mail` share: the morning e-mail's
settings (``morning_mail``) and the sender through the SMTP server of the settings
(``smtp_send``); and ``hand_over``, a notice's or an inquiry's answer given to that server
the outbox's way (``NotSent``: try again unless the recipient was refused for good)."""

from __future__ import annotations

from email.message import EmailMessage
from functools import partial
from zoneinfo import ZoneInfo

from centrala.settings import Settings
from core.surveys.report import REPORT_TIMEZONE
from mail.smtp import MailNotSent, SmtpServer, send
from usecases.morning_reports import MorningMail, Send
from usecases.notices import NotSent
from web import i18n


def morning_mail(settings: Settings) -> MorningMail:
    return MorningMail(
        recipients=settings.report_recipients,
        at=settings.report_mail_time,
        zone=ZoneInfo(REPORT_TIMEZONE),
        sender=settings.smtp_from,
        domain=settings.smtp_from.rpartition("@")[2],
        t=partial(i18n.t, str(settings.reports_mail_language)),
    )


def smtp_server(settings: Settings) -> SmtpServer:
    """The SMTP server of the settings (the morning reports' and the notices')."""
    return SmtpServer(
        host=settings.smtp_host or "",
        port=settings.smtp_port,
        security=settings.smtp_security,
        user=settings.smtp_user,
        password=settings.smtp_password,
        timeout=settings.smtp_timeout_seconds,
    )


def smtp_send(settings: Settings) -> Send:
    """Hands a message to the settings' SMTP server (MailNotSent when it is not taken)."""
    server = smtp_server(settings)

    async def sending(message: EmailMessage) -> None:
        await send(server, message)

    return sending


async def hand_over(server: SmtpServer, message: EmailMessage) -> str:
    """``message`` given to ``server``; its Message-ID (the provider's id the outbox keeps).
    NotSent when it is not taken: to try again, unless the recipient was refused for good."""
    try:
        await send(server, message)
    except MailNotSent as exc:
        raise NotSent(str(exc), retry=not exc.permanent) from exc
    return str(message["Message-ID"])
