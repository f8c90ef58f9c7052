"""The agent desktop while PostgreSQL is down, on the real `serve` and Asterisk: a new log-in
is refused with a clear 503 (the password and the session live in the database), an agent
already logged in keeps their desk (its page, its API, its WebSocket, going available, a call
reaching them, the disposition after it, journaled), and a log-out holds: the cookie is
refused at once, after the database is back and after a restart."""

from __future__ import annotations

import json
import signal
from pathlib import Path

import aiohttp
from sqlalchemy import select, update

from models.tables import Agent, Call, Interaction, WebSession
from tests.faults.dbdown import call_id_of, degraded, drained, final_rows, own_serve
from tests.faults.web_harness import PASSWORD, client, csrf_of_page, login, session_cookie
from tests.integration.conftest import PBX, Callers
from tests.integration.test_infoline_paths import bridged_with
from tests.support import wait_until
from web.auth import COOKIE, hash_password


async def test_web_desk_while_database_down_keeps_logged_in_agents_working(
    pbx: PBX, callers: Callers, tmp_path: Path
) -> None:
    async with own_serve(tmp_path, "_dbweb") as own:
        srv = own.srv
        agent = await own.desk.agent("web", ["new_clients"], login=False)
        other = await own.desk.agent("other", ["general"], login=False)
        async with own.db.sessions() as session, session.begin():
            await session.execute(
                update(Agent)
                .where(Agent.id.in_([agent, other]))
                .values(password_hash=hash_password(PASSWORD))
            )
        async with client(srv.url) as http, client(srv.url) as other_http:
            assert (await login(http, agent, PASSWORD)).status == 303
            assert (await login(other_http, other, PASSWORD)).status == 303
            csrf = await csrf_of_page(http)
            other_csrf = await csrf_of_page(other_http)
            other_cookie = {"Cookie": f"{COOKIE}={session_cookie(other_http)}"}
            await own.outage.stop()
            await wait_until(lambda: degraded(srv), timeout=20, message="/status degraded")

            async with client(srv.url) as fresh:
                refused = await login(fresh, agent, PASSWORD)
                assert refused.status == 503, refused.status
                # No Accept-Language: the login page says it in Bosnian, the default.
                assert "Baza podataka nije dostupna" in await refused.text()

            async with http.get("/desk") as page:
                assert page.status == 200
            async with http.get("/desk/api/me") as r:
                assert r.status == 200 and (await r.json())["agent_id"] == agent
            async with http.ws_connect("/desk/ws") as ws:
                first = json.loads((await ws.receive()).data)
                assert first["type"] == "state", first
                headers = {"X-CSRF-Token": csrf}
                async with http.post(
                    "/desk/api/state", json={"state": "available"}, headers=headers
                ) as r:
                    assert r.status == 200, await r.text()
                call = await callers.place(caller_id='"Test" <061999600>')
                await call.prompt_started("recording_notice", timeout=20)
                await call.dtmf("0")

                async def with_agent() -> bool:
                    names = await bridged_with(callers, call)
                    return any(f"Local/{agent}@test-agent" in n for n in names)

                await wait_until(with_agent, timeout=20, message="the call reaches the desk")
                await call.hangup()
                call_id = call_id_of(srv, call.far_end)

                async def pending() -> bool:
                    async with http.get("/desk/api/me") as r:
                        return bool((await r.json())["pending_disposition"] == call_id)

                await wait_until(pending, timeout=20, message="the disposition asked for")
                disposition = {"category": "information", "outcome": "resolved", "note": "ok"}
                async with http.post(
                    f"/desk/api/calls/{call_id}/disposition", json=disposition, headers=headers
                ) as r:
                    assert r.status == 200, await r.text()

                async def available() -> bool:
                    async with http.get("/desk/api/me") as r:
                        return bool((await r.json())["status"] == "available")

                await wait_until(available, timeout=20, message="available again after it")

            async with other_http.post(
                "/logout", data={"csrf": other_csrf}, allow_redirects=False
            ) as r:
                assert r.status == 303
            async with (
                aiohttp.ClientSession(srv.url) as anon,
                anon.get("/desk/api/me", headers=other_cookie) as r,
            ):
                assert r.status == 401  # at once, the database still away

            await own.outage.start()
            await wait_until(lambda: drained(srv), timeout=40, message="drained")
            async with (
                aiohttp.ClientSession(srv.url) as anon,
                anon.get("/desk/api/me", headers=other_cookie) as r,
            ):
                assert r.status == 401
            kept = {"Cookie": f"{COOKIE}={session_cookie(http)}"}

        await srv.restart(signal.SIGTERM)
        async with aiohttp.ClientSession(srv.url) as anon:
            async with anon.get("/desk/api/me", headers=other_cookie) as r:
                assert r.status == 401  # the journaled log-out reached the database
            async with anon.get("/desk/api/me", headers=kept) as r:
                assert r.status == 200
        await srv.wait_closed(call.far_end, timeout=20)
        row, kinds = (await final_rows(own.db, [call.far_end]))[call.far_end]
        assert (row.agent_id, row.disposition) == (agent, "information/resolved"), kinds
        assert kinds.count("disposition") == 1, kinds
        async with own.db.sessions() as session:
            notes = list(
                await session.scalars(select(Interaction).where(Interaction.call_id == row.id))
            )
            revoked = await session.scalar(
                select(WebSession.revoked_at).where(WebSession.agent_id == other)
            )
            assert await session.scalar(select(Call.id).where(Call.id == row.id)) == call_id
        assert len(notes) == 1 and revoked is not None
