"""Opening hours of a calendar (``dialplan.model.Calendar``): pure functions of aware datetimes.

Weekly ranges are local wall-clock times in the calendar's IANA time zone ("08:00-16:00";
"24:00" is the end of the day), holidays are local dates closed all day. A range is open at
an instant when the local wall-clock time at that instant lies in it, so on DST change days:

* spring forward (02:00 -> 03:00 in Europe/Sarajevo): a range starting inside the missing
  hour opens at the jump (03:00 local); a range lying wholly inside it never opens;
* fall back (03:00 -> 02:00): the repeated wall-clock hour is open both times it occurs.

No calendar (``None``) means always open.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from dialplan.model import WEEKDAYS, Calendar

HORIZON = timedelta(days=370)


def _minutes(hhmm: str) -> int:
    return int(hhmm[:2]) * 60 + int(hhmm[3:5])


@lru_cache(maxsize=256)
def _ranges(ranges: tuple[str, ...]) -> tuple[tuple[int, int], ...]:
    """("08:00-16:00", ...) -> ((480, 960), ...) in minutes of the day, sorted."""
    return tuple(sorted((_minutes(r[:5]), _minutes(r[6:])) for r in ranges))


def _day_ranges(calendar: Calendar, day: date) -> tuple[tuple[int, int], ...]:
    if day in calendar.holidays:
        return ()
    return _ranges(tuple(calendar.weekly.get(WEEKDAYS[day.weekday()], ())))


def _aware(at: datetime) -> datetime:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError("naive datetime: pass an aware datetime")
    return at


def zone(calendar: Calendar) -> ZoneInfo:
    """The calendar's time zone (raises ``zoneinfo.ZoneInfoNotFoundError`` when unknown)."""
    return ZoneInfo(calendar.timezone)


def is_open(calendar: Calendar | None, at: datetime) -> bool:
    """Whether the calendar is open at the aware instant ``at``."""
    _aware(at)
    if calendar is None:
        return True
    local = at.astimezone(zone(calendar))
    seconds = local.hour * 3600 + local.minute * 60 + local.second + local.microsecond / 1e6
    return any(
        start * 60 <= seconds < end * 60 for start, end in _day_ranges(calendar, local.date())
    )


def _transitions(tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    """UTC instants in [start, end] at which the zone's UTC offset changes."""
    found: list[datetime] = []
    t = start
    while t < end:
        u = min(t + timedelta(days=1), end)
        if t.astimezone(tz).utcoffset() != u.astimezone(tz).utcoffset():
            lo, hi = t, u  # offset(lo) != offset(hi): bisect to the second
            while hi - lo > timedelta(seconds=1):
                mid = lo + (hi - lo) / 2
                if mid.astimezone(tz).utcoffset() == lo.astimezone(tz).utcoffset():
                    lo = mid
                else:
                    hi = mid
            found.append(hi.replace(microsecond=0))
        t = u
    return found


def next_open(calendar: Calendar | None, at: datetime) -> datetime | None:
    """``at`` (in UTC) when open, else the next instant the calendar opens within 370 days,
    else None (never open in that time)."""
    _aware(at)
    at_utc = at.astimezone(UTC)
    if is_open(calendar, at_utc):
        return at_utc
    assert calendar is not None  # no calendar is always open
    tz = zone(calendar)
    limit = at_utc + HORIZON
    # An open stretch begins where the wall clock reaches a range's start, or where it jumps
    # (a DST change) into a range: collect those instants and take the first that is open.
    candidates = set(_transitions(tz, at_utc, limit))
    first_day = at_utc.astimezone(tz).date() - timedelta(days=1)
    for n in range(HORIZON.days + 3):
        day = first_day + timedelta(days=n)
        for start, _end in _day_ranges(calendar, day):
            wall = datetime.combine(day, time(start // 60, start % 60), tzinfo=tz)
            for fold in (0, 1):
                candidates.add(wall.replace(fold=fold).astimezone(UTC))
    for candidate in sorted(c for c in candidates if at_utc < c <= limit):
        if is_open(calendar, candidate):
            return candidate
    return None
