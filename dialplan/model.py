"""The shape of an editable call flow (IVR menus, prompts, routing rules, business hours and
queues) as admins write it in YAML/JSON. Pure data: checked by ``dialplan.validate``, stored
versioned by ``models.flows``, interpreted call by call by ``core.ivr``.

The default flow for a fresh install is ``dialplan/infoline.yaml``.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

NAME = r"^[a-z][a-z0-9_]{0,63}$"
LANG = r"^[a-z]{2,3}$"
DIGIT = r"^[0-9*#]$"
HHMM_RANGE = re.compile(r"^([01][0-9]|2[0-3]):[0-5][0-9]-([01][0-9]|2[0-4]):[0-5][0-9]$")
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")

# Size limits of a flow, checked by ``dialplan.validate`` before it is stored or its prompts
# synthesised. The shipped flow has 15 nodes, 13 prompts of at most 315 characters and walks
# at most 4 steps between two waits. A node is walked per call event, prompts are synthesised
# one by one into sound files, so these bound what one definition can cost.
MAX_NODES = 500
MAX_STEPS_WITHOUT_INPUT = 200  # play/branch/language/agree_survey nodes walked between waits
MAX_PROMPTS = 500
MAX_LANGUAGES = 10
MAX_PROMPT_TEXT = 2_000  # characters of one prompt in one language (about two minutes spoken)
MAX_TOTAL_PROMPT_TEXT = 200_000  # characters of every prompt in every language

Name = Annotated[str, Field(pattern=NAME)]


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Prompt(Strict):
    """A prompt per language: the text (synthesised into a sound file for a fresh install by
    `centrala prompts build`) and/or an Asterisk media URI of a recorded file."""

    text: dict[str, str] = Field(default_factory=dict)
    media: dict[str, str] = Field(default_factory=dict)


class Calendar(Strict):
    """Opening hours: weekly ranges ("08:00-16:00") in a time zone, and closed days."""

    timezone: str = "Europe/Sarajevo"
    weekly: dict[str, list[str]] = Field(default_factory=dict)
    holidays: list[date] = Field(default_factory=list)

    @field_validator("weekly")
    @classmethod
    def _weekly(cls, value: dict[str, list[str]]) -> dict[str, list[str]]:
        for day, ranges in value.items():
            if day not in WEEKDAYS:
                raise ValueError(f"unknown weekday {day!r} (use {', '.join(WEEKDAYS)})")
            for r in ranges:
                if not HHMM_RANGE.match(r) or r[:5] >= r[6:]:
                    raise ValueError(f"{day}: {r!r} is not a range like 08:00-16:00")
        return value


class Overflow(Strict):
    """Where a caller goes after the queue's maximum wait: another queue, or a callback."""

    queue: str | None = None
    callback: bool = False


class QueueDef(Strict):
    """A queue as the flow declares it; `dialplan apply` upserts it into the queues table,
    where admins may edit it further (edits apply to the next call)."""

    name: str
    strategy: Literal["longest_idle", "skills_priority"] = "longest_idle"
    priority: int = 0
    calendar: Name | None = None  # None: always open
    max_wait_seconds: int = Field(default=300, ge=5, le=3600)
    # The service level's threshold: a call answered within it counts as answered in time
    # (core.queue_report; the metrics' wait-time bucket).
    service_level_seconds: int = Field(default=20, ge=1, le=3600)
    overflow: Overflow | None = None
    announce_every_seconds: int = Field(default=30, ge=0, le=600)  # 0: no announcements
    wrap_up_seconds: int = Field(default=10, ge=0, le=600)
    ring_timeout_seconds: int = Field(default=15, ge=3, le=120)
    skills: list[str] = Field(default_factory=list)
    # Recording of the callers this queue takes: True records them from here on (also when
    # the flow does not), False stops it, None follows the flow (core.recording).
    record: bool | None = None


class Match(Strict):
    """Conditions on the caller and the call; every given condition must hold."""

    intent: list[Name] | None = None
    client_type: list[Literal["key", "regular", "new"]] | None = None
    known: bool | None = None
    overdue_debt: bool | None = None
    language: list[str] | None = None


