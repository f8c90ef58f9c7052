"""The agent dialler's decisions, pure: a campaign's settings, what an attempt's end and an
agent's disposition do to the contact, the 2-second rule, inbound-first blending and the
abandonment figures the cap is read from.

How many calls to place is ``core.pacing``'s; who calls whom when is the survey campaigns'
own rules (``core.surveys.campaign``: calling windows in the client's zone, the do-not-call
list, attempt limits, retries), reused here. The ARI adapter (``ari_app.dialler``) and the
store (``models.dialler``) ask and act.

May import: the standard library, pydantic, ``core`` and ``dialplan.model`` (like the rest of
``core``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from enum import StrEnum

from pydantic import Field, model_validator

from core.errors import DomainError
from core.pacing import Mode
from core.surveys.campaign import (
    CampaignRules,
    Contact,
    ContactStatus,
    Outcome,
    after_attempt,
)
from dialplan.model import Strict

# The law (Ofcom in the UK, the FTC's TSR in the US): a live answer is put through to a
# person within 2 seconds of the called person's greeting, or it is an abandoned call.
CONNECT_SECONDS = 2.0
# We give up on an agent this much before the 2 seconds: the message must start within them,
# and the event loop, Asterisk and the clocks each add milliseconds (CI saw 2.002 s).
CONNECT_MARGIN = 0.2
ABANDON_BLOCK_HOURS = 72  # an abandoned number is not dialled again for this long
MIN_RING_SECONDS = 15  # give a person time to reach the phone


# The three modes (core.pacing's): PREVIEW, the agent sees the contact first and clicks Call
# or Skip; PROGRESSIVE, one call per free agent, reserved while it rings; PREDICTIVE, several
# per free agent, paced under the abandonment cap.
DiallerMode = Mode


class CampaignKind(StrEnum):
    SURVEY = "survey"  # the IVR surveys (core.surveys): no agent on the line
    SALES = "sales"  # a CRM segment: inactive or dormant clients
    LEADS = "leads"  # potential clients: an imported list
    PROCEDURAL = "procedural"  # tasks from CRM events, each with its purpose
    CALLBACKS = "callbacks"  # the callback tasks of a queue


AGENT_KINDS = frozenset(
    {CampaignKind.SALES, CampaignKind.LEADS, CampaignKind.PROCEDURAL, CampaignKind.CALLBACKS}
)


class AgentDisposition(StrEnum):
    """What the agent says an outbound call came to (they must give one)."""

    SALE = "sale"
    INTERESTED = "interested"
    NOT_INTERESTED = "not_interested"
    CALLBACK_PERSONAL = "callback_personal"  # call back at a time: this agent
    CALLBACK_QUEUE = "callback_queue"  # call back at a time: whoever is free in the queue
    WRONG_NUMBER = "wrong_number"
    DO_NOT_CALL = "do_not_call"  # the client asked: onto the do-not-call list


CALLBACK_DISPOSITIONS = frozenset(
    {AgentDisposition.CALLBACK_PERSONAL, AgentDisposition.CALLBACK_QUEUE}
)


def _agent_rules() -> CampaignRules:
    # A sales or procedural call is not a survey: the survey frequency cap does not apply.
    return CampaignRules(survey_cap_days=0)


class AgentCampaignSettings(Strict):
    """Everything an agent campaign runs with, stored in ``campaigns.settings``."""

    mode: DiallerMode = DiallerMode.PROGRESSIVE
    queue: str = Field(min_length=1, max_length=64)  # whose agents take the calls
    rules: CampaignRules = Field(default_factory=_agent_rules)
    abandon_cap_percent: float = Field(default=3.0, gt=0, le=10)
    amd: bool = False  # answering-machine detection (its verdict eats into the 2 seconds)
    # Share of machine verdicts taken to be people wrongly hung up on: counted as abandoned.
    amd_false_positive_rate: float = Field(default=0.05, ge=0, le=1)
    ring_seconds: int = Field(default=25, ge=MIN_RING_SECONDS, le=120)
    # The number the called person sees and can call back on (unset: the queue's, else the
    # outbound trunk's).
    caller_id: str | None = Field(default=None, pattern=r"^\+?[0-9]{2,20}$")
    # Who is calling and the free number to call back, per language ("" the default), as ARI
    # media (e.g. "sound:centrala/bs/offer-id"). Unset: the flow's dialler_identification prompt.
    identification: dict[str, str] = Field(default_factory=dict)
    # Inbound first: outbound calls wait while more than this many inbound callers wait for
    # the campaign's agents.
    blend_waiting: int = Field(default=0, ge=0, le=1000)
    wrap_up_seconds: float = Field(default=30, ge=0, le=600)
    procedure: str | None = None  # a procedural campaign's kind of task
    segment: str | None = None  # a sales campaign's segment
    starts_at: datetime | None = None
    ends_at: datetime | None = None

    @model_validator(mode="after")
    def _check(self) -> AgentCampaignSettings:
        if self.identification and "" not in self.identification:
            raise ValueError('identification needs a default message (the key "")')
        if self.starts_at and self.ends_at and self.starts_at >= self.ends_at:
            raise ValueError("starts_at must be before ends_at")
        return self

    @property
    def abandon_cap(self) -> float:
        return self.abandon_cap_percent / 100


def identification_prompt(
    settings: AgentCampaignSettings, language: str | None, flow: Mapping[str, str]
) -> str | None:
    """The media an abandoned live answer hears: the campaign's own message, else the flow's
    (``flow``: language, "" the default -> media), in the client's language when there is one
    for it. None: no message known (the call is hung up all the same)."""
    for messages in (settings.identification, flow):
        if messages:
            return messages.get(language or "") or messages.get("")
    return None


def in_schedule(settings: AgentCampaignSettings, now: datetime) -> bool:
    if settings.starts_at is not None and now < settings.starts_at:
        return False
    return settings.ends_at is None or now < settings.ends_at


def outbound_allowed(waiting_inbound: int, settings: AgentCampaignSettings) -> bool:
    """Inbound first: a blended campaign dials only while no more than ``blend_waiting``
    inbound callers wait for its agents' queues."""
    return waiting_inbound <= settings.blend_waiting


