"""The queues report, pure: what each queue was offered and what became of it, per queue and
interval (15 minutes, hour, day, week, month) in the call centre's time zone.

Definitions (what a call-centre manager reads; each figure is over the calls that reached
the queue in the interval, by the moment they were queued):
- *offered*: reached the queue; *answered*: an agent took it; *abandoned*: the caller hung
  up waiting; a *short abandon* is one within ``SHORT_ABANDON_SECONDS`` (a misdial, a caller
  who changed their mind) and is counted apart: it is neither in the abandonment rate nor in
  the service level's base.
- *service level*: answered within the queue's threshold, over offered less short abandons.
- *wait*: queued to answered (or to hang-up); the average and 90th percentile (nearest rank)
  over answered calls, the longest over all of them.
- *callbacks*: tasks the queue's callers asked for in the interval, and how many of them are
  done.
- A call that *overflowed* to another queue, or was *transferred* to one, is offered to each
  queue it waited in (``visits``): answered in the first and offered again in the second,
  each wait its own.

Intervals are right across midnight and daylight saving: a day is a local calendar day (23
or 25 hours on the change days), and the hour repeated in autumn is two intervals, told
apart by their offset. Imports only the standard library and ``core``."""

from __future__ import annotations

import math
from array import array
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

from core.errors import DomainError
from core.surveys.report import csv_cell

Interval = Literal["15min", "hour", "day", "week", "month"]
INTERVALS: tuple[Interval, ...] = get_args(Interval)
SHORT_ABANDON_SECONDS = 5.0
DEFAULT_SERVICE_LEVEL_SECONDS = 20
ANSWERED = "answered"
ABANDONED = "abandoned_in_queue"
CALLBACK = "callback_requested"
OVERFLOWED = "overflowed"


class QueueReportError(DomainError):
    def __init__(self, error_id: str, message: str, status: int = 400) -> None:
        super().__init__(message, error_id=error_id, status=status)


@dataclass(frozen=True)
class QueuedCall:
    """What the report reads of a call that reached a queue."""

    queue: str
    queued_at: datetime  # aware
    connected_at: datetime | None
    ended_at: datetime | None
    outcome: str | None
    wait_seconds: float | None = None  # as the call log stored it, else from the times

    @property
    def wait(self) -> float:
        if self.wait_seconds is not None:
            return max(0.0, self.wait_seconds)
        until = self.connected_at or self.ended_at
        return max(0.0, (until - self.queued_at).total_seconds()) if until else 0.0


@dataclass(frozen=True)
class CallStep:
    """An event of a call that may have been in more than one queue: ``queued`` (with its
    queue), ``agent_connected``, ``overflowed``, ``transferred`` (``to``: its target)."""

    at: datetime  # aware
    kind: str
    queue: str | None = None
    to: str | None = None


# The events after which a call may wait in a queue again: only such calls are read whole.
MOVED_ON = ("overflowed", "transferred")


def visits(call: QueuedCall, steps: Iterable[CallStep]) -> list[QueuedCall]:
    """A call that overflowed to another queue or was transferred to one, as what each queue
    was offered: a visit from each ``queued`` step to the agent who answered it there, to the
    overflow that moved it on, or to the call's end (then with the call's outcome). A caller
    handed to a named agent (a transfer to ``agent:…``) waits for that person, not the queue:
    no offer. Without its ``queued`` steps (written before they were), the call as it is."""
    found: list[QueuedCall] = []
    at: tuple[str, datetime] | None = None  # the visit under way: its queue, since when
    to_a_person = False
    for step in sorted(steps, key=lambda s: s.at):
        if step.kind == "transferred":
            to_a_person = (step.to or "").startswith("agent:")
        elif step.kind == "queued" and step.queue:
            if at is not None:  # moved on unanswered (its overflow step was not read)
                found.append(QueuedCall(at[0], at[1], None, step.at, OVERFLOWED))
            at = None if to_a_person else (step.queue, step.at)
            to_a_person = False
        elif at is not None and step.kind == "agent_connected":
            waited = (step.at - at[1]).total_seconds()
            found.append(QueuedCall(at[0], at[1], step.at, None, ANSWERED, waited))
            at = None
        elif at is not None and step.kind == "overflowed":
            found.append(QueuedCall(at[0], at[1], None, step.at, OVERFLOWED))
            at = None
    if at is not None:
        found.append(QueuedCall(at[0], at[1], None, call.ended_at, call.outcome))
    return found or [call]


