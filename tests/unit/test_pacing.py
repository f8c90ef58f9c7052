"""The agent dialler's pacing (core/pacing.py): how many calls, in which mode, and when it
falls back to progressive by itself. Pure: observations and ``now`` are given."""

from __future__ import annotations

import pytest

from core.pacing import (
    Abandoned,
    AgentActivity,
    AgentState,
    Answered,
    Connected,
    Ended,
    Mode,
    NoAnswer,
    Pacer,
    PacingSettings,
    Placed,
    Tally,
    Unanswered,
)

PREDICTIVE = PacingSettings(mode=Mode.PREDICTIVE)


def calls(pacer: Pacer, start: float, count: int, live_every: int, prefix: str) -> float:
    """``count`` calls two a second, every ``live_every``-th a live answer (taken by an agent
    who then leaves), the rest busy; the time after the last."""
    t = start
    for i in range(count):
        call = f"{prefix}{i}"
        pacer.observe(Placed(t, call))
        if i % live_every == 0:
            pacer.observe(Answered(t + 10.0, call, live=True))
            pacer.observe(Connected(t + 10.0, call, "trainer"))
            pacer.observe(Ended(t + 11.0, call))
        else:
            pacer.observe(Unanswered(t + 3.0, call, NoAnswer.BUSY))
        t += 0.5
    pacer.observe(AgentState(t, "trainer", AgentActivity.LOGGED_OUT))
    return t + 60.0  # every call placed has had its outcome learnt by then


def agents(pacer: Pacer, at: float, count: int, state: AgentActivity, prefix: str = "a") -> None:
    for i in range(count):
        pacer.observe(AgentState(at, f"{prefix}{i}", state))


def trained(settings: PacingSettings = PREDICTIVE) -> tuple[Pacer, float]:
    """A campaign well into its shift: 2000 calls, one in five a live answer, none lost."""
    pacer = Pacer(settings)
    return pacer, calls(pacer, 0.0, 2000, 5, "old")


def test_progressive_places_one_call_per_ready_agent_not_covered_by_a_call_in_flight() -> None:
    pacer = Pacer(PacingSettings(mode=Mode.PROGRESSIVE))
    agents(pacer, 0.0, 3, AgentActivity.READY)
    agents(pacer, 0.0, 2, AgentActivity.TALKING, prefix="t")
    assert pacer.pace(1.0).calls == 3
    pacer.observe(Placed(1.0, "c1"))
    pacer.observe(Placed(1.0, "c2"))
    assert pacer.pace(1.5).calls == 1
    # A live answer waiting for its agent still covers that agent; a busy line frees one.
    pacer.observe(Answered(8.0, "c1", live=True))
    assert pacer.pace(8.0).calls == 1
    pacer.observe(Unanswered(9.0, "c2", NoAnswer.BUSY))
    assert pacer.pace(9.0) == pacer.pace(9.0)
    assert pacer.pace(9.0).calls == 2
    assert pacer.pace(9.0).mode == Mode.PROGRESSIVE


def test_preview_never_dials() -> None:
    pacer = Pacer(PacingSettings(mode=Mode.PREVIEW))
    agents(pacer, 0.0, 10, AgentActivity.READY)
    pace = pacer.pace(1.0)
    assert (pace.calls, pace.mode) == (0, Mode.PREVIEW)


def test_a_new_predictive_campaign_is_progressive_until_enough_live_answers() -> None:
    pacer = Pacer(PREDICTIVE)
    agents(pacer, 0.0, 4, AgentActivity.READY)
    pace = pacer.pace(1.0)
    assert (pace.calls, pace.mode) == (4, Mode.PROGRESSIVE)
    assert "live answers measured" in pace.reason
    # Too few answers yet: 29 calls, 6 live, still below the 30 the settings ask for.
    t = calls(pacer, 2.0, 29, 5, "few")
    assert pacer.pace(t).mode == Mode.PROGRESSIVE


def test_a_trained_predictive_campaign_dials_more_than_progressive() -> None:
    pacer, t = trained()
    agents(pacer, t, 4, AgentActivity.READY)
    pace = pacer.pace(t)
    assert pace.mode == Mode.PREDICTIVE
    assert pace.calls > 4


