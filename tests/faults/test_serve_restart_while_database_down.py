"""`serve` killed and restarted while PostgreSQL is down, on the real Asterisk: the new
process cannot read ``calls.live_state``, so it adopts the live calls from what the journal
holds (it opens with every call open when the outage began, and every later state is in it):
the caller talking stays with the agent, the queued caller keeps their place and reaches the
agent when they are free, the caller in the menu hears it again. Once the database is back
every row is there once, closed once."""

from __future__ import annotations

import json
import signal
from pathlib import Path

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


async def test_serve_restarted_while_database_down_adopts_calls_from_its_journal(
    pbx: PBX, callers: Callers, tmp_path: Path
) -> None:
    async with own_serve(tmp_path, "_dbrestart") as own:
        srv = own.srv
        agent = await own.desk.agent("ana", ["new_clients"])
        before = await callers.place(caller_id='"Test" <061999300>')  # live before the outage
        await before.prompt_started("recording_notice", timeout=20)
        await own.outage.stop()
        await wait_until(lambda: degraded(srv), timeout=20, message="/status degraded")

        talking = await callers.place(caller_id='"Test" <061999301>')
        waiting = await callers.place(caller_id='"Test" <061999302>')
        for call in (talking, waiting):
            await call.prompt_started("recording_notice", timeout=20)
        await talking.dtmf("0")

        def with_agent(call):  # type: ignore[no-untyped-def]
            async def check() -> bool:
                names = await bridged_with(callers, call)
                return any(f"Local/{agent}@test-agent" in n for n in names)

            return check

        await wait_until(with_agent(talking), timeout=20, message="talking to ana")
        await waiting.dtmf("0")  # ana is busy: queued

        async def queued() -> bool:  # the ACD's picture: its row may be in the journal
            acd = await own.desk.api("GET", "/api/acd")
            return bool(acd["queues"].get("new_clients", {}).get("waiting") == 1)

        await wait_until(queued, timeout=20, message="the second caller queued")
        waiting_id = call_id_of(srv, waiting.far_end)

        def journaled_queued() -> bool:  # the live state is written behind (20 ms)
            journal = srv.data_dir / "journal" / "calls.jsonl"
            for line in journal.read_text().splitlines():
                state = json.loads(line).get("states", {}).get(waiting_id)
                if state and state.get("phase") == "queued":
                    return True
            return False

        await wait_until(journaled_queued, timeout=10, message="the queued state journaled")
        menu_seen = len(before.far_seen)
        await srv.restart(signal.SIGKILL)  # a crash, the database still down

        _, body = await srv.status()
        assert body["calls_adopted"] == 3, body
        assert said(srv)["live_calls_from_journal"] == 1
        # The caller in the menu hears it again (the prompt that was playing restarts).
        await before.wait_for("PlaybackStarted", timeout=20, far=True, after=menu_seen)
        assert await with_agent(talking)()  # still together
        await talking.hangup()
        await wait_until(with_agent(waiting), timeout=30, message="the queued caller reaches ana")

        await own.outage.start()
        await wait_until(lambda: drained(srv), timeout=40, message="drained")
        for call in (before, waiting):
            await call.hangup()
        calls = [before, talking, waiting]
        for call in calls:
            await srv.wait_closed(call.far_end, timeout=20)

        async def agent_free() -> bool:
            agents = (await own.desk.api("GET", "/api/acd"))["agents"]
            return bool(agents[agent]["status"] == "available")

        await wait_until(agent_free, timeout=20, message="ana free again")
        rows = await final_rows(own.db, [c.far_end for c in calls])
        for call in (talking, waiting):
            row, kinds = rows[call.far_end]
            assert (row.agent_id, row.outcome) == (agent, "answered"), kinds
            assert "adopted" in kinds, kinds
        _, before_kinds = rows[before.far_end]
        assert "adopted" in before_kinds, before_kinds
        _, body = await srv.status()
        assert body["ok"] is True, body
