"""Asterisk is killed (SIGKILL) with a caller talking to an agent, a nailed-up agent in their
bridge and a caller waiting, then started again. Before: the agent stayed `on_call` for good
(log-out 409), the nailed agent still showed available with a dead leg, the waiting caller
was counted as having abandoned, and end and talk times ran on through the outage.
Now: the agents are free (the nailed one, whose phone is gone, logged out), the next caller
reaches an agent, the rows say the talk happened and the wait was lost by the system, ended
when the link was lost, and nothing is left in Asterisk."""

from __future__ import annotations

import asyncio
import os
import signal
import time

from centrala.pbx import LocalPBX
from tests.integration.conftest import PBX, Callers, Server
from tests.integration.test_infoline_paths import (
    Desk,
    call_and_press,
    desk,  # noqa: F401  (the fixture)
    finish,
    wait_connected,
    wait_status,
)
from tests.support import wait_until

QUEUE = "new_clients"


async def test_asterisk_killed_mid_call_frees_agents_and_counts_the_lost_calls(
    server: Server,
    callers: Callers,
    pbx: PBX,
    desk: Desk,  # noqa: F811
) -> None:
    before = await server.wait_ready()
    ana = await desk.agent("ana", [QUEUE])
    nora = await desk.agent("nora", [QUEUE], login=False)
    await desk.api("POST", f"/api/agents/{nora}/login", {"mode": "nailed"})
    desk.logged_in.append(nora)
    await wait_status(desk, nora, "available", message="the nailed leg never came up")
    await desk.api("POST", f"/api/agents/{nora}/pause", {"reason": "meeting"})
    await wait_status(desk, nora, "paused", message="nora not paused")

    talker = await call_and_press(callers, "+38761999400", "0")
    talking = await wait_connected(server, talker)
    assert talking.agent_id == ana
    waiter = await call_and_press(callers, "+38761999401", "0")

    async def waiting() -> bool:
        row = await server.call_row(channel_id=waiter.far_end)
        return row.queued_at is not None

    await wait_until(waiting, message="the second caller queued")

    killed_at = time.time()
    for pid in LocalPBX(pbx.settings).processes_in_root():
        os.kill(pid, signal.SIGKILL)
    await asyncio.to_thread(pbx.up)
    await server.wait_ready(timeout=30, min_connects=before["ari"]["connects"] + 1)
    await callers.ari.wait_connected(30)
    back_at = time.time()

    # The rows: closed once, at the outage, with what really happened.
    talked = await server.wait_closed(talker.far_end)
    lost = await server.wait_closed(waiter.far_end)
    assert talked.outcome == "answered" and lost.outcome == "lost"
    for row in (talked, lost):
        assert row.ended_at is not None
        assert killed_at - 1 <= row.ended_at.timestamp() <= back_at
        assert (await server.event_kinds(row.id)).count("closed") == 1
    assert talked.connected_at is not None and talked.talk_seconds is not None
    assert talked.talk_seconds <= (talked.ended_at - talked.connected_at).total_seconds() + 0.01

    # The agents are not stuck: ana is free (and may log out), nora's phone is gone.
    await wait_status(desk, ana, "available", message="ana still on the lost call")
    await wait_status(desk, nora, "logged_out", message="nora's dead leg still logged in")

    # The next caller reaches ana.
    after = await call_and_press(callers, "+38761999402", "0")
    row = await wait_connected(server, after)
    assert row.agent_id == ana
    assert (await finish(server, after)).outcome == "answered"
