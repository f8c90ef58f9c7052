"""The notices report, pure (core/notice_report.py): each message counted once in its
creation day's row (a cohort) under its kind and channel, the states' columns, fallbacks,
opt-outs by channel and source, the local days across the autumn clock change, the totals,
the CSV, and the query's checks."""

from __future__ import annotations

from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import pytest

from core.notice_report import (
    COLUMNS,
    NoticeFacts,
    NoticeReportError,
    OptOutFacts,
    build,
    csv_rows,
    parse_request,
)

ZONE = ZoneInfo("Europe/Sarajevo")


def utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def notice(at: str, state: str, *, kind: str = "birthday", channel: str = "sms",
           sent: bool = True, fallback: bool = False) -> NoticeFacts:  # fmt: skip
    return NoticeFacts(utc(at), kind, channel, state, sent, fallback)


def test_each_message_counts_once_in_its_creation_days_row() -> None:
    report = build(
        [
            notice("2026-10-24T21:59:00", "delivered"),  # 23:59 on the 24th, Sarajevo
            notice("2026-10-24T22:00:00", "failed"),  # 00:00 on the 25th (summer time)
            notice("2026-10-25T22:59:00", "queued", sent=False),  # 23:59 on the 25th (winter)
            notice("2026-10-25T10:00:00", "sent"),
            notice("2026-10-25T11:00:00", "delivered", fallback=True),
            notice("2026-10-25T12:00:00", "expired", kind="offer", channel="viber"),
            notice("2026-10-25T12:00:00", "sending", kind="offer", channel="email", sent=False),
        ],
        [
            OptOutFacts(utc("2026-10-25T08:00:00"), "sms", "stop_reply"),
            OptOutFacts(utc("2026-10-25T09:00:00"), "sms", "stop_reply"),
            OptOutFacts(utc("2026-10-25T09:00:00"), "email", "unsubscribe"),
        ],
        interval="day",
        zone=ZONE,
    )
    rows = {(r["start"][:10], r["kind"], r["channel"]): r for r in report["rows"]}
    assert list(rows) == [
        ("2026-10-24", "birthday", "sms"),
        ("2026-10-25", "birthday", "sms"),
        ("2026-10-25", "offer", "email"),
        ("2026-10-25", "offer", "viber"),
    ]
    day24 = rows[("2026-10-24", "birthday", "sms")]
    assert (day24["start"], day24["end"]) == (
        "2026-10-24T00:00:00+02:00",
        "2026-10-25T00:00:00+02:00",
    )
    assert {c: day24[c] for c in COLUMNS} == {
        "messages": 1, "waiting": 0, "sent": 1, "delivered": 1, "failed": 0, "expired": 0,
        "fallbacks": 0,
    }  # fmt: skip
    day25 = rows[("2026-10-25", "birthday", "sms")]
    assert day25["end"] == "2026-10-26T00:00:00+01:00"  # a day of 25 hours
    assert {c: day25[c] for c in COLUMNS} == {
        "messages": 4, "waiting": 1, "sent": 3, "delivered": 1, "failed": 1, "expired": 0,
        "fallbacks": 1,
    }  # fmt: skip
    assert rows[("2026-10-25", "offer", "viber")]["expired"] == 1
    assert rows[("2026-10-25", "offer", "email")]["waiting"] == 1
    totals = {(t["kind"], t["channel"]): t["messages"] for t in report["totals"]}
    assert totals == {("birthday", "sms"): 5, ("offer", "email"): 1, ("offer", "viber"): 1}
    assert [(o["channel"], o["source"], o["clients"]) for o in report["opt_outs"]] == [
        ("email", "unsubscribe", 1),
        ("sms", "stop_reply", 2),
    ]
    lines = list(csv_rows(report))
    assert lines[0] == ["start", "end", "kind", "channel", "source", *COLUMNS]
    assert len(lines) == 1 + 4 + 2
    assert lines[-1][2:6] == ["opt_out", "sms", "stop_reply", "2"]


def test_the_query_is_checked() -> None:
    today = date(2026, 12, 2)
    asked = parse_request(
        {"since": "2026-11-01", "interval": "week", "kind": "offer"}, today, "Europe/Sarajevo"
    )
    assert asked.interval == "week" and asked.kind == "offer" and asked.channel is None
    assert asked.since == datetime(2026, 10, 31, 23, 0, tzinfo=UTC)
    for params, error in (
        ({"interval": "hour"}, "bad_interval"),
        ({"interval": "15min"}, "bad_interval"),
        ({"kind": "spam"}, "bad_filter"),
        ({"channel": "fax"}, "bad_filter"),
        ({"queue": "x"}, "bad_request"),
        ({"since": "2026-13-01"}, "bad_date"),
        ({"since": "2020-01-01", "until": "2026-01-01"}, "too_long"),
    ):
        with pytest.raises(NoticeReportError) as raised:
            parse_request(params, today, "Europe/Sarajevo")
        assert raised.value.error_id == error, params
