"""Working the callback tasks, pure: the standing callbacks campaign of a queue (its name and
rules), which tasks go into it and to whom each is offered, what an attempt's end or the
agent's disposition does to the task, and a callback's place before other outbound work.

The tasks themselves are made in one place (``models.callbacks.add_callback``: after hours,
``*`` in the queue, a queue's overflow, a detractor's follow-up, an abandoned call, an agent's
call-back disposition); the dialler works them as the contacts of a campaign of kind
``callbacks`` per queue, with the agent dialler's rules (``core.dialler``) and the survey
campaigns' calling rules (``core.surveys.campaign``). The store (``models.callback_tasks``)
and the dialler (``ari_app.dialler``) ask and act.

May import: the standard library, ``core`` and ``dialplan.model`` (like the rest of ``core``).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Protocol, TypeVar

from core.dialler import AgentCampaignSettings, AgentDisposition, CampaignKind, DiallerMode
from core.surveys.campaign import CampaignRules, ContactStatus, Outcome, RetryRule

CAMPAIGN_PREFIX = "callbacks-"
# Tasks due within this are copied into the campaign ahead of time: the feeder runs every
# minute or so, and a task should be in the campaign by its due time, not a run later.
FEED_AHEAD = timedelta(minutes=5)
MAX_REASON = 80  # callbacks.closed_reason


class TaskStatus(StrEnum):
    """A callback task's status (``models.tables.CallbackStatus``'s values)."""

    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


def campaign_name(queue: str) -> str:
    """The standing callbacks campaign of ``queue``, one per queue."""
    return f"{CAMPAIGN_PREFIX}{queue}"


def callback_settings(queue: str) -> AgentCampaignSettings:
    """How a queue's callbacks are dialled: progressive (the person asked for the call, so
    nobody answering may wait for an agent), retried sooner than sales calls (they wait for
    us), the legal calling hours kept; the queue's own hours are checked at every claim."""
    rules = CampaignRules(
        survey_cap_days=0,
        max_attempts=4,
        retries={
            "busy": RetryRule(delay_minutes=10, max_attempts=4),
            "no_answer": RetryRule(delay_minutes=30, max_attempts=4),
            "machine": RetryRule(delay_minutes=60, max_attempts=2),
            "failed": RetryRule(delay_minutes=10, max_attempts=3),
        },
    )
    return AgentCampaignSettings(mode=DiallerMode.PROGRESSIVE, queue=queue, rules=rules)


def to_feed(due_at: datetime, now: datetime) -> bool:
    """Whether an open task is copied into its queue's campaign now (due soon or overdue);
    its contact is dialled from the due time on, not before."""
    return due_at <= now + FEED_AHEAD


def offered_to(
    assigned_agent_id: str | None, manager_id: str | None, queue_members: Iterable[str]
) -> str | None:
    """Whose own task a callback is: the agent it was assigned to (a personal call-back,
    whatever their queues), else the client's manager when they work this queue; None: the
    queue's, whoever is free."""
    if assigned_agent_id:
        return assigned_agent_id
    if manager_id and manager_id in set(queue_members):
        return manager_id
    return None


class HasKind(Protocol):
    @property
    def kind(self) -> CampaignKind: ...


K = TypeVar("K", bound=HasKind)


def callbacks_first(campaigns: Sequence[K]) -> list[K]:
    """Campaigns in the order their agents are given work: a caller who asked to be called
    back comes before any other campaign's new work (inbound callers waiting come before
    both, by the blending rule each campaign keeps)."""
    return sorted(campaigns, key=lambda c: c.kind is not CampaignKind.CALLBACKS)


@dataclass(frozen=True)
class TaskUpdate:
    """A task after its contact changed: what the callbacks row gets."""

    status: TaskStatus
    attempts: int
    last_outcome: str | None
    next_attempt_at: datetime | None
    closed_reason: str | None = None


