"""Over 500 lines: campaign rules (segments, windows, retries, pacing) and their settings.

Outbound survey campaign rules, pure: whom to call, when, how often, and what an attempt's
result does to the contact. The campaign engine (ARI originate, AMD, timers) is an adapter
around these functions; it reads rows, asks, and writes back what they return.

* Segments from ``ClientFacts`` (new, active, inactive borrowers; dormant clients, for the
  agent campaigns' sales calls).
* Calling windows read in the client's own time zone: the campaign's hours intersected with
  the legal hours (09:00-20:00, not Sundays or holidays by default), ``dialplan.hours``.
* The do-not-call list and a frequency cap (nobody surveyed twice within N days, any campaign).
* Retries by outcome (busy, no answer, answering machine, failed) with delays and maximums.
* The contact's states: ``next_action`` says Dial(at, attempt) / Skip(reason) / Done, and
  ``after_attempt`` applies an attempt's outcome. Attempts are numbered, and applying the same
  attempt twice changes nothing (a duplicated or replayed result is harmless); the adapter
  originates with a channel id derived from the attempt, so a retried originate cannot dial
  twice either.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Any, Literal
from zoneinfo import ZoneInfo

from pydantic import Field, model_validator

from dialplan.hours import next_open
from dialplan.model import WEEKDAYS, Calendar, Strict


class Segment(StrEnum):
    NEW = "new"  # first loan within the last `new_days`
    ACTIVE = "active"  # has an open loan
    INACTIVE = "inactive"  # had loans, none open for `inactive_days`
    # Had loans, and no loan activity for `dormant_days`: no loan opened or closed and no
    # payment on any of their loans (ClientFacts.last_activity_at). A sales segment: survey
    # contact lists and a survey campaign's default count take only the three above.
    DORMANT = "dormant"


@dataclass(frozen=True)
class ClientFacts:
    """What the rules need to know about a client. ``models.segments.client_facts`` fills them
    from the CRM: the loan facts from ``loans`` (`centrala import loans`), and
    ``last_surveyed_at`` from the newest survey call of the client in any campaign."""

    client_id: int | None
    number: str  # E.164, the number this contact is called on
    timezone: str | None = None  # IANA; None: the campaign's default
    first_loan_at: datetime | None = None
    open_loans: int = 0
    last_loan_closed_at: datetime | None = None
    last_surveyed_at: datetime | None = None
    assigned_manager: str | None = None
    language: str | None = None
    # The client's last loan activity: a loan opened or closed, a payment on one of their
    # loans (models.segments fills it; None: no loans, or not known here).
    last_activity_at: datetime | None = None


class SegmentRules(Strict):
    new_days: int = Field(default=90, ge=1)
    inactive_days: int = Field(default=182, ge=1)  # six months
    dormant_days: int = Field(default=182, ge=1)  # six months


def segments_of(client: ClientFacts, now: datetime, rules: SegmentRules) -> frozenset[Segment]:
    """The client's segments (a new client with an open loan is both new and active; someone
    who never had a loan is in none)."""
    found = set()
    if client.first_loan_at is not None and now - client.first_loan_at <= timedelta(
        days=rules.new_days
    ):
        found.add(Segment.NEW)
    if client.open_loans > 0:
        found.add(Segment.ACTIVE)
    elif client.last_loan_closed_at is not None and now - client.last_loan_closed_at >= timedelta(
        days=rules.inactive_days
    ):
        found.add(Segment.INACTIVE)
    if client.last_activity_at is not None and now - client.last_activity_at >= timedelta(
        days=rules.dormant_days
    ):
        found.add(Segment.DORMANT)
    return frozenset(found)


# A new borrower's first loan is open too: a contact is counted once, in the first that applies.
# The survey segments; a dormant client is counted as dormant only when a campaign wants that.
SEGMENT_ORDER = (Segment.NEW, Segment.ACTIVE, Segment.INACTIVE)


def counted_segment(
    client: ClientFacts,
    now: datetime,
    rules: SegmentRules,
    wanted: Collection[Segment] | None = None,
) -> Segment | None:
    """The one segment a contact is counted in (``campaign_contacts.segment``, NPS per
    segment): the first of new, active, inactive that applies and is ``wanted`` (None: any).
    A campaign for active borrowers counts a new borrower with an open loan as active."""
    found = segments_of(client, now, rules)
    order = SEGMENT_ORDER if wanted is None else (*SEGMENT_ORDER, Segment.DORMANT)
    return next((s for s in order if s in found and (wanted is None or s in wanted)), None)


# ---- outcomes and retries -----------------------------------------------------------------


class Outcome(StrEnum):
    # Someone answered and the survey ran: its final state. None of these is retried.
    COMPLETED = "completed"
    PARTIAL = "partial"
    REFUSED = "refused"
    NO_CONSENT = "no_consent"
    # Not reached: retried by the campaign's rules.
    BUSY = "busy"
    NO_ANSWER = "no_answer"
    MACHINE = "machine"  # answering machine (AMD); we never survey a machine
    FAILED = "failed"  # network or trunk failure, congestion
    # Never retried: the number does not exist (Q.850 1, unallocated).
    INVALID_NUMBER = "invalid_number"
    # An agent campaign's live answers (core.dialler): put through to an agent, or not
    # within the 2 seconds (the identification message, then hung up). Neither is retried.
    CONNECTED = "connected"
    ABANDONED = "abandoned"


SURVEYED = frozenset({Outcome.COMPLETED, Outcome.PARTIAL, Outcome.REFUSED, Outcome.NO_CONSENT})
REACHED = frozenset({Outcome.CONNECTED, Outcome.ABANDONED})
RetryOutcome = Literal["busy", "no_answer", "machine", "failed"]
_RETRY_KEY: dict[Outcome, RetryOutcome] = {
    Outcome.BUSY: "busy",
    Outcome.NO_ANSWER: "no_answer",
    Outcome.MACHINE: "machine",
    Outcome.FAILED: "failed",
}


class RetryRule(Strict):
    delay_minutes: int = Field(ge=1, le=60 * 24 * 14)
    max_attempts: int = Field(ge=1, le=20)  # attempts ending with this outcome


def _legal_default() -> Calendar:
    weekdays = {day: ["09:00-20:00"] for day in WEEKDAYS if day != "sun"}
    return Calendar(timezone="Europe/Sarajevo", weekly=weekdays)


def _whole_week() -> Calendar:
    return Calendar(timezone="Europe/Sarajevo", weekly={day: ["00:00-24:00"] for day in WEEKDAYS})


class CampaignRules(Strict):
    """A survey campaign's rules, as stored in ``campaigns.settings``. Both calendars are read
    in the client's time zone (their ``timezone`` is only the default for clients without
    one); ``legal`` carries the public holidays."""

    segments: list[Segment] | None = None  # None: every contact
    segment_rules: SegmentRules = Field(default_factory=SegmentRules)
    window: Calendar = Field(default_factory=_whole_week)  # the campaign's own hours
    legal: Calendar = Field(default_factory=_legal_default)
    survey_cap_days: int = Field(default=90, ge=0)  # 0: no cap
    max_attempts: int = Field(default=5, ge=1, le=20)
    retries: dict[RetryOutcome, RetryRule] = Field(default_factory=lambda: _default_retries())


def _default_retries() -> dict[RetryOutcome, RetryRule]:
    return {
        "busy": RetryRule(delay_minutes=15, max_attempts=4),
        "no_answer": RetryRule(delay_minutes=120, max_attempts=4),
        "machine": RetryRule(delay_minutes=240, max_attempts=2),
        "failed": RetryRule(delay_minutes=30, max_attempts=3),
    }


# ---- calling windows ----------------------------------------------------------------------


def _minutes(hhmm: str) -> int:
    return int(hhmm[:2]) * 60 + int(hhmm[3:5])


def _hhmm(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _intersect(a: list[str], b: list[str]) -> list[str]:
    out = []
    for ra in a:
        for rb in b:
            start = max(_minutes(ra[:5]), _minutes(rb[:5]))
            end = min(_minutes(ra[6:]), _minutes(rb[6:]))
            if start < end:
                out.append(f"{_hhmm(start)}-{_hhmm(end)}")
    return sorted(out)


def calling_calendar(rules: CampaignRules, timezone: str) -> Calendar:
    """When this campaign may call a client in ``timezone``: inside both the campaign's window
    and the legal hours (local wall-clock times there), never on either's closed days."""
    weekly = {
        day: _intersect(rules.window.weekly.get(day, []), rules.legal.weekly.get(day, []))
        for day in WEEKDAYS
    }
    holidays = sorted(set(rules.window.holidays) | set(rules.legal.holidays))
    return Calendar(
        timezone=timezone, weekly={d: r for d, r in weekly.items() if r}, holidays=holidays
    )