@dataclass(frozen=True)
class CallbackTask:
    queue: str
    created_at: datetime  # aware
    done: bool


MAX_DAYS = 366
MAX_DAYS_BY_15MIN = 31  # 96 rows a day and queue: a month is the most one page shows


@dataclass(frozen=True)
class QueueReportQuery:
    since: datetime  # UTC, the first local day's start
    until: datetime  # UTC, the day after the last one's start
    interval: Interval
    queue: str | None


def parse_request(params: Mapping[str, str], today: date, timezone: str) -> QueueReportQuery:
    """The query parameters: since and until (local days, both included; by default today),
    interval (default hour), queue (default all); a clear error for anything else."""
    since, until, interval, named = parse_query(params, today, timezone, ("queue",))
    return QueueReportQuery(since, until, interval, named["queue"])


def parse_query(
    params: Mapping[str, str], today: date, timezone: str, names: tuple[str, ...]
) -> tuple[datetime, datetime, Interval, dict[str, str | None]]:
    """A report by interval's query (this one's, the agents'): its window and interval
    (``parse_window``) and each of ``names`` (a queue's, an agent's id: ``parse_name``);
    ``bad_request`` for any other parameter."""
    if unknown := sorted(set(params) - {"since", "until", "interval", *names}):
        raise QueueReportError("bad_request", f"unknown parameters {unknown}")
    since, until, interval = parse_window(params, today, timezone)
    return since, until, interval, {name: parse_name(params, name) for name in names}


def parse_window(
    params: Mapping[str, str], today: date, timezone: str
) -> tuple[datetime, datetime, Interval]:
    """A report's window and interval: since and until (``local_days``) and the interval
    (default hour); at most a month of 15 minutes, a year else."""
    interval = parse_interval(params.get("interval") or "hour")
    limit = MAX_DAYS_BY_15MIN if interval == "15min" else MAX_DAYS
    since, until = local_days(params, today, timezone, limit, f"with interval {interval}")
    return since, until, interval


def local_days(
    params: Mapping[str, str],
    today: date,
    timezone: str,
    limit: int,
    why: str = "",
    error: Callable[[str, str], DomainError] = QueueReportError,
) -> tuple[datetime, datetime]:
    """The [start, end) instants of the local days ``since`` to ``until`` (both included;
    by default today), at most ``limit`` of them; ``error(error_id, message)`` otherwise."""
    from core.surveys.report import ReportError, report_window

    first = params.get("since") or today.isoformat()
    last = params.get("until") or first
    try:
        since, until = report_window(first, last, timezone)
    except ReportError as exc:
        raise error(exc.error_id, str(exc)) from None
    assert since is not None and until is not None
    if (until - since) / timedelta(days=1) > limit + 1:  # a day of 25 hours is still a day
        raise error("too_long", f"at most {limit} days{' ' + why if why else ''}: ask for fewer")
    return since, until


def parse_days_window(
    params: Mapping[str, str],
    today: date,
    timezone: str,
    *,
    filters: Iterable[str],
    intervals: Sequence[Interval],
    error: Callable[[str, str], DomainError],
) -> tuple[datetime, datetime, Interval]:
    """A report by days' window (the campaigns', the notices'): no parameter but
    ``filters``, the interval one of ``intervals`` (default day), since and until
    (``local_days``, at most ``MAX_DAYS``); ``error(error_id, message)`` otherwise."""
    if unknown := sorted(set(params) - set(filters)):
        raise error("bad_request", f"unknown parameters {unknown}")
    try:
        interval = parse_interval(params.get("interval") or "day")
    except QueueReportError:
        interval = "15min"  # refused just below, with the report's own intervals
    if interval not in intervals:
        raise error("bad_interval", f"interval: one of {', '.join(intervals)}")
    since, until = local_days(params, today, timezone, MAX_DAYS, error=error)
    return since, until, interval


