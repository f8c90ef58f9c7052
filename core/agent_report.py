"""The agents report, pure: how each agent spent their time and what they handled, per agent
and interval (15 minutes, hour, day, week, month) in the call centre's time zone. The
intervals are ``core.queue_report``'s (right across midnight and daylight saving).

What it reads:
- the agent's *state changes* (``agent_states``): ``ready`` (logged in, on a call or not),
  ``paused`` with its reason, ``wrap_up``, ``logged_out``; each lasts until the agent's next
  change, the last one until now (an agent still logged in counts to this moment). A change
  to the state the agent is already in (a restarted ``serve`` logging its agents in again)
  continues it: nothing counted twice, nothing cut.
- the *calls* put through to the agent (the call's last agent): talk is from being put
  through (or answered, outbound) to the end, less the holds (``held`` to ``resumed``).

Every span is cut at the intervals' edges, so each interval has the seconds spent in it.
Figures per agent and interval:
- ``logged_in``: seconds not logged out; ``paused`` (and ``pause_by_reason``);
  ``talk``, ``hold``, ``wrap_up``; ``idle`` = logged in − paused − talk − hold − wrap-up;
- ``handled`` (``inbound``, ``outbound``): calls put through in the interval;
- ``average_handle`` = (talk + hold + wrap-up) / handled;
- ``occupancy`` = (talk + hold + wrap-up) / (logged in − paused);
- ``dispositions``: the handled calls' dispositions, counted.
Imports only the standard library and ``core``."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, Literal, get_args
from zoneinfo import ZoneInfo

from core.calllog_report import TrailEvent, hold_spans
from core.queue_report import (
    Interval,
    interval_end,
    interval_start,
    parse_query,
)
from core.surveys.report import csv_cell

State = Literal["ready", "paused", "wrap_up", "logged_out"]
STATES: tuple[State, ...] = get_args(State)
# Calls put through up to this long before a window are read for the talk they reach into it.
LONGEST_CALL = timedelta(hours=12)


def state_of(status: str, pause_reason: str | None) -> tuple[State, str | None]:
    """An ACD agent's status (``core.acd.AgentStatus``) as the report counts it: offered and
    on a call are ``ready`` (talk is read from the calls); a pause asked for during a call
    waits for it to end, as the ACD's does."""
    if status == "paused":
        return "paused", pause_reason
    if status == "wrap_up":
        return "wrap_up", None
    if status == "logged_out":
        return "logged_out", None
    return "ready", None


@dataclass(frozen=True)
class StateChange:
    agent_id: str
    at: datetime  # aware
    state: str  # a State; anything else counts as logged out
    reason: str | None = None  # a pause's


@dataclass(frozen=True)
class AgentCall:
    """A call as the report reads it: put through to ``agent_id`` at ``start`` for
    ``seconds`` (holds included), its holds, its direction and disposition."""

    agent_id: str
    direction: str  # "inbound" | "outbound"
    start: datetime
    seconds: float
    holds: tuple[tuple[datetime, datetime], ...] = ()
    disposition: str | None = None


def agent_call(
    agent_id: str,
    direction: str,
    connected_at: datetime | None,
    answered_at: datetime | None,
    ended_at: datetime | None,
    talk_seconds: float | None,
    events: Iterable[TrailEvent],
    disposition: str | None,
) -> AgentCall | None:
    """A call's row and hold events as the report reads them; None when nobody talked (the
    caller hung up before being put through). Talk as the call log counts it."""
    start = connected_at or (answered_at if direction == "outbound" else None)
    if start is None:
        return None
    if talk_seconds is not None:
        seconds = max(0.0, talk_seconds)
    elif ended_at is not None:
        seconds = max(0.0, (ended_at - start).total_seconds())
    else:
        seconds = 0.0  # still going, or its end was never written
    end = start + timedelta(seconds=seconds)
    holds = tuple(
        (max(start, a), min(end, b)) for a, b in hold_spans(events, end) if min(end, b) > a
    )
    return AgentCall(agent_id, direction, start, seconds, holds, disposition)


@dataclass(frozen=True)
class AgentReportQuery:
    since: datetime  # UTC, the first local day's start
    until: datetime  # UTC, the day after the last one's start
    interval: Interval
    agent: str | None
    queue: str | None


