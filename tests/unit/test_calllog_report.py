"""The call log report's pure part (core/calllog_report.py): query parameters into a filter
(local days across midnight and Sarajevo's daylight-saving changes; every bad input a 400
with its error_id), the cursor, a call's wait, talk and hold seconds and agents from its row
and trail, and the CSV's formula-safe cells."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.calllog_report import (
    CSV_COLUMNS,
    MAX_LIMIT,
    CallFacts,
    CallLogError,
    Cursor,
    TrailEvent,
    agents_of,
    call_row,
    csv_text,
    hold_seconds,
    parse_filter,
    parse_page,
    row_json,
)

SARAJEVO = ZoneInfo("Europe/Sarajevo")
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def _facts(**changes: object) -> CallFacts:
    values: dict[str, object] = {
        "id": "c1",
        "started_at": T0,
        "answered_at": T0 + timedelta(seconds=1),
        "ended_at": T0 + timedelta(seconds=200),
        "direction": "inbound",
        "caller_number": "+38761000111",
        "called_number": "0800100200",
        "client_id": 7,
        "client_name": "Amra",
        "campaign": None,
        "queue": "general",
        "agent_id": "haris",
        "ivr_path": ["welcome", "menu", "1"],
        "queued_at": T0 + timedelta(seconds=20),
        "connected_at": T0 + timedelta(seconds=50),
        "wait_seconds": None,
        "talk_seconds": None,
        "outcome": "answered",
        "disposition": "information",
        "hangup_cause": 16,
    }
    values.update(changes)
    return CallFacts(**values)  # type: ignore[arg-type]


def _event(seconds: float, kind: str, **data: object) -> TrailEvent:
    return TrailEvent(T0 + timedelta(seconds=seconds), kind, data)


# ---- the filter -----------------------------------------------------------------------------


def test_a_day_is_local_midnight_to_midnight() -> None:
    f = parse_filter({"since": "2026-11-02", "until": "2026-11-02"})
    assert f.since == datetime(2026, 11, 1, 23, 0, tzinfo=UTC)  # CET is UTC+1
    assert f.until == datetime(2026, 11, 2, 23, 0, tzinfo=UTC)


def test_the_spring_change_day_has_23_hours() -> None:
    f = parse_filter({"since": "2026-03-29", "until": "2026-03-29"})
    assert f.since == datetime(2026, 3, 28, 23, 0, tzinfo=UTC)  # still CET at midnight
    assert f.until == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)  # CEST by the next
    assert f.until - f.since == timedelta(hours=23)


def test_the_autumn_change_day_has_25_hours() -> None:
    f = parse_filter({"since": "2026-10-25", "until": "2026-10-25"})
    assert f.since == datetime(2026, 10, 24, 22, 0, tzinfo=UTC)
    assert f.until == datetime(2026, 10, 25, 23, 0, tzinfo=UTC)
    assert f.until - f.since == timedelta(hours=25)


def test_a_range_takes_both_days_whole() -> None:
    f = parse_filter({"since": "2026-10-24", "until": "2026-10-26"})
    assert f.since is not None and f.until is not None
    assert f.until - f.since == timedelta(hours=24 + 25 + 24)


def test_every_filter_is_read() -> None:
    f = parse_filter(
        {
            "direction": "outbound",
            "queue": "loans",
            "agent": "haris",
            "campaign": "nps-nov",
            "client": "42",
            "outcome": "abandoned",
            "disposition": "sale",
        }
    )
    assert (f.direction, f.queue, f.agent, f.campaign, f.client) == (
        "outbound",
        "loans",
        "haris",
        "nps-nov",
        42,
    )
    assert (f.outcome, f.disposition, f.since, f.until) == ("abandoned", "sale", None, None)


def test_empty_values_are_not_given() -> None:
    assert parse_filter({"queue": "", "since": " ", "client": ""}) == parse_filter({})


@pytest.mark.parametrize(
    ("params", "error_id"),
    [
        ({"since": "01.11.2026"}, "bad_date"),
        ({"until": "2026-02-30"}, "bad_date"),
        ({"since": "2026-11-03", "until": "2026-11-02"}, "bad_date"),
        ({"direction": "sideways"}, "bad_filter"),
        ({"client": "amra"}, "bad_filter"),
        ({"queue": "a b"}, "bad_filter"),
        ({"agent": "x" * 101}, "bad_filter"),
        ({"outcome": "=cmd|x"}, "bad_filter"),
        ({"qeue": "loans"}, "unknown_filter"),
        ({"limit": "10"}, "unknown_filter"),  # the CSV has no pages
    ],
)
def test_bad_filters_are_400_with_an_error_id(params: dict[str, str], error_id: str) -> None:
    with pytest.raises(CallLogError) as caught:
        parse_filter(params)
    assert caught.value.error_id == error_id and caught.value.status == 400
    assert str(caught.value)


def test_a_page_has_a_limit_and_a_cursor() -> None:
    assert parse_page({}).limit == 100 and parse_page({}).cursor is None
    assert parse_page({"limit": str(MAX_LIMIT)}).limit == MAX_LIMIT
    cursor = Cursor(T0, "abc-123")
    asked = parse_page({"cursor": cursor.encode(), "queue": "general"})
    assert asked.cursor == cursor and asked.filter.queue == "general"


@pytest.mark.parametrize("limit", ["0", "501", "-1", "ten", "1e3", "99999"])
def test_a_limit_out_of_range_is_refused(limit: str) -> None:
    with pytest.raises(CallLogError) as caught:
        parse_page({"limit": limit})
    assert caught.value.error_id == "bad_limit"


@pytest.mark.parametrize("cursor", ["!!", "bm90IGEgY3Vyc29y", "x" * 300, "MjAyNi0xMS0wMnxh"])
def test_a_cursor_it_did_not_give_is_refused(cursor: str) -> None:
    with pytest.raises(CallLogError) as caught:
        parse_page({"cursor": cursor})
    assert caught.value.error_id == "bad_cursor"


# ---- a call's row ---------------------------------------------------------------------------


def test_wait_and_talk_come_from_the_row_or_its_times() -> None:
    row = call_row(_facts(), [], [])
    assert (row.wait_seconds, row.talk_seconds) == (30.0, 150.0)
    recorded = call_row(_facts(wait_seconds=12.5, talk_seconds=99.25), [], [])
    assert (recorded.wait_seconds, recorded.talk_seconds) == (12.5, 99.25)


def test_a_caller_who_gave_up_waited_to_the_end_and_never_talked() -> None:
    row = call_row(_facts(connected_at=None, agent_id=None, outcome="abandoned"), [], [])
    assert row.wait_seconds == 180.0 and row.talk_seconds is None and row.agents == ()


def test_an_outbound_call_talks_from_its_answer() -> None:
    row = call_row(_facts(direction="outbound", queued_at=None, connected_at=None), [], [])
    assert row.wait_seconds is None and row.talk_seconds == 199.0


def test_hold_adds_each_stretch_and_an_open_one_lasts_to_the_end() -> None:
    events = [
        _event(60, "held"),
        _event(70, "resumed"),
        _event(80, "held"),
        _event(85, "held"),  # a duplicate while held
        _event(100, "resumed"),
        _event(190, "held"),
    ]
    assert hold_seconds(events, T0 + timedelta(seconds=200)) == 10 + 20 + 10
    assert hold_seconds([_event(5, "resumed")], T0) == 0.0


def test_agents_are_everyone_put_through_in_order_once() -> None:
    events = [
        _event(50, "agent_connected", agent_id="haris"),
        _event(90, "consult_connected", agent_id="lejla"),
        _event(95, "agent_connected", agent_id="haris"),
        _event(99, "offered", agent_id="nobody"),  # offered, never put through
    ]
    assert agents_of(events, "lejla") == ("haris", "lejla")
    assert agents_of([], "haris") == ("haris",)
    assert agents_of([], None) == ()


def test_the_json_row_is_in_sarajevo_time() -> None:
    summer = datetime(2026, 7, 1, 10, 0, tzinfo=UTC)
    row = call_row(
        _facts(started_at=summer, answered_at=None, ended_at=None, queued_at=None), [], ["n1"]
    )
    body = row_json(row, SARAJEVO)
    assert body["started_at"] == "2026-07-01T12:00:00+02:00"
    assert body["answered_at"] is None and body["notes"] == ["n1"]
    assert body["ivr_path"] == ["welcome", "menu", "1"] and body["agents"] == ["haris"]
    winter = row_json(call_row(_facts(), [], []), SARAJEVO)
    assert winter["started_at"] == "2026-11-02T10:00:00+01:00"


# ---- the CSV ----------------------------------------------------------------------------------


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_a_cell_starting_like_a_formula_is_quoted(start: str) -> None:
    text = f'{start}HYPERLINK("http://x")'
    row = call_row(_facts(client_name=text), [], [text, "plain"])
    cells = next(csv.reader(io.StringIO(csv_text([row], SARAJEVO)), strict=True))
    by_name = dict(zip(CSV_COLUMNS, cells, strict=True))
    assert by_name["client_name"] == "'" + text
    assert by_name["notes"] == "'" + text + " | plain"
    assert by_name["caller_number"] == "'+38761000111"  # E.164 reads as text
    assert by_name["client_id"] == "7"


def test_the_csv_has_its_header_once_and_a_line_per_call() -> None:
    rows = [call_row(_facts(id=f"c{n}"), [_event(60, "held"), _event(64, "resumed")], [])
            for n in range(3)]  # fmt: skip
    text = csv_text(rows[:1], SARAJEVO, header=True) + csv_text(rows[1:], SARAJEVO)
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [r["id"] for r in parsed] == ["c0", "c1", "c2"]
    first = parsed[0]
    assert first["ivr_path"] == "welcome>menu>1" and first["agents"] == "haris"
    assert (first["wait_seconds"], first["talk_seconds"], first["hold_seconds"]) == (
        "30",
        "150",
        "4",
    )
    assert first["started_at"] == "2026-11-02T10:00:00+01:00"
    assert csv_text([], SARAJEVO, header=True).strip() == ",".join(CSV_COLUMNS)