class Route(Strict):
    """A routing rule. Rules are tried in order; the first whose `when` matches decides.

    `targets` is the order of preference: `assigned_manager` (the caller's own manager), or
    `queue:ID` (any member of that queue). The caller waits in `queue` (its hours, maximum
    wait and overflow apply) and is given to the first free agent among the targets, earlier
    targets first.
    """

    name: str
    when: Match = Field(default_factory=Match)
    queue: Name
    targets: list[str] = Field(default_factory=list)
    priority: int = 0
    skills: list[str] = Field(default_factory=list)

    @field_validator("targets")
    @classmethod
    def _targets(cls, value: list[str]) -> list[str]:
        for t in value:
            if t != "assigned_manager" and not re.match(r"^queue:[a-z][a-z0-9_]{0,63}$", t):
                raise ValueError(f"target {t!r}: use assigned_manager or queue:ID")
        return value


class PlayNode(Strict):
    type: Literal["play"]
    prompt: Name
    next: Name


class LanguageNode(Strict):
    """Known callers get their CRM language (when the line speaks it); the others choose."""

    type: Literal["language"]
    prompt: Name
    options: dict[Annotated[str, Field(pattern=DIGIT)], Annotated[str, Field(pattern=LANG)]]
    timeout_seconds: float = Field(default=4, gt=0, le=30)
    next: Name


class Case(Strict):
    when: Match
    next: Name


class BranchNode(Strict):
    type: Literal["branch"]
    cases: list[Case]
    default: Name


class MenuNode(Strict):
    type: Literal["menu"]
    prompt: Name
    options: dict[Annotated[str, Field(pattern=DIGIT)], Name]
    timeout_seconds: float = Field(default=5, gt=0, le=30)
    retries: int = Field(default=2, ge=0, le=5)
    invalid_prompt: Name | None = None
    on_fail: Name


class RouteNode(Strict):
    """Hand the caller to the routing rules with this intent."""

    type: Literal["route"]
    intent: Name


class CallbackNode(Strict):
    """Take a callback request: confirm the caller's number with 1, or key another one and #."""

    type: Literal["callback"]
    prompt: Name
    confirm_prompt: Name
    queue: Name
    next: Name


class HangupNode(Strict):
    type: Literal["hangup"]
    prompt: Name | None = None


class AgreeSurveyNode(Strict):
    """The caller agrees to `survey` after the call (a menu key leads here): when the agent
    hangs up first, the caller goes to the survey instead of hearing the line drop. The
    optional prompt confirms it; then the caller goes on to `next`."""

    type: Literal["agree_survey"]
    survey: Name = "nps"
    prompt: Name | None = None
    next: Name


Node = Annotated[
    PlayNode
    | LanguageNode
    | BranchNode
    | MenuNode
    | RouteNode
    | CallbackNode
    | HangupNode
    | AgreeSurveyNode,
    Field(discriminator="type"),
]


class RecordingDef(Strict):
    """Calls are recorded (both sides, on the caller's channel) from the end of node ``after``
    (the notice that says so) to the hang-up."""

    after: Name


class Flow(Strict):
    name: Name
    description: str = ""
    default_language: Annotated[str, Field(pattern=LANG)]
    languages: list[Annotated[str, Field(pattern=LANG)]]
    start: Name
    nodes: dict[Name, Node]
    prompts: dict[Name, Prompt]
    calendars: dict[Name, Calendar] = Field(default_factory=dict)
    queues: dict[Name, QueueDef] = Field(default_factory=dict)
    routes: list[Route] = Field(default_factory=list)
    # Played when the caller's queue is closed, before the callback request.
    after_hours_prompt: Name | None = None
    after_hours_callback: Name | None = None  # a callback node
    queue_key_for_callback: Annotated[str, Field(pattern=DIGIT)] | None = "*"
    recording: RecordingDef | None = None  # None: calls are not recorded (queues may)
