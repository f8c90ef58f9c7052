"""The call log report's pure part: query parameters checked into a filter and a page (400
with a stable ``error_id`` for bad input), a call shaped into one report row from its row,
its events and its notes (wait, talk and hold seconds, the agents who talked), and the row
as JSON and as formula-safe CSV. Times are the call centre's local time; a date range is
local days, both included, right across midnight and daylight-saving changes."""

from __future__ import annotations

import base64
import binascii
import csv
import io
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo

from core.errors import DomainError
from core.surveys.report import REPORT_TIMEZONE, ReportError, csv_cell, report_window

DEFAULT_LIMIT = 100
MAX_LIMIT = 500
MAX_VALUE = 100  # a filter's value: longer is no queue, agent, campaign or code of ours

FILTERS = (
    "since",
    "until",
    "direction",
    "queue",
    "agent",
    "campaign",
    "client",
    "outcome",
    "disposition",
)
PAGING = ("limit", "cursor")
DIRECTIONS = ("inbound", "outbound")

# The trail's kinds the report reads: an agent put through, and hold.
# (A blind transfer's agent is put through again: its own agent_connected.)
AGENT_KINDS = ("agent_connected", "consult_connected")
HOLD_KINDS = ("held", "resumed")
EVENT_KINDS = AGENT_KINDS + HOLD_KINDS

_CODE = re.compile(r"[A-Za-z0-9_.:@+-]{1,100}")


class CallLogError(DomainError):
    """A call log asked for wrongly: which parameter, and what it wants."""

    def __init__(self, error_id: str, message: str, status: int = 400) -> None:
        super().__init__(message, error_id=error_id, status=status)


@dataclass(frozen=True)
class CallFilter:
    """Calls started in [since, until) (UTC instants of local midnights) and matching every
    other field given (None: any)."""

    since: datetime | None = None
    until: datetime | None = None
    direction: str | None = None
    queue: str | None = None
    agent: str | None = None  # the call's agent, or any agent put through during it
    campaign: str | None = None  # the campaign's name
    client: int | None = None  # the client's id
    outcome: str | None = None
    disposition: str | None = None


@dataclass(frozen=True)
class Cursor:
    """Where the next page starts: after the call (started_at, id), newest first."""

    started_at: datetime
    call_id: str

    def encode(self) -> str:
        raw = f"{self.started_at.astimezone(UTC).isoformat()}|{self.call_id}".encode()
        return base64.urlsafe_b64encode(raw).decode().rstrip("=")

    @classmethod
    def decode(cls, text: str) -> Cursor:
        bad = CallLogError("bad_cursor", "cursor is not one this report gave")
        if not 0 < len(text) <= 200 or not re.fullmatch(r"[A-Za-z0-9_-]+", text):
            raise bad
        try:
            raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4)).decode()
            at_text, call_id = raw.split("|", 1)
            at = datetime.fromisoformat(at_text)
        except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
            raise bad from exc
        if at.tzinfo is None or not 0 < len(call_id) <= 36:
            raise bad
        return cls(at.astimezone(UTC), call_id)


@dataclass(frozen=True)
class PageRequest:
    filter: CallFilter
    limit: int
    cursor: Cursor | None


def _value(params: Mapping[str, str], name: str) -> str | None:
    text = (params.get(name) or "").strip()
    if not text:
        return None
    if not _CODE.fullmatch(text):
        raise CallLogError(
            "bad_filter", f"{name} must be letters, digits or _.:@+- (at most {MAX_VALUE})"
        )
    return text


def parse_filter(
    params: Mapping[str, str], timezone: str = REPORT_TIMEZONE, *, paging: bool = False
) -> CallFilter:
    """The filter from query parameters (empty means not given). An unknown parameter is
    refused: a misspelt filter would otherwise quietly return every call."""
    known = FILTERS + PAGING if paging else FILTERS
    unknown = sorted(k for k in params if k not in known)
    if unknown:
        raise CallLogError(
            "unknown_filter", f"no filter {unknown[0][:40]!r}; filters: {', '.join(known)}"
        )
    try:
        since, until = report_window(
            (params.get("since") or "").strip() or None,
            (params.get("until") or "").strip() or None,
            timezone,
        )
    except ReportError as exc:
        raise CallLogError("bad_date", str(exc)) from exc
    direction = _value(params, "direction")
    if direction is not None and direction not in DIRECTIONS:
        raise CallLogError("bad_filter", "direction must be inbound or outbound")
    client_text = _value(params, "client")
    if client_text is not None and not re.fullmatch(r"[0-9]{1,12}", client_text):
        raise CallLogError("bad_filter", "client must be a client's id (a number)")
    return CallFilter(
        since=since,
        until=until,
        direction=direction,
        queue=_value(params, "queue"),
        agent=_value(params, "agent"),
        campaign=_value(params, "campaign"),
        client=int(client_text) if client_text is not None else None,
        outcome=_value(params, "outcome"),
        disposition=_value(params, "disposition"),
    )


