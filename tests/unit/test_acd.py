from __future__ import annotations

from collections.abc import Iterable

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from core.acd import (
    ACD,
    ACDError,
    Agent,
    AgentMode,
    AgentProfile,
    AgentStatus,
    AgentTarget,
    CallRequest,
    Offer,
    QueueTarget,
    Target,
    eligibility,
    pick_agent,
    pick_call,
)


def prof(
    agent_id: str,
    queues: dict[str, int] | None = None,
    skills: Iterable[str] = (),
    role: str = "agent",
) -> AgentProfile:
    return AgentProfile(
        id=agent_id,
        name=agent_id.upper(),
        role=role,
        skills=frozenset(skills),
        queues={"general": 0} if queues is None else queues,
    )


def call(
    call_id: str,
    at: float = 0.0,
    *,
    queue: str = "general",
    targets: tuple[Target, ...] = (),
    priority: int = 0,
    skills: Iterable[str] = (),
) -> CallRequest:
    return CallRequest(
        call_id, queue, arrived_at=at, targets=targets, priority=priority, skills=frozenset(skills)
    )


def login(acd: ACD, *profiles: AgentProfile, now: float = 0.0) -> None:
    for p in profiles:
        acd.login(p, f"PJSIP/{p.id}", AgentMode.PER_CALL, now)


def busy(acd: ACD, agent_id: str, call_id: str, now: float) -> None:
    """Put a free agent on a call that only they can take."""
    offer = acd.request(call(call_id, now, targets=(AgentTarget(agent_id),)), now)
    assert offer is not None and offer.agent_id == agent_id
    acd.answered(call_id, agent_id, now)


KEY_CLIENT = (AgentTarget("manager"), QueueTarget("general"))


# -- pick_agent: who gets this call ---------------------------------------------------------


def test_assigned_manager_gets_key_client_before_queue_members_idle_longer() -> None:
    acd = ACD()
    login(acd, prof("agent"), now=0)
    login(acd, prof("manager", {"general": 5}, role="manager"), now=10)
    offer = acd.request(call("c1", 20, targets=KEY_CLIENT), 20)
    assert offer == Offer("c1", "manager", "PJSIP/manager", AgentMode.PER_CALL, tier=0)


@pytest.mark.parametrize("manager_state", ["on_call", "offered", "paused", "logged_out", "absent"])
def test_key_client_falls_back_to_queue_when_manager_unavailable(manager_state: str) -> None:
    acd = ACD()
    login(acd, prof("agent"))
    if manager_state != "absent":
        login(acd, prof("manager", {"other": 0}, role="manager"))
    if manager_state == "on_call":
        busy(acd, "manager", "x", 1)
    elif manager_state == "offered":
        acd.request(call("x", 1, targets=(AgentTarget("manager"),)), 1)
    elif manager_state == "paused":
        acd.pause("manager", "lunch", 1)
    elif manager_state == "logged_out":
        acd.logout("manager", 1)
    offer = acd.request(call("c1", 2, targets=KEY_CLIENT), 2)
    assert offer is not None
    assert (offer.agent_id, offer.tier) == ("agent", 1)


def test_longest_idle_agent_gets_the_call() -> None:
    acd = ACD()
    login(acd, prof("b"), now=5)
    login(acd, prof("a"), now=7)
    login(acd, prof("c"), now=3)
    offer = acd.request(call("c1", 10), 10)
    assert offer is not None and offer.agent_id == "c"


def test_idle_clock_restarts_after_a_call() -> None:
    acd = ACD()
    login(acd, prof("a"), now=0)
    login(acd, prof("b"), now=1)
    busy(acd, "a", "x", 2)
    acd.ended("a", 3, wrap_up_seconds=0)
    offer = acd.request(call("c1", 4), 4)
    assert offer is not None and offer.agent_id == "b"


def test_lower_penalty_beats_longer_idle() -> None:
    acd = ACD()
    login(acd, prof("backup", {"general": 2}), now=0)
    login(acd, prof("primary", {"general": 1}), now=9)
    offer = acd.request(call("c1", 10), 10)
    assert offer is not None and offer.agent_id == "primary"


def test_earlier_target_beats_lower_penalty_in_a_later_target() -> None:
    acd = ACD()
    login(acd, prof("sales", {"sales": 9}), prof("support", {"support": 0}))
    targets = (QueueTarget("sales"), QueueTarget("support"))
    offer = acd.request(call("c1", 1, targets=targets), 1)
    assert offer is not None and (offer.agent_id, offer.tier) == ("sales", 0)


