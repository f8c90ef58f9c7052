"""The info line's decisions between the IVR's actions (core.infoline), which the Stasis app
and the call simulator both take: the callback offers, the queue's callback key, the keys a
call takes, and the callback task a request makes."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import yaml

from core.infoline import (
    CallbackOffer,
    after_hours_offer,
    callback_offer,
    callback_task,
    is_dtmf,
    leaves_queue_for_callback,
)
from core.ivr import RequestCallback
from core.routing import Caller
from dialplan.model import Flow

FLOW = Flow.model_validate(
    yaml.safe_load((Path(__file__).parents[2] / "dialplan" / "infoline.yaml").read_text())
)
TUESDAY_NIGHT = datetime(2026, 12, 1, 19, 0, tzinfo=UTC)  # 20:00 in Sarajevo
TUESDAY_MORNING = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


def test_a_closed_queue_says_so_before_the_offer_the_queue_key_does_not() -> None:
    assert after_hours_offer(FLOW) == CallbackOffer("callback_request", ("after_hours",))
    assert callback_offer(FLOW) == CallbackOffer("callback_request", ())
    bare = FLOW.model_copy(update={"after_hours_prompt": None, "after_hours_callback": None})
    assert after_hours_offer(bare) == CallbackOffer(None, ())  # no node: the call is hung up


def test_only_the_flows_callback_key_leaves_the_queue() -> None:
    assert leaves_queue_for_callback(FLOW, "*")
    assert not leaves_queue_for_callback(FLOW, "#")
    assert not leaves_queue_for_callback(
        FLOW.model_copy(update={"queue_key_for_callback": None}), "*"
    )


def test_the_keys_a_call_takes() -> None:
    assert all(is_dtmf(k) for k in "0123456789*#ABCD")
    assert not any(is_dtmf(k) for k in ("", "12", "a", "E", "w", " "))


def request(number: str | None = None, queue: str = "general") -> RequestCallback:
    return RequestCallback(number, queue)


def test_callback_task_on_the_number_keyed_due_at_the_next_opening() -> None:
    task = callback_task(
        request("061 222 333"),
        flow=FLOW,
        queues=dict(FLOW.queues),
        caller=Caller(client_id=3, assigned_manager="m1"),
        caller_e164="+38761999001",
        caller_number="061999001",
        region="BA",
        outcome="after_hours",
        at=TUESDAY_NIGHT,
    )
    assert (task.number, task.reason, task.queue, task.assigned_agent_id) == (
        "+38761222333",
        "after_hours",
        "general",
        "m1",
    )
    assert task.due_at == datetime(2026, 12, 2, 7, 0, tzinfo=UTC)


def test_callback_task_falls_back_to_the_callers_own_number_and_is_due_now_when_open() -> None:
    common = {
        "flow": FLOW,
        "queues": dict(FLOW.queues),
        "caller": Caller(),
        "region": "BA",
        "outcome": None,
        "at": TUESDAY_MORNING,
    }
    keyed_nonsense = callback_task(
        request("*#*"), caller_e164="+38761999001", caller_number="061999001", **common
    )
    assert keyed_nonsense.number == "+38761999001"
    assert keyed_nonsense.reason == "callback_requested"
    assert keyed_nonsense.due_at == TUESDAY_MORNING
    withheld = callback_task(request(), caller_e164=None, caller_number="anonymous", **common)
    assert withheld.number == "anonymous"
    # A queue the settings do not know has no calendar: always open, due at once.
    unknown_queue = callback_task(
        request(queue="nope"),
        caller_e164=None,
        caller_number=None,
        **{**common, "at": TUESDAY_NIGHT},
    )
    assert unknown_queue.due_at == TUESDAY_NIGHT and unknown_queue.number == ""
