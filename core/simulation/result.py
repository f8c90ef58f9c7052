"""What a simulated call shows: the prompts heard, the steps, where it ends, and the whole
(``Simulation``), each with its JSON form for the API. Pure data; may import the standard
library and ``core``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from core.infoline import CallbackTask
from core.routing import Caller, RouteDecision

EndKind = Literal["queued", "hung_up", "caller_hung_up", "step_limit"]


@dataclass(frozen=True)
class HeardPrompt:
    """A prompt the caller heard: from ``started`` (seconds into the call) for ``seconds``,
    or cut by a key at ``cut_at``."""

    prompt: str
    language: str
    text: str | None
    media: str
    started: float
    seconds: float
    cut_at: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "prompt": self.prompt,
            "language": self.language,
            "text": self.text,
            "media": self.media,
            "started": round(self.started, 1),
            "seconds": round(self.seconds, 1),
            "cut_at": None if self.cut_at is None else round(self.cut_at, 1),
        }


@dataclass(frozen=True)
class Step:
    """One thing that happened, ``seconds`` into the call. ``kind``: ``node`` (entered),
    ``choice`` (a path entry such as ``main_menu:2``), ``prompt``, ``key``, ``ignored_key``,
    ``timeout``, ``language``, ``recording``, ``survey_agreed``, ``routed``, ``after_hours``,
    ``queued``, ``left_queue``, ``overflowed``, ``callback``, ``no_route``, ``hung_up``,
    ``caller_hung_up``."""

    seconds: float
    kind: str
    node: str | None = None
    detail: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": round(self.seconds, 1),
            "kind": self.kind,
            "node": self.node,
            "detail": self.detail,
        }


@dataclass(frozen=True)
class End:
    """Where the simulated call ends. ``outcome`` is what its row would say had it ended
    there (None in a queue: an agent answering or the caller giving up decides)."""

    kind: EndKind
    seconds: float
    at: datetime
    outcome: str | None
    node: str | None  # where in the IVR the call was
    reason: str = ""  # hung_up: hangup_node, no_callback_node or no_route
    route: RouteDecision | None = None  # the last routing decision
    queue_open: bool | None = None
    callback: CallbackTask | None = None

    def to_json(self) -> dict[str, Any]:
        route = self.route
        return {
            "kind": self.kind,
            "seconds": round(self.seconds, 1),
            "at": self.at.isoformat(),
            "outcome": self.outcome,
            "node": self.node,
            "reason": self.reason,
            "queue": route.queue if route else None,
            "rule": route.rule if route else None,
            "priority": route.priority if route else None,
            "targets": [_target(t) for t in route.targets] if route else [],
            "queue_open": self.queue_open,
            "callback": None
            if self.callback is None
            else {
                "number": self.callback.number,
                "queue": self.callback.queue,
                "due_at": self.callback.due_at.isoformat(),
                "reason": self.callback.reason,
                "assigned_agent_id": self.callback.assigned_agent_id,
            },
        }


def _target(target: object) -> str:
    agent = getattr(target, "agent_id", None)
    return f"agent:{agent}" if agent else f"queue:{getattr(target, 'queue_id', '')}"


@dataclass(frozen=True)
class Simulation:
    flow: str
    caller: Caller
    started_at: datetime
    language: str  # the call's language at its end
    path: list[str]  # as the call log stores it (core.ivr.recorded_path)
    steps: list[Step]
    prompts: list[HeardPrompt]
    end: End
    survey: str | None  # the survey the caller agreed to take after the call
    queues: list[str]  # every queue the caller was routed to, in order
    keys_left: list[str]  # inputs the call ended before

    def to_json(self) -> dict[str, Any]:
        c = self.caller
        return {
            "flow": self.flow,
            "caller": {
                "client_id": c.client_id,
                "name": c.name,
                "known": c.known,
                "client_type": c.client_type,
                "overdue_debt": c.overdue_debt,
                "language": c.language,
                "assigned_manager": c.assigned_manager,
            },
            "started_at": self.started_at.isoformat(),
            "language": self.language,
            "path": self.path,
            "steps": [s.to_json() for s in self.steps],
            "prompts": [p.to_json() for p in self.prompts],
            "end": self.end.to_json(),
            "survey": self.survey,
            "queues": self.queues,
            "keys_left": self.keys_left,
        }
