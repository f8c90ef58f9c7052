"""The agents report's figures, pure (core/agent_report.py): a known hour of states and calls
gives known figures (talk less hold, wrap-up, pauses by reason, idle, average handle time,
occupancy, dispositions); spans are cut at the intervals' edges (an hour, midnight, the
daylight-saving days of 23 and 25 hours); an agent still logged in counts until now and the
state before the window counts from its start; a restart logging agents in again neither
doubles nor cuts their time; the query's checks; the CSV."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import pytest

from core.acd import AgentStatus
from core.agent_report import (
    AgentCall,
    StateChange,
    agent_call,
    build,
    csv_rows,
    parse_request,
    state_of,
)
from core.calllog_report import TrailEvent
from core.errors import DomainError
from core.queue_report import Interval

ZONE = ZoneInfo("Europe/Sarajevo")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE)


def day_after(text: str) -> datetime:
    """A window's end: the day after ``text`` when it is a day (both days included)."""
    if len(text) == 10:
        return local((date.fromisoformat(text) + timedelta(days=1)).isoformat())
    return local(text)


def state(at: str, name: str, reason: str | None = None, agent: str = "ana") -> StateChange:
    return StateChange(agent, local(at), name, reason)


def report(
    states: list[StateChange],
    calls: list[AgentCall] = [],  # noqa: B006 - never changed
    *,
    since: str,
    until: str,
    interval: Interval = "hour",
    now: str | None = None,
) -> dict[str, Any]:
    return build(
        states,
        calls,
        interval=interval,
        zone=ZONE,
        since=local(since),
        until=day_after(until),
        now=local(now) if now else day_after(until),
        names={"ana": "Ana Anić"},
    )


def only(result: dict[str, Any], agent: str = "ana") -> dict[str, Any]:
    found: dict[str, Any] = {a["agent"]: a for a in result["agents"]}[agent]
    return found


def test_a_known_hour_gives_known_figures() -> None:
    held = (local("2026-12-01T09:12:00"), local("2026-12-01T09:13:00"))
    calls = [
        # 09:10-09:15 with a minute on hold, wrapped up to 09:16
        AgentCall("ana", "inbound", local("2026-12-01T09:10:00"), 300, (held,), "sale"),
        # 09:20-09:22, outbound, no wrap-up
        AgentCall("ana", "outbound", local("2026-12-01T09:20:00"), 120, (), "no_interest"),
    ]
    states = [
        state("2026-12-01T09:00:00", "ready"),
        state("2026-12-01T09:15:00", "wrap_up"),
        state("2026-12-01T09:16:00", "ready"),
        state("2026-12-01T09:30:00", "paused", "lunch"),
        state("2026-12-01T09:45:00", "paused", "break"),
        state("2026-12-01T09:50:00", "ready"),
        state("2026-12-01T10:00:00", "logged_out"),
    ]
    result = report(states, calls, since="2026-12-01", until="2026-12-01")
    ana = only(result)
    assert ana["name"] == "Ana Anić"
    (hour,) = ana["intervals"]
    assert (hour["start"], hour["end"]) == (
        "2026-12-01T09:00:00+01:00",
        "2026-12-01T10:00:00+01:00",
    )
    assert hour == ana["total"] | {"start": hour["start"], "end": hour["end"]}
    assert hour["logged_in"] == 3600
    assert (hour["talk"], hour["hold"], hour["wrap_up"]) == (360, 60, 60)
    assert hour["paused"] == 1200 and hour["pause_by_reason"] == {"break": 300, "lunch": 900}
    assert hour["idle"] == 3600 - 1200 - 480
    assert (hour["handled"], hour["inbound"], hour["outbound"]) == (2, 1, 1)
    assert hour["average_handle"] == 240  # (360 + 60 + 60) / 2
    assert hour["occupancy"] == round(480 / 2400, 4)
    assert hour["dispositions"] == {"no_interest": 1, "sale": 1}