def parse_name(params: Mapping[str, str], name: str) -> str | None:
    """A queue's or an agent's id given as ``name`` (None: all); ``bad_<name>`` when it cannot
    be one."""
    value = params.get(name) or None
    if value is not None and not 0 < len(value) <= 64:
        raise QueueReportError(f"bad_{name}", f"{name}: a {name}'s id")
    return value


def parse_interval(value: str) -> Interval:
    for interval in INTERVALS:
        if value == interval:
            return interval
    raise QueueReportError("bad_interval", f"interval: one of {', '.join(INTERVALS)}")


def interval_start(at: datetime, interval: Interval, zone: ZoneInfo) -> datetime:
    """The UTC instant at which ``at``'s interval starts, floored in local time. Returned in
    UTC: two local times that differ only by their fold (the repeated hour) compare equal
    within a zone, so keys must be instants."""
    local = at.astimezone(zone)
    if interval == "15min":
        start = local.replace(minute=local.minute - local.minute % 15, second=0, microsecond=0)
    elif interval == "hour":
        start = local.replace(minute=0, second=0, microsecond=0)
    else:
        day = local.date()
        if interval == "week":
            day -= timedelta(days=day.weekday())
        elif interval == "month":
            day = day.replace(day=1)
        start = datetime.combine(day, time(), zone)
    return start.astimezone(UTC)


def interval_end(start: datetime, interval: Interval, zone: ZoneInfo) -> datetime:
    """Where the interval starting at ``start`` (UTC) ends: the next one's start."""
    if interval == "15min":
        return start + timedelta(minutes=15)
    if interval == "hour":
        return start + timedelta(hours=1)
    day = start.astimezone(zone).date()
    if interval == "day":
        day += timedelta(days=1)
    elif interval == "week":
        day += timedelta(days=7)
    else:
        day = (day.replace(day=28) + timedelta(days=4)).replace(day=1)
    return datetime.combine(day, time(), zone).astimezone(UTC)


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest rank: the smallest value with at least ``share`` of them at or below it."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


@dataclass
class QueueFigures:
    offered: int = 0
    answered: int = 0
    answered_in_time: int = 0
    abandoned: int = 0
    short_abandoned: int = 0
    overflowed: int = 0
    callback_requested: int = 0  # callers who left the queue asking for a callback
    callbacks_requested: int = 0  # tasks made for the queue (also from elsewhere)
    callbacks_done: int = 0
    answered_waits: array[float] = field(default_factory=lambda: array("d"))
    longest_wait: float = 0.0

    def add(self, call: QueuedCall, threshold: float) -> None:
        self.offered += 1
        wait = call.wait
        self.longest_wait = max(self.longest_wait, wait)
        if call.connected_at is not None or call.outcome == ANSWERED:
            self.answered += 1
            self.answered_waits.append(wait)
            if wait <= threshold:
                self.answered_in_time += 1
        elif call.outcome == ABANDONED:
            if wait < SHORT_ABANDON_SECONDS:
                self.short_abandoned += 1
            else:
                self.abandoned += 1
        elif call.outcome == OVERFLOWED:
            self.overflowed += 1
        elif call.outcome == CALLBACK:
            self.callback_requested += 1

    def to_json(self) -> dict[str, Any]:
        base = self.offered - self.short_abandoned
        waits = self.answered_waits
        return {
            "offered": self.offered,
            "answered": self.answered,
            "answered_in_time": self.answered_in_time,
            "abandoned": self.abandoned,
            "short_abandoned": self.short_abandoned,
            "overflowed": self.overflowed,
            "callback_requested": self.callback_requested,
            "service_level": round(self.answered_in_time / base, 4) if base > 0 else None,
            "abandon_rate": round(self.abandoned / base, 4) if base > 0 else None,
            "average_wait": round(sum(waits) / len(waits), 1) if waits else None,
            "p90_wait": _rounded(percentile(waits, 0.9)),
            "longest_wait": round(self.longest_wait, 1),
            "callbacks_requested": self.callbacks_requested,
            "callbacks_done": self.callbacks_done,
        }


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 1)


