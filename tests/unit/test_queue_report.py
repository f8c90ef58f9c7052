"""The queues report's figures, pure (core/queue_report.py): a known set of calls gives known
figures; short abandons are counted apart; the service level and the 90th percentile; a day
is a local day across daylight saving (23 and 25 hours) and the repeated autumn hour is two
intervals; weeks and months; the query's checks; the CSV; a call that overflowed or was
transferred to another queue is offered to each queue it waited in."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.errors import DomainError
from core.queue_report import (
    CallbackTask,
    CallStep,
    QueuedCall,
    build,
    csv_rows,
    interval_end,
    interval_start,
    parse_request,
    percentile,
    visits,
)

ZONE = ZoneInfo("Europe/Sarajevo")


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE)


def call(
    at: datetime, wait: float, outcome: str, queue: str = "general", *, answered: bool = False
) -> QueuedCall:
    connected = at + timedelta(seconds=wait) if answered else None
    ended = None if answered else at + timedelta(seconds=wait)
    return QueuedCall(queue, at, connected, ended, outcome)


def test_a_known_hour_of_calls_gives_known_figures() -> None:
    at = local("2026-12-01T09:00:00")
    calls = [
        call(at, 5, "answered", answered=True),
        call(at + timedelta(minutes=5), 15, "answered", answered=True),
        call(at + timedelta(minutes=10), 40, "answered", answered=True),  # late: over 20 s
        call(at + timedelta(minutes=20), 2, "abandoned_in_queue"),  # short: counted apart
        call(at + timedelta(minutes=30), 60, "abandoned_in_queue"),
        call(at + timedelta(minutes=40), 300, "overflowed"),
        call(at + timedelta(minutes=50), 30, "callback_requested"),
        call(at + timedelta(minutes=55), 8, "answered", queue="finance", answered=True),
    ]
    tasks = [CallbackTask("general", at + timedelta(minutes=50), done=True)]
    report = build(calls, tasks, interval="hour", zone=ZONE, thresholds={"general": 20})
    assert [q["queue"] for q in report["queues"]] == ["finance", "general"]
    by_name = {q["queue"]: q for q in report["queues"]}
    (hour,) = by_name["general"]["intervals"]
    assert (hour["start"], hour["end"]) == (
        "2026-12-01T09:00:00+01:00",
        "2026-12-01T10:00:00+01:00",
    )
    assert {k: hour[k] for k in ("offered", "answered", "answered_in_time", "abandoned")} == {
        "offered": 7,
        "answered": 3,
        "answered_in_time": 2,
        "abandoned": 1,
    }
    assert (hour["short_abandoned"], hour["overflowed"], hour["callback_requested"]) == (1, 1, 1)
    # 2 answered in time of 7 offered less 1 short abandon; 1 abandoned of the same 6.
    assert (hour["service_level"], hour["abandon_rate"]) == (round(2 / 6, 4), round(1 / 6, 4))
    assert (hour["average_wait"], hour["p90_wait"], hour["longest_wait"]) == (20.0, 40.0, 300.0)
    assert (hour["callbacks_requested"], hour["callbacks_done"]) == (1, 1)
    assert by_name["general"]["total"] == {
        k: v for k, v in hour.items() if k not in ("start", "end")
    }
    # A queue with no threshold of its own has the default 20 s.
    assert by_name["finance"]["service_level_seconds"] == 20
    assert by_name["finance"]["total"]["service_level"] == 1.0


def test_the_90th_percentile_is_the_nearest_rank() -> None:
    assert percentile([], 0.9) is None
    assert percentile([3.0], 0.9) == 3.0
    assert percentile([float(x) for x in range(1, 11)], 0.9) == 9.0
    assert percentile([float(x) for x in range(1, 12)], 0.9) == 10.0


@pytest.mark.parametrize(
    ("day", "hours"),
    [("2026-03-29", 23), ("2026-10-25", 25), ("2026-12-01", 24)],
)
def test_a_day_is_a_local_day_across_daylight_saving(day: str, hours: int) -> None:
    start = interval_start(local(f"{day}T12:00:00"), "day", ZONE)
    assert start.astimezone(ZONE).isoformat().startswith(f"{day}T00:00:00")
    assert interval_end(start, "day", ZONE) - start == timedelta(hours=hours)


def test_the_repeated_autumn_hour_is_two_intervals() -> None:
    # 02:30 local happens twice on 2026-10-25: at 00:30 UTC (+02:00) and at 01:30 UTC (+01:00).
    first = QueuedCall("general", datetime(2026, 10, 25, 0, 30, tzinfo=UTC), None, None, "x")
    second = QueuedCall("general", datetime(2026, 10, 25, 1, 30, tzinfo=UTC), None, None, "x")
    report = build([first, second], [], interval="hour", zone=ZONE, thresholds={})
    starts = [row["start"] for row in report["queues"][0]["intervals"]]
    assert starts == ["2026-10-25T02:00:00+02:00", "2026-10-25T02:00:00+01:00"]
    days = build([first, second], [], interval="day", zone=ZONE, thresholds={})
    (day,) = days["queues"][0]["intervals"]
    assert (day["start"], day["end"], day["offered"]) == (
        "2026-10-25T00:00:00+02:00",
        "2026-10-26T00:00:00+01:00",
        2,
    )


def test_quarter_hours_weeks_and_months() -> None:
    at = local("2026-12-02T10:44:59")  # a Wednesday
    assert interval_start(at, "15min", ZONE).astimezone(ZONE).isoformat() == (
        "2026-12-02T10:30:00+01:00"
    )
    week = interval_start(at, "week", ZONE)
    assert week.astimezone(ZONE).isoformat() == "2026-11-30T00:00:00+01:00"
    assert interval_end(week, "week", ZONE).astimezone(ZONE).date() == date(2026, 12, 7)
    month = interval_start(local("2026-03-15T10:00:00"), "month", ZONE)
    assert month.astimezone(ZONE).isoformat() == "2026-03-01T00:00:00+01:00"
    # March has a 23-hour day: its end is April 1st at midnight, summer time.
    assert interval_end(month, "month", ZONE).astimezone(ZONE).isoformat() == (
        "2026-04-01T00:00:00+02:00"
    )
    december = interval_start(local("2026-12-31T23:59:00"), "month", ZONE)
    assert interval_end(december, "month", ZONE).astimezone(ZONE).date() == date(2027, 1, 1)


def test_the_query_is_checked() -> None:
    today = date(2026, 12, 1)
    query = parse_request({}, today, "Europe/Sarajevo")
    assert (query.interval, query.queue) == ("hour", None)
    assert query.until - query.since == timedelta(days=1)
    march = parse_request(
        {"since": "2026-03-01", "until": "2026-03-31", "interval": "15min"},
        today,
        "Europe/Sarajevo",
    )
    assert march.until - march.since == timedelta(days=31) - timedelta(hours=1)
    for params, error in (
        ({"interval": "minute"}, "bad_interval"),
        ({"since": "2026-13-01"}, "bad_date"),
        ({"since": "2026-12-02", "until": "2026-12-01"}, "bad_date"),
        ({"since": "2026-01-01", "until": "2026-03-01", "interval": "15min"}, "too_long"),
        ({"since": "2020-01-01", "until": "2026-03-01"}, "too_long"),
        ({"colour": "red"}, "bad_request"),
        ({"queue": "q" * 65}, "bad_queue"),
    ):
        with pytest.raises(DomainError) as refused:
            parse_request(params, today, "Europe/Sarajevo")
        assert refused.value.error_id == error, params


def test_the_csv_has_a_row_per_queue_and_interval_and_no_formula() -> None:
    at = local("2026-12-01T09:10:00")
    calls = [
        call(at, 5, "answered", answered=True),
        call(at, 5, "answered", queue="=cmd", answered=True),
    ]
    rows = list(csv_rows(build(calls, [], interval="day", zone=ZONE, thresholds={})))
    assert rows[0][:4] == ["queue", "start", "end", "offered"]
    assert [r[0] for r in rows[1:]] == ["'=cmd", "general"]
    assert rows[2][3] == "1" and rows[2][rows[0].index("service_level")] == "1.0"


def test_a_call_transferred_to_another_queue_is_answered_in_each_with_its_own_wait() -> None:
    at = local("2026-12-01T09:00:00")
    after = at + timedelta(seconds=12)  # answered in new_clients
    moved = after + timedelta(seconds=90)  # the agent transfers the caller to finance
    row = QueuedCall("finance", at, moved + timedelta(seconds=30), None, "answered", 132.0)
    steps = [
        CallStep(at, "queued", "new_clients"),
        CallStep(after, "agent_connected"),
        CallStep(moved, "transferred", to="queue:finance"),
        CallStep(moved, "queued", "finance"),
        CallStep(moved + timedelta(seconds=30), "agent_connected"),
    ]
    first, second = visits(row, steps)
    assert (first.queue, first.queued_at, first.wait, first.outcome) == (
        "new_clients",
        at,
        12.0,
        "answered",
    )
    assert (second.queue, second.queued_at, second.wait, second.outcome) == (
        "finance",
        moved,
        30.0,
        "answered",
    )
    report = build([first, second], [], interval="day", zone=ZONE, thresholds={})
    totals = {q["queue"]: q["total"] for q in report["queues"]}
    assert {q: (t["offered"], t["answered"], t["longest_wait"]) for q, t in totals.items()} == {
        "new_clients": (1, 1, 12.0),
        "finance": (1, 1, 30.0),
    }


def test_an_overflow_counts_in_the_first_queue_and_the_end_in_the_second() -> None:
    at = local("2026-12-01T09:00:00")
    over = at + timedelta(seconds=180)
    gone = over + timedelta(seconds=40)
    row = QueuedCall("general", at, None, gone, "abandoned_in_queue")
    steps = [
        CallStep(at, "queued", "new_clients"),
        CallStep(over, "overflowed", "new_clients", to="general"),
        CallStep(over, "queued", "general"),
    ]
    first, second = visits(row, steps)
    assert (first.queue, first.outcome, first.wait) == ("new_clients", "overflowed", 180.0)
    assert (second.queue, second.outcome, second.wait) == ("general", "abandoned_in_queue", 40.0)


def test_a_transfer_to_a_named_agent_is_no_offer_and_old_rows_stay_as_they_are() -> None:
    at = local("2026-12-01T09:00:00")
    moved = at + timedelta(seconds=60)
    row = QueuedCall("new_clients", at, at + timedelta(seconds=5), None, "answered", 5.0)
    steps = [
        CallStep(at, "queued", "new_clients"),
        CallStep(at + timedelta(seconds=5), "agent_connected"),
        CallStep(moved, "transferred", to="agent:ana"),
        CallStep(moved, "queued", "new_clients"),
        CallStep(moved + timedelta(seconds=8), "agent_connected"),
    ]
    assert [(v.queue, v.wait) for v in visits(row, steps)] == [("new_clients", 5.0)]
    # A call whose queued steps were never written (older rows): counted as its row says.
    assert visits(row, [CallStep(moved, "transferred", to="queue:finance")]) == [row]
