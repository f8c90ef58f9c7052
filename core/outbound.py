"""Manual outbound calls (an agent calls a client from the desk or from their desk phone):
who may call what, the number as dialled, the number presented to the called party, the
channel ids of a call's two legs and how a call's end reads as an outcome. Pure: the Stasis
app (``ari_app.outbound``) and the web layer ask, then act.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from core.acd import AgentStatus
from core.errors import DomainError
from core.phones import normalise_dialable
from core.surveys.campaign import on_do_not_call, unanswered_outcome
from dialplan.hours import is_open
from dialplan.model import Calendar

Origin = Literal["desk", "phone"]
# Why a manual call is refused; each is an error_id the API and the call's trail carry.
Reason = Literal[
    "bad_number",
    "do_not_call",
    "outside_calling_window",
    "agent_busy",
    "not_logged_in",
    "no_trunk",
    "trunk_busy",
]
_STATUS: dict[str, int] = {
    "bad_number": 422,
    "do_not_call": 409,
    "outside_calling_window": 409,
    "agent_busy": 409,
    "not_logged_in": 409,
    "no_trunk": 503,
    "trunk_busy": 429,
}
# The Q.850 cause a refused call from a desk phone is hung up with, so the phone shows why:
# 28 "invalid number format", 21 "call rejected", 34 "no circuit available".
REFUSAL_CAUSE: dict[str, str] = {
    "bad_number": "number_incomplete",
    "trunk_busy": "congestion",
    "no_trunk": "congestion",
}
LEG_PREFIX = "outbound-"
# An agent's channel from their phone: "PJSIP/101-0000002a" (the endpoint is the agent id).
_PHONE_CHANNEL = re.compile(r"^PJSIP/([A-Za-z0-9][A-Za-z0-9_.-]{0,63})-[0-9a-f]{8,}$")


class OutboundRefused(DomainError):
    """A manual call that may not be placed, and why (``error_id`` is the reason)."""

    def __init__(self, reason: Reason, message: str, **details: str) -> None:
        super().__init__(message, error_id=reason, status=_STATUS[reason], details=details)
        self.reason: Reason = reason


@dataclass(frozen=True)
class Permit:
    """The call may go: to ``number`` (E.164)."""

    number: str


def check_call(
    raw_number: str,
    *,
    region: str,
    agent_status: AgentStatus | None,
    origin: Origin,
    do_not_call: Mapping[str, datetime | None],
    window: Calendar | None,
    now: datetime,
) -> Permit:
    """May an agent (``agent_status``: their ACD state, None when not logged in) call
    ``raw_number`` now? Raises ``OutboundRefused`` saying why not.

    From the desk the agent must be logged in (their phone is the one the ACD knows); from
    their own desk phone they need not be. Either way not while ringing for or talking on
    another call. Only numbers in the numbering plan are dialled (a short code or a premium
    service is refused as a bad number, like anything malformed)."""
    if origin == "desk" and agent_status in (None, AgentStatus.LOGGED_OUT):
        raise OutboundRefused("not_logged_in", "log in with your phone first")
    if agent_status in (AgentStatus.OFFERED, AgentStatus.ON_CALL):
        raise OutboundRefused("agent_busy", "you are on another call")
    number = normalise_dialable(raw_number, region)
    if number is None:
        raise OutboundRefused(
            "bad_number", f"{_shown(raw_number)} is not a number that can be dialled"
        )
    if on_do_not_call(number, do_not_call, now):
        raise OutboundRefused("do_not_call", f"{number} is on the do-not-call list", number=number)
    if window is not None and not is_open(window, now):
        raise OutboundRefused(
            "outside_calling_window", "outside the hours clients may be called", number=number
        )
    return Permit(number)


def _shown(raw: str) -> str:
    # An echo of what was dialled, safe for a log line and a JSON message.
    kept = "".join(c for c in raw[:40] if c.isprintable())
    return repr(kept)


def presented_number(
    *,
    queue: str | None,
    agent_queues: Sequence[str],
    queue_numbers: Mapping[str, str],
    default: str,
) -> tuple[str, str | None]:
    """The number a manual call shows, and the queue it is made for: the queue asked for
    (when the agent is in it) or the agent's first queue that has a number of its own;
    else ``default`` (the trunk's). Returns (number, queue)."""
    if queue is not None and queue in agent_queues:
        return queue_numbers.get(queue, default), queue
    for q in agent_queues:
        if q in queue_numbers:
            return queue_numbers[q], q
    return default, agent_queues[0] if agent_queues else None


def agent_of_channel(channel_name: str) -> str | None:
    """The agent whose desk phone placed the channel (endpoint = agent id), or None."""
    found = _PHONE_CHANNEL.match(channel_name)
    return found.group(1) if found else None


def leg_ids(call_key: str) -> tuple[str, str]:
    """The agent's and the client's channel ids of one manual call: derived from the call,
    so a retried originate gets 409 instead of ringing twice."""
    return f"{LEG_PREFIX}{call_key}-a", f"{LEG_PREFIX}{call_key}-c"


def parse_leg(channel_id: str) -> tuple[str, Literal["agent", "client"]] | None:
    if not channel_id.startswith(LEG_PREFIX) or channel_id[-2:] not in ("-a", "-c"):
        return None
    key = channel_id[len(LEG_PREFIX) : -2]
    return key, "agent" if channel_id.endswith("-a") else "client"


def outcome(*, connected: bool, cause: int | None, dial_status: str | None = None) -> str:
    """How a manual call ended: ``answered`` once the client was bridged with the agent,
    else the dialler's words for why not (busy, no_answer, failed, invalid_number)."""
    if connected:
        return "answered"
    return str(unanswered_outcome(cause, dial_status))