def parse_request(params: Mapping[str, str], today: date, timezone: str) -> AgentReportQuery:
    """The query parameters: since, until, interval as the queues report's; agent and queue
    (default all); a clear error (``QueueReportError``) for anything else."""
    since, until, interval, named = parse_query(params, today, timezone, ("agent", "queue"))
    return AgentReportQuery(since, until, interval, named["agent"], named["queue"])


@dataclass
class AgentFigures:
    logged_in: float = 0.0
    talk: float = 0.0
    hold: float = 0.0
    wrap_up: float = 0.0
    paused: dict[str, float] = field(default_factory=lambda: defaultdict(float))
    inbound: int = 0
    outbound: int = 0
    dispositions: Counter[str] = field(default_factory=Counter)

    def to_json(self) -> dict[str, Any]:
        paused = sum(self.paused.values())
        busy = self.talk + self.hold + self.wrap_up
        handled = self.inbound + self.outbound
        available = self.logged_in - paused
        return {
            "logged_in": round(self.logged_in, 1),
            "talk": round(self.talk, 1),
            "hold": round(self.hold, 1),
            "wrap_up": round(self.wrap_up, 1),
            "paused": round(paused, 1),
            "idle": round(max(0.0, available - busy), 1),
            "handled": handled,
            "inbound": self.inbound,
            "outbound": self.outbound,
            "average_handle": round(busy / handled, 1) if handled else None,
            "occupancy": round(busy / available, 4) if available > 0 else None,
            "pause_by_reason": {r: round(s, 1) for r, s in sorted(self.paused.items())},
            "dispositions": dict(sorted(self.dispositions.items())),
        }


# The columns of a row (seconds, counts, averages); pauses by reason and dispositions follow.
COLUMNS = (
    "logged_in",
    "talk",
    "hold",
    "wrap_up",
    "paused",
    "idle",
    "handled",
    "inbound",
    "outbound",
    "average_handle",
    "occupancy",
)
NO_REASON = ""  # a pause without a reason given


