"""The live state a restarted `serve` adopts a call from: it round-trips, and anything else
(another version, a hand-edited row, hostile JSON) reads as None, never as an exception."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.acd import (
    ACD,
    ACDError,
    AgentMode,
    AgentProfile,
    AgentStatus,
    AgentTarget,
    QueueTarget,
)
from core.livestate import LiveCall, decode_decision, encode_decision, parse_time
from core.routing import RouteDecision

DECISION = RouteDecision(
    rule="key_client",
    queue="key_accounts",
    targets=(AgentTarget("mia"), QueueTarget("key_accounts")),
    priority=5,
    skills=frozenset({"bs", "loans"}),
)


def test_route_decision_round_trips() -> None:
    assert decode_decision(encode_decision(DECISION)) == DECISION
    assert encode_decision(None) is None


def test_live_call_round_trips_through_json() -> None:
    at = datetime(2026, 11, 30, 10, 0, tzinfo=UTC)
    call = LiveCall(
        phase="connected",
        node="main_menu",
        language="bs",
        path=["notice", "main_menu:0"],
        playing="p3",
        seq=3,
        decision=encode_decision(DECISION),
        visited=["key_accounts"],
        queued_at=LiveCall.time(at),
        agent_id="mia",
        agent_leg="agent-1",
        bridge_id="call-1",
        own_bridge=True,
        connected_at=LiveCall.time(at),
    )
    assert LiveCall.from_json(call.to_json()) == call
    assert parse_time(call.connected_at) == at


@pytest.mark.parametrize(
    "data",
    [
        None,
        [],
        "ivr",
        {"phase": "ivr"},  # no version
        {"v": 99, "phase": "ivr"},
        {"v": 1, "phase": "ended"},
        {"v": 1, "phase": "ivr", "path": "notice"},
        {"v": 1, "phase": "ivr", "path": [1, 2]},
        {"v": 1, "phase": "ivr", "seq": "1"},
        {"v": 1, "phase": "ivr", "on_hold": "yes"},
        {"v": 1, "phase": "ivr", "node": 7},
        {"v": 1, "phase": "queued", "decision": {"queue": "x"}},
    ],
)
def test_anything_but_a_live_state_reads_as_none(data: Any) -> None:
    assert LiveCall.from_json(data) is None


def test_unknown_keys_from_a_newer_writer_are_ignored() -> None:
    assert LiveCall.from_json({"v": 1, "phase": "ivr", "later": 1}) == LiveCall(phase="ivr")


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(),
        lambda c: st.lists(c) | st.dictionaries(st.text(), c),
    )
)
def test_arbitrary_json_never_raises(data: Any) -> None:
    LiveCall.from_json(data)
    LiveCall.from_json({"v": 1, "phase": "queued", "decision": data})


def test_time_without_zone_or_garbage_is_none() -> None:
    assert parse_time("2026-11-30T10:00:00") is None
    assert parse_time("yesterday") is None
    assert parse_time(5) is None


PROFILE = AgentProfile("ana", "Ana", queues={"q": 0})


def test_adopted_call_puts_its_agent_back_on_it_and_a_pending_pause_waits() -> None:
    acd = ACD()
    acd.login(PROFILE, "Local/ana", AgentMode.PER_CALL, 0.0)
    acd.pause("ana", "lunch", 0.0)
    acd.adopt_call("caller-1", "ana", 1.0)
    agent = acd.agent("ana")
    assert (agent.status, agent.current_call) == (AgentStatus.ON_CALL, "caller-1")
    acd.adopt_call("caller-1", "ana", 2.0)  # again: no change
    assert acd.ended("ana", 3.0, 0) == []
    assert acd.agent("ana").status is AgentStatus.PAUSED


def test_adopting_a_call_for_an_agent_busy_or_logged_out_is_refused() -> None:
    acd = ACD()
    with pytest.raises(ACDError):
        acd.adopt_call("caller-1", "ana", 0.0)
    acd.login(PROFILE, "Local/ana", AgentMode.PER_CALL, 0.0)
    acd.adopt_call("caller-1", "ana", 1.0)
    with pytest.raises(ACDError) as err:
        acd.adopt_call("caller-2", "ana", 1.0)
    assert err.value.error_id == "agent_busy"
    acd.ended("ana", 2.0, 0)
    acd.logout("ana", 2.0)
    with pytest.raises(ACDError) as err:
        acd.adopt_call("caller-3", "ana", 3.0)
    assert err.value.error_id == "logged_out"
