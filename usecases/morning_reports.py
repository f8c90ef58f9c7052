"""The reports e-mailed each morning: every due local day (``core.report_mail.due_days``, and
the failed sendings due again) is claimed in the mailings' log, its reports built (queues,
agents and campaigns by hour, and the call log), attached as CSV and handed to ``send`` (the
SMTP adapter's, injected: use cases import no adapter), and the outcome logged; a failure is
tried again later (``core.report_mail.retry_at``).

May import ``core``, ``models`` and ``usecases``."""

from __future__ import annotations

import csv
import io
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from datetime import date, datetime, time
from email.message import EmailMessage
from typing import Any
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core import agent_report, campaign_report, queue_report
from core.report_mail import Attachment, Texts, due_days, message, queue_lines, retry_at
from models import report_mailings as log_store
from usecases import reports

Sessions = async_sessionmaker[AsyncSession]
Send = Callable[[EmailMessage], Awaitable[None]]  # raises when the server did not take it
log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class MorningMail:
    """Who gets the reports, at what local time, from whom, in which words."""

    recipients: tuple[str, ...]
    at: time
    zone: ZoneInfo
    sender: str
    domain: str  # of the messages' ids
    t: Texts


def _csv(rows: Iterable[list[str]]) -> str:
    out = io.StringIO()
    csv.writer(out).writerows(rows)
    return out.getvalue()


async def day_reports(sessions: Sessions, day: date) -> tuple[list[Attachment], dict[str, Any]]:
    """``day``'s reports as the CSV files of the e-mail (the same rows as the API's .csv), and
    the queues report (for the e-mail's text)."""
    window = {"since": day.isoformat(), "until": day.isoformat()}
    by_hour = {**window, "interval": "hour"}
    queues = await reports.queues(sessions, by_hour)
    agents = await reports.agents(sessions, by_hour)
    campaigns = await reports.campaigns(sessions, by_hour)
    name = day.isoformat()
    return [
        Attachment(f"queues-{name}.csv", _csv(queue_report.csv_rows(queues))),
        Attachment(f"agents-{name}.csv", _csv(agent_report.csv_rows(agents))),
        Attachment(f"campaigns-{name}.csv", _csv(campaign_report.csv_rows(campaigns))),
        Attachment(f"calls-{name}.csv", await reports.calls_csv(sessions, window)),
    ], queues


async def day_message(
    sessions: Sessions, mail: MorningMail, day: date, recipients: tuple[str, ...], now: datetime
) -> EmailMessage:
    attachments, queues = await day_reports(sessions, day)
    return message(
        day,
        sender=mail.sender,
        recipients=recipients,
        attachments=attachments,
        summary=queue_lines(queues, mail.t),
        t=mail.t,
        now=now,
        domain=mail.domain,
    )


async def mail_day(
    sessions: Sessions, mail: MorningMail, send: Send, day: date, now: datetime, *, attempt: int
) -> bool:
    """Sends ``day``'s reports (claimed by the caller) and logs the outcome; whether sent."""
    bound = log.bind(day=day.isoformat(), attempt=attempt)
    try:
        await send(await day_message(sessions, mail, day, mail.recipients, now))
    except Exception as exc:  # whatever stopped it, the day is tried again, not lost
        again = retry_at(attempt, now)
        await log_store.finish(sessions, day, now, error=str(exc), next_attempt_at=again)
        bound.warning(
            "report_mail_failed" if again else "report_mail_given_up",
            error=str(exc),
            retry_at=again.isoformat() if again else None,
        )
        return False
    await log_store.finish(sessions, day, now)
    bound.info("report_mail_sent", recipients=len(mail.recipients))
    return True


async def mail_due(sessions: Sessions, mail: MorningMail, send: Send, now: datetime) -> list[date]:
    """Mails every day due at ``now`` that this instance can claim; the days sent."""
    if not mail.recipients:
        return []
    days = set(await log_store.to_retry(sessions, now))
    days.update(due_days(now, mail.at, mail.zone, await log_store.newest_day(sessions)))
    sent = []
    for day in sorted(days):
        attempt = await log_store.claim(sessions, day, now, ", ".join(mail.recipients))
        if attempt is not None and await mail_day(sessions, mail, send, day, now, attempt=attempt):
            sent.append(day)
    return sent


async def mail_now(
    sessions: Sessions,
    mail: MorningMail,
    send: Send,
    day: date,
    now: datetime,
    recipients: tuple[str, ...] | None = None,
) -> None:
    """An operator's sending of ``day``'s reports now (`centrala reports mail`), to
    ``recipients`` or the list; raises what ``send`` raised. Sent to the list, it is logged,
    so the morning does not mail the day again."""
    await send(await day_message(sessions, mail, day, recipients or mail.recipients, now))
    if recipients is None:
        await log_store.record_sent(sessions, day, now, ", ".join(mail.recipients))
