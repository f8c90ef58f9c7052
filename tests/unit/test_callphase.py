"""The info-line call's phases: every legal move is written down, every other one raises,
and the outcome follows the phase the caller left from."""

from __future__ import annotations

import itertools

import pytest

from core.callphase import TRANSITIONS, CallPhase, IllegalMove, Phase, final_outcome


@pytest.mark.parametrize(("source", "target"), list(itertools.product(Phase, Phase)))
def test_only_the_written_moves_are_allowed(source: Phase, target: Phase) -> None:
    phase = CallPhase(source)
    if target is source or target in TRANSITIONS[source]:
        phase.move(target)
        assert phase.now is target
    else:
        with pytest.raises(IllegalMove):
            phase.move(target)
        assert phase.now is source


def test_every_phase_but_the_end_can_end() -> None:
    assert all(Phase.ENDED in TRANSITIONS[p] for p in Phase if p is not Phase.ENDED)
    assert TRANSITIONS[Phase.ENDED] == frozenset()


@pytest.mark.parametrize(
    ("path", "connected", "outcome", "by_us", "expected"),
    [
        ([Phase.ENDED], False, None, False, "abandoned_in_ivr"),
        ([Phase.ENDED], False, None, True, "completed"),
        ([Phase.QUEUED, Phase.ENDED], False, None, False, "abandoned_in_queue"),
        (
            [Phase.QUEUED, Phase.IVR, Phase.ENDED],
            False,
            "callback_requested",
            False,
            "callback_requested",
        ),
        ([Phase.QUEUED, Phase.CONNECTED, Phase.ENDED], True, None, False, "answered"),
        ([Phase.QUEUED, Phase.CONNECTED, Phase.SURVEY, Phase.ENDED], True, None, False, "answered"),
        ([Phase.QUEUED], False, None, False, "abandoned_in_queue"),
    ],
)
def test_outcome_follows_where_the_caller_left(
    path: list[Phase], connected: bool, outcome: str | None, by_us: bool, expected: str
) -> None:
    phase = CallPhase()
    for step in path:
        phase.move(step)
    assert (
        final_outcome(phase=phase, connected=connected, outcome=outcome, hung_up_by_us=by_us)
        == expected
    )
