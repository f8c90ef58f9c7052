"""`centrala reports mail`: a day's reports e-mailed now (by default yesterday's, to the
CENTRALA_REPORTS_MAIL_TO list, logged so the morning does not send it again; ``--to`` sends
a copy elsewhere and logs nothing). Its imports are inside it: every `centrala` command
loads this module."""

from __future__ import annotations

import asyncio
from datetime import UTC, date, datetime, timedelta

import click


@click.group()
def reports() -> None:
    """The reports (the desk's /reports pages, the API's /api/reports)."""


@reports.command("mail")
@click.option("--day", help="the local day, YYYY-MM-DD (default: yesterday)")
@click.option("--to", "to", help="comma-separated addresses instead of the list (not logged)")
def reports_mail(day: str | None, to: str | None) -> None:
    """E-mail a day's reports now (queues, agents, campaigns, the call log, as CSV)."""
    from zoneinfo import ZoneInfo

    from sqlalchemy.exc import SQLAlchemyError

    from centrala.mailing import morning_mail, smtp_send
    from centrala.settings import get_settings
    from core.report_mail import ReportMailError, parse_recipients
    from core.surveys.report import REPORT_TIMEZONE
    from mail.smtp import MailNotSent
    from models.db import create_engine, session_factory
    from usecases.morning_reports import mail_now

    settings = get_settings()
    zone = ZoneInfo(REPORT_TIMEZONE)
    now = datetime.now(UTC)
    try:
        when = date.fromisoformat(day) if day else now.astimezone(zone).date() - timedelta(1)
        recipients = parse_recipients(to) if to is not None else None
    except (ValueError, ReportMailError) as exc:
        raise click.BadParameter(str(exc)) from exc
    mail = morning_mail(settings)
    if not (recipients or mail.recipients):
        raise click.ClickException("no recipients: set CENTRALA_REPORTS_MAIL_TO or give --to")
    if not settings.smtp_host:
        raise click.ClickException("CENTRALA_SMTP_HOST is not set: there is no mail server")
    sending = smtp_send(settings)

    async def run() -> None:
        engine = create_engine(settings.effective_database_url)
        try:
            await mail_now(session_factory(engine), mail, sending, when, now, recipients)
        finally:
            await engine.dispose()

    try:
        asyncio.run(run())
    except MailNotSent as exc:
        raise click.ClickException(f"not sent: {exc}") from exc
    except (SQLAlchemyError, OSError) as exc:
        raise click.ClickException(f"database: {exc}") from exc
    sent_to = recipients or mail.recipients
    click.echo(f"sent the reports of {when.isoformat()} to {', '.join(sent_to)}")
