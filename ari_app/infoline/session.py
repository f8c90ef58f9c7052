"""A caller's session on the info line (its phase is ``core.callphase``'s state machine),
the synthetic events posted on a caller's stream, and the names the dialplan shares."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from ari_app.ari import ChannelTimers
from core.callphase import CallPhase, Phase, final_outcome
from core.ivr import IVR
from core.routing import (
    Caller,
    RouteDecision,
)
from dialplan.model import Flow, QueueDef
from models.calllog import now

CONTROL = "CentralaControl"  # an agent's call control (transfer), from the API
ADOPT = "CentralaAdopt"  # adopt a call found live after a restart, on the caller's own stream
RESYNC = "CentralaResync"  # after a reconnect: notice what the call missed, on its own stream
HOLD_PROMPT = "queue_hold"
CONSULT_PRIORITY = 1000
# The dialplan context of the post-call survey (extensions.conf); it reads these variables.
SURVEY_CONTEXT = "centrala-postcall-survey"
SURVEY_VARIABLE = "CENTRALA_SURVEY"
CALL_ID_VARIABLE = "CENTRALA_CALL_ID"


@dataclass
class Consult:
    """An attended transfer under way: the agent talks to ``agent_id`` while the caller
    holds."""

    target: str
    agent_id: str
    acd_id: str
    leg: str | None = None
    answered: bool = False


@dataclass
class CallerSession:
    """One caller on the info line. ``state`` says where they are (``core.callphase``); the
    other fields are what each phase needs: the IVR's walk (``ivr``); in the queue, the
    route and the queue (``decision``, ``queue_def``, ``visited``, arrival times, ``moh``,
    ``announcing``); with an agent, who and where (``agent_id``, ``agent_leg``,
    ``bridge_id``, ``own_bridge``, ``connected_at``, ``on_hold``, ``consult``); and what
    decides the outcome at the end (``outcome``, ``hung_up_by_us``, ``survey``). All of it
    but the timers is kept on the call's row after each event (``adoption.py``)."""

    channel_id: str
    call_id: str
    caller: Caller
    caller_number: str | None
    caller_e164: str | None
    flow: Flow
    flow_version: int
    ivr: IVR
    timers: ChannelTimers
    state: CallPhase = field(default_factory=CallPhase)
    subscribed: bool = False
    decision: RouteDecision | None = None
    intent: str | None = None  # what the IVR found the caller wants (routed by it)
    queue_def: QueueDef | None = None
    visited: list[str] = field(default_factory=list)
    arrived_mono: float | None = None
    queued_at: datetime | None = None
    queue_entered_at: datetime | None = None  # the current queue's max wait counts from here
    agent_id: str | None = None
    agent_leg: str | None = None
    bridge_id: str | None = None
    own_bridge: bool = False
    connected_at: datetime | None = None
    outcome: str | None = None  # set by what happened; None = decided at hang-up
    moh: bool = False
    announcing: str | None = None
    closing: bool = False
    consult: Consult | None = None
    on_hold: bool = False  # out of the agent's bridge, hearing music
    last_agent_id: str | None = None  # who had the caller last (for the log)
    hung_up_by_us: bool = False  # the flow ended the call (a hangup node)
    survey: str | None = None  # the survey the caller agreed to take after the call
    left_agent_at: datetime | None = None  # sent to the survey: the talk ended here
    saved: dict[str, Any] | None = None  # the live state last written (restart survival)
    adopted: bool = False  # taken over from a previous process (its rows say the rest)

    @property
    def phase(self) -> Phase:
        return self.state.now

    @property
    def ivr_node(self) -> str | None:
        """The flow node the caller is at while in the IVR (the console's live view)."""
        return self.ivr.node if self.phase is Phase.IVR else None

    def final_outcome(self) -> str:
        return final_outcome(
            phase=self.state,
            connected=self.connected_at is not None,
            outcome=self.outcome,
            hung_up_by_us=self.hung_up_by_us,
        )


def ari_time(value: str | None) -> datetime:
    """ARI timestamps look like 2026-11-23T16:40:00.123+0000."""
    if value:
        with contextlib.suppress(ValueError):
            # fromisoformat reads this form (3.11+), some 60 times faster than strptime.
            parsed = datetime.fromisoformat(value)
            if parsed.tzinfo is not None:
                return parsed.astimezone(UTC)
    return now()