def test_spans_and_calls_are_cut_at_the_intervals_edges() -> None:
    # Logged in 09:50-10:20; a call 09:55-10:05 on hold 09:58-10:02; wrap-up to 10:07.
    held = (local("2026-12-01T09:58:00"), local("2026-12-01T10:02:00"))
    calls = [AgentCall("ana", "inbound", local("2026-12-01T09:55:00"), 600, (held,))]
    states = [
        state("2026-12-01T09:50:00", "ready"),
        state("2026-12-01T10:05:00", "wrap_up"),
        state("2026-12-01T10:07:00", "ready"),
        state("2026-12-01T10:20:00", "logged_out"),
    ]
    ana = only(report(states, calls, since="2026-12-01", until="2026-12-01"))
    nine, ten = ana["intervals"]
    assert (nine["logged_in"], nine["talk"], nine["hold"], nine["wrap_up"]) == (600, 180, 120, 0)
    assert (ten["logged_in"], ten["talk"], ten["hold"], ten["wrap_up"]) == (1200, 180, 120, 120)
    # handled where it was put through: the 9 o'clock hour
    assert (nine["handled"], ten["handled"]) == (1, 0)
    assert ten["average_handle"] is None and ana["total"]["average_handle"] == 720
    by_15 = only(report(states, calls, since="2026-12-01", until="2026-12-01", interval="15min"))
    assert [r["start"][11:16] for r in by_15["intervals"]] == ["09:45", "10:00", "10:15"]
    assert [r["logged_in"] for r in by_15["intervals"]] == [600, 900, 300]


def test_a_span_across_midnight_counts_on_both_days() -> None:
    states = [
        state("2026-12-01T22:30:00", "paused", "training"),
        state("2026-12-02T01:00:00", "logged_out"),
    ]
    ana = only(report(states, since="2026-12-01", until="2026-12-02", interval="day"))
    first, second = ana["intervals"]
    assert (first["start"], first["end"]) == (
        "2026-12-01T00:00:00+01:00",
        "2026-12-02T00:00:00+01:00",
    )
    assert (first["logged_in"], second["logged_in"]) == (5400, 3600)
    assert (first["pause_by_reason"], second["pause_by_reason"]) == (
        {"training": 5400},
        {"training": 3600},
    )
    assert first["occupancy"] is None  # all of it paused: nothing to be occupied in


def test_the_spring_day_has_23_hours_and_the_autumn_day_25() -> None:
    spring = [state("2026-03-28T12:00:00", "ready"), state("2026-03-30T12:00:00", "logged_out")]
    days = only(report(spring, since="2026-03-28", until="2026-03-30", interval="day"))["intervals"]
    assert [d["logged_in"] for d in days] == [12 * 3600, 23 * 3600, 12 * 3600]
    autumn = [state("2026-10-24T12:00:00", "ready"), state("2026-10-26T12:00:00", "logged_out")]
    days = only(report(autumn, since="2026-10-24", until="2026-10-26", interval="day"))["intervals"]
    assert [d["logged_in"] for d in days] == [12 * 3600, 25 * 3600, 12 * 3600]
    hours = only(report(autumn, since="2026-10-25", until="2026-10-25"))["intervals"]
    assert len(hours) == 25 and all(h["logged_in"] == 3600 for h in hours)
    repeated = [h["start"] for h in hours if h["start"][11:13] == "02"]
    assert repeated == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"]


def test_still_logged_in_counts_until_now_and_the_state_before_the_window_from_its_start() -> None:
    states = [
        state(
            "2026-11-30T20:00:00", "paused", "meeting"
        ),  # the day before: still paused at midnight
        state("2026-12-01T08:00:00", "ready"),
    ]
    ana = only(
        report(
            states,
            since="2026-12-01",
            until="2026-12-01",
            interval="day",
            now="2026-12-01T09:30:00",
        )
    )
    (day,) = ana["intervals"]
    assert day["logged_in"] == 9.5 * 3600
    assert day["pause_by_reason"] == {"meeting": 8 * 3600} and day["idle"] == 1.5 * 3600
    later = report(states, since="2026-12-02", until="2026-12-02", now="2026-12-01T09:30:00")
    assert later["agents"] == []  # a day still to come has nothing in it


def test_a_restart_logging_agents_in_again_neither_doubles_nor_cuts_their_time() -> None:
    # serve stopped at 09:20 and came back at 09:40: AgentDesk.restore writes the state
    # each agent is logged in again with (tests/unit/test_agent_state_log.py checks it).
    states = [
        state("2026-12-01T09:00:00", "ready"),
        state("2026-12-01T09:10:00", "paused", "lunch"),
        state("2026-12-01T09:40:00", "paused", "lunch"),  # the restart
        state("2026-12-01T09:50:00", "ready"),
        state("2026-12-01T09:55:00", "ready"),  # a second restart, ready
        state("2026-12-01T10:00:00", "logged_out"),
        state("2026-12-01T10:00:00", "logged_out"),  # a write replayed twice
    ]
    ana = only(report(states, since="2026-12-01", until="2026-12-01", interval="day"))
    assert ana["total"]["logged_in"] == 3600
    assert ana["total"]["pause_by_reason"] == {"lunch": 2400}
    assert ana["total"]["idle"] == 1200