def test_predictive_dials_ahead_carefully_near_the_cap_and_falls_back_at_it() -> None:
    pacer, t = trained()
    agents(pacer, t, 8, AgentActivity.READY)
    before = pacer.pace(t)
    assert before.mode == Mode.PREDICTIVE
    # 400 live answers in the window: 12 abandoned would be the cap. At 11 the measured rate
    # (2.7%, shrunk toward the target) has passed ``fallback_rate``: still predictive, at the
    # smallest risk, with fewer calls ahead.
    for i in range(11):
        pacer.observe(Abandoned(t + i, f"lost{i}"))
    careful = pacer.pace(t + 10.0)
    assert careful.mode == Mode.PREDICTIVE
    assert 8 <= careful.calls < before.calls
    # At 12 there is none left in hand: progressive, one call per ready agent.
    pacer.observe(Abandoned(t + 11.0, "lost11"))
    pace = pacer.pace(t + 12.0)
    assert (pace.mode, pace.calls) == (Mode.PROGRESSIVE, 8)


def test_predictive_falls_back_when_the_answer_rate_drops() -> None:
    pacer, t = trained()
    agents(pacer, t, 4, AgentActivity.READY)
    assert pacer.pace(t).mode == Mode.PREDICTIVE
    t = calls(pacer, t, 200, 50, "drop")  # one in fifty instead of one in five
    pace = pacer.pace(t)
    assert pacer.changes == 1
    assert pace.mode == Mode.PROGRESSIVE
    # The same block at the old rate changes nothing.
    same, t2 = trained()
    t2 = calls(same, t2, 200, 5, "same")
    agents(same, t2, 4, AgentActivity.READY)
    assert same.changes == 0
    assert same.pace(t2).mode == Mode.PREDICTIVE


def test_agents_about_to_leave_wrap_up_get_calls_before_they_are_ready() -> None:
    wrapping, t = trained()
    talking, _ = trained()
    agents(wrapping, t - 25.0, 5, AgentActivity.WRAP_UP)  # 5 s of a 30 s wrap-up left
    agents(talking, t - 25.0, 5, AgentActivity.TALKING)
    assert talking.pace(t).calls == 0  # nobody is ready, nobody frees within a ring
    pace = wrapping.pace(t)
    assert pace.mode == Mode.PREDICTIVE
    assert pace.calls >= 5
    # The same agents with 20 s left: the answers (all at 10 s here) would find none free.
    earlier, _ = trained()
    agents(earlier, t - 10.0, 5, AgentActivity.WRAP_UP)
    assert earlier.pace(t).calls == 0


def test_the_abandonment_count_survives_a_restart_from_the_stored_history() -> None:
    # The last 20 hours from the database: 1000 live answers, 42 abandoned (4.2%... of what
    # will be 1400 with this hour's: 3%, no abandoned call left in hand to dial ahead).
    day = [Tally(3600.0 * h, 50, 2) for h in range(20)]
    day.append(Tally(3600.0 * 19, 0, 2))
    start = 3600.0 * 20
    before = Pacer(PREDICTIVE, history=day)
    after = Pacer(PREDICTIVE, history=day)  # a restarted serve reading the same rows
    assert before.rates(start) == after.rates(start)
    assert (after.rates(start).live_24h, after.rates(start).abandoned_24h) == (1000, 42)
    forgetful = Pacer(PREDICTIVE)  # the same hour without the history
    for pacer in (after, forgetful):
        t = calls(pacer, start, 2000, 5, "new")
        agents(pacer, t, 4, AgentActivity.READY)
    pace = after.pace(t)
    assert pace.mode == Mode.PROGRESSIVE
    assert "24 h" in pace.reason
    assert forgetful.pace(t).mode == Mode.PREDICTIVE
    # A day later those rows have left the window.
    assert after.rates(start + 86400.0).abandoned_24h == 0


def test_settings_refuse_a_ring_timeout_too_short_and_a_target_above_the_cap() -> None:
    with pytest.raises(ValueError):
        PacingSettings(ring_timeout=10.0)
    with pytest.raises(ValueError):
        PacingSettings(target=0.04)


def test_calls_whose_events_were_lost_stop_counting_as_in_flight() -> None:
    pacer = Pacer(PacingSettings(mode=Mode.PROGRESSIVE))
    agents(pacer, 0.0, 2, AgentActivity.READY)
    pacer.observe(Placed(0.0, "lost"))
    assert pacer.pace(1.0).calls == 1
    assert pacer.pace(200.0).calls == 2
    # A live answer whose connection or abandonment never came stops holding an agent.
    pacer.observe(Placed(200.0, "quiet"))
    pacer.observe(Answered(210.0, "quiet", live=True))
    assert pacer.pace(211.0).calls == 1
    assert pacer.pace(400.0).calls == 2


