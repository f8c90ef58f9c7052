"""`serve` is killed (SIGKILL) at moments bench/chaos.py found to go wrong; the next `serve`
must leave every call recorded, closed once, with what really happened."""

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
from tests.support import wait_until

QUEUE = "new_clients"


async def test_talk_that_ended_while_serve_was_dead_stays_answered(
    server: Server,
    callers: Callers,
    desk: Desk,  # noqa: F811
) -> None:
    """A caller talks to an agent, `serve` is killed, the caller hangs up before a new one is
    up: the new process finds the row open and the channel gone. The talk happened, so the row
    says `answered` (its agent and connection time kept), closed once, and the agent is free.
    Before: `lost`, as if the system had cut a caller nobody answered (found by
    bench/chaos.py: every talk that ended while serve was down)."""
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


async def test_caller_whose_stasis_start_died_with_serve_is_answered_by_the_next(
    server: Server, callers: Callers
) -> None:
    """The caller enters the Stasis app while `serve` is frozen (its WebSocket still open, so
    Asterisk sends the StasisStart into it), then `serve` is killed: nobody wrote a row, so no
    adoption could find the call. Before: the caller rang in the app, unanswered, until they
    gave up, and the call had no row (found by bench/chaos.py: a call placed 0.1 s before a
    kill). Now the next `serve` starts what it finds in its app unknown to it."""
    await server.wait_ready()
    server.proc.send_signal(signal.SIGSTOP)
    try:
        call = await callers.place(caller_id='"Orphan" <+38761999501>')

        async def in_the_app() -> bool:
            channel = await callers.ari.get_channel(call.far_end)
            return bool(channel["dialplan"].get("app_name") == "Stasis")

        await wait_until(in_the_app, message="the caller in the Stasis app")
    finally:
        server.proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(server.proc.wait, 20)
    server.spawn()
    await server.wait_ready()

    await call.wait_for("StasisStart", timeout=20)  # the caller's leg: answered
    await call.prompt_started("recording_notice", timeout=20)
    await call.hangup()
    row = await server.wait_closed(call.far_end)
    assert row.outcome == "abandoned_in_ivr", row.outcome
    assert (await server.event_kinds(row.id)).count("closed") == 1
    said = [
        x.get("channel_id") for x in server.log_lines() if x.get("event") == "stasis_start_missed"
    ]
    assert said.count(call.far_end) == 1, said