def parse_page(params: Mapping[str, str], timezone: str = REPORT_TIMEZONE) -> PageRequest:
    """The filter, ``limit`` (1 to 500, 100 unless given) and ``cursor`` of a JSON page."""
    call_filter = parse_filter(params, timezone, paging=True)
    limit_text = (params.get("limit") or "").strip()
    limit = DEFAULT_LIMIT
    if limit_text:
        if not re.fullmatch(r"[0-9]{1,4}", limit_text) or not 0 < int(limit_text) <= MAX_LIMIT:
            raise CallLogError("bad_limit", f"limit must be a number from 1 to {MAX_LIMIT}")
        limit = int(limit_text)
    cursor_text = (params.get("cursor") or "").strip()
    cursor = Cursor.decode(cursor_text) if cursor_text else None
    return PageRequest(call_filter, limit, cursor)


# ---- a call as a report row ----------------------------------------------------------------


# Plain (not frozen) slotted classes: a month's export makes a million of each, and a frozen
# dataclass's __init__ sets each field through object.__setattr__, twice as slow.
@dataclass(slots=True)
class CallFacts:
    """What the database holds of a call (its row, with its client's and campaign's names)."""

    id: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    direction: str
    caller_number: str | None
    called_number: str | None
    client_id: int | None
    client_name: str | None
    campaign: str | None
    queue: str | None
    agent_id: str | None
    ivr_path: Sequence[str]
    queued_at: datetime | None
    connected_at: datetime | None
    wait_seconds: float | None
    talk_seconds: float | None
    outcome: str | None
    disposition: str | None
    hangup_cause: int | None


@dataclass(slots=True)
class TrailEvent:
    at: datetime
    kind: str
    data: Mapping[str, Any]


@dataclass(slots=True)
class CallLogRow:
    id: str
    started_at: datetime
    answered_at: datetime | None
    ended_at: datetime | None
    direction: str
    caller_number: str | None
    called_number: str | None
    client_id: int | None
    client_name: str | None
    campaign: str | None
    ivr_path: tuple[str, ...]
    queue: str | None
    agents: tuple[str, ...]
    wait_seconds: float | None
    talk_seconds: float | None
    hold_seconds: float
    outcome: str | None
    disposition: str | None
    notes: tuple[str, ...]
    hangup_cause: int | None

    @property
    def cursor(self) -> Cursor:
        return Cursor(self.started_at, self.id)


