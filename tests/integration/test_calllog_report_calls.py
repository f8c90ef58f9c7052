"""The call log report on real calls: callers through the real Asterisk and `centrala serve`
(the info line's fixtures, tests/integration/test_infoline_paths.py), one put through to an
agent and held for a moment, one hanging up in the IVR; both then found through serve's own
/api/reports/calls with their IVR path, queue, agent, hold and outcome, and in its CSV."""

from __future__ import annotations

import asyncio
import csv
import io
from zoneinfo import ZoneInfo

import aiohttp

from tests.integration.conftest import Callers, Server
from tests.integration.test_infoline_paths import (
    Desk,
    _connected_to,
    call_and_press,
    desk,
    finish,
    wait_event,
)

__all__ = ["desk"]  # the fixture, used by name


async def test_real_calls_are_in_the_report_with_their_path_queue_agent_and_outcome(
    server: Server, callers: Callers, desk: Desk
) -> None:
    agent = await desk.agent("reported", ["new_clients"])
    row = await _connected_to(server, callers, desk, "+38761999131")
    await desk.api("POST", f"/api/calls/{row.id}/hold")
    await wait_event(server, row.id, "held")
    await asyncio.sleep(1.0)  # how long the caller is on hold (the report's figure), not a wait
    await desk.api("POST", f"/api/calls/{row.id}/resume")
    await wait_event(server, row.id, "resumed")
    answered = await finish(server, row.__dict__["_leg"])
    gave_up = await finish(server, await call_and_press(callers, "+38761999132", ""))

    body = await desk.api("GET", f"/api/reports/calls?agent={agent}")
    (found,) = body["calls"]
    assert found["id"] == answered.id and found["agents"] == [agent]
    assert found["ivr_path"] == answered.ivr_path and "main_menu:0" in found["ivr_path"]
    assert found["queue"] == answered.queue is not None
    assert found["outcome"] == "answered" and found["direction"] == "inbound"
    assert found["wait_seconds"] == round(answered.wait_seconds or 0.0, 3)
    assert found["talk_seconds"] == round(answered.talk_seconds or 0.0, 3)
    assert 0.9 <= found["hold_seconds"] <= found["talk_seconds"]
    assert found["caller_number"] == "+38761999131"

    day = answered.started_at.astimezone(ZoneInfo("Europe/Sarajevo")).date().isoformat()
    whole_day = await desk.api(
        "GET", f"/api/reports/calls?since={day}&until={day}&limit=500&direction=inbound"
    )
    by_id = {c["id"]: c for c in whole_day["calls"]}
    assert answered.id in by_id
    other = by_id[gave_up.id]
    assert other["agents"] == [] and other["queue"] is None and other["hold_seconds"] == 0
    assert other["outcome"] == gave_up.outcome and other["ivr_path"] == gave_up.ivr_path

    async with (
        aiohttp.ClientSession() as http,
        http.get(
            f"{server.url}/api/reports/calls.csv",
            params={"agent": agent},
            headers=desk.headers,
        ) as resp,
    ):
        assert resp.status == 200 and resp.content_type == "text/csv"
        rows = list(csv.DictReader(io.StringIO(await resp.text())))
    assert [r["id"] for r in rows] == [answered.id]
    assert rows[0]["agents"] == agent and rows[0]["outcome"] == "answered"
    assert rows[0]["caller_number"] == "'+38761999131"
