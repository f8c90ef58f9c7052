"""Who gets this call: the shipped routing rules, rule by rule, and properties of the
decision for every kind of caller and intent."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml
from core.acd import AgentTarget, QueueTarget
from core.routing import (
    Caller,
    NoRoute,
    OverflowDecision,
    decide,
    matches,
    on_max_wait,
    overflow_decision,
    queue_is_open,
)
from hypothesis import given
from hypothesis import strategies as st

from dialplan.model import Flow, Match, Overflow, QueueDef

FLOW = Flow.model_validate(
    yaml.safe_load((Path(__file__).parents[2] / "dialplan" / "infoline.yaml").read_text())
)
QUEUES = dict(FLOW.queues)
INTENTS = ["my_loan", "complaint", "credit_application", "urgent", "operator", "donation"]

KEY = Caller(client_id=1, client_type="key", assigned_manager="m1")
KEY_NO_MANAGER = Caller(client_id=2, client_type="key")
DEBTOR = Caller(client_id=3, client_type="regular", overdue_debt=True)
REGULAR = Caller(client_id=4, client_type="regular")
UNKNOWN = Caller()


def test_key_client_goes_to_own_manager_then_key_accounts_then_head_of_sales() -> None:
    d = decide(FLOW, QUEUES, KEY, "my_loan")
    assert d.queue == "key_accounts"
    assert d.targets == (
        AgentTarget("m1"),
        QueueTarget("key_accounts"),
        QueueTarget("head_of_sales"),
    )


def test_key_client_without_a_manager_starts_at_the_key_account_queue() -> None:
    d = decide(FLOW, QUEUES, KEY_NO_MANAGER, "operator")
    assert d.targets == (QueueTarget("key_accounts"), QueueTarget("head_of_sales"))


def test_overdue_debt_goes_to_finance() -> None:
    assert decide(FLOW, QUEUES, DEBTOR, "my_loan").queue == "finance"


def test_new_caller_goes_to_the_new_client_desk() -> None:
    assert decide(FLOW, QUEUES, UNKNOWN, "operator").queue == "new_clients"


def test_known_regular_client_goes_to_the_general_queue() -> None:
    d = decide(FLOW, QUEUES, REGULAR, "my_loan")
    assert (d.queue, d.targets) == ("general", (QueueTarget("general"),))


@pytest.mark.parametrize("caller", [KEY, DEBTOR, REGULAR, UNKNOWN])
@pytest.mark.parametrize("intent", ["complaint", "donation", "credit_application"])
def test_escalations_go_to_the_supervisor_whoever_calls(caller: Caller, intent: str) -> None:
    d = decide(FLOW, QUEUES, caller, intent)
    assert (d.queue, d.priority) == ("supervisor", 50)


@pytest.mark.parametrize("caller", [KEY, DEBTOR, REGULAR, UNKNOWN])
def test_urgent_matters_come_first_whoever_calls(caller: Caller) -> None:
    d = decide(FLOW, QUEUES, caller, "urgent")
    assert d.queue == "urgent"
    assert d.priority == max(r.priority for r in FLOW.routes)


callers = st.builds(
    Caller,
    client_id=st.none() | st.integers(1, 10**6),
    client_type=st.sampled_from([None, "key", "regular", "new"]),
    overdue_debt=st.booleans(),
    language=st.sampled_from([None, "bs", "en", "ro"]),
    assigned_manager=st.none() | st.sampled_from(["m1", "m2"]),
)


@given(callers, st.sampled_from([*INTENTS, None]))
def test_every_caller_and_intent_gets_exactly_the_first_matching_rule(
    caller: Caller, intent: str | None
) -> None:
    d = decide(FLOW, QUEUES, caller, intent)
    first = next(r for r in FLOW.routes if matches(r.when, caller, intent))
    assert d.rule == first.name
    assert d.queue in QUEUES
    assert d.targets  # never an empty list: someone can take the call
    assert all(isinstance(t, AgentTarget | QueueTarget) for t in d.targets)
    # the own manager is only ever a target of that manager's own clients
    managers = {t.agent_id for t in d.targets if isinstance(t, AgentTarget)}
    assert managers <= ({caller.assigned_manager} if caller.assigned_manager else set())


def test_a_flow_without_a_matching_rule_raises() -> None:
    flow = FLOW.model_copy(update={"routes": FLOW.routes[:1]})  # only "urgent"
    with pytest.raises(NoRoute):
        decide(flow, QUEUES, REGULAR, "my_loan")


def test_matches_needs_every_condition() -> None:
    when = Match(intent=["my_loan"], client_type=["key"], overdue_debt=False)
    assert matches(when, KEY, "my_loan")
    assert not matches(when, KEY, "complaint")
    assert not matches(when, REGULAR, "my_loan")
    assert not matches(Match(known=True), UNKNOWN, None)
    assert matches(Match(), UNKNOWN, None)


def test_queue_edits_in_the_database_apply_to_the_next_decision() -> None:
    edited = {
        **QUEUES,
        "general": QUEUES["general"].model_copy(update={"priority": 7, "skills": ["loans"]}),
    }
    d = decide(FLOW, edited, REGULAR, "my_loan")
    assert (d.priority, d.skills) == (7, frozenset({"loans"}))


def test_office_queue_is_closed_on_sunday_and_urgent_is_always_open() -> None:
    sunday_noon = datetime(2026, 11, 22, 11, 0, tzinfo=UTC)
    monday_ten = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)  # 10:00 in Sarajevo
    assert not queue_is_open(FLOW.calendars, QUEUES["general"], sunday_noon)
    assert queue_is_open(FLOW.calendars, QUEUES["general"], monday_ten)
    assert queue_is_open(FLOW.calendars, QUEUES["urgent"], sunday_noon)
    assert queue_is_open(FLOW.calendars, None, sunday_noon)


def test_overflow_goes_to_the_next_queue_then_to_a_callback() -> None:
    key_accounts = QUEUES["key_accounts"]
    assert on_max_wait(key_accounts, ("key_accounts",)) == OverflowDecision(
        "queue", "head_of_sales"
    )
    assert on_max_wait(QUEUES["head_of_sales"], ("key_accounts", "head_of_sales")) == (
        OverflowDecision("callback")
    )


def test_overflow_never_bounces_a_caller_back_to_a_queue_they_were_in() -> None:
    looping = QueueDef(name="a", overflow=Overflow(queue="b"))
    assert on_max_wait(looping, ("b", "a")) == OverflowDecision("callback")


def test_overflow_keeps_the_callers_priority() -> None:
    d = decide(FLOW, QUEUES, KEY, "my_loan")
    moved = overflow_decision(d, "head_of_sales")
    assert (moved.queue, moved.priority, moved.targets) == (
        "head_of_sales",
        d.priority,
        (QueueTarget("head_of_sales"),),
    )