def connect_deadline(live_answer_at: float, settings: AgentCampaignSettings) -> float:
    """When a live answer no agent has taken becomes abandoned (monotonic seconds): the
    margin before the 2 seconds, so its message starts within them. The clock runs from the
    answer, not from AMD's verdict: detection eats into the 2 seconds."""
    del settings  # the law's figure, the same for every campaign
    return live_answer_at + CONNECT_SECONDS - CONNECT_MARGIN


class PreviewError(DomainError):
    """A preview action that cannot be done (not previewing that contact, no phone, ...)."""

    def __init__(self, error_id: str, message: str, status: int = 409) -> None:
        super().__init__(message, error_id=error_id, status=status)


MAX_SKIP_REASON = 40
MAX_NOTE = 2000


def check_campaign_disposition(
    data: Mapping[str, object], now: datetime
) -> tuple[AgentDisposition, datetime | None, str | None]:
    """(disposition, due, note) of an agent campaign call's disposition request. Pure. A call
    back needs a future time with its UTC offset; the other dispositions take none."""
    try:
        disp = AgentDisposition(str(data.get("disposition")))
    except ValueError as exc:
        wanted = ", ".join(d.value for d in AgentDisposition)
        raise PreviewError("bad_disposition", f"disposition: one of {wanted}", 422) from exc
    due: datetime | None = None
    if disp in CALLBACK_DISPOSITIONS:
        try:
            due = datetime.fromisoformat(str(data.get("due")))
        except ValueError as exc:
            raise PreviewError("bad_due", "due: when to call back (ISO 8601)", 422) from exc
        if due.tzinfo is None or due <= now:
            raise PreviewError("bad_due", "due: a future time with its UTC offset", 422)
    note = data.get("note")
    if note is not None and (not isinstance(note, str) or len(note) > MAX_NOTE):
        raise PreviewError("bad_note", f"note: text, at most {MAX_NOTE} characters", 422)
    return disp, due, note