def test_an_hour_over_the_cap_does_not_stop_predictive_while_the_24_hours_hold() -> None:
    # 20 quiet hours (1000 live answers, 10 abandoned), then an hour with 400 live answers and
    # 11 abandoned (2.75%: no room in the hour for the 3 in hand the old guard asked), the 24 h
    # at 1.5%.
    day = [Tally(3600.0 * h, 50, 0) for h in range(20)]
    day.append(Tally(3600.0 * 19, 0, 10))
    pacer = Pacer(PREDICTIVE, history=day)
    t = calls(pacer, 3600.0 * 20, 2000, 5, "new")
    for i in range(11):
        pacer.observe(Abandoned(t - 30.0 + i, f"lost{i}"))
    agents(pacer, t, 4, AgentActivity.READY)
    r = pacer.rates(t)
    assert (r.live_short, r.abandoned_short) == (400, 11)  # reported
    assert (r.live_24h, r.abandoned_24h) == (1400, 21)
    pace = pacer.pace(t)
    assert pace.mode == Mode.PREDICTIVE
    assert pace.calls > 4


def test_the_24_hours_keep_in_hand_the_abandoned_calls_the_calls_in_flight_may_bring() -> None:
    # 400 live answers, 9 abandoned: one more in hand fits under the cap's 12.
    few, t = trained()
    many, _ = trained()
    for pacer in (few, many):
        for i in range(9):
            pacer.observe(Abandoned(t - 50.0 + i, f"lost{i}"))
        agents(pacer, t, 4, AgentActivity.READY)
    assert few.pace(t).mode == Mode.PREDICTIVE
    # 300 calls ringing, one in five to be live: each may be lost, so a few more are kept in
    # hand, and they do not fit.
    for i in range(300):
        many.observe(Placed(t, f"ringing{i}"))
    pace = many.pace(t + 1.0)
    assert pace.mode == Mode.PROGRESSIVE
    assert "24 h" in pace.reason and "in hand" in pace.reason


def test_a_new_campaign_dials_ahead_once_the_24_hours_can_take_one_abandoned_call() -> None:
    # 40 live answers, none lost: 3% of them is 1.2, so one abandoned call fits (the old hour
    # guard asked for 3 in hand, that is 100 live answers first).
    pacer = Pacer(PREDICTIVE)
    t = calls(pacer, 0.0, 200, 5, "first")
    agents(pacer, t, 4, AgentActivity.READY)
    assert pacer.rates(t).live_24h == 40
    assert pacer.pace(t).mode == Mode.PREDICTIVE
    # One abandoned: 1 + 1 in hand is over 1.2, progressive until 67 live answers.
    pacer.observe(Abandoned(t, "lost"))
    pace = pacer.pace(t + 1.0)
    assert pace.mode == Mode.PROGRESSIVE
    assert "24 h" in pace.reason


def test_a_batch_of_calls_placed_at_once_is_not_taken_for_a_change_in_the_answer_rate() -> None:
    # 1000 calls placed in one pace, one in five live as before: their busy lines (3 s) sort
    # before their answers (10 s) and their ring-outs (25 s); 200 of them alone would look like
    # a drop to nothing, or a rise to one in two.
    pacer, t = trained()
    for i in range(1000):
        pacer.observe(Placed(t, f"batch{i}"))
    for i in range(1000):
        if i % 5 == 0:
            pacer.observe(Answered(t + 10.0, f"batch{i}", live=True))
        elif i % 5 in (1, 2):
            pacer.observe(Unanswered(t + 3.0, f"batch{i}", NoAnswer.BUSY))
        else:
            pacer.observe(Unanswered(t + 25.0, f"batch{i}", NoAnswer.NO_ANSWER))
    agents(pacer, t + 60.0, 4, AgentActivity.READY)
    pace = pacer.pace(t + 60.0)
    assert pacer.changes == 0
    assert pace.mode == Mode.PREDICTIVE


def test_little_room_left_in_the_24_hours_lowers_the_risk_taken() -> None:
    # 400 live answers, 9 abandoned: the cap allows 12, one is kept in hand, 2 are left,
    # two thirds of the 3 (``budget_soft`` reserves) that leave the risk whole.
    theta = {}
    for soft in (0.0, 3.0):
        pacer, t = trained(PacingSettings(mode=Mode.PREDICTIVE, budget_soft=soft))
        for i in range(9):
            pacer.observe(Abandoned(t - 50.0 + i, f"lost{i}"))
        agents(pacer, t, 4, AgentActivity.READY)
        pace = pacer.pace(t)
        assert pace.mode == Mode.PREDICTIVE
        theta[soft] = float(pace.reason.split()[-1])
    s = PREDICTIVE
    measured = (9 + s.target * s.prior_live) / (400 + s.prior_live)
    feedback = (s.fallback_rate - measured) / (s.fallback_rate - s.target)
    assert theta[0.0] == pytest.approx(s.risk * s.target * feedback, abs=5e-4)
    assert theta[3.0] == pytest.approx(theta[0.0] * 2 / 3, abs=5e-4)