def _seconds(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return max(0.0, (end - start).total_seconds())


def hold_seconds(events: Iterable[TrailEvent], ended_at: datetime | None) -> float:
    """The time on hold: each ``held`` to the next ``resumed``; a hold never resumed lasts to
    the call's end (a duplicated ``held`` while held changes nothing)."""
    total = sum((end - start).total_seconds() for start, end in hold_spans(events, ended_at))
    return round(total, 3)


def hold_spans(
    events: Iterable[TrailEvent], ended_at: datetime | None
) -> list[tuple[datetime, datetime]]:
    """The call's holds, each (held, resumed), as ``hold_seconds`` counts them (the agents
    report cuts them at its intervals' edges)."""
    spans: list[tuple[datetime, datetime]] = []
    held_since: datetime | None = None
    for event in sorted(events, key=lambda e: e.at):
        if event.kind == "held" and held_since is None:
            held_since = event.at
        elif event.kind == "resumed" and held_since is not None:
            spans.append((held_since, max(held_since, event.at)))
            held_since = None
    if held_since is not None and ended_at is not None:
        spans.append((held_since, max(held_since, ended_at)))
    return spans


def agents_of(events: Iterable[TrailEvent], last_agent: str | None) -> tuple[str, ...]:
    """Every agent put through to the caller, in order, each once (a transfer's or a
    consultation's agent too); the call row's agent when the trail names none."""
    found: list[str] = []
    for event in sorted(events, key=lambda e: e.at):
        who = event.data.get("agent_id")
        if event.kind in AGENT_KINDS and isinstance(who, str) and who and who not in found:
            found.append(who)
    if last_agent and last_agent not in found:
        found.append(last_agent)
    return tuple(found)


def wait_of(facts: CallFacts) -> float | None:
    """Seconds in the queue: as the call recorded it when it was put through; otherwise from
    its entering the queue to being put through, or to its end (a caller who gave up)."""
    if facts.wait_seconds is not None:
        return round(facts.wait_seconds, 3)
    end = facts.connected_at or facts.ended_at
    waited = _seconds(facts.queued_at, end)
    return round(waited, 3) if waited is not None else None


def talk_of(facts: CallFacts) -> float | None:
    """Seconds with an agent (or, outbound, with the person answering), as recorded at the
    end; else from being put through (or answered, outbound) to the end."""
    if facts.talk_seconds is not None:
        return round(facts.talk_seconds, 3)
    start = facts.connected_at or (facts.answered_at if facts.direction == "outbound" else None)
    talk = _seconds(start, facts.ended_at)
    return round(talk, 3) if talk is not None else None


def call_row(facts: CallFacts, events: Iterable[TrailEvent], notes: Iterable[str]) -> CallLogRow:
    trail = list(events)
    # Most calls have no hold or agent event: skip the trail's sorting for them.
    hold = hold_seconds(trail, facts.ended_at) if trail else 0.0
    return CallLogRow(
        id=facts.id,
        started_at=facts.started_at,
        answered_at=facts.answered_at,
        ended_at=facts.ended_at,
        direction=facts.direction,
        caller_number=facts.caller_number,
        called_number=facts.called_number,
        client_id=facts.client_id,
        client_name=facts.client_name,
        campaign=facts.campaign,
        ivr_path=tuple(str(step) for step in facts.ivr_path or ()),
        queue=facts.queue,
        agents=agents_of(trail, facts.agent_id)
        if trail or not facts.agent_id
        else (facts.agent_id,),
        wait_seconds=wait_of(facts),
        talk_seconds=talk_of(facts),
        hold_seconds=hold,
        outcome=facts.outcome,
        disposition=facts.disposition,
        notes=tuple(n for n in notes if n),
        hangup_cause=facts.hangup_cause,
    )


def local_time(at: datetime | None, zone: ZoneInfo) -> str | None:
    """ISO 8601 in the call centre's time, with its offset (+01:00 in winter, +02:00 in
    summer in Sarajevo), to the second."""
    if at is None:
        return None
    return at.astimezone(zone).isoformat(timespec="seconds")


def row_json(row: CallLogRow, zone: ZoneInfo) -> dict[str, Any]:
    return {
        "id": row.id,
        "started_at": local_time(row.started_at, zone),
        "answered_at": local_time(row.answered_at, zone),
        "ended_at": local_time(row.ended_at, zone),
        "direction": row.direction,
        "caller_number": row.caller_number,
        "called_number": row.called_number,
        "client_id": row.client_id,
        "client_name": row.client_name,
        "campaign": row.campaign,
        "ivr_path": list(row.ivr_path),
        "queue": row.queue,
        "agents": list(row.agents),
        "wait_seconds": row.wait_seconds,
        "talk_seconds": row.talk_seconds,
        "hold_seconds": row.hold_seconds,
        "outcome": row.outcome,
        "disposition": row.disposition,
        "notes": list(row.notes),
        "hangup_cause": row.hangup_cause,
    }


CSV_COLUMNS = (
    "id",
    "started_at",
    "answered_at",
    "ended_at",
    "direction",
    "caller_number",
    "called_number",
    "client_id",
    "client_name",
    "campaign",
    "ivr_path",
    "queue",
    "agents",
    "wait_seconds",
    "talk_seconds",
    "hold_seconds",
    "outcome",
    "disposition",
    "notes",
    "hangup_cause",
)


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.3f}".rstrip("0").rstrip(".")


def csv_cells(row: CallLogRow, zone: ZoneInfo) -> list[str | int]:
    """The row's cells: lists joined (IVR path by ``>``, agents by ``;``, notes by `` | ``),
    every text cell formula-safe (``csv_cell``)."""
    cells: tuple[str | int | None, ...] = (
        row.id,
        local_time(row.started_at, zone),
        local_time(row.answered_at, zone),
        local_time(row.ended_at, zone),
        row.direction,
        row.caller_number,
        row.called_number,
        row.client_id,
        row.client_name,
        row.campaign,
        ">".join(row.ivr_path),
        row.queue,
        ";".join(row.agents),
        _number(row.wait_seconds),
        _number(row.talk_seconds),
        _number(row.hold_seconds),
        row.outcome,
        row.disposition,
        " | ".join(row.notes),
        row.hangup_cause,
    )
    return [csv_cell(c) for c in cells]


def csv_text(rows: Iterable[CallLogRow], zone: ZoneInfo, *, header: bool = False) -> str:
    """A chunk of the CSV (the header first when asked)."""
    out = io.StringIO()
    writer = csv.writer(out)
    if header:
        writer.writerow(CSV_COLUMNS)
    for row in rows:
        writer.writerow(csv_cells(row, zone))
    return out.getvalue()


__all__ = [
    "CSV_COLUMNS",
    "MAX_LIMIT",
    "REPORT_TIMEZONE",
    "CallFacts",
    "CallFilter",
    "CallLogError",
    "CallLogRow",
    "Cursor",
    "PageRequest",
    "TrailEvent",
    "call_row",
    "csv_text",
    "parse_filter",
    "parse_page",
    "row_json",
]