def check_skip_reason(data: Mapping[str, object]) -> str:
    """Why the agent skips a previewed contact: required, short, printable. Pure."""
    reason = data.get("reason")
    if (
        not isinstance(reason, str)
        or not reason.strip()
        or len(reason) > MAX_SKIP_REASON
        or not reason.isprintable()
    ):
        raise PreviewError(
            "bad_reason", f"reason: why you skip it, 1-{MAX_SKIP_REASON} characters", 422
        )
    return reason.strip()


# ---- what an attempt's end does to the contact ----------------------------------------------


@dataclass(frozen=True)
class Consequences:
    """What the store does beside the contact's new state."""

    do_not_call_until: datetime | None = None  # None: no entry (see ``forever``)
    do_not_call_forever: bool = False
    callback_due: datetime | None = None  # a callback task, due then
    callback_agent: str | None = None  # personal to this agent (None: the queue's)
    reason: str | None = None


def after_dial(
    contact: Contact,
    attempt: int,
    outcome: Outcome,
    now: datetime,
    rules: CampaignRules,
    call_id: str | None = None,
) -> tuple[Contact, Consequences]:
    """The contact after attempt ``attempt`` ended with ``outcome`` (idempotent, like the
    survey rules it reuses). A connected call is done until its disposition says otherwise;
    an abandoned one is done too, its follow-up is a callback task 72 hours on, and the number
    is on the do-not-call list until then (for every campaign)."""
    after = after_attempt(contact, attempt, outcome, now, rules, call_id)
    if after is contact or outcome is not Outcome.ABANDONED:
        return after, Consequences()
    until = now + timedelta(hours=ABANDON_BLOCK_HOURS)
    return after, Consequences(do_not_call_until=until, callback_due=until, reason="abandoned")


def after_disposition(
    contact: Contact,
    disposition: AgentDisposition,
    agent_id: str,
    due: datetime | None,
) -> tuple[Contact, Consequences]:
    """The contact once the agent gave the disposition of its connected call. A call back at a
    time becomes a callback task (personal or the queue's): the callbacks campaign works it,
    so the contact itself is not dialled again by this campaign."""
    if disposition in CALLBACK_DISPOSITIONS:
        if due is None:
            raise ValueError("a call back needs its time")
        agent = agent_id if disposition is AgentDisposition.CALLBACK_PERSONAL else None
        return replace(contact, last_outcome=disposition.value), Consequences(
            callback_due=due, callback_agent=agent, reason=disposition.value
        )
    if disposition is AgentDisposition.WRONG_NUMBER:
        return replace(
            contact, status=ContactStatus.INVALID, last_outcome=disposition.value
        ), Consequences(reason=disposition.value)
    if disposition is AgentDisposition.DO_NOT_CALL:
        return replace(
            contact, status=ContactStatus.SKIPPED, last_outcome=disposition.value
        ), Consequences(do_not_call_forever=True, reason=disposition.value)
    return replace(contact, last_outcome=disposition.value), Consequences()


# ---- the abandonment figures ----------------------------------------------------------------


@dataclass(frozen=True)
class AbandonCount:
    """One window's counts: live answers (people), the abandoned among them, and machine
    verdicts (some of which were people, when AMD is on)."""

    live: int = 0
    abandoned: int = 0
    machines: int = 0

    def rate(self, amd_false_positive_rate: float = 0.0) -> float | None:
        """Abandoned ÷ live answers, with AMD's estimated false positives counted as both
        (a person hung up on as a machine was abandoned); None before any live answer."""
        wrongly = self.machines * amd_false_positive_rate
        live = self.live + wrongly
        if live <= 0:
            return None
        return (self.abandoned + wrongly) / live
