"""`serve` is killed (SIGKILL) while a caller talks to an agent, and the caller hangs up before
a new `serve` is up: the new process finds the row open and the channel gone. The talk
happened, so the row says `answered` (with its agent and connection time), closed once, and
the agent is free. Before: `lost`, as if the system had cut a caller nobody answered (found
by bench/chaos.py: every talk that ended while serve was down)."""

from __future__ import annotations

import asyncio
import signal

from tests.integration.conftest import Callers, Server
from tests.integration.test_infoline_paths import (
    Desk,
    call_and_press,
    desk,  # noqa: F401  (the fixture)
    wait_connected,
    wait_status,
)

QUEUE = "new_clients"


async def test_talk_that_ended_while_serve_was_dead_stays_answered(
    server: Server,
    callers: Callers,
    desk: Desk,  # noqa: F811
) -> None:
    await server.wait_ready()
    ana = await desk.agent("ana", [QUEUE])
    call = await call_and_press(callers, "+38761999500", "0")
    talking = await wait_connected(server, call)
    assert talking.agent_id == ana

    server.proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(server.proc.wait, 20)
    await call.hangup()
    await call.wait_for("ChannelDestroyed")
    server.spawn()
    await server.wait_ready()

    row = await server.wait_closed(call.far_end)
    assert row.outcome == "answered", row.outcome
    assert (row.agent_id, row.connected_at) == (ana, talking.connected_at)
    assert (await server.event_kinds(row.id)).count("closed") == 1
    await wait_status(desk, ana, "available", message="ana still on the call that ended")