def test_agent_id_breaks_exact_ties() -> None:
    acd = ACD()
    login(acd, prof("b"), prof("a"), now=0)
    offer = acd.request(call("c1", 1), 1)
    assert offer is not None and offer.agent_id == "a"


def test_all_required_skills_are_needed() -> None:
    acd = ACD()
    login(acd, prof("en", skills={"en"}), now=0)
    login(acd, prof("en_de", skills={"en", "de"}), now=5)
    offer = acd.request(call("c1", 6, skills={"en", "de"}), 6)
    assert offer is not None and offer.agent_id == "en_de"
    assert acd.request(call("c2", 7, skills={"en", "de"}), 7) is None
    assert [c.call_id for c in acd.waiting()] == ["c2"]


def test_agent_outside_the_targets_is_never_picked() -> None:
    acd = ACD()
    login(acd, prof("other", {"other": 0}))
    assert acd.request(call("c1", 1), 1) is None
    assert acd.request(call("c2", 1, targets=(AgentTarget("nobody"),)), 1) is None
    assert acd.free_agents_for(call("c3", 1)) == 0


def test_pick_agent_ignores_agents_not_available() -> None:
    p = prof("a")
    agent = Agent(p, AgentStatus.WRAP_UP, "PJSIP/a", AgentMode.PER_CALL, 0, 0)
    assert pick_agent(call("c1"), [agent], 1) is None
    agent.status = AgentStatus.AVAILABLE
    assert pick_agent(call("c1"), [agent], 1) == (agent, 0)


# -- pick_call: which call a free agent gets ------------------------------------------------


def test_higher_priority_call_is_served_before_an_older_one() -> None:
    acd = ACD()
    login(acd, prof("a"))
    busy(acd, "a", "x", 0)
    acd.request(call("old", 1, priority=0), 1)
    acd.request(call("urgent", 5, priority=3), 5)
    assert [c.call_id for c in acd.waiting()] == ["urgent", "old"]
    offers = acd.ended("a", 6, wrap_up_seconds=0)
    assert [o.call_id for o in offers] == ["urgent"]


def test_managers_own_key_client_before_an_older_general_call() -> None:
    acd = ACD()
    login(acd, prof("manager", role="manager"))
    busy(acd, "manager", "x", 0)
    acd.request(call("general", 1), 1)
    acd.request(call("key", 5, targets=KEY_CLIENT), 5)
    offers = acd.ended("manager", 6, wrap_up_seconds=0)
    assert [(o.call_id, o.tier) for o in offers] == [("key", 0)]


def test_own_queue_call_before_an_older_call_overflowing_from_another_queue() -> None:
    acd = ACD()
    login(acd, prof("a", {"support": 0}))
    busy(acd, "a", "x", 0)
    acd.request(call("overflow", 1, targets=(QueueTarget("sales"), QueueTarget("support"))), 1)
    acd.request(call("own", 5, queue="support"), 5)
    offers = acd.ended("a", 6, wrap_up_seconds=0)
    assert [(o.call_id, o.tier) for o in offers] == [("own", 0)]
    assert pick_call(acd.agent("a"), acd.waiting(), 6) is None  # a is offered now


def test_priority_still_beats_the_managers_own_client() -> None:
    acd = ACD()
    login(acd, prof("manager", role="manager"))
    busy(acd, "manager", "x", 0)
    acd.request(call("key", 1, targets=KEY_CLIENT), 1)
    acd.request(call("urgent", 5, priority=1), 5)
    offers = acd.ended("manager", 6, wrap_up_seconds=0)
    assert [o.call_id for o in offers] == ["urgent"]


def test_longest_waiting_first_at_equal_priority_and_tier() -> None:
    acd = ACD()
    login(acd, prof("a"))
    busy(acd, "a", "x", 0)
    for cid, at in [("c2", 2), ("c1", 1), ("c3", 3)]:
        acd.request(call(cid, at), at)
    offers = acd.ended("a", 6, wrap_up_seconds=0)
    assert [o.call_id for o in offers] == ["c1"]


def test_pick_call_skips_calls_the_agent_is_not_eligible_for() -> None:
    agent = Agent(
        prof("a", skills={"en"}), AgentStatus.AVAILABLE, "PJSIP/a", AgentMode.NAILED, 0, 0
    )
    calls = [call("de", 0, skills={"de"}), call("q2", 0, queue="q2"), call("ok", 9)]
    assert pick_call(agent, calls, 10) == (calls[2], 0)
    assert pick_call(agent, calls[:2], 10) is None


