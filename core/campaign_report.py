"""The campaigns report, pure: what each outbound campaign (survey and agent campaigns, the
callback campaigns among the latter) dialled and what became of it, per campaign and interval
(hour, day, week, month) in the call centre's time zone, and each campaign's contacts.

Definitions (each figure is over the campaign's calls started in the interval; an attempt is
one call):
- *dials*: attempts placed; *in progress*: not ended yet.
- *live answers*: a person answered. An agent campaign: put through to an agent
  (*connected*) or not within the 2 seconds (*abandoned*), as the dialler counts them
  (``models.dialler``). A survey campaign: the survey ran (*completed*, *partial*, refused,
  no consent); it has no agent, so nothing is abandoned and it has no abandonment rate.
- *abandonment rate*: the dialler's own (``core.dialler.AbandonCount.rate``): abandoned over
  live answers, with AMD's estimated false positives (the campaign's setting) counted as
  both, so the report and the wallboard give the same figure.
- *AMD*: Asterisk's verdict on an answered call (the call's ``amd`` event): human, machine,
  not sure (NOTSURE, or any other status: the dialler treats it as a person).
- *machine*, *no answer*, *busy*, *failed*, *invalid number*: the attempt's outcome.
- *dispositions*: what the agents said the connected calls came to, counted per code.
- per campaign, now: its contacts *left* (pending and in progress), *done*, and *closed*
  without being done, per reason (out of attempts, invalid number, skipped).

Intervals come from ``core.queue_report`` (right across midnight and daylight saving).
Imports only the standard library and ``core``."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from core.dialler import AbandonCount
from core.errors import DomainError
from core.queue_report import (
    Interval,
    interval_end,
    interval_start,
    parse_days_window,
)
from core.surveys.campaign import ContactStatus, Outcome
from core.surveys.report import csv_cell

INTERVALS: tuple[Interval, ...] = ("hour", "day", "week", "month")
KINDS = ("survey", "sales", "leads", "procedural", "callbacks")
SURVEY = "survey"
FILTERS = ("since", "until", "interval", "campaign", "kind")
MAX_NAME = 100  # campaigns.name
AMD_VERDICTS = ("human", "machine", "not_sure")
CLOSED = (ContactStatus.EXHAUSTED.value, ContactStatus.INVALID.value, ContactStatus.SKIPPED.value)


class CampaignReportError(DomainError):
    def __init__(self, error_id: str, message: str, status: int = 400) -> None:
        super().__init__(message, error_id=error_id, status=status)


@dataclass(frozen=True)
class CampaignReportQuery:
    since: datetime  # UTC, the first local day's start
    until: datetime  # UTC, the day after the last one's start
    interval: Interval
    campaign: str | None  # its name
    kind: str | None


def parse_request(params: Mapping[str, str], today: date, timezone: str) -> CampaignReportQuery:
    """The query parameters: since and until (local days, both included; by default today),
    interval (hour, day, week, month; default day), campaign (a name), kind; a clear error
    for anything else."""
    since, until, interval = parse_days_window(
        params, today, timezone, filters=FILTERS, intervals=INTERVALS, error=CampaignReportError
    )
    campaign = params.get("campaign") or None
    if campaign is not None and not 0 < len(campaign) <= MAX_NAME:
        raise CampaignReportError("bad_filter", "campaign: a campaign's name")
    kind = params.get("kind") or None
    if kind is not None and kind not in KINDS:
        raise CampaignReportError("bad_filter", f"kind: one of {', '.join(KINDS)}")
    return CampaignReportQuery(since, until, interval, campaign, kind)


@dataclass(frozen=True)
class CampaignInfo:
    id: int
    name: str
    kind: str
    amd_false_positive_rate: float = 0.0  # an agent campaign's setting

    @property
    def survey(self) -> bool:
        return self.kind == SURVEY


@dataclass(frozen=True, slots=True)
class CampaignCall:
    """What the report reads of one attempt."""

    campaign_id: int
    started_at: datetime  # aware
    outcome: str | None  # None: still under way
    amd: str | None  # AMDSTATUS as Asterisk gave it; None: no verdict
    disposition: str | None


def amd_verdict(status: str | None, outcome: str | None) -> str | None:
    """human, machine, not_sure; a machine outcome without its event (the event written
    behind the outcome) is still AMD's machine."""
    if status is None:
        return "machine" if outcome == Outcome.MACHINE.value else None
    word = status.strip().upper()
    return "human" if word == "HUMAN" else "machine" if word == "MACHINE" else "not_sure"


_PLAIN = {  # outcome → the figure it counts in
    Outcome.CONNECTED.value: "connected",
    Outcome.ABANDONED.value: "abandoned",
    Outcome.COMPLETED.value: "completed",
    Outcome.PARTIAL.value: "partial",
    Outcome.REFUSED.value: "refused",
    Outcome.NO_CONSENT.value: "refused",  # for the manager: they did not take the survey
    Outcome.MACHINE.value: "machine",
    Outcome.NO_ANSWER.value: "no_answer",
    Outcome.BUSY.value: "busy",
    Outcome.FAILED.value: "failed",
    Outcome.INVALID_NUMBER.value: "invalid_number",
}
_LIVE = frozenset({"connected", "abandoned", "completed", "partial", "refused"})

COLUMNS = (
    "dials",
    "in_progress",
    "live_answers",
    "connected",
    "completed",
    "partial",
    "refused",
    "abandoned",
    "abandon_rate",
    "amd_human",
    "amd_machine",
    "amd_not_sure",
    "machine",
    "no_answer",
    "busy",
    "failed",
    "invalid_number",
)


