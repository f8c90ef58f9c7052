"""What a restarted ``serve`` needs to adopt a live info-line call: the caller's phase, IVR
node and language, queue and arrival, agent and bridge, as plain JSON kept on the call's row.

Pure: the info line's adapter snapshots its session into a ``LiveCall`` after each event and
rebuilds the session from one. Reading is tolerant: a row written by another version, or
edited by hand, gives ``None`` (the caller is then taken from the top of the menu), never an
exception.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from datetime import datetime
from typing import Any, Literal

from core.acd import AgentTarget, QueueTarget, Target
from core.routing import RouteDecision

VERSION = 1
Phase = Literal["ivr", "queued", "connected", "survey"]
PHASES: tuple[Phase, ...] = ("ivr", "queued", "connected", "survey")


def encode_decision(decision: RouteDecision | None) -> dict[str, Any] | None:
    if decision is None:
        return None
    return {
        "rule": decision.rule,
        "queue": decision.queue,
        "priority": decision.priority,
        "skills": sorted(decision.skills),
        "targets": [
            {"agent": t.agent_id} if isinstance(t, AgentTarget) else {"queue": t.queue_id}
            for t in decision.targets
        ],
    }


def decode_decision(data: object) -> RouteDecision | None:
    if not isinstance(data, dict):
        return None
    try:
        targets: list[Target] = []
        for t in data["targets"]:
            if "agent" in t:
                targets.append(AgentTarget(str(t["agent"])))
            else:
                targets.append(QueueTarget(str(t["queue"])))
        return RouteDecision(
            rule=str(data["rule"]),
            queue=str(data["queue"]),
            targets=tuple(targets),
            priority=int(data["priority"]),
            skills=frozenset(str(s) for s in data["skills"]),
        )
    except (KeyError, TypeError, ValueError):
        return None


def _time(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def parse_time(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else None


@dataclass(frozen=True)
class LiveCall:
    """A live call as a restarted process must find it."""

    phase: Phase
    node: str | None = None  # the IVR node the caller is at
    language: str = ""
    path: list[str] = field(default_factory=list)
    playing: str | None = None  # the prompt playing (to stop it before replaying the node)
    seq: int = 0  # the prompter's counter: new playback ids must not reuse old ones
    decision: dict[str, Any] | None = None  # encode_decision(...)
    visited: list[str] = field(default_factory=list)
    queued_at: str | None = None  # first time in a queue (wait time, place in the queue)
    queue_entered_at: str | None = None  # entered the current queue (its max wait)
    agent_id: str | None = None
    agent_leg: str | None = None
    bridge_id: str | None = None
    own_bridge: bool = False
    connected_at: str | None = None
    on_hold: bool = False
    survey: str | None = None  # agreed to the post-call survey
    outcome: str | None = None
    hung_up_by_us: bool = False
    last_agent_id: str | None = None
    left_agent_at: str | None = None
    v: int = VERSION

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: object) -> LiveCall | None:
        if not isinstance(data, dict) or data.get("v") != VERSION:
            return None
        if data.get("phase") not in PHASES:
            return None
        known = {f.name: f for f in fields(cls)}
        values = {k: v for k, v in data.items() if k in known}
        # Types are checked field by field: a hand-edited row must not crash the adoption.
        for name in ("path", "visited"):
            if not isinstance(values.get(name, []), list) or not all(
                isinstance(x, str) for x in values.get(name, [])
            ):
                return None
        for name in ("own_bridge", "on_hold", "hung_up_by_us"):
            if not isinstance(values.get(name, False), bool):
                return None
        if not isinstance(values.get("seq", 0), int) or not isinstance(
            values.get("language", ""), str
        ):
            return None
        for name, f in known.items():
            if f.type == "str | None" and not isinstance(values.get(name), str | None):
                return None
        if values.get("decision") is not None and decode_decision(values["decision"]) is None:
            return None
        return cls(**values)

    @staticmethod
    def time(value: datetime | None) -> str | None:
        return _time(value)
