"""`serve` started while PostgreSQL is down (a host rebooted, the database slower to come up),
on the real Asterisk: with the snapshot a previous run left it answers, runs the IVR and
routes to the agent logged in before, journals everything, and once the database is back
migrates, drains and every row is there once. With no snapshot at all (a first start with no
database) it says why it cannot run the IVR, keeps retrying, and callers get the dialplan's
FastAGI fallback, not silence; the Stasis app registers once the database is back."""

from __future__ import annotations

import json
import stat
from pathlib import Path
from typing import Any

import aiohttp
from sqlalchemy import select

from models.tables import AgentSession, Call
from tests.faults.dbdown import (
    call_id_of,
    degraded,
    drained,
    final_rows,
    own_serve,
    said,
)
from tests.integration.conftest import PBX, Callers
from tests.integration.test_infoline_paths import bridged_with
from tests.support import wait_until


async def test_serve_started_while_database_down_answers_from_its_snapshot(
    pbx: PBX, callers: Callers, tmp_path: Path
) -> None:
    async with own_serve(tmp_path, "_dbstart") as own:
        srv = own.srv
        agent = await own.desk.agent("ana", ["new_clients"])  # logged in before the reboot
        snapshot = srv.data_dir / "snapshot.json"

        def agent_kept() -> bool:
            kept = json.loads(snapshot.read_text()) if snapshot.exists() else {}
            return agent in (kept.get("sessions") or {})

        await wait_until(agent_kept, timeout=10, message="the snapshot holds ana's log-in")
        assert stat.S_IMODE(snapshot.stat().st_mode) == 0o600
        code = await srv.restart_stopped(own.outage.stop)  # stop, database down, start
        assert code == 0

        await wait_until(lambda: degraded(srv), timeout=30, message="/status 200, degraded")
        assert said(srv)["database_down_at_start"] == 1
        calls = [await callers.place(caller_id=f'"Test" <06199910{n}>') for n in range(3)]
        for call in calls:
            await call.prompt_started("recording_notice", timeout=20)  # no silence
        to_agent = calls[0]
        await to_agent.dtmf("0")  # an operator: ana, logged in again from the snapshot

        async def with_agent() -> bool:
            names = await bridged_with(callers, to_agent)
            return any(f"Local/{agent}@test-agent" in n for n in names)

        await wait_until(with_agent, timeout=20, message="the caller talking to ana")
        for call in calls[1:]:
            await call.hangup()
        _, body = await srv.status()
        assert body["db"]["journal"] > 0, body

        await own.outage.start()
        await wait_until(lambda: drained(srv), timeout=40, message="migrated and drained")
        await to_agent.hangup()
        for call in calls:
            await srv.wait_closed(call.far_end, timeout=20)

        async def agent_free() -> bool:
            agents = (await own.desk.api("GET", "/api/acd"))["agents"]
            return bool(agents[agent]["status"] == "available")

        await wait_until(agent_free, timeout=20, message="ana free again")
        rows = await final_rows(own.db, [c.far_end for c in calls])
        talked, _ = rows[to_agent.far_end]
        assert (talked.agent_id, talked.outcome) == (agent, "answered")
        assert talked.id == call_id_of(srv, to_agent.far_end)  # our uuid, kept
        async with own.db.sessions() as session:
            kept = list(await session.scalars(select(AgentSession.agent_id)))
        assert kept == [agent]
        counted = said(srv)
        assert counted["database_down_at_start"] == 1 and counted["database_reachable"] == 1
        assert counted["database_back"] == 1, counted  # one outage, said once
        assert counted["campaign_tick_failed"] == 0, counted


async def test_serve_first_start_without_database_says_why_and_callers_get_the_fallback(
    pbx: PBX, callers: Callers, tmp_path: Path
) -> None:
    async with own_serve(tmp_path, "_dbfirst", start=False) as own:
        srv = own.srv
        await own.outage.stop()
        srv.spawn()

        def refused() -> bool:
            return said(srv)["cannot_serve_no_snapshot"] == 1

        await wait_until(refused, timeout=30, message="serve says why it cannot serve")
        line = next(x for x in srv.log_lines() if x.get("event") == "cannot_serve_no_snapshot")
        assert "no snapshot" in line["reason"] and line["retrying"] is True, line

        async def not_serving() -> dict[str, Any] | None:
            try:
                code, body = await srv.status()
            except aiohttp.ClientError:
                return None  # the web port opens once start-up is through
            return body if code == 503 else None

        body = await wait_until(not_serving, timeout=20, message="/status 503")
        assert body["db"]["ok"] is False and body["ari"]["connected"] is False, body

        # The Stasis app is not there: the dialplan's FastAGI info line answers (greeting,
        # then its hang-up), its row journaled.
        fallback = await callers.place(caller_id='"Test" <061999200>')

        def agi_call_ended() -> bool:
            return any(
                x.get("event") == "call_ended" and x.get("outcome") == "completed"
                for x in srv.log_lines()
            )

        await wait_until(agi_call_ended, timeout=30, message="the FastAGI fallback answered")
        await fallback.hangup()

        await own.outage.start()
        await srv.wait_ready(timeout=60)  # registered once the database is back
        await wait_until(lambda: drained(srv), timeout=30, message="drained")
        assert said(srv)["infoline_registering_database_back"] == 1
        call = await callers.place(caller_id='"Test" <061999201>')
        await call.prompt_started("recording_notice", timeout=20)
        await call.hangup()
        await srv.wait_closed(call.far_end, timeout=20)
        async with own.db.sessions() as session:
            agi_rows = list(await session.scalars(select(Call).where(Call.handler == "agi")))
        assert len(agi_rows) == 1, agi_rows
        assert agi_rows[0].outcome == "completed" and agi_rows[0].ended_at is not None
        assert (srv.data_dir / "snapshot.json").exists()
        assert said(srv)["cannot_serve_no_snapshot"] == 1  # said once, not once a retry
