"""The notices report, pure: what became of the messages to clients, per interval (day, week,
month in the call centre's time zone), kind and channel, and the opt-outs per interval,
channel and source.

Definitions (each figure is over the messages *created* in the interval: a cohort, so a day's
figures settle as its reports come in):
- *messages*: put in the outbox; *waiting*: not handed over yet (queued for their time or
  their next attempt, or being sent);
- *sent*: handed to the provider (its id kept), whatever came after;
- *delivered*, *failed*, *expired*: the provider's final word (failed also: refused, or the
  provider down for a day; expired: no delivery in the message's validity);
- *fallbacks*: SMS sent because a Viber message failed (counted in the SMS row);
- *opt-outs*: clients who asked not to get messages by a channel, by where they asked (the
  unsubscribe link, a STOP reply, an agent); one that was taken back is no longer counted.

Intervals come from ``core.queue_report`` (right across midnight and daylight saving).
Imports only the standard library and ``core``."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from core.errors import DomainError
from core.notices import Channel, NoticeKind, NoticeState
from core.queue_report import (
    Interval,
    interval_end,
    interval_start,
    parse_days_window,
)

INTERVALS: tuple[Interval, ...] = ("day", "week", "month")
FILTERS = ("since", "until", "interval", "kind", "channel")
COLUMNS = ("messages", "waiting", "sent", "delivered", "failed", "expired", "fallbacks")
WAITING = frozenset({NoticeState.QUEUED, NoticeState.SENDING})


class NoticeReportError(DomainError):
    def __init__(self, error_id: str, message: str, status: int = 400) -> None:
        super().__init__(message, error_id=error_id, status=status)


@dataclass(frozen=True)
class NoticeReportQuery:
    since: datetime  # UTC, the first local day's start
    until: datetime  # UTC, the day after the last one's start
    interval: Interval
    kind: str | None
    channel: str | None


def parse_request(params: Mapping[str, str], today: date, timezone: str) -> NoticeReportQuery:
    """since and until (local days, both included; by default today), interval (day, week,
    month; default day), kind, channel; a clear error for anything else."""
    since, until, interval = parse_days_window(
        params, today, timezone, filters=FILTERS, intervals=INTERVALS, error=NoticeReportError
    )
    kind = params.get("kind") or None
    if kind is not None and kind not in set(NoticeKind):
        raise NoticeReportError("bad_filter", f"kind: one of {', '.join(NoticeKind)}")
    channel = params.get("channel") or None
    if channel is not None and channel not in set(Channel):
        raise NoticeReportError("bad_filter", f"channel: one of {', '.join(Channel)}")
    return NoticeReportQuery(since, until, interval, kind, channel)


@dataclass(frozen=True)
class NoticeFacts:
    """What the report needs of one message."""

    created_at: datetime
    kind: str
    channel: str
    state: str
    sent: bool  # handed to the provider (sent_at set)
    fallback: bool  # an SMS sent because a Viber message failed


@dataclass(frozen=True)
class OptOutFacts:
    at: datetime
    channel: str
    source: str


@dataclass
class NoticeFigures:
    counts: dict[str, int] = field(default_factory=lambda: dict.fromkeys(COLUMNS, 0))

    def add(self, notice: NoticeFacts) -> None:
        c = self.counts
        c["messages"] += 1
        if notice.state in WAITING:
            c["waiting"] += 1
        if notice.sent:
            c["sent"] += 1
        if notice.state in ("delivered", "failed", "expired"):
            c[notice.state] += 1
        if notice.fallback:
            c["fallbacks"] += 1


class NoticeReport:
    """The report built message by message (``add``) and read once (``result``): counts per
    interval, kind and channel, never the messages, so a year of them streams through."""

    def __init__(self, interval: Interval, zone: ZoneInfo) -> None:
        self.interval = interval
        self.zone = zone
        self.rows: dict[tuple[datetime, str, str], NoticeFigures] = {}
        self.totals: dict[tuple[str, str], NoticeFigures] = {}
        self.opt_outs: dict[tuple[datetime, str, str], int] = {}

    def add(self, notice: NoticeFacts) -> None:
        start = interval_start(notice.created_at, self.interval, self.zone)
        row = self.rows.setdefault((start, notice.kind, notice.channel), NoticeFigures())
        row.add(notice)
        self.totals.setdefault((notice.kind, notice.channel), NoticeFigures()).add(notice)

    def add_opt_out(self, opt_out: OptOutFacts) -> None:
        key = (
            interval_start(opt_out.at, self.interval, self.zone),
            opt_out.channel,
            opt_out.source,
        )
        self.opt_outs[key] = self.opt_outs.get(key, 0) + 1

    def _span(self, start: datetime) -> dict[str, str]:
        return {
            "start": start.astimezone(self.zone).isoformat(),
            "end": interval_end(start, self.interval, self.zone).astimezone(self.zone).isoformat(),
        }

    def result(self) -> dict[str, Any]:
        """Rows oldest first, then by kind and channel; only those with messages."""
        return {
            "interval": self.interval,
            "timezone": self.zone.key,
            "rows": [
                {**self._span(start), "kind": kind, "channel": channel, **figures.counts}
                for (start, kind, channel), figures in sorted(self.rows.items())
            ],
            "totals": [
                {"kind": kind, "channel": channel, **figures.counts}
                for (kind, channel), figures in sorted(self.totals.items())
            ],
            "opt_outs": [
                {**self._span(start), "channel": channel, "source": source, "clients": n}
                for (start, channel, source), n in sorted(self.opt_outs.items())
            ],
        }


def build(
    notices: Iterable[NoticeFacts],
    opt_outs: Iterable[OptOutFacts] = (),
    *,
    interval: Interval,
    zone: ZoneInfo,
) -> dict[str, Any]:
    report = NoticeReport(interval, zone)
    for notice in notices:
        report.add(notice)
    for opt_out in opt_outs:
        report.add_opt_out(opt_out)
    return report.result()


def csv_rows(report: Mapping[str, Any]) -> Iterable[list[str]]:
    """The report as CSV rows: a header, one row per interval, kind and channel, then one per
    interval, channel and source of the opt-outs (kind ``opt_out``, the count in
    ``messages``)."""
    yield ["start", "end", "kind", "channel", "source", *COLUMNS]
    for row in report["rows"]:
        yield [row["start"], row["end"], row["kind"], row["channel"], "",
               *(str(row[c]) for c in COLUMNS)]  # fmt: skip
    for row in report["opt_outs"]:
        yield [row["start"], row["end"], "opt_out", row["channel"], row["source"],
               str(row["clients"]), *("" for _ in COLUMNS[1:])]  # fmt: skip
