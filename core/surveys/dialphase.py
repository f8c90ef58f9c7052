"""Where a survey call of the dialler is, as an explicit state machine: the phases and the
legal moves between them. Pure.

    RINGING ──answered, AMD on──▶ DETECTING ──a person──▶ SURVEY
       │                             │
       └──answered, AMD off──────────┼──────────────────▶ SURVEY
                                     └──a machine──▶ MACHINE (hung up on, or the message first)
    every phase ──hang-up, or never placed──▶ ENDED

The dialler (``ari_app.campaigns``) moves a call with ``DialState.move``; a move not written
here is a bug and raises, instead of leaving a call in a state nobody handles. A call adopted
after a restart starts RINGING and moves at once to where the PBX says it is.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Phase(StrEnum):
    RINGING = "ringing"
    DETECTING = "detecting"  # answered; Asterisk's AMD is listening
    SURVEY = "survey"
    MACHINE = "machine"  # a machine answered: hang up, or leave the message first
    ENDED = "ended"


TRANSITIONS: dict[Phase, frozenset[Phase]] = {
    # answered: to AMD, or straight to the survey when the campaign does not detect machines
    Phase.RINGING: frozenset({Phase.DETECTING, Phase.SURVEY, Phase.ENDED}),
    # AMD's verdict: a person, or a machine
    Phase.DETECTING: frozenset({Phase.SURVEY, Phase.MACHINE, Phase.ENDED}),
    Phase.SURVEY: frozenset({Phase.ENDED}),
    Phase.MACHINE: frozenset({Phase.ENDED}),
    Phase.ENDED: frozenset(),
}


class IllegalDialMove(Exception):
    def __init__(self, source: Phase, target: Phase) -> None:
        super().__init__(f"a survey call cannot go from {source} to {target}")
        self.source, self.target = source, target


@dataclass
class DialState:
    now: Phase = Phase.RINGING

    def move(self, to: Phase) -> None:
        if to is self.now:
            return
        if to not in TRANSITIONS[self.now]:
            raise IllegalDialMove(self.now, to)
        self.now = to
