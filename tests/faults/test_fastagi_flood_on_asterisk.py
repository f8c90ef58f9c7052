"""A flood of idle FastAGI connections from one address (about 500 took every session slot
before the fix) while real callers take the FastAGI path of the real Asterisk: the flood gets
its per-address share and no more, Asterisk's own connections are served, every call's row
closes `completed`, and the flood's sockets are let go when it stops."""

from __future__ import annotations

import asyncio
import contextlib
from datetime import UTC

from core.agi_gate import SessionLimits
from tests.integration.conftest import Callers, Server
from tests.support import wait_until

FLOOD = 300
ATTACKER = "127.0.0.2"  # loopback, but not the PBX's address


async def test_idle_fastagi_flood_from_one_address_leaves_the_real_calls_served(
    server: Server, callers: Callers
) -> None:
    _, status = await server.status()
    port = status["agi"]["port"]
    per_peer = SessionLimits().per_peer  # the shipped limits
    flood: list[asyncio.StreamWriter] = []
    try:
        for _ in range(FLOOD):
            with contextlib.suppress(OSError):  # refused once over the cap: that is the point
                _, writer = await asyncio.open_connection(
                    "127.0.0.1", port, local_addr=(ATTACKER, 0)
                )
                flood.append(writer)

        async def flood_holds_its_share() -> bool:
            _, body = await server.status()
            return bool(body["agi"]["active_sessions"] == per_peer)

        await wait_until(flood_holds_its_share, message=f"{per_peer} flood sessions held")

        calls = [
            await callers.place(context="infoline-agi", caller_id=f"<+3876177700{n}>")
            for n in range(3)
        ]
        ends = []
        for call in calls:
            await call.wait_for("ChannelDestroyed", timeout=30)
            row = await server.wait_closed(call.far_end)
            assert (row.handler, row.outcome, row.hangup_cause) == ("agi", "completed", 16)
            assert row.ended_at is not None
            ends.append(row.ended_at if row.ended_at.tzinfo else row.ended_at.replace(tzinfo=UTC))
        _, body = await server.status()
        # Never more than its share (idle ones are cut at the header deadline meanwhile).
        assert body["agi"]["active_sessions"] <= per_peer
    finally:
        for writer in flood:
            writer.close()

    async def let_go() -> bool:
        _, body = await server.status()
        return bool(body["agi"]["active_sessions"] == 0)

    await wait_until(let_go, message="the flood's sessions closed")
    # Asterisk's CDR of these FastAGI calls, read back, finds their rows: none made twice.
    await server.wait_cdr_past(max(ends))
    for call in calls:
        assert len(await server.rows_for_channel(call.far_end)) == 1