def test_agents_are_apart_and_unknown_states_count_as_logged_out() -> None:
    states = [
        state("2026-12-01T09:00:00", "ready", agent="bob"),
        state("2026-12-01T09:00:00", "ready"),
        state("2026-12-01T09:30:00", "away"),  # not a state of ours: not logged in
        state("2026-12-01T09:45:00", "logged_out", agent="bob"),
    ]
    result = report(
        states, since="2026-12-01", until="2026-12-01", interval="day", now="2026-12-01T12:00:00"
    )
    assert [a["agent"] for a in result["agents"]] == ["ana", "bob"]
    assert only(result)["total"]["logged_in"] == 1800
    assert only(result, "bob")["total"]["logged_in"] == 2700
    assert only(result, "bob")["name"] == "bob"  # no name known: the id


def test_a_calls_row_becomes_what_the_report_reads() -> None:
    start = datetime(2026, 12, 1, 8, 0, tzinfo=UTC)
    events = [
        TrailEvent(start + timedelta(seconds=10), "held", {}),
        TrailEvent(start + timedelta(seconds=30), "resumed", {}),
        TrailEvent(start + timedelta(seconds=50), "held", {}),  # never resumed: to the end
    ]
    call = agent_call(
        "ana", "inbound", start, start, start + timedelta(seconds=70), 60.0, events, "sale"
    )
    assert call is not None and call.seconds == 60
    assert [(a.second, b.second) for a, b in call.holds] == [(10, 30), (50, 0)]
    assert call.holds[1][1] == start + timedelta(seconds=60)
    # outbound: from the answer; talk from the times when none was written
    out = agent_call("ana", "outbound", None, start, start + timedelta(seconds=42), None, [], None)
    assert out is not None and (out.start, out.seconds) == (start, 42)
    assert (
        agent_call("ana", "inbound", None, start, start, None, [], None) is None
    )  # never put through


def test_acd_statuses_as_the_report_counts_them() -> None:
    assert state_of(AgentStatus.AVAILABLE, None) == ("ready", None)
    assert state_of(AgentStatus.ON_CALL, "lunch") == ("ready", None)  # the pause waits
    assert state_of(AgentStatus.OFFERED, None) == ("ready", None)
    assert state_of(AgentStatus.PAUSED, "lunch") == ("paused", "lunch")
    assert state_of(AgentStatus.WRAP_UP, None) == ("wrap_up", None)
    assert state_of(AgentStatus.LOGGED_OUT, None) == ("logged_out", None)


def test_the_query_is_checked() -> None:
    today = date(2026, 12, 1)
    query = parse_request({"agent": "ana", "queue": "general", "interval": "day"}, today, ZONE.key)
    assert (query.agent, query.queue, query.interval) == ("ana", "general", "day")
    assert query.since == local("2026-12-01T00:00:00") and query.until == local(
        "2026-12-02T00:00:00"
    )
    for params, error in (
        ({"colour": "red"}, "bad_request"),
        ({"agent": "a" * 65}, "bad_agent"),
        ({"queue": "q" * 65}, "bad_queue"),
        ({"interval": "year"}, "bad_interval"),
        ({"since": "2026-13-01"}, "bad_date"),
        ({"since": "2026-01-01", "until": "2026-03-01", "interval": "15min"}, "too_long"),
    ):
        with pytest.raises(DomainError) as caught:
            parse_request(params, today, ZONE.key)
        assert caught.value.error_id == error, params


def test_the_csv_has_a_column_per_pause_reason_and_disposition_and_safe_cells() -> None:
    states = [
        state("2026-12-01T09:00:00", "paused", "lunch"),
        state("2026-12-01T09:30:00", "ready"),
        state("2026-12-01T10:00:00", "logged_out"),
        state("2026-12-01T09:00:00", "ready", agent="=bob"),
    ]
    calls = [
        AgentCall("ana", "inbound", local("2026-12-01T09:20:00"), 60, (), "sale"),
        AgentCall("ana", "inbound", local("2026-12-01T09:40:00"), 60, (), "later"),  # after now
    ]
    result = report(
        states, calls, since="2026-12-01", until="2026-12-01", now="2026-12-01T09:30:00"
    )
    header, bob, ana = csv_rows(result)  # by id: "=" sorts first
    assert header[:5] == ["agent", "name", "start", "end", "logged_in"]
    assert header[-2:] == ["pause:lunch", "disposition:sale"]
    assert ana[:4] == ["ana", "Ana Anić", "2026-12-01T09:00:00+01:00", "2026-12-01T10:00:00+01:00"]
    assert ana[4] == "1800.0" and ana[-2:] == ["1800.0", "1"]
    assert bob[:2] == ["'=bob", "'=bob"] and bob[-2:] == ["0", "0"]
