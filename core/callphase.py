"""Where an info-line caller is, as an explicit state machine: the phases, the legal moves
between them, and the outcome a call ends with. Pure.

    IVR ──route──▶ QUEUED ──agent answers──▶ CONNECTED ──agent ends, caller agreed──▶ SURVEY
     ▲               │  ▲                        │
     └──callback,────┘  └──────blind transfer────┘ (through IVR: the transfer re-routes)
        overflow
    every phase ──caller hangs up──▶ ENDED

The Stasis adapter (``ari_app.infoline``) moves a call with ``CallPhase.move``; a move not
written here is a bug and raises, instead of leaving a caller in a state nobody handles.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Phase(StrEnum):
    IVR = "ivr"
    QUEUED = "queued"
    CONNECTED = "connected"
    SURVEY = "survey"  # sent to the post-call survey (dialplan): only the hang-up is to come
    ENDED = "ended"


TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    # routed to a queue; hung up
    Phase.IVR: frozenset({Phase.QUEUED, Phase.ENDED}),
    # an agent answered; out of the queue for a callback or an overflow (back through the IVR)
    Phase.QUEUED: frozenset({Phase.CONNECTED, Phase.IVR, Phase.ENDED}),
    # a blind transfer re-routes (through the IVR's routing); the post-call survey
    Phase.CONNECTED: frozenset({Phase.IVR, Phase.SURVEY, Phase.ENDED}),
    Phase.SURVEY: frozenset({Phase.ENDED}),
    Phase.ENDED: frozenset(),
}


class IllegalMove(Exception):
    def __init__(self, source: Phase, target: Phase) -> None:
        super().__init__(f"a call cannot go from {source} to {target}")
        self.source, self.target = source, target


@dataclass
class CallPhase:
    now: Phase = Phase.IVR
    left_from: Phase | None = None  # the phase the caller hung up in

    def move(self, to: Phase) -> None:
        if to is self.now:
            return
        if to not in TRANSITIONS[self.now]:
            raise IllegalMove(self.now, to)
        if to is Phase.ENDED:
            self.left_from = self.now
        self.now = to


def final_outcome(
    *, phase: CallPhase, connected: bool, outcome: str | None, hung_up_by_us: bool
) -> str:
    """What a call's row says happened: talked to an agent; what the flow decided (callback,
    after hours, overflow); else where the caller gave up."""
    if connected:
        return "answered"
    if outcome:
        return outcome
    where = phase.left_from if phase.now is Phase.ENDED else phase.now
    if where is Phase.QUEUED:
        return "abandoned_in_queue"
    return "completed" if hung_up_by_us else "abandoned_in_ivr"
