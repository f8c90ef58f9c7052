"""PostgreSQL stopped under the info line, on the real Asterisk: callers are answered and
hear the IVR from what `serve` holds in memory, the writes go to its journal, and every row
is in the database once it is back, closed once, its trail in order and written once.

A `serve` of its own on a database of its own: stopping the cluster would break the shared
one's. The cluster is the one of CENTRALA_TEST_PG_CLUSTER ("15/main", as scripts/test sets
it) and is started again whatever happens."""

from __future__ import annotations

import asyncio
import os
import subprocess
from collections import Counter
from pathlib import Path

from sqlalchemy import select

from models.flows import apply_flow
from models.tables import Call, CallEvent
from tests.conftest import make_database
from tests.integration import live
from tests.integration.conftest import PBX, Callers, _stop_and_check, start_serve
from tests.integration.test_infoline_paths import Desk, _flow, bridged_with, open_always
from tests.support import wait_until


def _cluster(action: str) -> None:
    version, name = os.environ.get("CENTRALA_TEST_PG_CLUSTER", "15/main").split("/")
    args = ["pg_ctlcluster", version, name, action] + (["-m", "fast"] if action == "stop" else [])
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    # Starting a running cluster says so and exits 2: that is the state we want.
    assert done.returncode == 0 or (action == "start" and "already running" in done.stderr), (
        f"{' '.join(args)}: {done.stderr}"
    )


async def test_database_down_calls_are_answered_and_rows_written_when_it_returns(
    pbx: PBX, callers: Callers, tmp_path: Path
) -> None:
    for other, running in list(live.servers.items()):  # one serve on the Stasis app at a time
        await _stop_and_check(other, running.value)
    db = await make_database("postgresql", tmp_path, suffix="_dbdown")
    await apply_flow(db.sessions, _flow(open_always))
    srv = start_serve(db, tmp_path)
    stopped = False
    desk: Desk | None = None
    try:
        await srv.wait_ready()
        desk = Desk(srv)
        agent = await desk.agent("ana", ["new_clients"])  # logged in before the outage
        await asyncio.to_thread(_cluster, "stop")
        stopped = True

        async def degraded() -> bool:
            code, body = await srv.status()
            return code == 200 and body["db"]["ok"] is False and body["db"]["degraded"] is True

        await wait_until(degraded, timeout=20, message="/status: 200, database degraded")

        calls = [await callers.place(caller_id=f'"Test" <06199900{n}>') for n in range(5)]
        for call in calls:
            await call.prompt_started("recording_notice", timeout=20)
        to_agent = calls[0]
        await to_agent.dtmf("0")  # an operator: routed from the queues as last read

        async def with_agent() -> bool:
            return any(
                f"Local/{agent}@test-agent" in n for n in await bridged_with(callers, to_agent)
            )

        await wait_until(with_agent, timeout=20, message="the caller talking to the agent")
        for call in calls[:3]:  # these end during the outage
            await call.hangup()

        def ended_during_outage() -> bool:
            return sum(line.get("event") == "call_ended" for line in srv.log_lines()) >= 3

        await wait_until(ended_during_outage, timeout=20, message="3 calls ended in serve")
        _, body = await srv.status()
        assert body["db"]["journal"] > 0, body

        await asyncio.to_thread(_cluster, "start")
        stopped = False

        async def drained() -> bool:
            code, body = await srv.status()
            return code == 200 and body["ok"] is True and body["db"]["journal"] == 0

        await wait_until(drained, timeout=30, message="the journal drained, /status ok")
        for call in calls[3:]:
            await call.hangup()
        for call in calls:
            await srv.wait_closed(call.far_end, timeout=20)

        async with db.sessions() as session:
            rows = list(
                await session.scalars(
                    select(Call).where(Call.channel_id.in_([c.far_end for c in calls]))
                )
            )
            assert len(rows) == 5
            for row in rows:
                assert row.answered_at is not None and row.ended_at is not None, row.channel_id
                trail = list(
                    await session.execute(
                        select(CallEvent.kind, CallEvent.at)
                        .where(CallEvent.call_id == row.id)
                        .order_by(CallEvent.id)
                    )
                )
                kinds = [k for k, _ in trail]
                assert kinds[0] == "opened" and kinds[-1] == "closed", kinds
                assert kinds.count("closed") == 1 and kinds.count("answered") == 1, kinds
                assert [at for _, at in trail] == sorted(at for _, at in trail), kinds
                assert not [e for e, n in Counter(trail).items() if n > 1], kinds
            talked = next(r for r in rows if r.channel_id == to_agent.far_end)
            assert (talked.agent_id, talked.queue, talked.outcome) == (
                agent,
                "new_clients",
                "answered",
            )
            assert talked.connected_at is not None
        said = Counter(line.get("event") for line in srv.log_lines())
        assert said["database_down_journaling"] == 1, said  # once per outage, not per write
        assert said["database_back"] == 1, said
        back = next(x for x in srv.log_lines() if x.get("event") == "database_back")
        assert back["drained_writes"] > 0, back
        assert said["campaign_tick_failed"] == 0, said
    finally:
        if stopped:
            await asyncio.to_thread(_cluster, "start")
        for call in calls if "calls" in locals() else []:
            await call.hangup()
        if desk is not None:
            await desk.close()
        code = live.stop_server(srv.proc)
        await db.engine.dispose()
    assert code == 0, srv.log_path.read_text()[-3000:]
