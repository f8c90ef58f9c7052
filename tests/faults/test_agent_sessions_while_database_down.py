"""Agents log in, pause, get ready and log out while PostgreSQL is down, on the real Asterisk:
each action takes effect in the ACD at once (a paused agent is skipped, a new one takes the
call), its ``agent_sessions`` write is journaled in order with the calls' writes, and once
the database is back the table says what the ACD says, each change written once. An agent
never read before the outage cannot log in: a clear 503, not a 500 or a hang."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from sqlalchemy import select

from models.tables import AgentSession
from tests.faults.dbdown import degraded, drained, final_rows, own_serve
from tests.integration.conftest import PBX, Callers
from tests.integration.test_infoline_paths import bridged_with
from tests.support import wait_until


async def test_agent_sessions_while_database_down_take_effect_and_are_written_once(
    pbx: PBX, callers: Callers, tmp_path: Path
) -> None:
    async with own_serve(tmp_path, "_dbagents") as own:
        srv, desk = own.srv, own.desk
        ana = await desk.agent("ana", ["new_clients"])
        bob = await desk.agent("bob", ["new_clients"])
        await desk.api("POST", f"/api/agents/{bob}/logout")  # read once: bob is known
        carol = await desk.agent("carol", ["new_clients"], login=False)  # never read
        await own.outage.stop()
        await wait_until(lambda: degraded(srv), timeout=20, message="/status degraded")

        await desk.api("POST", f"/api/agents/{ana}/pause", {"reason": "lunch"})
        await desk.api("POST", f"/api/agents/{bob}/login", {})
        desk.logged_in.append(bob)
        agents = (await desk.api("GET", "/api/acd"))["agents"]
        assert (agents[ana]["status"], agents[ana]["pause_reason"]) == ("paused", "lunch")
        assert agents[bob]["status"] == "available"

        call = await callers.place(caller_id='"Test" <061999400>')
        await call.prompt_started("recording_notice", timeout=20)
        await call.dtmf("0")

        async def with_bob() -> bool:
            names = await bridged_with(callers, call)
            return any(f"Local/{bob}@test-agent" in n for n in names)

        await wait_until(with_bob, timeout=20, message="the paused agent skipped, bob answers")
        await desk.api("POST", f"/api/agents/{ana}/ready")
        await call.hangup()

        async def bob_free() -> bool:
            return (await desk.api("GET", "/api/acd"))["agents"][bob]["status"] == "available"

        await wait_until(bob_free, timeout=20, message="bob free")
        await desk.api("POST", f"/api/agents/{bob}/logout")
        desk.logged_in.remove(bob)

        async with (
            aiohttp.ClientSession() as http,
            http.post(f"{srv.url}/api/agents/{carol}/login", json={}, headers=desk.headers) as r,
        ):
            assert r.status == 503, await r.text()
            body = await r.json()
        assert body["error_id"] == "database_unavailable", body
        assert "database is unavailable" in body["message"], body

        await own.outage.start()
        await wait_until(lambda: drained(srv), timeout=40, message="drained")
        async with own.db.sessions() as session:
            rows = list(await session.scalars(select(AgentSession)))
        assert [(r.agent_id, r.pause_reason) for r in rows] == [(ana, None)]
        await srv.wait_closed(call.far_end, timeout=20)
        talked, _ = (await final_rows(own.db, [call.far_end]))[call.far_end]
        assert (talked.agent_id, talked.outcome) == (bob, "answered")
        agents = (await desk.api("GET", "/api/acd"))["agents"]
        assert agents[ana]["status"] == "available" and agents[bob]["status"] == "logged_out"