COLUMNS = (
    "offered",
    "answered",
    "answered_in_time",
    "abandoned",
    "short_abandoned",
    "overflowed",
    "callback_requested",
    "service_level",
    "abandon_rate",
    "average_wait",
    "p90_wait",
    "longest_wait",
    "callbacks_requested",
    "callbacks_done",
)


class QueueReport:
    """The report built call by call (``add_call``, ``add_task``) and read once (``result``):
    what it holds is a few figures per queue and interval and the answered waits (8 bytes
    each, for the 90th percentile), never the calls, so a month of them streams through."""

    def __init__(self, interval: Interval, zone: ZoneInfo, thresholds: Mapping[str, int]):
        self.interval = interval
        self.zone = zone
        self.thresholds = thresholds
        self.rows: dict[tuple[str, datetime], QueueFigures] = {}
        self.totals: dict[str, QueueFigures] = {}

    def _figures(self, queue: str, at: datetime) -> tuple[QueueFigures, QueueFigures]:
        key = (queue, interval_start(at, self.interval, self.zone))
        return self.rows.setdefault(key, QueueFigures()), self.totals.setdefault(
            queue, QueueFigures()
        )

    def add_call(self, call: QueuedCall) -> None:
        threshold = self.thresholds.get(call.queue, DEFAULT_SERVICE_LEVEL_SECONDS)
        for target in self._figures(call.queue, call.queued_at):
            target.add(call, threshold)

    def add_task(self, task: CallbackTask) -> None:
        for target in self._figures(task.queue, task.created_at):
            target.callbacks_requested += 1
            target.callbacks_done += int(task.done)

    def result(self) -> dict[str, Any]:
        """Per queue, its rows by interval (oldest first, only intervals with something in
        them) and its totals."""
        zone, interval = self.zone, self.interval
        queues = []
        for queue in sorted(self.totals):
            mine = sorted((start, f) for (q, start), f in self.rows.items() if q == queue)
            queues.append(
                {
                    "queue": queue,
                    "service_level_seconds": self.thresholds.get(
                        queue, DEFAULT_SERVICE_LEVEL_SECONDS
                    ),
                    "total": self.totals[queue].to_json(),
                    "intervals": [
                        {
                            "start": start.astimezone(zone).isoformat(),
                            "end": interval_end(start, interval, zone).astimezone(zone).isoformat(),
                            **f.to_json(),
                        }
                        for start, f in mine
                    ],
                }
            )
        return {"interval": interval, "timezone": zone.key, "queues": queues}


def build(
    calls: Iterable[QueuedCall],
    callbacks: Iterable[CallbackTask],
    *,
    interval: Interval,
    zone: ZoneInfo,
    thresholds: Mapping[str, int],
) -> dict[str, Any]:
    """The report of ``calls`` and ``callbacks``. ``thresholds``: each queue's service-level
    seconds (a queue without one has the default)."""
    report = QueueReport(interval, zone, thresholds)
    for call in calls:
        report.add_call(call)
    for task in callbacks:
        report.add_task(task)
    return report.result()


def csv_rows(report: Mapping[str, Any]) -> Iterable[list[str]]:
    """The report as CSV rows: a header, then one row per queue and interval."""
    yield ["queue", "start", "end", *COLUMNS]
    for queue in report["queues"]:
        for row in queue["intervals"]:
            yield [
                str(csv_cell(queue["queue"])),
                row["start"],
                row["end"],
                *("" if row[c] is None else str(row[c]) for c in COLUMNS),
            ]