@dataclass
class CampaignFigures:
    counts: Counter[str] = field(default_factory=Counter)
    dispositions: Counter[str] = field(default_factory=Counter)

    def add(self, call: CampaignCall) -> None:
        counts = self.counts
        counts["dials"] += 1
        if call.outcome is None:
            counts["in_progress"] += 1
        else:
            figure = _PLAIN.get(call.outcome, "other")
            counts[figure] += 1
            if figure in _LIVE:
                counts["live_answers"] += 1
        verdict = amd_verdict(call.amd, call.outcome)
        if verdict is not None:
            counts[f"amd_{verdict}"] += 1
        if call.disposition:
            self.dispositions[call.disposition] += 1

    def to_json(self, campaign: CampaignInfo) -> dict[str, Any]:
        c = self.counts
        rate = None
        if not campaign.survey:
            rate = AbandonCount(
                live=c["connected"] + c["abandoned"],
                abandoned=c["abandoned"],
                machines=c["machine"],
            ).rate(campaign.amd_false_positive_rate)
        return {
            **{name: c[name] for name in COLUMNS if name != "abandon_rate"},
            "abandon_rate": None if rate is None else round(rate, 4),
            "dispositions": dict(sorted(self.dispositions.items())),
        }


def contacts_json(statuses: Mapping[str, int]) -> dict[str, Any]:
    """A campaign's contacts by what is left of them: ``statuses`` counts per status."""
    pending = statuses.get(ContactStatus.PENDING.value, 0)
    dialling = statuses.get(ContactStatus.DIALLING.value, 0)
    return {
        "left": pending + dialling,
        "pending": pending,
        "in_progress": dialling,
        "done": statuses.get(ContactStatus.DONE.value, 0),
        "closed": {reason: statuses.get(reason, 0) for reason in CLOSED},
        "total": sum(statuses.values()),
    }


class CampaignReport:
    """The report built call by call (``add_call``) and read once (``result``): a few
    counts per campaign and interval, never the calls, so a year of them streams through."""

    def __init__(
        self,
        interval: Interval,
        zone: ZoneInfo,
        campaigns: Iterable[CampaignInfo],
        contacts: Mapping[int, Mapping[str, int]] | None = None,
    ) -> None:
        self.interval = interval
        self.zone = zone
        self.campaigns = {c.id: c for c in campaigns}
        self.contacts = contacts or {}
        self.rows: dict[tuple[int, datetime], CampaignFigures] = {}
        self.totals: dict[int, CampaignFigures] = {}

    def add_call(self, call: CampaignCall) -> None:
        if call.campaign_id not in self.campaigns:  # not one asked for
            return
        key = (call.campaign_id, interval_start(call.started_at, self.interval, self.zone))
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = CampaignFigures()
        total = self.totals.get(call.campaign_id)
        if total is None:
            total = self.totals[call.campaign_id] = CampaignFigures()
        row.add(call)
        total.add(call)

    def result(self) -> dict[str, Any]:
        """Every campaign asked for (also one without calls in the days: its contacts still
        tell), by name; its rows by interval, oldest first, only those with calls."""
        zone, interval = self.zone, self.interval
        by_campaign: dict[int, list[tuple[datetime, CampaignFigures]]] = {}
        for (campaign_id, start), figures in sorted(self.rows.items()):
            by_campaign.setdefault(campaign_id, []).append((start, figures))
        out = []
        for campaign in sorted(self.campaigns.values(), key=lambda c: c.name):
            total = self.totals.get(campaign.id, CampaignFigures())
            out.append(
                {
                    "campaign": campaign.name,
                    "kind": campaign.kind,
                    "total": total.to_json(campaign),
                    "contacts": contacts_json(self.contacts.get(campaign.id, {})),
                    "intervals": [
                        {
                            "start": start.astimezone(zone).isoformat(),
                            "end": interval_end(start, interval, zone).astimezone(zone).isoformat(),
                            **figures.to_json(campaign),
                        }
                        for start, figures in by_campaign.get(campaign.id, [])
                    ],
                }
            )
        return {"interval": interval, "timezone": zone.key, "campaigns": out}


def build(
    calls: Iterable[CampaignCall],
    campaigns: Iterable[CampaignInfo],
    contacts: Mapping[int, Mapping[str, int]] | None = None,
    *,
    interval: Interval,
    zone: ZoneInfo,
) -> dict[str, Any]:
    """The report of ``calls`` for ``campaigns`` (``contacts``: per campaign id, its
    contacts counted per status)."""
    report = CampaignReport(interval, zone, campaigns, contacts)
    for call in calls:
        report.add_call(call)
    return report.result()


def dispositions_of(report: Mapping[str, Any]) -> list[str]:
    """Every disposition code the report holds, sorted: the CSV's columns after the rest."""
    return sorted({code for c in report["campaigns"] for code in c["total"]["dispositions"]})


def csv_rows(report: Mapping[str, Any]) -> Iterable[list[str]]:
    """The report as CSV rows: a header, then one row per campaign and interval, with a
    column per disposition code (``disposition:<code>``)."""
    codes = dispositions_of(report)
    yield [
        "campaign",
        "kind",
        "start",
        "end",
        *COLUMNS,
        *(str(csv_cell(f"disposition:{code}")) for code in codes),
    ]
    for campaign in report["campaigns"]:
        for row in campaign["intervals"]:
            yield [
                str(csv_cell(campaign["campaign"])),
                campaign["kind"],
                row["start"],
                row["end"],
                *("" if row[c] is None else str(row[c]) for c in COLUMNS),
                *(str(row["dispositions"].get(code, 0)) for code in codes),
            ]
