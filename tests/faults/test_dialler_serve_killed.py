"""`serve` is killed (SIGKILL) in the middle of an agent campaign: the next `serve` adopts the
call an agent is talking on (the agent stays on it, the row closes once as connected), follows
the call still ringing, and calls nobody twice."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import AsyncIterator

import pytest

from ari_app.ami import AMIClient
from models.tables import Call
from tests.integration.conftest import Server
from tests.integration.test_agent_dialler import (
    api,
    calls_of,
    create,
    nailed_agent,
    number,
    person,
    settled,
    stop_campaigns,  # noqa: F401  (autouse: the test's campaigns stop with it)
)
from tests.integration.test_infoline_paths import Desk, wait_status
from tests.support import wait_until


@pytest.fixture
async def desk(server: Server) -> AsyncIterator[Desk]:
    d = Desk(server)
    try:
        yield d
    finally:
        await d.close()


async def test_a_restart_mid_campaign_calls_nobody_twice(
    server: Server, ami: AMIClient, desk: Desk
) -> None:
    await server.wait_ready()
    talking_agent = await nailed_agent(desk, "tom")
    ringing_agent = await nailed_agent(desk, "rita")
    talker, slow = number(), number()
    await person(ami, talker, delay=1, talk=8)
    # Still ringing when serve dies, and answering well after it is back (it rings 40 s).
    await person(ami, slow, delay=25, talk=2)
    campaign_id = await create(
        server, f"restart-{talker[-6:]}", "progressive", [talker, slow], ring_seconds=40
    )
    status, _ = await api(server, "POST", f"/api/campaigns/{campaign_id}/start")
    assert status == 200

    async def one_talking_one_ringing() -> bool:
        calls = await calls_of(server, campaign_id)
        talk, ring = calls.get(talker) or [], calls.get(slow) or []
        return bool(talk and talk[0].connected_at and ring and ring[0].answered_at is None)

    await wait_until(one_talking_one_ringing, timeout=20, message="one talking, one ringing")
    before = await calls_of(server, campaign_id)
    server.proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(server.proc.wait, 20)
    server.spawn()
    await server.wait_ready()

    rows = await settled(server, campaign_id, timeout=60)
    calls = await calls_of(server, campaign_id)
    assert {n: len(c) for n, c in calls.items()} == {talker: 1, slow: 1}  # nobody twice
    talked: Call = calls[talker][0]
    assert talked.id == before[talker][0].id and talked.outcome == "connected"
    assert talked.connected_at == before[talker][0].connected_at
    assert talked.agent_id in (talking_agent, ringing_agent)
    assert (await server.event_kinds(talked.id)).count("closed") == 1
    rang = calls[slow][0]
    assert rang.outcome == "connected" and rang.agent_id in (talking_agent, ringing_agent)
    assert rows[talker].status == "done" and rows[slow].status == "done"
    for agent in (talking_agent, ringing_agent):
        await wait_status(desk, agent, "available", message=f"{agent} free after the restart")