class AgentReport:
    """The report built from state changes (``add_state``, in time order for each agent, the
    one each agent was in when the window opens first) and calls (``add_call``), and read
    once (``result``). Holds a few figures per agent and interval, and each agent's last
    state, never the rows."""

    def __init__(
        self, interval: Interval, zone: ZoneInfo, since: datetime, until: datetime, now: datetime
    ) -> None:
        self.interval = interval
        self.zone = zone
        self.since = since
        self.until = until
        self.end = max(since, min(until, now))  # nothing is counted past now
        self.rows: dict[tuple[str, datetime], AgentFigures] = {}
        self.totals: dict[str, AgentFigures] = {}
        self._open: dict[str, StateChange] = {}
        self._last = (since, since)  # the interval found last (none yet)

    def _figures(self, agent: str, start: datetime) -> tuple[AgentFigures, AgentFigures]:
        key = (agent, start)
        row = self.rows.get(key)
        if row is None:
            row = self.rows[key] = AgentFigures()
        total = self.totals.get(agent)
        if total is None:
            total = self.totals[agent] = AgentFigures()
        return row, total

    def _bounds(self, at: datetime) -> tuple[datetime, datetime]:
        """The interval ``at`` is in, (start, end): the last one found again when it is (rows
        come in time order, most fall in the interval of the one before)."""
        first, end = self._last
        if not first <= at < end:
            first = interval_start(at, self.interval, self.zone)
            end = interval_end(first, self.interval, self.zone)
            self._last = (first, end)
        return first, end

    def _spread(
        self,
        agent: str,
        start: datetime,
        end: datetime,
        add: Callable[[AgentFigures, float], None],
    ) -> None:
        """``add`` each interval's share of [start, end) within the window, up to now."""
        at, stop = max(start, self.since), min(end, self.end)
        while at < stop:
            first, edge = self._bounds(at)
            edge = min(edge, stop)
            seconds = (edge - at).total_seconds()
            for target in self._figures(agent, first):
                add(target, seconds)
            at = edge

    def add_state(self, change: StateChange) -> None:
        before = self._open.get(change.agent_id)
        if before is not None:
            self._count_state(before, change.at)
        self._open[change.agent_id] = change

    def _count_state(self, state: StateChange, until: datetime) -> None:
        if state.state == "paused":
            reason = state.reason or NO_REASON

            def add(f: AgentFigures, s: float) -> None:
                f.logged_in += s
                f.paused[reason] += s

        elif state.state == "wrap_up":

            def add(f: AgentFigures, s: float) -> None:
                f.logged_in += s
                f.wrap_up += s

        elif state.state == "ready":

            def add(f: AgentFigures, s: float) -> None:
                f.logged_in += s

        else:
            return
        self._spread(state.agent_id, state.at, until, add)

    def add_call(self, call: AgentCall) -> None:
        agent = call.agent_id
        if self.since <= call.start < self.end:
            for target in self._figures(agent, self._bounds(call.start)[0]):
                if call.direction == "outbound":
                    target.outbound += 1
                else:
                    target.inbound += 1
                if call.disposition:
                    target.dispositions[call.disposition] += 1

        def talk(f: AgentFigures, s: float) -> None:
            f.talk += s

        def hold(f: AgentFigures, s: float) -> None:
            f.hold += s
            f.talk -= s

        self._spread(agent, call.start, call.start + timedelta(seconds=call.seconds), talk)
        for held, resumed in call.holds:
            self._spread(agent, held, resumed, hold)

    def result(self, names: Mapping[str, str] | None = None) -> dict[str, Any]:
        """Per agent (by id), their name, rows by interval (oldest first, only intervals with
        something in them) and totals."""
        for state in self._open.values():  # the last state of each: until now
            self._count_state(state, self.end)
        self._open.clear()
        zone, interval = self.zone, self.interval
        by_agent: dict[str, list[tuple[datetime, AgentFigures]]] = defaultdict(list)
        for (agent, start), figures in sorted(self.rows.items()):
            by_agent[agent].append((start, figures))
        agents = [
            {
                "agent": agent,
                "name": (names or {}).get(agent, agent),
                "total": self.totals[agent].to_json(),
                "intervals": [
                    {
                        "start": start.astimezone(zone).isoformat(),
                        "end": interval_end(start, interval, zone).astimezone(zone).isoformat(),
                        **f.to_json(),
                    }
                    for start, f in by_agent[agent]
                ],
            }
            for agent in sorted(self.totals)
        ]
        return {"interval": interval, "timezone": zone.key, "agents": agents}


def build(
    states: Iterable[StateChange],
    calls: Iterable[AgentCall],
    *,
    interval: Interval,
    zone: ZoneInfo,
    since: datetime,
    until: datetime,
    now: datetime | None = None,
    names: Mapping[str, str] | None = None,
) -> dict[str, Any]:
    """The report of ``states`` (each agent's in time order) and ``calls`` over [since,
    until), counted up to ``now`` (default: the present)."""
    report = AgentReport(interval, zone, since, until, now or datetime.now(UTC))
    for change in states:
        report.add_state(change)
    for call in calls:
        report.add_call(call)
    return report.result(names)


def csv_rows(report: Mapping[str, Any]) -> Iterable[list[str]]:
    """The report as CSV rows: a header, then one row per agent and interval; a column per
    pause reason (``pause:REASON``, seconds) and per disposition (``disposition:CODE``,
    calls) found anywhere in the report."""
    agents = report["agents"]
    reasons = sorted({r for a in agents for r in a["total"]["pause_by_reason"]})
    codes = sorted({c for a in agents for c in a["total"]["dispositions"]})
    yield [
        "agent",
        "name",
        "start",
        "end",
        *COLUMNS,
        *(str(csv_cell(f"pause:{r}")) for r in reasons),
        *(str(csv_cell(f"disposition:{c}")) for c in codes),
    ]
    for agent in agents:
        for row in agent["intervals"]:
            yield [
                str(csv_cell(agent["agent"])),
                str(csv_cell(agent["name"])),
                row["start"],
                row["end"],
                *("" if row[c] is None else str(row[c]) for c in COLUMNS),
                *(str(row["pause_by_reason"].get(r, 0)) for r in reasons),
                *(str(row["dispositions"].get(c, 0)) for c in codes),
            ]
