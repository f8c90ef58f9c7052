"""Who gets this call: the routing rules of the active flow, applied to who is calling and
why. Pure. The ACD (``ari_app/acd.py``) then picks the agent among the decision's targets.

The rules are data (``routes`` in the flow file), tried in order; the first whose ``when``
matches decides the queue the caller waits in, the targets in order of preference
(``assigned_manager`` becomes the caller's own manager, ``queue:X`` any member of X), the
priority and the skills required. Business hours and overflow are per queue.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from core.acd import AgentTarget, CallRequest, QueueTarget, Target
from dialplan.hours import is_open
from dialplan.model import NAME, Calendar, Flow, Match, QueueDef

SUPERVISOR_QUEUE = "supervisor"
SURVEY_NAME = re.compile(NAME)  # a survey's name, as surveys/model.py spells it


@dataclass(frozen=True)
class Caller:
    """What the routing may know about the caller, from the CRM (or nothing: unknown)."""

    client_id: int | None = None
    name: str | None = None
    client_type: str | None = None  # key | regular | new
    overdue_debt: bool = False
    language: str | None = None
    assigned_manager: str | None = None

    @property
    def known(self) -> bool:
        return self.client_id is not None


@dataclass(frozen=True)
class RouteDecision:
    rule: str
    queue: str
    targets: tuple[Target, ...]
    priority: int
    skills: frozenset[str]

    def request(self, call_id: str, arrived_at: float) -> CallRequest:
        return CallRequest(
            call_id=call_id,
            queue=self.queue,
            targets=self.targets,
            priority=self.priority,
            skills=self.skills,
            arrived_at=arrived_at,
        )


class NoRoute(Exception):
    """No rule matched: the validator requires a default rule, so this is a broken flow."""


def matches(when: Match, caller: Caller, intent: str | None) -> bool:
    if when.intent is not None and intent not in when.intent:
        return False
    if when.client_type is not None and caller.client_type not in when.client_type:
        return False
    if when.known is not None and caller.known != when.known:
        return False
    if when.overdue_debt is not None and caller.overdue_debt != when.overdue_debt:
        return False
    return not (when.language is not None and caller.language not in when.language)


def decide(
    flow: Flow, queues: dict[str, QueueDef], caller: Caller, intent: str | None
) -> RouteDecision:
    """The first matching rule's decision. ``queues`` are the live queue settings (from the
    database, so an admin's edit applies to the next call)."""
    for route in flow.routes:
        if not matches(route.when, caller, intent):
            continue
        targets: list[Target] = []
        for t in route.targets or [f"queue:{route.queue}"]:
            if t == "assigned_manager":
                # A key client without a manager on file simply starts at the next target.
                if caller.assigned_manager:
                    targets.append(AgentTarget(caller.assigned_manager))
            else:
                targets.append(QueueTarget(t.removeprefix("queue:")))
        queue = queues.get(route.queue)
        priority = route.priority or (queue.priority if queue else 0)
        skills = set(route.skills) | set(queue.skills if queue else ())
        return RouteDecision(route.name, route.queue, tuple(targets), priority, frozenset(skills))
    raise NoRoute(f"no routing rule of flow {flow.name!r} matches")


def queue_calendar(calendars: dict[str, Calendar], queue: QueueDef | None) -> Calendar | None:
    """The calendar governing a queue (its live settings); None means always open."""
    if queue is None or queue.calendar is None:
        return None
    return calendars.get(queue.calendar)


def queue_is_open(calendars: dict[str, Calendar], queue: QueueDef | None, at: datetime) -> bool:
    return is_open(queue_calendar(calendars, queue), at)


@dataclass(frozen=True)
class OverflowDecision:
    kind: Literal["queue", "callback", "keep_waiting"]
    queue: str | None = None


def on_max_wait(queue: QueueDef | None, visited: tuple[str, ...]) -> OverflowDecision:
    """Where a caller goes when the queue's maximum wait has passed. ``visited`` are the
    queues this caller has been in, so a misconfigured loop cannot bounce them forever."""
    if queue is None or queue.overflow is None:
        return OverflowDecision("callback")
    if queue.overflow.queue and queue.overflow.queue not in visited:
        return OverflowDecision("queue", queue.overflow.queue)
    return OverflowDecision("callback")


def overflow_decision(previous: RouteDecision, queue: str) -> RouteDecision:
    """The caller moves to ``queue`` keeping their priority; any member of it may answer."""
    return RouteDecision(
        f"{previous.rule} -> overflow",
        queue,
        (QueueTarget(queue),),
        previous.priority,
        previous.skills,
    )


TransferKind = Literal["agent", "queue", "survey"]


def parse_transfer_target(text: str) -> tuple[TransferKind, str]:
    """``agent:ID``, ``queue:ID``, ``supervisor`` (the supervisor queue), or ``survey`` /
    ``survey:NAME``: the caller leaves the agent for the post-call survey (the reference is
    empty for the line's default survey). Pure check."""
    if text == "supervisor":
        return "queue", SUPERVISOR_QUEUE
    if text == "survey":
        return "survey", ""
    kind, _, ref = text.partition(":")
    if kind == "survey" and SURVEY_NAME.fullmatch(ref):
        return "survey", ref
    if (
        kind not in ("agent", "queue")
        or not ref
        or len(ref) > 64
        or not all(c.isalnum() or c in "_.@-" for c in ref)
    ):
        raise ValueError("transfer target must be agent:ID, queue:ID, supervisor or survey")
    return ("agent" if kind == "agent" else "queue"), ref


def transfer_decision(previous: RouteDecision | None, target: str) -> RouteDecision:
    """Where a transferred caller waits: the agent named (in the queue they were in), or
    any member of the queue named. They keep their priority and their place. A survey is
    not a place to wait: ValueError."""
    kind, ref = parse_transfer_target(target)
    priority = previous.priority if previous else 0
    if kind == "survey":
        raise ValueError("a survey is no queue: the caller is sent to it, not queued")
    if kind == "agent":
        queue = previous.queue if previous else SUPERVISOR_QUEUE
        return RouteDecision(
            f"transfer to {ref}", queue, (AgentTarget(ref),), priority, frozenset()
        )
    return RouteDecision(f"transfer to {ref}", ref, (QueueTarget(ref),), priority, frozenset())
