"""The morning reports by e-mail: which local days' reports are due at a moment, when a
failed sending is tried again, and the message that carries them (the reports' CSV files
attached, the queues' totals in its text). Pure: ``usecases.morning_reports`` reads the
reports and the mailings' log and ``mail.smtp`` sends.

Imports only the standard library and ``core``."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from zoneinfo import ZoneInfo

# After `serve` was down for days, the mornings of the last week are sent on its return,
# none older: a month of stale reports in a manager's inbox helps no one.
MAX_CATCH_UP_DAYS = 7
# A failed sending is tried again after these waits (then every hour); after the last, the
# day is given up on and logged (an operator can still send it: `centrala reports mail`).
RETRY_WAITS = (60, 300, 900, 1800, 3600, 3600, 3600, 3600)
# A sending claimed this long ago and not finished (its `serve` died mid-way) is taken over.
CLAIM_LEASE = timedelta(minutes=10)

# One address, as an operator writes it in CENTRALA_REPORTS_MAIL_TO: no display name, no
# separators or header-breaking characters.
_ADDRESS = re.compile(r"[^@\s,;<>\"()\[\]\\]+@[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)*")
MAX_RECIPIENTS = 50


class ReportMailError(ValueError):
    """A recipient list or a time of day an operator cannot have meant."""


def parse_recipients(text: str | Iterable[str]) -> tuple[str, ...]:
    """Addresses from a comma-separated list (or a list of them): each checked, duplicates
    dropped, order kept."""
    items = text.split(",") if isinstance(text, str) else list(text)
    found: list[str] = []
    for item in (i.strip() for i in items):
        if not item:
            continue
        if not _ADDRESS.fullmatch(item):
            raise ReportMailError(f"not an e-mail address: {item!r}")
        if item.lower() not in (f.lower() for f in found):
            found.append(item)
    if len(found) > MAX_RECIPIENTS:
        raise ReportMailError(f"at most {MAX_RECIPIENTS} recipients, not {len(found)}")
    return tuple(found)


def parse_time_of_day(text: str) -> time:
    """``HH:MM`` (24 h), the local time the reports go out."""
    match = re.fullmatch(r"([01]?\d|2[0-3]):([0-5]\d)", text.strip())
    if match is None:
        raise ReportMailError(f"not a time of day (HH:MM): {text!r}")
    return time(int(match[1]), int(match[2]))


def latest_due(now: datetime, at: time, zone: ZoneInfo) -> date:
    """The newest local day whose reports are due at ``now``: yesterday once today's ``at``
    has come (local wall time: a summer-time change moves it with the clocks), else the day
    before."""
    local = now.astimezone(zone)
    return local.date() - timedelta(days=1 if local.time() >= at else 2)


def due_days(now: datetime, at: time, zone: ZoneInfo, newest_mailed: date | None) -> list[date]:
    """The days to mail at ``now``, oldest first: those after ``newest_mailed`` (the newest
    day with a sending, whatever became of it) up to ``latest_due``, a week at most; with no
    sending ever, only the latest (a new installation does not mail a week of empty days)."""
    latest = latest_due(now, at, zone)
    if newest_mailed is None:
        return [latest]
    first = max(newest_mailed + timedelta(days=1), latest - timedelta(days=MAX_CATCH_UP_DAYS - 1))
    return [first + timedelta(days=n) for n in range((latest - first).days + 1)]


def retry_at(attempts: int, failed_at: datetime) -> datetime | None:
    """When a sending that failed ``attempts`` times is tried again; None: given up."""
    if attempts > len(RETRY_WAITS):
        return None
    return failed_at + timedelta(seconds=RETRY_WAITS[attempts - 1])


@dataclass(frozen=True)
class Attachment:
    filename: str
    text: str  # CSV, UTF-8


Texts = Callable[..., str]  # web.i18n.t bound to the mail's language: (key, **fields) -> text


def queue_lines(queues_report: Mapping[str, Any], t: Texts) -> list[str]:
    """A line per queue of the day's totals (offered, answered, abandoned, service level)."""
    lines = []
    for queue in queues_report["queues"]:
        total = queue["total"]
        level = total["service_level"]
        lines.append(
            t(
                "report_mail.queue_line",
                queue=queue["queue"],
                offered=total["offered"],
                answered=total["answered"],
                abandoned=total["abandoned"],
                service_level="-" if level is None else f"{level * 100:.1f} %",
                seconds=queue["service_level_seconds"],
            )
        )
    return lines or [t("report_mail.no_calls")]


def message(
    day: date,
    *,
    sender: str,
    recipients: Sequence[str],
    attachments: Sequence[Attachment],
    summary: Sequence[str],
    t: Texts,
    now: datetime,
    domain: str,
) -> EmailMessage:
    """The e-mail of ``day``'s reports. Its Message-ID is the day's own: were a sending
    repeated (its `serve` died after the server took it, before it was logged as sent), a
    mail client shows the one message."""
    msg = EmailMessage()
    msg["Subject"] = t("report_mail.subject", day=day.isoformat())
    msg["From"] = sender
    msg["To"] = ", ".join(recipients)
    msg["Date"] = format_datetime(now)
    msg["Message-ID"] = f"<reports-{day.isoformat()}@{domain}>"
    msg["Auto-Submitted"] = "auto-generated"  # RFC 3834: no vacation replies to it
    body = [
        t("report_mail.intro", day=day.isoformat()),
        "",
        *summary,
        "",
        t("report_mail.files"),
        *(f"- {a.filename}" for a in attachments),
    ]
    msg.set_content("\n".join(body) + "\n")
    for a in attachments:
        msg.add_attachment(a.text.encode(), maintype="text", subtype="csv", filename=a.filename)
    return msg


__all__ = [
    "CLAIM_LEASE",
    "Attachment",
    "ReportMailError",
    "due_days",
    "latest_due",
    "message",
    "parse_recipients",
    "parse_time_of_day",
    "queue_lines",
    "retry_at",
]