# A disposition that ends the task without having served the caller.
_CANCELLING = {
    AgentDisposition.WRONG_NUMBER: "wrong_number",
    AgentDisposition.DO_NOT_CALL: "do_not_call",
}


def task_after(
    status: ContactStatus,
    attempts: int,
    last_outcome: str | None,
    next_attempt_at: datetime | None,
    disposition: AgentDisposition | None = None,
) -> TaskUpdate | None:
    """The task once its contact is in ``status`` (after an attempt's end, a claim's check or
    the agent's disposition); None: nothing to write (an attempt under way).

    A connected call stays open until the agent's disposition closes it (done; a new
    call-back time is a new task, made by the disposition itself); a retry keeps it open
    with the next attempt's time; out of attempts, not to be called, a wrong number or an
    abandoned answer (whose own follow-up task the abandonment rule makes) cancel it."""
    if disposition is not None:
        reason = _CANCELLING.get(disposition)
        if reason is not None:
            return TaskUpdate(TaskStatus.CANCELLED, attempts, disposition.value, None, reason)
        return TaskUpdate(TaskStatus.DONE, attempts, disposition.value, None, disposition.value)
    if status is ContactStatus.DIALLING:
        return None
    if status is ContactStatus.PENDING:
        return TaskUpdate(TaskStatus.OPEN, attempts, last_outcome, next_attempt_at)
    if status is ContactStatus.DONE and last_outcome == Outcome.CONNECTED.value:
        # Talking or in wrap-up: the disposition decides.
        return TaskUpdate(TaskStatus.OPEN, attempts, last_outcome, None)
    reason = last_outcome or status.value
    if status is ContactStatus.EXHAUSTED:
        reason = "max_attempts"
    return TaskUpdate(TaskStatus.CANCELLED, attempts, last_outcome, None, reason[:MAX_REASON])


# ---- the screen-pop ---------------------------------------------------------------------------

PURPOSE_PREFIX = "callback:"

_REASONS = {
    "en": {
        "after_hours": "called after hours",
        "callback_requested": "asked in the queue to be called back",
        "overflowed": "waited too long in the queue",
        "abandoned": "our call reached them and no agent was free",
        "callback_personal": "an agent agreed a call-back time",
        "callback_queue": "an agent agreed a call-back time",
        "detractor": "unhappy in a survey: follow up",
    },
    "bs": {
        "after_hours": "zvao/la van radnog vremena",
        "callback_requested": "tražio/la povratni poziv u redu čekanja",
        "overflowed": "predugo čekao/la u redu",
        "abandoned": "naš poziv je stigao, a nijedan agent nije bio slobodan",
        "callback_personal": "agent je dogovorio vrijeme poziva",
        "callback_queue": "agent je dogovorio vrijeme poziva",
        "detractor": "nezadovoljan/na u anketi: provjeriti",
    },
}
_TITLE = {"en": "Callback", "bs": "Povratni poziv"}
_SCRIPT = {
    "en": "Introduce yourself and say you are calling back as they asked; ask how you can help.",
    "bs": "Predstavite se i recite da uzvraćate poziv kako su tražili; pitajte kako možete pomoći.",
}


def callback_purpose(reason: str | None) -> str:
    """What a callbacks contact's ``purpose`` column holds: the task's reason, tagged."""
    return f"{PURPOSE_PREFIX}{reason or ''}"[:40]


def callback_screenpop(purpose: str | None, language: str | None) -> dict[str, str] | None:
    """The screen-pop's part for a callbacks contact: that it is a callback and why, with a
    short script, in the client's language (English by default); None for other purposes."""
    if purpose is None or not purpose.startswith(PURPOSE_PREFIX):
        return None
    lang = language if language in _REASONS else "en"
    reason = purpose[len(PURPOSE_PREFIX) :]
    said = _REASONS[lang].get(reason, reason)
    shown = f"{_TITLE[lang]}: {said}" if said else _TITLE[lang]
    return {"kind": "callback", "reason": reason, "purpose": shown, "script": _SCRIPT[lang]}