def test_simultaneously_free_agents_each_get_one_call_and_manager_keeps_key_client() -> None:
    acd = ACD()
    login(acd, prof("agent"), now=0)
    login(acd, prof("manager", role="manager"), now=0)
    busy(acd, "agent", "x", 0)
    busy(acd, "manager", "y", 0)
    acd.ended("agent", 1, wrap_up_seconds=10)  # free at 11: earlier than the manager
    acd.ended("manager", 2, wrap_up_seconds=10)  # free at 12
    acd.request(call("key", 3, targets=KEY_CLIENT), 3)
    acd.request(call("general", 4), 4)
    acd.request(call("third", 5), 5)
    offers = acd.tick(20)
    assert {(o.call_id, o.agent_id) for o in offers} == {("key", "manager"), ("general", "agent")}
    assert [c.call_id for c in acd.waiting()] == ["third"]


# -- declined, cancelled, answered ----------------------------------------------------------


def test_declined_offer_goes_to_the_next_agent_and_decliner_is_paused_no_answer() -> None:
    acd = ACD()
    login(acd, prof("a"), now=0)
    login(acd, prof("b"), now=1)
    first = acd.request(call("c1", 2), 2)
    assert first is not None and first.agent_id == "a"
    offers = acd.declined("c1", "a", 3)
    assert [(o.call_id, o.agent_id) for o in offers] == [("c1", "b")]
    a = acd.agent("a")
    assert (a.status, a.pause_reason, a.missed_offers) == (AgentStatus.PAUSED, "no_answer", 1)
    assert a.current_call is None


def test_declined_call_keeps_its_place_in_the_queue() -> None:
    acd = ACD()
    login(acd, prof("a"), prof("b"))
    busy(acd, "b", "x", 0)
    acd.request(call("first", 1), 1)
    acd.request(call("second", 2), 2)  # waits: b is busy, a rings for "first"
    acd.declined("first", "a", 3)
    assert [c.call_id for c in acd.waiting()] == ["first", "second"]
    assert acd.waiting()[0].arrived_at == 1
    assert acd.position("first") == 1
    offers = acd.ended("b", 4, wrap_up_seconds=0)
    assert [(o.call_id, o.agent_id) for o in offers] == [("first", "b")]


def test_decline_without_pause_frees_the_agent_but_not_for_the_same_call_in_that_step() -> None:
    acd = ACD()
    login(acd, prof("a"))
    acd.request(call("c1", 1), 1)
    assert acd.declined("c1", "a", 2, pause_agent=False) == []
    assert acd.agent("a").status is AgentStatus.AVAILABLE
    assert acd.agent("a").missed_offers == 1
    assert acd.next_deadline() == 2  # tick at once: the call may go back to "a" now
    assert [o.call_id for o in acd.tick(3)] == ["c1"]
    assert acd.next_deadline() is None


def test_decline_without_pause_lets_the_agent_take_another_waiting_call() -> None:
    acd = ACD()
    login(acd, prof("a"), prof("b"))
    busy(acd, "b", "x", 0)
    acd.request(call("c1", 1), 1)
    acd.request(call("c2", 2), 2)
    offers = acd.declined("c1", "a", 3, pause_agent=False)
    assert [(o.call_id, o.agent_id) for o in offers] == [("c2", "a")]
    assert [c.call_id for c in acd.waiting()] == ["c1"]


def test_cancel_while_offered_frees_the_agent_and_keeps_their_idle_place() -> None:
    acd = ACD()
    login(acd, prof("a"), now=0)
    login(acd, prof("b"), now=1)
    acd.request(call("c1", 2), 2)
    result = acd.cancel("c1", 3)
    assert result.agent_id == "a" and result.offers == ()
    a = acd.agent("a")
    assert (a.status, a.current_call, a.idle_since) == (AgentStatus.AVAILABLE, None, 0)
    offer = acd.request(call("c2", 4), 4)
    assert offer is not None and offer.agent_id == "a"


def test_cancel_while_offered_hands_the_agent_the_next_waiting_call() -> None:
    acd = ACD()
    login(acd, prof("a"))
    acd.request(call("c1", 1), 1)
    acd.request(call("c2", 2), 2)
    result = acd.cancel("c1", 3)
    assert result.agent_id == "a"
    assert [(o.call_id, o.agent_id) for o in result.offers] == [("c2", "a")]


def test_cancel_of_a_waiting_call_removes_it() -> None:
    acd = ACD()
    acd.request(call("c1", 1), 1)
    acd.request(call("c2", 2), 2)
    assert acd.cancel("c1", 3).agent_id is None
    assert [c.call_id for c in acd.waiting()] == ["c2"]
    assert acd.position("c2") == 1
    assert acd.position("c1") is None


