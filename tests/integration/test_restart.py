"""A restart of `centrala serve` (a crash, or a deploy) drops no call: callers in the IVR, in
the queue and talking to agents are adopted by the new process and carry on; agents stay
logged in (paused ones paused, nailed-up ones in their own bridge); every row closes once,
with the outcome and times of what really happened."""

from __future__ import annotations

import signal
from typing import Any

import pytest
from sqlalchemy import func, select

from models.tables import Call, CallEvent
from tests.integration.conftest import CallerLeg, Callers, Server
from tests.integration.test_infoline_paths import (
    Desk,
    bridged_with,
    call_and_press,
    desk,  # noqa: F401  (the fixture)
    wait_connected,
)
from tests.support import wait_until

QUEUE = "new_clients"


async def row_of(server: Server, call: CallerLeg) -> Call | None:
    async with server.db.sessions() as session:
        return await session.scalar(select(Call).where(Call.channel_id == call.far_end))


async def wait_row(server: Server, call: CallerLeg, check: Any, what: str) -> Call:
    async def ready() -> Call | None:
        row = await row_of(server, call)
        return row if row is not None and check(row) else None

    row: Call = await wait_until(ready, timeout=20, message=what)
    return row


async def wait_agents(d: Desk, expected: dict[str, str]) -> None:
    async def statuses() -> bool:
        agents = (await d.api("GET", "/api/acd"))["agents"]
        return {a: agents.get(a, {}).get("status") for a in expected} == expected

    await wait_until(statuses, message=f"agents {expected}")


async def closed_count(server: Server, call_id: str) -> int:
    async with server.db.sessions() as session:
        return int(
            await session.scalar(
                select(func.count())
                .select_from(CallEvent)
                .where(CallEvent.call_id == call_id, CallEvent.kind == "closed")
            )
            or 0
        )


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["sigkill", "sigterm"])
async def test_restart_of_serve_keeps_callers_in_the_ivr_the_queue_and_talking(
    server: Server,
    callers: Callers,
    desk: Desk,  # noqa: F811
    sig: signal.Signals,
) -> None:
    # Three agents talking (two rung per call, one nailed up), one paused.
    ana = await desk.agent("ana", [QUEUE])
    ben = await desk.agent("ben", [QUEUE])
    nora = await desk.agent("nora", [QUEUE], login=False)
    await desk.api("POST", f"/api/agents/{nora}/login", {"mode": "nailed"})
    desk.logged_in.append(nora)
    await wait_agents(desk, {nora: "available"})
    pia = await desk.agent("pia", [QUEUE])
    await desk.api("POST", f"/api/agents/{pia}/pause", {"reason": "lunch"})

    talking: list[CallerLeg] = []
    for n in range(3):
        call = await call_and_press(callers, f"+3876199920{n}", "0")
        await wait_connected(desk.server, call)
        talking.append(call)
    talk_rows = {c.id: await row_of(server, c) for c in talking}
    agent_of = {c.id: r.agent_id for c, r in ((c, talk_rows[c.id]) for c in talking) if r}
    assert sorted(agent_of.values()) == sorted([ana, ben, nora])

    queued: list[CallerLeg] = []
    for n in range(4):
        call = await call_and_press(callers, f"+3876199921{n}", "0")
        await wait_row(server, call, lambda r: r.queued_at is not None, "never queued")
        queued.append(call)

    in_ivr: list[CallerLeg] = []
    for n in range(3):
        call = await callers.place(caller_id=f'"IVR {n}" <+3876199922{n}>')
        await wait_row(server, call, lambda r: r.answered_at is not None, "never answered")
        in_ivr.append(call)
    everyone = talking + queued + in_ivr

    code = await server.restart(sig)
    assert code == (0 if sig is signal.SIGTERM else -signal.SIGKILL)
    _, status = await server.status()
    assert status["calls_adopted"] == 10, status
    assert status["calls_in_progress"] == 10, status

    # Nobody was hung up: every caller's leg is still up.
    for call in everyone:
        assert (await callers.ari.get_channel(call.id))["state"] == "Up"
    # The talkers are still bridged with their agents; the agents are still theirs.
    for call in talking:
        names = await bridged_with(callers, call)
        assert len(names) == 2 and any(agent_of[call.id] in n for n in names), names
    await wait_agents(desk, {ana: "on_call", ben: "on_call", nora: "on_call", pia: "paused"})

    # The IVR goes on: the menu's key works and the callers join the queue behind the others.
    for call in in_ivr:
        await call.dtmf("0")
    for call in in_ivr:
        await wait_row(server, call, lambda r: r.queued_at is not None, "IVR lost after restart")

    # The queue kept its order: the first agent free gets the caller who waited longest.
    first_talker = talking[0]
    await first_talker.hangup()
    first_row = await server.wait_closed(first_talker.far_end)
    freed = agent_of[first_talker.id]
    head = await wait_connected(server, queued[0])
    assert head.agent_id == freed

    # The waiting callers give up first (an agent freed earlier would take the next one).
    waiting = [*queued[1:], *in_ivr]
    for call in waiting:
        await call.hangup()
    rows = {c.id: await server.wait_closed(c.far_end) for c in waiting}
    for call in [*talking[1:], queued[0]]:
        await call.hangup()
    rows |= {c.id: await server.wait_closed(c.far_end) for c in [*talking, queued[0]]}

    # Each row is final exactly once, with the outcome of what happened and real times.
    for call in everyone:
        assert await closed_count(server, rows[call.id].id) == 1
        kinds = await server.event_kinds(rows[call.id].id)
        assert kinds.count("adopted") == 1, kinds
    for call in talking:
        row = rows[call.id]
        assert row.outcome == "answered" and row.agent_id == agent_of[call.id]
        before = talk_rows[call.id]
        assert before is not None and row.connected_at == before.connected_at
        assert row.ended_at is not None and row.connected_at is not None
        expected = (row.ended_at - row.connected_at).total_seconds()
        assert row.talk_seconds == pytest.approx(expected, abs=0.01)
    assert first_row.outcome == "answered"
    assert rows[queued[0].id].outcome == "answered"
    for call in [*queued[1:], *in_ivr]:
        assert rows[call.id].outcome == "abandoned_in_queue", rows[call.id].outcome
        assert rows[call.id].live_state is None
    assert {r.outcome for r in rows.values()} <= {"answered", "abandoned_in_queue"}

    # Agents stay logged in: the paused one paused, the others free again.
    await wait_agents(desk, {ana: "available", ben: "available", nora: "available", pia: "paused"})
