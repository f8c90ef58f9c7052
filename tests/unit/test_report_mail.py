"""The morning e-mail's rules (core/report_mail.py): which days are due at a moment (the
time of day in the call centre's zone, across the summer-time changes; a week of catch-up at
most; a new installation mails only the last day), when a failure is tried again and when it
is given up, the recipients and time an operator writes, and the message itself; and the
settings that refuse a list with no mail server."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from email import message_from_bytes, policy
from functools import partial
from itertools import pairwise
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from centrala.settings import Settings
from core.report_mail import (
    MAX_CATCH_UP_DAYS,
    RETRY_WAITS,
    Attachment,
    ReportMailError,
    due_days,
    latest_due,
    message,
    parse_recipients,
    parse_time_of_day,
    queue_lines,
    retry_at,
)
from web import i18n

ZONE = ZoneInfo("Europe/Sarajevo")
SEVEN = time(7, 0)


def local(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=ZONE)


@pytest.mark.parametrize(
    ("now", "latest"),
    [
        ("2026-12-02T06:59:59", "2026-11-30"),
        ("2026-12-02T07:00:00", "2026-12-01"),
        ("2026-12-02T23:59:00", "2026-12-01"),
        ("2027-01-01T07:30:00", "2026-12-31"),  # across the year
        # The spring-forward and fall-back mornings: seven o'clock on the wall clock.
        ("2027-03-28T07:00:00", "2027-03-27"),
        ("2027-03-28T06:30:00", "2027-03-26"),
        ("2026-10-25T07:00:00", "2026-10-24"),
    ],
)
def test_the_latest_due_day_is_yesterday_from_the_local_time_on(now: str, latest: str) -> None:
    assert latest_due(local(now), SEVEN, ZONE) == date.fromisoformat(latest)
    # The same moment given in UTC: the same day.
    assert latest_due(local(now).astimezone(ZoneInfo("UTC")), SEVEN, ZONE) == date.fromisoformat(
        latest
    )


def test_due_days_catch_up_a_week_at_most_and_a_new_installation_only_the_last() -> None:
    now = local("2026-12-10T08:00:00")
    assert due_days(now, SEVEN, ZONE, None) == [date(2026, 12, 9)]
    assert due_days(now, SEVEN, ZONE, date(2026, 12, 9)) == []
    assert due_days(now, SEVEN, ZONE, date(2026, 12, 7)) == [date(2026, 12, 8), date(2026, 12, 9)]
    long_ago = due_days(now, SEVEN, ZONE, date(2026, 10, 1))
    assert len(long_ago) == MAX_CATCH_UP_DAYS
    assert long_ago[-1] == date(2026, 12, 9)
    assert long_ago == sorted(long_ago)
    # A day mailed ahead by hand (`centrala reports mail --day` of today) holds nothing back.
    assert due_days(now, SEVEN, ZONE, date(2026, 12, 10)) == []


@given(
    st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)),
    st.one_of(st.none(), st.dates(min_value=date(2019, 12, 1), max_value=date(2035, 1, 1))),
    st.times(),
)
def test_due_days_are_consecutive_after_the_newest_and_never_today(
    naive: datetime, newest: date | None, at: time
) -> None:
    now = naive.replace(tzinfo=ZONE)
    days = due_days(now, at, ZONE, newest)
    assert len(days) <= MAX_CATCH_UP_DAYS
    assert all(b - a == timedelta(days=1) for a, b in pairwise(days))
    assert all(d < now.date() for d in days)
    if newest is not None:
        assert all(d > newest for d in days)


def test_a_failure_is_tried_again_later_each_time_then_given_up() -> None:
    failed = local("2026-12-02T07:00:00")
    waits = [retry_at(n, failed) for n in range(1, len(RETRY_WAITS) + 2)]
    assert waits[0] == failed + timedelta(minutes=1)
    assert waits[-1] is None
    gaps = [w - failed for w in waits[:-1] if w is not None]
    assert gaps == sorted(gaps) and len(gaps) == len(RETRY_WAITS)
    assert sum(RETRY_WAITS) >= 4 * 3600  # a mail server down for a morning still gets it


def test_recipients_and_the_time_as_an_operator_writes_them() -> None:
    assert parse_recipients(" a@x.org, B@x.org ,,b@X.org") == ("a@x.org", "B@x.org")
    assert parse_recipients("") == ()
    assert parse_recipients(["qa@x.org"]) == ("qa@x.org",)
    for bad in ("nobody", "a@x.org; b@x.org", "a@x.org\r\nBcc: c@x.org", "Ana <a@x.org>", "a@"):
        with pytest.raises(ReportMailError, match="not an e-mail address"):
            parse_recipients(bad)
    with pytest.raises(ReportMailError, match="at most 50"):
        parse_recipients(",".join(f"u{n}@x.org" for n in range(51)))
    assert parse_time_of_day("7:05") == time(7, 5)
    assert parse_time_of_day("23:59") == time(23, 59)
    for bad in ("24:00", "7", "07:60", "seven"):
        with pytest.raises(ReportMailError, match="HH:MM"):
            parse_time_of_day(bad)


def test_the_message_carries_the_files_the_lines_and_a_stable_id() -> None:
    t = partial(i18n.t, "en")
    queues = {
        "queues": [
            {
                "queue": "general",
                "service_level_seconds": 20,
                "total": {"offered": 10, "answered": 8, "abandoned": 2, "service_level": 0.75},
            },
            {
                "queue": "quiet",
                "service_level_seconds": 30,
                "total": {"offered": 0, "answered": 0, "abandoned": 0, "service_level": None},
            },
        ]
    }
    lines = queue_lines(queues, t)
    assert lines == [
        "general: 10 offered, 8 answered, 2 abandoned; service level 75.0 % (within 20 s)",
        "quiet: 0 offered, 0 answered, 0 abandoned; service level - (within 30 s)",
    ]
    assert queue_lines({"queues": []}, t) == ["No calls reached a queue that day."]
    made = message(
        date(2026, 12, 1),
        sender="centrala@example.org",
        recipients=["a@x.org", "b@x.org"],
        attachments=[Attachment("queues-2026-12-01.csv", "queue,start\r\nšalter,x\r\n")],
        summary=lines,
        t=t,
        now=local("2026-12-02T07:00:00"),
        domain="example.org",
    )
    parsed = message_from_bytes(made.as_bytes(), policy=policy.default)
    assert parsed["Message-ID"] == "<reports-2026-12-01@example.org>"
    assert parsed["To"] == "a@x.org, b@x.org"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert "general: 10 offered" in parsed.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    (part,) = list(parsed.iter_attachments())
    assert part.get_filename() == "queues-2026-12-01.csv"
    assert part.get_content_type() == "text/csv"
    assert part.get_payload(decode=True).decode() == "queue,start\r\nšalter,x\r\n"


def test_settings_refuse_a_list_without_a_mail_server_or_a_bad_address() -> None:
    with pytest.raises(ValueError, match="CENTRALA_REPORTS_MAIL_TO needs CENTRALA_SMTP_HOST"):
        Settings(reports_mail_to="boss@x.org")
    with pytest.raises(ValueError, match="not an e-mail address"):
        Settings(reports_mail_to="boss", smtp_host="127.0.0.1")
    with pytest.raises(ValueError, match="HH:MM"):
        Settings(reports_mail_at="7am")
    s = Settings(reports_mail_to="boss@x.org, qa@x.org", smtp_host="mail.x.org")
    assert s.report_recipients == ("boss@x.org", "qa@x.org")
    assert s.report_mail_time == time(7, 0)
    assert Settings().report_recipients == ()