def test_answered_puts_the_agent_on_the_call_and_counts_it() -> None:
    acd = ACD()
    login(acd, prof("a"))
    acd.request(call("c1", 1), 1)
    acd.answered("c1", "a", 2)
    a = acd.agent("a")
    assert (a.status, a.current_call, a.calls_taken, a.status_since) == (
        AgentStatus.ON_CALL,
        "c1",
        1,
        2,
    )
    assert acd.offers() == [] and acd.waiting() == []


def test_answering_a_call_not_offered_to_that_agent_is_an_error() -> None:
    acd = ACD()
    login(acd, prof("a"), prof("b"))
    acd.request(call("c1", 1), 1)
    with pytest.raises(ACDError) as err:
        acd.answered("c1", "b", 2)
    assert err.value.error_id == "not_offered"
    with pytest.raises(ACDError) as err:
        acd.answered("c1", "ghost", 2)
    assert err.value.error_id == "unknown_agent"


# -- wrap-up --------------------------------------------------------------------------------


def test_wrap_up_ends_on_tick_at_the_deadline() -> None:
    acd = ACD()
    login(acd, prof("a"))
    busy(acd, "a", "x", 0)
    assert acd.next_deadline() is None
    assert acd.ended("a", 10, wrap_up_seconds=30) == []
    a = acd.agent("a")
    assert (a.status, a.wrap_up_until, a.current_call) == (AgentStatus.WRAP_UP, 40, "x")
    assert acd.next_deadline() == 40
    acd.request(call("c1", 15), 15)
    assert acd.tick(39.9) == []
    assert acd.agent("a").status is AgentStatus.WRAP_UP
    offers = acd.tick(41)
    assert [o.call_id for o in offers] == ["c1"]
    assert acd.agent("a").idle_since == 40
    assert acd.next_deadline() is None


def test_zero_wrap_up_makes_the_agent_available_at_once_with_an_offer() -> None:
    acd = ACD()
    login(acd, prof("a"))
    busy(acd, "a", "x", 0)
    acd.request(call("c1", 1), 1)
    assert [o.call_id for o in acd.ended("a", 2, wrap_up_seconds=0)] == ["c1"]


def test_finish_wrap_up_early() -> None:
    acd = ACD()
    login(acd, prof("a"))
    busy(acd, "a", "x", 0)
    acd.ended("a", 10, wrap_up_seconds=60)
    assert acd.finish_wrap_up("a", 20) == []
    a = acd.agent("a")
    assert (a.status, a.idle_since, a.wrap_up_until) == (AgentStatus.AVAILABLE, 20, None)
    assert acd.next_deadline() is None
    assert acd.finish_wrap_up("a", 21) == []  # a second click changes nothing
    assert acd.agent("a").idle_since == 20


# -- agents ---------------------------------------------------------------------------------


def test_update_profile_applies_to_the_next_call_and_keeps_state() -> None:
    acd = ACD()
    login(acd, prof("a"))
    busy(acd, "a", "x", 0)
    acd.request(call("c1", 1, skills={"de"}), 1)
    assert acd.update_profile(prof("a", {"general": 0, "sales": 1}, skills={"de"}), 2) == []
    a = acd.agent("a")
    assert (a.status, a.current_call, a.calls_taken) == (AgentStatus.ON_CALL, "x", 1)
    assert [o.call_id for o in acd.ended("a", 3, wrap_up_seconds=0)] == ["c1"]


def test_update_profile_can_give_a_free_agent_a_waiting_call() -> None:
    acd = ACD()
    login(acd, prof("a"))
    acd.request(call("c1", 1, queue="sales"), 1)
    offers = acd.update_profile(prof("a", {"sales": 0}), 2)
    assert [(o.call_id, o.agent_id) for o in offers] == [("c1", "a")]


def test_offer_carries_nailed_or_per_call_mode_and_endpoint() -> None:
    acd = ACD()
    acd.login(prof("n"), "Local/n@agents", AgentMode.NAILED, 0)
    acd.login(prof("p"), "PJSIP/p", AgentMode.PER_CALL, 1)
    nailed = acd.request(call("c1", 2), 2)
    per_call = acd.request(call("c2", 2), 2)
    assert nailed == Offer("c1", "n", "Local/n@agents", AgentMode.NAILED, 0)
    assert per_call == Offer("c2", "p", "PJSIP/p", AgentMode.PER_CALL, 0)


def test_logout_is_refused_while_offered_or_on_a_call() -> None:
    acd = ACD()
    login(acd, prof("a"))
    acd.request(call("c1", 1), 1)
    for _ in range(2):
        with pytest.raises(ACDError, match="agent is on a call") as err:
            acd.logout("a", 2)
        assert err.value.error_id == "agent_busy"
        acd.answered("c1", "a", 2)
    acd.ended("a", 3, wrap_up_seconds=10)
    acd.logout("a", 4)
    a = acd.agent("a")
    assert (a.status, a.current_call, a.wrap_up_until) == (AgentStatus.LOGGED_OUT, None, None)
    assert acd.next_deadline() is None


