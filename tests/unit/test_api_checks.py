"""The agent API's checks come before any effect: bad input gets a clear, stable error."""

from __future__ import annotations

import pytest
from core.acd import AgentMode, AgentTarget, QueueTarget
from core.errors import AgentDeskError, CallControlError
from core.routing import RouteDecision, parse_transfer_target, transfer_decision
from web.api import check_login, check_reason, check_transfer

from ari_app.agents import _clean_caller_id


def test_login_defaults_to_ringing_per_call_with_the_phone_on_file() -> None:
    assert check_login({}) == (None, AgentMode.PER_CALL)
    assert check_login({"endpoint": "pjsip/101", "mode": "nailed"}) == (
        "PJSIP/101",
        AgentMode.NAILED,
    )


@pytest.mark.parametrize(
    "endpoint",
    ["PJSIP/101&PJSIP/102", "PJSIP/101,30,tT", "Local/1@x\nAction: Originate", "SIP", 5],
)
def test_login_refuses_dial_strings_that_would_inject(endpoint: object) -> None:
    with pytest.raises(AgentDeskError) as err:
        check_login({"endpoint": endpoint})
    assert (err.value.error_id, err.value.status) == ("bad_endpoint", 422)


def test_login_refuses_an_unknown_mode() -> None:
    with pytest.raises(AgentDeskError, match="per_call or nailed"):
        check_login({"mode": "always"})


@pytest.mark.parametrize("reason", ["", "  ", "x" * 81, "lunch\n", 7])
def test_pause_reason_must_be_short_printable_text(reason: object) -> None:
    with pytest.raises(AgentDeskError):
        check_reason({"reason": reason})


def test_pause_reason_defaults_to_break() -> None:
    assert check_reason({}) == "break"
    assert check_reason({"reason": " training "}) == "training"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"to": "supervisor"}, ("supervisor", "transfer")),
        ({"to": "agent:a1", "mode": "attended"}, ("agent:a1", "consult")),
    ],
)
def test_transfer_request(body: dict[str, object], expected: tuple[str, str]) -> None:
    assert check_transfer(body) == expected


@pytest.mark.parametrize("body", [{}, {"to": 5}, {"to": "supervisor", "mode": "warm"}])
def test_transfer_request_refused(body: dict[str, object]) -> None:
    with pytest.raises(CallControlError):
        check_transfer(body)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("supervisor", ("queue", "supervisor")),
        ("queue:finance", ("queue", "finance")),
        ("agent:m-1.x@y", ("agent", "m-1.x@y")),
        ("survey", ("survey", "")),  # the line's default post-call survey
        ("survey:nps", ("survey", "nps")),
    ],
)
def test_transfer_targets(text: str, expected: tuple[str, str]) -> None:
    assert parse_transfer_target(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        "agent:",
        "boss",
        "queue:a b",
        "agent:x\nAction: Hangup",
        "agent:" + "a" * 65,
        "survey:",
        "survey:NPS",
        "survey:nps\n",
        "surveys",
    ],
)
def test_bad_transfer_targets(text: str) -> None:
    with pytest.raises(ValueError):
        parse_transfer_target(text)


def test_transferred_caller_keeps_priority_and_waits_for_the_named_agent() -> None:
    before = RouteDecision("x", "key_accounts", (AgentTarget("m1"),), 20, frozenset())
    to_agent = transfer_decision(before, "agent:m2")
    assert (to_agent.queue, to_agent.targets, to_agent.priority) == (
        "key_accounts",
        (AgentTarget("m2"),),
        20,
    )
    to_queue = transfer_decision(before, "queue:finance")
    assert (to_queue.queue, to_queue.targets) == ("finance", (QueueTarget("finance"),))


def test_a_survey_is_no_place_to_wait_in() -> None:
    with pytest.raises(ValueError):
        transfer_decision(None, "survey")


def test_caller_id_shown_to_agents_is_cleaned() -> None:
    assert _clean_caller_id('Ana "x" <y>\n', "+387 61\r\n123") == '"Ana x y" <+38761123>'
    assert _clean_caller_id(None, "anonymous") == "<anonymous>"
