"""Opening hours (dialplan.hours): weekdays, holidays, midnight, 24:00 and DST change days in
Europe/Sarajevo, plus a property: next_open is open and nothing earlier is."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from core.routing import queue_calendar, queue_is_open
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from dialplan.hours import is_open, next_open
from dialplan.model import WEEKDAYS, Calendar, Flow
from dialplan.validate import load_flow

SARAJEVO = ZoneInfo("Europe/Sarajevo")
INFOLINE = Path(__file__).parents[2] / "dialplan" / "infoline.yaml"
FLOW: Flow = load_flow(INFOLINE.read_text(encoding="utf-8"), str(INFOLINE))
OFFICE = FLOW.calendars["office"]  # weekdays 08:00-16:00, holidays 2027-01-01 ...
ALWAYS = FLOW.calendars["always"]


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=SARAJEVO)


def utc(y: int, mo: int, d: int, h: int = 0, mi: int = 0, s: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, s, tzinfo=UTC)


def cal(holidays: tuple[date, ...] = (), **weekly: list[str]) -> Calendar:
    return Calendar(timezone="Europe/Sarajevo", weekly=weekly, holidays=list(holidays))


# ---- is_open ------------------------------------------------------------------------------


def test_open_on_a_weekday_inside_the_range() -> None:
    assert is_open(OFFICE, local(2027, 2, 1, 10, 0))  # Monday


def test_range_start_is_open_and_end_is_closed() -> None:
    assert is_open(OFFICE, local(2027, 2, 1, 8, 0))
    assert not is_open(OFFICE, local(2027, 2, 1, 7, 59, 59))
    assert is_open(OFFICE, local(2027, 2, 1, 15, 59, 59))
    assert not is_open(OFFICE, local(2027, 2, 1, 16, 0))


def test_closed_at_the_weekend() -> None:
    assert not is_open(OFFICE, local(2027, 2, 6, 10, 0))  # Saturday
    assert not is_open(OFFICE, local(2027, 2, 7, 10, 0))  # Sunday


def test_holiday_is_closed_all_day() -> None:
    assert not is_open(OFFICE, local(2027, 1, 1, 10, 0))  # a Friday, New Year
    assert is_open(OFFICE, local(2027, 1, 4, 10, 0))  # the Monday after


def test_local_time_decides_not_utc() -> None:
    # 07:30 UTC is 08:30 in Sarajevo in winter: open; 15:30 UTC is 16:30: closed.
    assert is_open(OFFICE, utc(2027, 2, 1, 7, 30))
    assert not is_open(OFFICE, utc(2027, 2, 1, 15, 30))
    # In summer (UTC+2) 06:30 UTC is 08:30 local.
    assert is_open(OFFICE, utc(2027, 6, 7, 6, 30))


def test_holiday_is_a_local_date() -> None:
    # 2026-12-31 23:30 UTC is already 2027-01-01 in Sarajevo: the holiday.
    always_but_new_year = cal((date(2027, 1, 1),), **{d: ["00:00-24:00"] for d in WEEKDAYS})
    assert not is_open(always_but_new_year, utc(2026, 12, 31, 23, 30))
    assert is_open(always_but_new_year, utc(2026, 12, 31, 22, 30))


def test_24_00_is_the_end_of_the_day() -> None:
    evenings = cal(mon=["20:00-24:00"])
    assert is_open(evenings, local(2027, 2, 1, 23, 59, 59))
    assert not is_open(evenings, local(2027, 2, 2, 0, 0))  # Tuesday has no hours


def test_open_across_midnight_with_two_ranges() -> None:
    night = cal(mon=["22:00-24:00"], tue=["00:00-02:00"])
    for at in (local(2027, 2, 1, 23, 59), local(2027, 2, 2, 0, 0), local(2027, 2, 2, 1, 59)):
        assert is_open(night, at)
    assert not is_open(night, local(2027, 2, 2, 2, 0))
    assert next_open(night, local(2027, 2, 2, 0, 0)) == utc(2027, 2, 1, 23, 0)


def test_several_ranges_a_day() -> None:
    split = cal(sat=["08:00-12:00", "13:00-15:00"])
    assert is_open(split, local(2027, 2, 6, 11, 0))
    assert not is_open(split, local(2027, 2, 6, 12, 30))
    assert next_open(split, local(2027, 2, 6, 12, 30)) == utc(2027, 2, 6, 12, 0)


def test_no_calendar_is_always_open() -> None:
    assert is_open(None, utc(2027, 1, 1, 3, 0))
    assert next_open(None, local(2027, 1, 1, 3, 0)) == utc(2027, 1, 1, 2, 0)


def test_always_calendar_is_open_every_hour_including_dst_days() -> None:
    for day in (date(2027, 3, 28), date(2027, 10, 31), date(2027, 1, 1)):
        start = datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(hours=3)
        for h in range(30):
            assert is_open(ALWAYS, start + timedelta(hours=h))


def test_naive_datetimes_are_refused() -> None:
    with pytest.raises(ValueError, match="naive"):
        is_open(OFFICE, datetime(2027, 2, 1, 10, 0))
    with pytest.raises(ValueError, match="naive"):
        next_open(OFFICE, datetime(2027, 2, 1, 10, 0))


# ---- next_open ----------------------------------------------------------------------------


def test_next_open_is_now_when_open_in_utc() -> None:
    at = local(2027, 2, 1, 10, 17, 5)
    result = next_open(OFFICE, at)
    assert result == at and result is not None and result.tzinfo is UTC


def test_next_open_before_opening_is_the_same_morning() -> None:
    assert next_open(OFFICE, local(2027, 2, 1, 6, 0)) == utc(2027, 2, 1, 7, 0)


def test_next_open_after_friday_closing_is_monday_morning() -> None:
    assert next_open(OFFICE, local(2027, 2, 5, 16, 0)) == utc(2027, 2, 8, 7, 0)


def test_next_open_skips_holidays() -> None:
    # Thursday 31 Dec 2026 evening: Fri 1 Jan and Sat 2 Jan are holidays, then the weekend.
    assert next_open(OFFICE, local(2026, 12, 31, 17, 0)) == utc(2027, 1, 4, 7, 0)


def test_next_open_is_none_for_a_calendar_without_hours() -> None:
    assert next_open(cal(), utc(2027, 2, 1)) is None


def test_next_open_finds_a_weekday_a_week_ahead() -> None:
    assert next_open(cal(sun=["10:00-11:00"]), local(2027, 2, 7, 11, 0)) == utc(2027, 2, 14, 9, 0)


def test_next_open_crosses_a_year_of_holidays_only_within_370_days() -> None:
    # Only Mondays, all of them holidays for 60 weeks: nothing within the horizon.
    mondays = tuple(date(2027, 2, 1) + timedelta(weeks=w) for w in range(60))
    assert next_open(cal(mondays, mon=["08:00-09:00"]), local(2027, 1, 31, 12)) is None
    # ... but with the 53rd Monday free it opens then.
    some = mondays[:52]
    assert next_open(cal(some, mon=["08:00-09:00"]), local(2027, 1, 31, 12)) == local(
        2028, 1, 31, 8
    ).astimezone(UTC)


# ---- DST change days in Europe/Sarajevo ---------------------------------------------------
# Spring: Sunday 2027-03-28 02:00 CET -> 03:00 CEST (01:00 UTC).
# Autumn: Sunday 2027-10-31 03:00 CEST -> 02:00 CET (01:00 UTC).


def test_office_opens_an_hour_earlier_in_utc_after_the_spring_change() -> None:
    assert next_open(OFFICE, local(2027, 3, 26, 17, 0)) == utc(2027, 3, 29, 6, 0)
    assert next_open(OFFICE, local(2027, 10, 29, 17, 0)) == utc(2027, 11, 1, 7, 0)


def test_range_starting_in_the_missing_spring_hour_opens_at_the_jump() -> None:
    early = cal(sun=["02:30-04:00"])
    assert next_open(early, local(2027, 3, 27, 12, 0)) == utc(2027, 3, 28, 1, 0)  # 03:00 CEST
    assert not is_open(early, utc(2027, 3, 28, 0, 59))
    assert is_open(early, utc(2027, 3, 28, 1, 0))
    assert not is_open(early, utc(2027, 3, 28, 2, 0))  # 04:00 CEST


def test_range_wholly_inside_the_missing_hour_does_not_open_that_day() -> None:
    gap = cal(sun=["02:10-02:50"])
    assert next_open(gap, local(2027, 3, 27, 12, 0)) == utc(2027, 4, 4, 0, 10)


def test_hours_after_the_spring_change_are_local_summer_time() -> None:
    morning = cal(sun=["00:00-06:00"])
    start = utc(2027, 3, 27, 23, 0)  # 00:00 CET
    assert is_open(morning, start)
    assert is_open(morning, utc(2027, 3, 28, 3, 59))  # 05:59 CEST
    assert not is_open(morning, utc(2027, 3, 28, 4, 0))  # 06:00 CEST: 5 real hours open


def test_repeated_autumn_hour_is_open_both_times() -> None:
    repeated = cal(sun=["02:00-02:30"])
    assert is_open(repeated, utc(2027, 10, 31, 0, 15))  # 02:15 CEST
    assert not is_open(repeated, utc(2027, 10, 31, 0, 45))  # 02:45 CEST
    assert is_open(repeated, utc(2027, 10, 31, 1, 15))  # 02:15 CET
    assert next_open(repeated, utc(2027, 10, 31, 0, 45)) == utc(2027, 10, 31, 1, 0)


def test_clock_falling_back_into_a_range_reopens_it() -> None:
    # Closed at 02:10 CEST, then the clock goes back to 02:00 CET, inside the range again.
    night = cal(sun=["01:00-02:10"])
    assert next_open(night, utc(2027, 10, 31, 0, 30)) == utc(2027, 10, 31, 1, 0)


# ---- queues of a flow ---------------------------------------------------------------------


def test_queue_open_follows_the_queue_calendar() -> None:
    sunday_night = local(2027, 2, 7, 3, 0)
    assert queue_is_open(FLOW.calendars, FLOW.queues["urgent"], sunday_night)  # always
    assert not queue_is_open(FLOW.calendars, FLOW.queues["general"], sunday_night)  # office
    office = queue_calendar(FLOW.calendars, FLOW.queues["general"])
    assert next_open(office, sunday_night) == utc(2027, 2, 8, 7, 0)


def test_queue_without_a_calendar_or_unknown_to_the_flow_is_always_open() -> None:
    no_calendar = FLOW.queues["general"].model_copy(update={"calendar": None})
    assert queue_is_open(FLOW.calendars, no_calendar, local(2027, 2, 7, 3, 0))
    assert queue_is_open(FLOW.calendars, None, local(2027, 2, 7, 3, 0))  # only in the database


# ---- property -----------------------------------------------------------------------------

ZONES = ["Europe/Sarajevo", "America/New_York", "Australia/Lord_Howe", "Asia/Kolkata", "UTC"]


@st.composite
def hhmm_ranges(draw: st.DrawFn) -> list[str]:
    out = []
    for _ in range(draw(st.integers(0, 2))):
        start = draw(st.integers(0, 24 * 4 - 1)) * 15
        end = draw(st.integers(start // 15 + 1, 24 * 4)) * 15
        out.append(f"{start // 60:02d}:{start % 60:02d}-{end // 60:02d}:{end % 60:02d}")
    return out


@st.composite
def calendars(draw: st.DrawFn) -> Calendar:
    weekly = {day: draw(hhmm_ranges()) for day in draw(st.sets(st.sampled_from(WEEKDAYS)))}
    holidays = draw(st.lists(st.dates(date(2027, 1, 1), date(2027, 12, 31)), max_size=20))
    return Calendar(timezone=draw(st.sampled_from(ZONES)), weekly=weekly, holidays=holidays)


# Instants near DST changes are sampled on purpose: around the 2027 changes in each zone.
instants = st.one_of(
    st.datetimes(datetime(2027, 1, 1), datetime(2027, 12, 31), timezones=st.just(UTC)),
    st.sampled_from(
        [utc(2027, 3, 27, 20), utc(2027, 10, 30, 20), utc(2027, 3, 13, 12), utc(2027, 4, 3, 10)]
    ).flatmap(lambda base: st.integers(0, 36 * 60).map(lambda m: base + timedelta(minutes=m))),
)
WINDOW = timedelta(days=2)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(calendars(), instants)
def test_next_open_is_open_and_no_earlier_minute_is(calendar: Calendar, at: datetime) -> None:
    result = next_open(calendar, at)
    if result is not None:
        assert result >= at and result.tzinfo is UTC
        assert is_open(calendar, result)
    # Every whole minute from at up to the result (within a bounded window) is closed.
    end = min(result, at + WINDOW) if result is not None else at + WINDOW
    minute = at.replace(second=0, microsecond=0)
    if minute < at:
        minute += timedelta(minutes=1)
    assert result == at or not is_open(calendar, at)
    while minute < end:
        assert not is_open(calendar, minute), f"open at {minute}, next_open said {result}"
        minute += timedelta(minutes=1)
