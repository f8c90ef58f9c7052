"""The app survives its ARI WebSocket being killed and Asterisk restarting: it reconnects,
re-registers its Stasis app, and the next call is handled and logged."""

from __future__ import annotations

import asyncio

from centrala.pbx import LocalPBX
from tests.integration.conftest import PBX, Callers, Server, kill_ari_websocket
from tests.support import wait_until


async def place_and_log(server: Server, callers: Callers) -> str | None:
    """A call the app answers (its IVR starts) and logs once the caller hangs up."""
    call = await callers.place(caller_id="<+38761300300>")
    await call.wait_for("StasisStart")
    await call.hangup()
    return (await server.wait_closed(call.far_end)).outcome


async def test_app_reconnects_after_its_ari_websocket_is_killed(
    server: Server, callers: Callers, pbx: PBX
) -> None:
    before = await server.wait_ready()
    port = before["ari"]["ws_local_port"]
    kill_ari_websocket(pbx.settings, port)

    after = await server.wait_ready(timeout=20, min_connects=before["ari"]["connects"] + 1)
    assert after["ari"]["ws_local_port"] != port
    assert await place_and_log(server, callers) == "abandoned_in_ivr"


async def test_app_reconnects_after_asterisk_restarts(
    server: Server, callers: Callers, pbx: PBX
) -> None:
    before = await server.wait_ready()
    await asyncio.to_thread(pbx.down)
    assert LocalPBX(pbx.settings).processes_in_root() == []  # `down` leaves nothing behind

    async def reports_asterisk_down() -> bool:
        code, status = await server.status()
        return code == 503 and not status["ari"]["connected"] and not status["ami"]["connected"]

    await wait_until(reports_asterisk_down, timeout=10, message="/status saying Asterisk is down")

    await asyncio.to_thread(pbx.up)
    after = await server.wait_ready(timeout=30, min_connects=before["ari"]["connects"] + 1)
    assert after["ami"]["connected"]
    assert "infoline" in after["ari"]["apps"]
    await callers.ari.wait_connected(30)
    assert await place_and_log(server, callers) == "abandoned_in_ivr"