def test_paused_and_logged_out_agents_get_no_offers() -> None:
    acd = ACD()
    login(acd, prof("p"), prof("o"))
    acd.pause("p", "break", 1)
    acd.logout("o", 1)
    assert acd.request(call("c1", 2), 2) is None
    assert acd.tick(3) == []
    assert acd.free_agents_for(call("c2", 3)) == 0


def test_unpause_offers_a_waiting_call() -> None:
    acd = ACD()
    login(acd, prof("a"))
    acd.pause("a", "break", 1)
    acd.request(call("c1", 2), 2)
    offers = acd.unpause("a", 3)
    assert [(o.call_id, o.agent_id) for o in offers] == [("c1", "a")]


def test_relogin_updates_endpoint_and_mode_and_makes_available() -> None:
    acd = ACD()
    login(acd, prof("a"))
    acd.pause("a", "break", 1)
    acd.request(call("c1", 2), 2)
    offers = acd.login(prof("a"), "Local/a@nailed", AgentMode.NAILED, 3)
    assert offers == [Offer("c1", "a", "Local/a@nailed", AgentMode.NAILED, 0)]


def test_relogin_during_a_call_keeps_the_call() -> None:
    acd = ACD()
    login(acd, prof("a"))
    busy(acd, "a", "x", 0)
    assert acd.login(prof("a"), "PJSIP/a2", AgentMode.PER_CALL, 1) == []
    a = acd.agent("a")
    assert (a.status, a.endpoint, a.current_call) == (AgentStatus.ON_CALL, "PJSIP/a2", "x")


def test_pause_during_a_call_takes_effect_after_it() -> None:
    acd = ACD()
    login(acd, prof("a"))
    busy(acd, "a", "x", 0)
    acd.pause("a", "training", 1)
    assert acd.agent("a").status is AgentStatus.ON_CALL
    acd.request(call("c1", 2), 2)
    assert acd.ended("a", 3, wrap_up_seconds=0) == []
    a = acd.agent("a")
    assert (a.status, a.pause_reason) == (AgentStatus.PAUSED, "training")


def test_pause_a_logged_out_or_unknown_agent_is_an_error() -> None:
    acd = ACD()
    login(acd, prof("a"))
    acd.logout("a", 1)
    with pytest.raises(ACDError) as err:
        acd.pause("a", "x", 2)
    assert err.value.error_id == "logged_out"
    for method in (acd.logout, acd.unpause, acd.finish_wrap_up):
        with pytest.raises(ACDError) as err:
            method("ghost", 2)
        assert err.value.error_id == "unknown_agent"


# -- duplicated and reordered events --------------------------------------------------------


def test_duplicate_events_are_no_ops() -> None:
    acd = ACD()
    login(acd, prof("a"), prof("b"))
    first = acd.request(call("c1", 1), 1)
    assert first is not None
    assert acd.request(call("c1", 5, priority=9), 5) is None  # duplicate while offered
    assert acd.offers() == [first]
    acd.request(call("c2", 2), 2)
    acd.request(call("c3", 3), 3)  # waits
    assert acd.request(call("c3", 6), 6) is None  # duplicate while waiting
    assert acd.waiting()[0].arrived_at == 3
    acd.answered("c1", "a", 7)
    acd.answered("c1", "a", 8)
    assert acd.agent("a").calls_taken == 1
    assert acd.agent("a").status_since == 7
    assert acd.declined("c1", "a", 8) == []  # a late decline after the answer
    assert acd.declined("c3", "b", 8) == []  # never offered to b
    assert acd.cancel("nope", 8).agent_id is None
    acd.ended("a", 9, wrap_up_seconds=5)
    assert acd.ended("a", 10, wrap_up_seconds=5) == []
    assert acd.agent("a").wrap_up_until == 14
    acd.answered("c1", "a", 10)  # very late duplicate
    assert acd.unpause("a", 10) == []
    assert acd.agent("a").status is AgentStatus.WRAP_UP


def test_hangup_before_the_answered_event_counts_the_call() -> None:
    acd = ACD()
    login(acd, prof("a"))
    acd.request(call("c1", 1), 1)
    acd.ended("a", 2, wrap_up_seconds=0)
    acd.answered("c1", "a", 3)  # arrives late: harmless
    a = acd.agent("a")
    assert (a.status, a.calls_taken) == (AgentStatus.AVAILABLE, 1)
    assert acd.offers() == []


# -- queries --------------------------------------------------------------------------------


