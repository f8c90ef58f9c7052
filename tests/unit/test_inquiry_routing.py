"""Who takes which written inquiry (core/inquiries/routing.py): only available agents of the
inquiry's queue, never one on a call, ringing, wrapping up or paused; the urgent and the
oldest first; to the lowest penalty, then the least loaded, then the longest idle; nobody
past the most they may hold; and, whatever the agents and inquiries, every pair is allowed
and no inquiry goes twice."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from core.acd import Agent, AgentMode, AgentProfile, AgentStatus
from core.inquiries.routing import WaitingInquiry, assign

T0 = datetime(2026, 12, 2, 9, tzinfo=UTC)


def agent(
    agent_id: str,
    status: AgentStatus = AgentStatus.AVAILABLE,
    queues: dict[str, int] | None = None,
    idle_since: float = 0.0,
) -> Agent:
    profile = AgentProfile(
        agent_id, agent_id, queues=queues if queues is not None else {"general": 0}
    )
    return Agent(profile, status, f"PJSIP/{agent_id}", AgentMode.PER_CALL, 0.0, idle_since)


def inquiry(i: int, queue: str = "general", priority: int = 0, minutes: int = 0) -> WaitingInquiry:
    return WaitingInquiry(i, queue, priority, T0 + timedelta(minutes=minutes))


def test_a_call_is_never_interrupted_and_written_work_fills_the_gaps() -> None:
    busy = [
        agent(s.value, s)
        for s in (AgentStatus.ON_CALL, AgentStatus.OFFERED, AgentStatus.WRAP_UP, AgentStatus.PAUSED)
    ]
    assert assign(busy, {}, [inquiry(1)]) == []
    assert assign([*busy, agent("free")], {}, [inquiry(1)]) == [(1, "free")]


def test_urgent_and_old_first_to_the_lowest_penalty_then_the_least_loaded() -> None:
    ana = agent("ana", queues={"general": 1}, idle_since=1.0)
    bob = agent("bob", queues={"general": 0}, idle_since=5.0)
    cid = agent("cid", queues={"general": 0}, idle_since=2.0)
    waiting = [inquiry(1, minutes=5), inquiry(2, priority=1, minutes=9), inquiry(3, minutes=1)]
    # The complaint (priority 1) first; bob and cid have penalty 0; cid has the longer idle,
    # but bob holds none and cid one.
    assert assign([ana, bob, cid], {"cid": 1}, waiting) == [(2, "bob"), (3, "cid"), (1, "bob")]


def test_nobody_past_the_most_they_hold_and_only_their_queues() -> None:
    ana = agent("ana", queues={"loans": 0})
    assert assign([ana], {"ana": 3}, [inquiry(1, "loans")]) == []
    assert assign([ana], {"ana": 2}, [inquiry(1, "loans"), inquiry(2, "loans")]) == [(1, "ana")]
    assert assign([ana], {}, [inquiry(1, "general")]) == []


statuses = st.sampled_from(list(AgentStatus))
queues = st.sampled_from(["general", "loans", "complaints"])


@given(
    st.lists(st.tuples(statuses, st.dictionaries(queues, st.integers(0, 3))), max_size=6),
    st.lists(st.tuples(queues, st.integers(0, 2), st.integers(0, 60)), max_size=12),
    st.lists(st.integers(0, 4), min_size=6, max_size=6),
)
def test_every_pair_is_allowed_and_no_inquiry_goes_twice(
    specs: list[tuple[AgentStatus, dict[str, int]]],
    waits: list[tuple[str, int, int]],
    loads: list[int],
) -> None:
    agents = [agent(f"a{i}", s, q) for i, (s, q) in enumerate(specs)]
    held = {f"a{i}": loads[i] for i in range(len(agents))}
    waiting = [inquiry(i, q, p, m) for i, (q, p, m) in enumerate(waits)]
    pairs = assign(agents, held, waiting)
    by_id = {a.id: a for a in agents}
    assert len({i for i, _ in pairs}) == len(pairs)
    given_to: dict[str, int] = {}
    for inquiry_id, agent_id in pairs:
        chosen = by_id[agent_id]
        assert chosen.status is AgentStatus.AVAILABLE
        assert waiting[inquiry_id].queue in chosen.profile.queues
        given_to[agent_id] = given_to.get(agent_id, 0) + 1
    assert all(held[a] + n <= 3 for a, n in given_to.items())
