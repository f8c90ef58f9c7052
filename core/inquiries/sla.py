"""SLA of written inquiries in business time: first response and resolution due times per
kind, over the business calendars of ``dialplan.hours``.

Business time is time the calendar is open: an e-mail arriving on Friday at 15:30 with four
business hours to its first answer is due on Monday at 11:30 (08:00-16:00), later when
Monday is a holiday, and right on the day the clocks change. The clock stops while the
inquiry waits for the client and once it is closed."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

from core.inquiries.model import InquiryKind, InquiryState
from dialplan.hours import HORIZON, _aware, _day_ranges, _transitions, is_open, zone
from dialplan.model import Calendar

NEAR = 0.8  # a target 80% used is a near-breach: the wallboard shows it amber
STOPPED = frozenset({InquiryState.WAITING, InquiryState.CLOSED})


@dataclass(frozen=True)
class SlaTargets:
    """A kind's targets in business minutes."""

    first_response_minutes: int
    resolution_minutes: int


# Shipped targets (the operators' settings override them): what goes to the supervisor is
# answered the same working day.
DEFAULT_SLA: Mapping[InquiryKind, SlaTargets] = {
    InquiryKind.COMPLAINT: SlaTargets(4 * 60, 3 * 8 * 60),
    InquiryKind.DONATION_REQUEST: SlaTargets(8 * 60, 5 * 8 * 60),
    InquiryKind.CREDIT_APPLICATION: SlaTargets(4 * 60, 3 * 8 * 60),
    InquiryKind.GENERAL_QUESTION: SlaTargets(8 * 60, 2 * 8 * 60),
    InquiryKind.CHANGE_OF_DATA: SlaTargets(8 * 60, 2 * 8 * 60),
}


def _next_flip(calendar: Calendar, at: datetime, limit: datetime, to_open: bool) -> datetime | None:
    """The first instant after ``at`` and no later than ``limit`` at which the calendar is
    open (``to_open``) or closed; None when there is none. Openness changes only where the
    wall clock reaches a range's start or end, or jumps (DST), so those are the candidates,
    looked for two days at a time: ``dialplan.hours.next_open`` looks a year ahead at each
    call, which a walk over months of nights would pay for every night."""
    tz = zone(calendar)
    window = at
    while window < limit:
        end = min(limit, window + timedelta(days=2))
        candidates = set(_transitions(tz, window, end))
        day = window.astimezone(tz).date() - timedelta(days=1)
        last = end.astimezone(tz).date() + timedelta(days=1)
        while day <= last:
            for start, stop in _day_ranges(calendar, day):
                # "24:00" is midnight of the next day as wall-clock time, not 24 elapsed hours.
                wall = datetime.combine(day, time(0)) + timedelta(
                    minutes=start if to_open else stop
                )
                for fold in (0, 1):
                    candidates.add(wall.replace(tzinfo=tz, fold=fold).astimezone(UTC))
            day += timedelta(days=1)
        for candidate in sorted(c for c in candidates if window < c <= end):
            if is_open(calendar, candidate) is to_open:
                return candidate
        window = end
    return None


def _next_open(calendar: Calendar, at: datetime) -> datetime | None:
    """``at`` when open, else the next opening within ``dialplan.hours.HORIZON``."""
    if is_open(calendar, at):
        return at
    return _next_flip(calendar, at, at + HORIZON, to_open=True)


def due_at(start: datetime, business_minutes: float, calendar: Calendar | None) -> datetime | None:
    """The instant (UTC) at which ``business_minutes`` of open time have passed since
    ``start``; None when the calendar does not open within a year."""
    _aware(start)
    left = timedelta(minutes=business_minutes)
    t = start.astimezone(UTC)
    if calendar is None:
        return t + left
    while True:
        opened = _next_open(calendar, t)
        if opened is None:
            return None
        if left <= timedelta(0):
            # Nothing left (a target of 0, or a clock already over its target when it runs
            # again): due the moment it runs, at the opening, not during the night.
            return opened
        closed = _next_flip(calendar, opened, opened + left, to_open=False)
        if closed is None or closed >= opened + left:
            return opened + left  # used up at or before the closing: due then, not next day
        left -= closed - opened
        t = closed