def test_position_and_expected_wait_per_queue() -> None:
    acd = ACD()
    login(acd, prof("a", {"sales": 0}), prof("b", {"sales": 0}), prof("c", {"sales": 0}))
    acd.pause("c", "break", 0)
    busy(acd, "a", "x", 0)
    busy(acd, "b", "y", 0)
    acd.request(call("s1", 1, queue="sales"), 1)
    acd.request(call("s2", 2, queue="sales"), 2)
    acd.request(call("vip", 3, queue="sales", priority=1), 3)
    acd.request(call("g1", 0, queue="general"), 0)
    assert [c.call_id for c in acd.waiting("sales")] == ["vip", "s1", "s2"]
    assert [c.call_id for c in acd.waiting()] == ["vip", "g1", "s1", "s2"]
    assert [acd.position(c) for c in ("vip", "s1", "s2", "g1")] == [1, 2, 3, 1]
    assert acd.expected_wait("s2", 4, average_handle_seconds=100) == 150
    assert acd.expected_wait("g1", 4, average_handle_seconds=100) == 100  # nobody: max(1, 0)
    assert acd.expected_wait("x", 4, average_handle_seconds=100) is None


def test_free_agents_for_counts_available_eligible_agents() -> None:
    acd = ACD()
    login(acd, prof("a", skills={"en"}), prof("b"), prof("c", skills={"en"}))
    busy(acd, "c", "x", 0)
    assert acd.free_agents_for(call("q", 1)) == 2
    assert acd.free_agents_for(call("q", 1, skills={"en"})) == 1
    assert acd.free_agents_for(call("q", 1, skills={"en", "de"})) == 0
    acd.pause("a", "break", 1)
    login(acd, prof("d", skills={"en"}))
    assert acd.free_agents_for(call("q", 1, skills={"en"})) == 1


def test_snapshot_for_the_wallboard() -> None:
    acd = ACD()
    login(acd, prof("a", {"sales": 0}), now=0)
    login(acd, prof("b", {"sales": 0, "general": 1}), now=0)
    acd.pause("b", "lunch", 5)
    busy(acd, "a", "x", 10)
    acd.request(call("s1", 12, queue="sales"), 12)
    acd.request(call("s2", 15, queue="sales"), 15)
    snap = acd.snapshot(20)
    assert snap["queues"] == {
        "general": {"waiting": 0, "longest_wait": 0.0, "available": 0},
        "sales": {"waiting": 2, "longest_wait": 8, "available": 0},
    }
    assert snap["agents"]["a"] == {
        "name": "A",
        "status": "on_call",
        "seconds_in_status": 10,
        "pause_reason": None,
        "current_call": "x",
    }
    assert snap["agents"]["b"]["status"] == "paused"
    assert snap["agents"]["b"]["pause_reason"] == "lunch"
    assert snap["agents"]["b"]["seconds_in_status"] == 15


# -- invariants over random event sequences -------------------------------------------------

AGENT_IDS = ("a1", "a2", "a3", "m1")
QUEUES = ("sales", "support")
SKILLS = ("en", "de")

queue_maps = st.dictionaries(st.sampled_from(QUEUES), st.integers(0, 2), max_size=2)
skill_sets = st.frozensets(st.sampled_from(SKILLS), max_size=2)
target_lists = st.lists(
    st.one_of(
        st.builds(AgentTarget, st.sampled_from(AGENT_IDS)),
        st.builds(QueueTarget, st.sampled_from(QUEUES)),
    ),
    max_size=3,
).map(tuple)


class ACDMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.acd = ACD()
        self.now = 0.0
        self.calls = 0
        self.arrivals: dict[str, float] = {}
        self.outstanding: dict[str, str] = {}  # every offer the ACD handed out, until resolved
        # The last call declined without a pause, its decliner, and when: the one exception to
        # work conservation, until the next matching step (tick, unpause, ...).
        self.skip: tuple[str, str, float] | None = None

    def _step(self) -> None:
        self.now += 1

    def _matched(self, offers: Iterable[Offer]) -> None:
        """Record the offers of a step that matched all free agents and waiting calls."""
        self._record(offers)
        self.skip = None

    def _record(self, offers: Iterable[Offer]) -> None:
        for offer in offers:
            assert offer.call_id not in self.outstanding
            assert offer.agent_id not in self.outstanding.values()
            self.outstanding[offer.call_id] = offer.agent_id

    def _known(self, agent_id: str) -> bool:
        return any(a.id == agent_id for a in self.acd.agents())

    @rule(dt=st.floats(0, 30))
    def advance(self, dt: float) -> None:
        self.now += dt

    @rule(
        agent_id=st.sampled_from(AGENT_IDS),
        queues=queue_maps,
        skills=skill_sets,
        mode=st.sampled_from(AgentMode),
    )
    def login(
        self, agent_id: str, queues: dict[str, int], skills: frozenset[str], mode: AgentMode
    ) -> None:
        self._step()
        self._matched(self.acd.login(prof(agent_id, queues, skills), agent_id, mode, self.now))

    @rule(agent_id=st.sampled_from(AGENT_IDS))
    def logout(self, agent_id: str) -> None:
        self._step()
        if not self._known(agent_id):
            return
        was_busy = self.acd.agent(agent_id).status in (AgentStatus.OFFERED, AgentStatus.ON_CALL)
        try:
            self.acd.logout(agent_id, self.now)
        except ACDError as err:
            assert was_busy and err.error_id == "agent_busy"
        else:
            assert not was_busy

    @rule(agent_id=st.sampled_from(AGENT_IDS), reason=st.sampled_from(["break", "lunch"]))
    def pause(self, agent_id: str, reason: str) -> None:
        self._step()
        try:
            self.acd.pause(agent_id, reason, self.now)
        except ACDError as err:
            assert err.error_id in ("unknown_agent", "logged_out")

    @rule(agent_id=st.sampled_from(AGENT_IDS))
    def unpause(self, agent_id: str) -> None:
        self._step()
        if self._known(agent_id):
            self._matched(self.acd.unpause(agent_id, self.now))

    @rule(agent_id=st.sampled_from(AGENT_IDS), queues=queue_maps, skills=skill_sets)
    def update_profile(self, agent_id: str, queues: dict[str, int], skills: frozenset[str]) -> None:
        self._step()
        if self._known(agent_id):
            self._matched(self.acd.update_profile(prof(agent_id, queues, skills), self.now))

    @rule(
        queue=st.sampled_from(QUEUES),
        route=target_lists,
        priority=st.integers(0, 2),
        skills=st.frozensets(st.sampled_from(SKILLS), max_size=1),
    )
    def request(
        self, queue: str, route: tuple[Target, ...], priority: int, skills: frozenset[str]
    ) -> None:
        self._step()
        self.calls += 1
        request = call(
            f"c{self.calls}",
            self.now,
            queue=queue,
            targets=route,
            priority=priority,
            skills=skills,
        )
        self.arrivals[request.call_id] = self.now
        offer = self.acd.request(request, self.now)
        self._record([] if offer is None else [offer])

    @precondition(lambda self: self.calls > 0)
    @rule(data=st.data())
    def duplicate_request(self, data: st.DataObject) -> None:
        self._step()
        call_id = f"c{data.draw(st.integers(1, self.calls))}"
        pending = {c.call_id for c in self.acd.waiting()} | set(self.outstanding)
        if call_id in pending:
            before = (self.acd.waiting(), self.acd.offers())
            assert self.acd.request(call(call_id, self.now, priority=5), self.now) is None
            assert (self.acd.waiting(), self.acd.offers()) == before

    @precondition(lambda self: self.outstanding)
    @rule(data=st.data(), twice=st.booleans())
    def answer(self, data: st.DataObject, twice: bool) -> None:
        self._step()
        call_id = data.draw(st.sampled_from(sorted(self.outstanding)))
        agent_id = self.outstanding.pop(call_id)
        for _ in range(1 + twice):
            self.acd.answered(call_id, agent_id, self.now)
        assert self.acd.agent(agent_id).status is AgentStatus.ON_CALL

    @precondition(lambda self: self.outstanding)
    @rule(data=st.data(), pause_agent=st.booleans(), twice=st.booleans())
    def decline(self, data: st.DataObject, pause_agent: bool, twice: bool) -> None:
        self._step()
        call_id = data.draw(st.sampled_from(sorted(self.outstanding)))
        agent_id = self.outstanding.pop(call_id)
        missed = self.acd.agent(agent_id).missed_offers
        offers = self.acd.declined(call_id, agent_id, self.now, pause_agent=pause_agent)
        assert all((o.call_id, o.agent_id) != (call_id, agent_id) for o in offers)
        self._record(offers)
        if twice:
            assert self.acd.declined(call_id, agent_id, self.now) == []
        assert self.acd.agent(agent_id).missed_offers == missed + 1
        if pause_agent:
            assert self.acd.agent(agent_id).status is AgentStatus.PAUSED
        self.skip = None if pause_agent else (call_id, agent_id, self.now)

    @precondition(lambda self: self.calls > 0)
    @rule(data=st.data())
    def cancel(self, data: st.DataObject) -> None:
        self._step()
        call_id = f"c{data.draw(st.integers(1, self.calls + 1))}"
        result = self.acd.cancel(call_id, self.now)
        assert result.agent_id == self.outstanding.pop(call_id, None)
        self._record(result.offers)
        assert call_id not in {c.call_id for c in self.acd.waiting()}

    @rule(agent_id=st.sampled_from(AGENT_IDS), wrap=st.sampled_from([0, 5, 30]))
    def end(self, agent_id: str, wrap: float) -> None:
        self._step()
        if not self._known(agent_id):
            return
        agent = self.acd.agent(agent_id)
        if agent.status is AgentStatus.OFFERED:
            self.outstanding.pop(str(agent.current_call))
        self._record(self.acd.ended(agent_id, self.now, wrap))

    @rule(agent_id=st.sampled_from(AGENT_IDS))
    def finish_wrap_up(self, agent_id: str) -> None:
        self._step()
        if self._known(agent_id):
            self._matched(self.acd.finish_wrap_up(agent_id, self.now))

    @rule()
    def tick(self) -> None:
        self._step()
        self._matched(self.acd.tick(self.now))
        deadline = self.acd.next_deadline()
        assert deadline is None or deadline > self.now

    @invariant()
    def offers_match_what_was_handed_out(self) -> None:
        assert {o.call_id: o.agent_id for o in self.acd.offers()} == self.outstanding

    @invariant()
    def one_call_per_agent_and_one_agent_per_call(self) -> None:
        waiting = {c.call_id for c in self.acd.waiting()}
        assert not waiting & set(self.outstanding)
        assert len(set(self.outstanding.values())) == len(self.outstanding)
        for agent in self.acd.agents():
            offered = [c for c, a in self.outstanding.items() if a == agent.id]
            if agent.status is AgentStatus.OFFERED:
                assert offered == [agent.current_call]
            else:
                assert offered == []  # in particular: paused and logged-out agents
            if agent.status is AgentStatus.ON_CALL:
                assert agent.current_call is not None and agent.current_call not in waiting
            if agent.status in (AgentStatus.AVAILABLE, AgentStatus.PAUSED, AgentStatus.LOGGED_OUT):
                assert agent.current_call is None and agent.wrap_up_until is None

    @invariant()
    def work_conserving(self) -> None:
        exempt = None if self.skip is None else self.skip[:2]
        for waiting in self.acd.waiting():
            for agent in self.acd.agents():
                if agent.status is AgentStatus.AVAILABLE and (waiting.call_id, agent.id) != exempt:
                    assert eligibility(waiting, agent) is None, (waiting, agent)

    @invariant()
    def waiting_calls_keep_their_place(self) -> None:
        waiting = self.acd.waiting()
        for c in waiting:
            assert c.arrived_at == self.arrivals[c.call_id]
        assert waiting == sorted(waiting, key=lambda c: (-c.priority, c.arrived_at, c.call_id))
        for queue in QUEUES:
            in_queue = self.acd.waiting(queue)
            assert [self.acd.position(c.call_id) for c in in_queue] == list(
                range(1, len(in_queue) + 1)
            )

    @invariant()
    def next_deadline_is_the_earliest_wrap_up_or_a_pending_retry(self) -> None:
        ends = [a.wrap_up_until for a in self.acd.agents() if a.status is AgentStatus.WRAP_UP]
        assert all(e is not None for e in ends)
        earliest = min((e for e in ends if e is not None), default=None)
        deadline = self.acd.next_deadline()
        if deadline != earliest:  # a declined call may go back to its decliner: tick at once
            assert self.skip is not None and deadline == self.skip[2] <= self.now
            assert self.skip[0] in {c.call_id for c in self.acd.waiting()}


ACDMachine.TestCase.settings = settings(max_examples=200, stateful_step_count=40, deadline=None)
TestACDInvariants = ACDMachine.TestCase


def test_held_the_acd_offers_nothing_until_released_then_matches_everyone() -> None:
    acd = ACD()
    acd.hold()
    login(acd, prof("ana"), prof("ben"), now=1.0)
    assert acd.request(call("c1", at=2.0), 2.0) is None
    assert acd.request(call("c2", at=3.0), 3.0) is None
    acd.adopt_call("talk", "ben", 3.5)  # a talk adopted meanwhile keeps its agent
    assert [c.call_id for c in acd.waiting()] == ["c1", "c2"] and acd.offers() == []
    offers = acd.release(4.0)
    assert [(o.call_id, o.agent_id) for o in offers] == [("c1", "ana")]
    assert [c.call_id for c in acd.waiting()] == ["c2"]
    assert acd.request(call("c3", at=5.0), 5.0) is None  # released: c2 still waits first