def client_timezone(client: ClientFacts, rules: CampaignRules) -> str | None:
    """The client's IANA time zone (the legal calendar's when unknown); None when it names no
    zone we know, so nobody is called by a guessed clock."""
    name = client.timezone or rules.legal.timezone
    try:
        ZoneInfo(name)
    except (ValueError, OSError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        return None
    return name


# ---- the contact --------------------------------------------------------------------------


class ContactStatus(StrEnum):
    PENDING = "pending"  # to be dialled (now or at next_attempt_at)
    DIALLING = "dialling"  # an attempt is under way
    DONE = "done"  # the survey ran (whatever its final state)
    EXHAUSTED = "exhausted"  # out of attempts
    INVALID = "invalid"  # the number does not exist
    SKIPPED = "skipped"  # not to be called in this campaign (last_outcome says why)


TERMINAL = frozenset(
    {ContactStatus.DONE, ContactStatus.EXHAUSTED, ContactStatus.INVALID, ContactStatus.SKIPPED}
)


@dataclass(frozen=True)
class AttemptRecord:
    """One attempt's result, as kept in ``campaign_contacts.attempt_history``."""

    attempt: int
    outcome: Outcome
    at: datetime
    call_id: str | None = None


def history_to_json(history: tuple[AttemptRecord, ...]) -> list[dict[str, str | int | None]]:
    """For ``campaign_contacts.attempt_history`` (times as ISO 8601 with offset)."""
    return [
        {
            "attempt": r.attempt,
            "outcome": r.outcome.value,
            "at": r.at.isoformat(),
            "call_id": r.call_id,
        }
        for r in history
    ]


def history_from_json(rows: list[dict[str, Any]]) -> tuple[AttemptRecord, ...]:
    return tuple(
        AttemptRecord(
            int(r["attempt"]),
            Outcome(r["outcome"]),
            datetime.fromisoformat(r["at"]),
            r.get("call_id"),
        )
        for r in rows
    )


@dataclass(frozen=True)
class Contact:
    """A campaign contact (a ``campaign_contacts`` row with its client's facts).
    ``attempts``: attempts whose result has been applied."""

    contact_id: int
    client: ClientFacts
    status: ContactStatus = ContactStatus.PENDING
    attempts: int = 0
    next_attempt_at: datetime | None = None
    last_outcome: str | None = None  # an Outcome, or a skip reason
    history: tuple[AttemptRecord, ...] = ()

    @property
    def number(self) -> str:
        return self.client.number


@dataclass(frozen=True)
class Dial:
    """Dial attempt ``attempt`` at ``at`` (now or later: the next calling window)."""

    at: datetime
    attempt: int


SkipReason = Literal[
    "attempt_in_progress",
    "do_not_call",
    "not_in_segment",
    "surveyed_recently",
    "unknown_timezone",
    "no_calling_window",
    "max_attempts",
]


@dataclass(frozen=True)
class Skip:
    """Do not dial. ``final``: never in this campaign (store it with ``mark_skipped``);
    otherwise ask again later."""

    reason: SkipReason
    final: bool = True


@dataclass(frozen=True)
class Done:
    status: ContactStatus


NextAction = Dial | Skip | Done


def on_do_not_call(number: str, do_not_call: Mapping[str, datetime | None], now: datetime) -> bool:
    """Whether the number is on the list now (``do_not_call``: number -> expiry or None)."""
    if number not in do_not_call:
        return False
    expires_at = do_not_call[number]
    return expires_at is None or now < expires_at


def next_action(
    contact: Contact,
    now: datetime,
    rules: CampaignRules,
    do_not_call: Mapping[str, datetime | None] | None = None,
) -> NextAction:
    """What to do with the contact now. The checks run on every decision, so a number put on
    the do-not-call list between two attempts is never dialled again."""
    if contact.status in TERMINAL:
        return Done(contact.status)
    if contact.status is ContactStatus.DIALLING:
        return Skip("attempt_in_progress", final=False)
    if on_do_not_call(contact.number, do_not_call or {}, now):
        return Skip("do_not_call")
    client = contact.client
    if rules.segments is not None and not segments_of(client, now, rules.segment_rules) & set(
        rules.segments
    ):
        return Skip("not_in_segment")
    if (
        rules.survey_cap_days
        and client.last_surveyed_at is not None
        and now - client.last_surveyed_at < timedelta(days=rules.survey_cap_days)
    ):
        return Skip("surveyed_recently")
    if contact.attempts >= rules.max_attempts:
        return Skip("max_attempts")
    timezone = client_timezone(client, rules)
    if timezone is None:
        return Skip("unknown_timezone")
    due = max(now, contact.next_attempt_at or now)
    at = next_open(calling_calendar(rules, timezone), due)
    if at is None:
        return Skip("no_calling_window")
    return Dial(at, contact.attempts + 1)


def dialling(contact: Contact, attempt: int) -> Contact:
    """The adapter is placing attempt ``attempt`` (so the contact is not picked again). Only
    the next attempt of a pending contact; anything else (a repeat) changes nothing."""
    if contact.status is not ContactStatus.PENDING or attempt != contact.attempts + 1:
        return contact
    return replace(contact, status=ContactStatus.DIALLING)


def mark_skipped(contact: Contact, skip: Skip) -> Contact:
    if not skip.final or contact.status in TERMINAL:
        return contact
    return replace(
        contact, status=ContactStatus.SKIPPED, last_outcome=skip.reason, next_attempt_at=None
    )


def after_attempt(
    contact: Contact,
    attempt: int,
    outcome: Outcome,
    now: datetime,
    rules: CampaignRules,
    call_id: str | None = None,
) -> Contact:
    """The contact after attempt ``attempt`` ended with ``outcome``. Idempotent: an attempt
    already applied returns the contact unchanged. Raises ValueError for an attempt that skips
    a number (a lost result must be applied first, e.g. as ``failed``)."""
    if attempt <= contact.attempts:
        return contact
    if attempt != contact.attempts + 1:
        raise ValueError(
            f"contact {contact.contact_id}: attempt {attempt} after {contact.attempts} applied"
        )
    history = (*contact.history, AttemptRecord(attempt, outcome, now, call_id))
    status: ContactStatus
    next_at: datetime | None = None
    if outcome in SURVEYED or outcome in REACHED:
        status = ContactStatus.DONE
    elif outcome is Outcome.INVALID_NUMBER:
        status = ContactStatus.INVALID
    else:
        key = _RETRY_KEY.get(outcome)
        rule = rules.retries.get(key) if key is not None else None
        same = sum(1 for r in history if r.outcome is outcome)
        if rule is None or same >= rule.max_attempts or attempt >= rules.max_attempts:
            status = ContactStatus.EXHAUSTED
        else:
            status = ContactStatus.PENDING
            next_at = now + timedelta(minutes=rule.delay_minutes)
    if contact.status in TERMINAL:  # e.g. skipped while the call was ringing: stays so
        status, next_at = contact.status, None
    return replace(
        contact,
        status=status,
        attempts=attempt,
        next_attempt_at=next_at,
        last_outcome=outcome.value,
        history=history,
    )


def how_many_to_dial(
    active_calls: int, limit: int, due_contacts: int, max_per_tick: int | None = None
) -> int:
    """IVR-only pacing (no agents wait for these calls): fill the free channels up to
    ``limit`` with due contacts, at most ``max_per_tick`` at once (the carrier's call rate)."""
    free = max(0, limit - max(0, active_calls))
    n = min(free, max(0, due_contacts))
    if max_per_tick is not None:
        n = min(n, max(0, max_per_tick))
    return n


# ---- a campaign's settings and its calls' results ------------------------------------------

MachineAction = Literal["hangup", "message"]


class CampaignSettings(Strict):
    """Everything a survey campaign is run with, stored in ``campaigns.settings``."""

    rules: CampaignRules = Field(default_factory=CampaignRules)
    concurrency: int = Field(default=30, ge=1, le=500)  # survey calls at once
    calls_per_second: float = Field(default=10, gt=0, le=100)  # the carrier's call rate
    ring_seconds: int = Field(default=30, ge=5, le=120)
    amd: bool = True  # answering-machine detection before the survey starts
    machine_action: MachineAction = "hangup"
    machine_prompt: str | None = None  # a survey prompt, played to a machine ("message")
    followup_queue: str = "new_clients"  # detractors without a manager are called from here
    starts_at: datetime | None = None  # the schedule: no calls before / after
    ends_at: datetime | None = None
    # The number this campaign's calls present (unset: CENTRALA_OUTBOUND_CALLER_ID, else the
    # outbound trunk's caller_id): a survey shows the number a client can call back on.
    caller_id: str | None = Field(default=None, pattern=r"^\+?[0-9]{2,20}$")

    @model_validator(mode="after")
    def _machine(self) -> CampaignSettings:
        if self.machine_action == "message" and not self.machine_prompt:
            raise ValueError("machine_action 'message' needs machine_prompt (a survey prompt)")
        if self.starts_at and self.ends_at and self.starts_at >= self.ends_at:
            raise ValueError("starts_at must be before ends_at")
        return self


def in_schedule(settings: CampaignSettings, now: datetime) -> bool:
    if settings.starts_at is not None and now < settings.starts_at:
        return False
    return settings.ends_at is None or now < settings.ends_at


# Q.850 causes of a call that was never answered (ChannelDestroyed's cause).
_BUSY_CAUSES = frozenset({17, 21})  # user busy, call rejected
_NO_ANSWER_CAUSES = frozenset({16, 18, 19, 20, 31})  # gave up ringing, no answer, absent
_INVALID_CAUSES = frozenset({1, 22, 28})  # unallocated, number changed, invalid format


_DIAL_STATUS = {
    "BUSY": Outcome.BUSY,
    "NOANSWER": Outcome.NO_ANSWER,
    "CONGESTION": Outcome.FAILED,
    "CHANUNAVAIL": Outcome.FAILED,
}


def unanswered_outcome(cause: int | None, dial_status: str | None = None) -> Outcome:
    """Why a campaign call that never reached the survey ended: from the originate's dial
    status when Asterisk gave one (a Local channel's busy line leaves the cause at 0), else
    from the hang-up cause."""
    if dial_status in _DIAL_STATUS:
        return _DIAL_STATUS[dial_status]
    if cause in _BUSY_CAUSES:
        return Outcome.BUSY
    if cause in _NO_ANSWER_CAUSES:
        return Outcome.NO_ANSWER
    if cause in _INVALID_CAUSES:
        return Outcome.INVALID_NUMBER
    return Outcome.FAILED  # congestion, channel unavailable, network failure, unknown


_CHANNEL = re.compile(r"^survey-(\d+)-(\d+)-(\d+)$")


def channel_id_for(campaign_id: int, contact_id: int, attempt: int) -> str:
    """The channel id of a survey campaign's attempt: it names campaign, contact and
    attempt, so a restarted dialler finds its calls again and the campaigns report tells
    whose a survey call is."""
    return f"survey-{campaign_id}-{contact_id}-{attempt}"


def parse_channel_id(channel_id: str) -> tuple[int, int, int] | None:
    m = _CHANNEL.match(channel_id)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def is_machine(amd_status: str) -> bool:
    """Asterisk AMD's AMDSTATUS: MACHINE is a machine; HUMAN and NOTSURE are treated as a
    person (a person wrongly hung up on costs more than a machine asked one question)."""
    return amd_status.strip().upper() == "MACHINE"


def calling_timezones(client: ClientFacts, number_zones: tuple[str, ...]) -> tuple[str, ...]:
    """The zones whose clock decides when the client may be called: their own when known,
    else every zone their number can be in (all must be inside the window)."""
    if client.timezone:
        return (client.timezone,)
    return number_zones


def next_action_in_zones(
    contact: Contact,
    now: datetime,
    rules: CampaignRules,
    zones: tuple[str, ...],
    do_not_call: Mapping[str, datetime | None] | None = None,
) -> NextAction:
    """``next_action`` when the client's zone is not known for sure: the first time that is
    inside the calling window in every candidate zone (a number of a country with several
    zones). No zone: the legal calendar's."""
    if len(zones) <= 1:
        client = replace(contact.client, timezone=zones[0] if zones else contact.client.timezone)
        return next_action(replace(contact, client=client), now, rules, do_not_call)
    at = now
    for _ in range(16):  # converges in a few rounds; give up rather than loop
        actions = [
            next_action(
                replace(contact, client=replace(contact.client, timezone=z), next_attempt_at=at),
                now,
                rules,
                do_not_call,
            )
            for z in zones
        ]
        dials = [a for a in actions if isinstance(a, Dial)]
        if len(dials) != len(actions):
            return next(a for a in actions if not isinstance(a, Dial))
        latest = max(d.at for d in dials)
        if all(d.at == latest for d in dials):
            return dials[0]
        at = latest
    return Skip("no_calling_window", final=False)