def business_time(start: datetime, end: datetime, calendar: Calendar | None) -> timedelta:
    """Open time between ``start`` and ``end`` (zero when ``end`` is not later)."""
    _aware(start)
    _aware(end)
    t, end = start.astimezone(UTC), end.astimezone(UTC)
    if end <= t:
        return timedelta(0)
    if calendar is None:
        return end - t
    total = timedelta(0)
    while t < end:
        opened = _next_open(calendar, t)
        if opened is None or opened >= end:
            break
        closed = _next_flip(calendar, opened, end, to_open=False) or end
        total += closed - opened
        t = closed
    return total


@dataclass(frozen=True)
class SlaStatus:
    """An inquiry's SLA at ``now``. A due time is None when that target is met (answered,
    closed) or its clock is stopped (waiting for the client: the due time moves)."""

    first_response_due: datetime | None
    resolution_due: datetime | None
    breached: bool  # a target missed (now, or when it was met late)
    near_breach: bool  # a running target 80% used and not yet missed
    first_response_used: timedelta  # business time counted against each target
    resolution_used: timedelta


def _running(
    history: Sequence[tuple[datetime, InquiryState]], until: datetime
) -> list[tuple[datetime, datetime]]:
    """The stretches before ``until`` in which the clock runs (the state is not stopped)."""
    stretches = []
    ordered = sorted(history, key=lambda entry: entry[0])
    for i, (at, state) in enumerate(ordered):
        if at >= until:
            break
        end = ordered[i + 1][0] if i + 1 < len(ordered) else until
        if state not in STOPPED:
            stretches.append((at, min(end, until)))
    return stretches


def _target(
    history: Sequence[tuple[datetime, InquiryState]],
    until: datetime,
    met: bool,
    minutes: int,
    calendar: Calendar | None,
) -> tuple[datetime | None, timedelta, bool]:
    """(due, used, running) for one target counted until ``until`` (now, or when met)."""
    stretches = _running(history, until)
    used = sum((business_time(a, b, calendar) for a, b in stretches), timedelta(0))
    running = not met and history[-1][1] not in STOPPED  # history: ordered, up to now
    if not running:
        return None, used, False
    # Walk the stretches the clock ran in: the target runs out inside one of them (a
    # breach: the due time is in the past), or it runs on from ``until``.
    left = timedelta(minutes=minutes)
    for a, b in stretches:
        spent = business_time(a, b, calendar)
        if spent >= left:
            return due_at(a, left.total_seconds() / 60, calendar), used, True
        left -= spent
    return due_at(until, left.total_seconds() / 60, calendar), used, True


def sla_status(
    history: Sequence[tuple[datetime, InquiryState]],
    now: datetime,
    calendar: Calendar | None,
    targets: SlaTargets,
    *,
    first_response_at: datetime | None = None,
) -> SlaStatus:
    """The SLA of an inquiry whose states were ``history`` ((at, state) pairs, the first
    its arrival) and whose first answer to the client left at ``first_response_at``.

    The resolution target is met when the inquiry was last closed; a client writing again
    reopens it and the clock runs on from where it stopped."""
    _aware(now)
    if not history:
        raise ValueError("an inquiry's history begins with its arrival")
    # What happened up to now: an entry stamped later (clocks of two instances apart) is not
    # yet the state.
    ordered = sorted((e for e in history if e[0] <= now), key=lambda entry: entry[0])
    if not ordered:
        raise ValueError("the inquiry arrived after now")
    responded = first_response_at is not None and first_response_at <= now
    fr_until = first_response_at if responded and first_response_at is not None else now
    fr_due, fr_used, fr_running = _target(
        ordered, fr_until, responded, targets.first_response_minutes, calendar
    )
    closed = ordered[-1][1] is InquiryState.CLOSED
    res_due, res_used, res_running = _target(
        ordered, now, closed, targets.resolution_minutes, calendar
    )
    fr_target = timedelta(minutes=targets.first_response_minutes)
    res_target = timedelta(minutes=targets.resolution_minutes)
    # Used time counts to now for a running target and to when it was met otherwise, so
    # one comparison covers "late now" and "answered late".
    breached = fr_used > fr_target or res_used > res_target
    near = not breached and (
        (fr_running and fr_used >= fr_target * NEAR)
        or (res_running and res_used >= res_target * NEAR)
    )
    return SlaStatus(fr_due, res_due, breached, near, fr_used, res_used)
