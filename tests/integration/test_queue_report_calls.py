"""The queues report over calls placed through the real Asterisk and `centrala serve`: an
answered call, a call the agent transfers to another queue (answered in both, each its own
offer), a short abandon (under 5 s), an abandon after a longer wait and a caller who asks for
a callback in the queue each move the day's figures for their queue by exactly what they
are; the callback task is counted in the queue that will make the call. The report is read
before and after, so other tests' calls that day do not count.
(A known day of rows on both databases: test_queue_report_http.py.)"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from tests.integration.conftest import Callers, Server
from tests.integration.test_infoline_paths import (
    Desk,
    call_and_press,
    desk,  # noqa: F401  (a fixture)
    finish,
    wait_connected,
    wait_queued,
)
from tests.support import wait_until

FIGURES = (
    "offered",
    "answered",
    "abandoned",
    "short_abandoned",
    "callback_requested",
    "callbacks_requested",
)


async def today(reader: Desk) -> dict[str, Any]:
    """The day's totals of new_clients (key 0's queue), and of general (the queue the flow's
    callback node gives the tasks to, and where the transferred caller goes)."""
    day = datetime.now(ZoneInfo("Europe/Sarajevo")).date().isoformat()
    report = await reader.api("GET", f"/api/reports/queues?since={day}&interval=day")
    totals = {q["queue"]: q["total"] for q in report["queues"]}
    new, general = totals.get("new_clients", {}), totals.get("general", {})
    return {
        **{k: new.get(k, 0) for k in FIGURES},
        "callbacks_requested": general.get("callbacks_requested", 0),
        "general_offered": general.get("offered", 0),
        "general_answered": general.get("answered", 0),
    }


async def test_each_kind_of_call_moves_its_queues_figures_by_what_it_is(
    server: Server,
    callers: Callers,
    desk: Desk,  # noqa: F811
) -> None:
    before = await today(desk)
    agent = await desk.agent("reporter", ["new_clients"])
    answered = await call_and_press(callers, "+38762811501", "0")
    assert (await wait_connected(server, answered)).agent_id == agent
    await finish(server, answered)

    # Answered in new_clients, sent on to general by the agent, answered there too.
    other = await desk.agent("reporter-general", ["general"])
    moving = await call_and_press(callers, "+38762811505", "0")
    row = await wait_connected(server, moving)
    assert row.agent_id == agent
    await desk.api("POST", f"/api/calls/{row.id}/transfer", {"to": "queue:general"})

    async def with_the_other() -> bool:
        return (await wait_connected(server, moving)).agent_id == other

    await wait_until(with_the_other, timeout=20, message="the general agent on the call")
    assert (await finish(server, moving)).queue == "general"
    for gone in (agent, other):
        await desk.api("POST", f"/api/agents/{gone}/logout")
        desk.logged_in.remove(gone)

    # Nobody is logged in now: callers wait, and leave.
    short = await call_and_press(callers, "+38762811502", "0")
    await wait_queued(server, short)
    assert (await finish(server, short)).outcome == "abandoned_in_queue"
    patient = await call_and_press(callers, "+38762811503", "0")
    await wait_queued(server, patient)
    since = datetime.now(UTC)  # queued by now

    async def waited_long_enough() -> bool:  # the caller's patience: 6 s in the queue
        return datetime.now(UTC) - since >= timedelta(seconds=6)

    await wait_until(waited_long_enough, timeout=15, message="six seconds of waiting")
    row = await finish(server, patient)
    assert row.outcome == "abandoned_in_queue" and row.ended_at is not None
    assert row.ended_at - since >= timedelta(seconds=5)
    asking = await call_and_press(callers, "+38762811504", "0")
    await wait_queued(server, asking)
    await asking.dtmf("*")
    await asking.prompt_started("callback_offer")
    await asking.dtmf("1")
    assert (await server.wait_closed(asking.far_end, timeout=60)).outcome == "callback_requested"

    # The task is written after the call's row closes: wait for it, then compare everything.
    async def with_the_task() -> dict[str, Any] | None:
        now = await today(desk)
        return now if now["callbacks_requested"] > before["callbacks_requested"] else None

    after = await wait_until(with_the_task, timeout=15, message="the callback task counted")
    assert {k: after[k] - before[k] for k in (*FIGURES, "general_offered", "general_answered")} == {
        "offered": 5,
        "answered": 2,
        "abandoned": 1,
        "short_abandoned": 1,
        "callback_requested": 1,
        "callbacks_requested": 1,
        "general_offered": 1,
        "general_answered": 1,
    }
