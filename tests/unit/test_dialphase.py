"""A survey call's phases in the dialler: every legal move is written down, every other one
raises and leaves the call where it was."""

from __future__ import annotations

import itertools

import pytest

from core.surveys.dialphase import TRANSITIONS, DialState, IllegalDialMove, Phase


@pytest.mark.parametrize(("source", "target"), list(itertools.product(Phase, Phase)))
def test_only_the_written_moves_are_allowed(source: Phase, target: Phase) -> None:
    state = DialState(source)
    if target is source or target in TRANSITIONS[source]:
        state.move(target)
        assert state.now is target
    else:
        with pytest.raises(IllegalDialMove):
            state.move(target)
        assert state.now is source


def test_every_phase_but_the_end_can_end() -> None:
    assert all(Phase.ENDED in TRANSITIONS[p] for p in Phase if p is not Phase.ENDED)
    assert TRANSITIONS[Phase.ENDED] == frozenset()


def test_a_machine_never_reaches_the_survey_nor_a_survey_goes_back() -> None:
    # A machine heard by AMD is never surveyed; a call in the survey is never re-detected.
    assert Phase.SURVEY not in TRANSITIONS[Phase.MACHINE]
    assert TRANSITIONS[Phase.SURVEY] == frozenset({Phase.ENDED})
    with pytest.raises(IllegalDialMove):
        DialState(Phase.SURVEY).move(Phase.DETECTING)
