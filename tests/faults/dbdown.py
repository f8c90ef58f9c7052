"""What the database-outage fault tests share: the PostgreSQL cluster they stop and start
(CENTRALA_TEST_PG_CLUSTER, "15/main" as scripts/test sets it; always started again), a `serve`
of their own on a database of their own (stopping the cluster would break the shared one's),
and the checks every one of them makes of the rows once the journal has drained."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from models.flows import apply_flow
from models.tables import Call, CallEvent
from tests.conftest import Database, make_database
from tests.integration import live
from tests.integration.conftest import Server, _stop_and_check, start_serve
from tests.integration.test_infoline_paths import Desk, _flow, open_always
from tests.support import wait_until


def cluster(action: str) -> None:
    version, name = os.environ.get("CENTRALA_TEST_PG_CLUSTER", "15/main").split("/")
    args = ["pg_ctlcluster", version, name, action] + (["-m", "fast"] if action == "stop" else [])
    done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
    # Starting a running cluster says so and exits 2: that is the state we want.
    assert done.returncode == 0 or (action == "start" and "already running" in done.stderr), (
        f"{' '.join(args)}: {done.stderr}"
    )


@dataclass
class Outage:
    """The cluster's state in a test: stopped at most until the test ends."""

    stopped: bool = False

    async def stop(self) -> None:
        await asyncio.to_thread(cluster, "stop")
        self.stopped = True

    async def start(self) -> None:
        await asyncio.to_thread(cluster, "start")
        self.stopped = False


@dataclass
class OwnServe:
    db: Database
    srv: Server
    outage: Outage
    _desk: Desk | None = None

    @property
    def desk(self) -> Desk:
        """Agents through the API (once `serve` has written its API token)."""
        if self._desk is None:
            self._desk = Desk(self.srv)
        return self._desk


@contextlib.asynccontextmanager
async def own_serve(tmp_path: Path, suffix: str, *, start: bool = True) -> AsyncIterator[OwnServe]:
    """A `serve` (started unless ``start`` is False) on a database of its own with the
    shipped flow, every queue open; afterwards the cluster is up again, the serve stopped
    cleanly (exit 0) and its agents logged out."""
    for other, running in list(live.servers.items()):  # one serve on the Stasis app at a time
        await _stop_and_check(other, running.value)
    db = await make_database("postgresql", tmp_path, suffix=suffix)
    await apply_flow(db.sessions, _flow(open_always))
    srv = start_serve(db, tmp_path, spawn=start)
    own = OwnServe(db, srv, Outage())
    try:
        if start:
            await srv.wait_ready()
        yield own
    finally:
        if own.outage.stopped:
            await own.outage.start()
        code = 0
        if srv.proc is not None:
            if srv.proc.poll() is None:
                with contextlib.suppress(AssertionError):
                    await wait_until(lambda: drained(srv), timeout=30, message="drained at end")
                if own._desk is not None:
                    await own._desk.close()
            code = live.stop_server(srv.proc)
        await db.engine.dispose()
        assert code == 0, srv.log_path.read_text()[-3000:]


async def degraded(srv: Server) -> bool:
    """/status answers 200 with the database away (degraded, not dead)."""
    try:
        code, body = await srv.status()
    except Exception:
        return False
    return code == 200 and body["db"]["ok"] is False and body["db"]["degraded"] is True


async def drained(srv: Server) -> bool:
    """The database is back and the journal written into it: /status all OK."""
    try:
        code, body = await srv.status()
    except Exception:
        return False
    return code == 200 and body["ok"] is True and body["db"]["journal"] == 0


def said(srv: Server) -> Counter[str]:
    return Counter(str(line.get("event")) for line in srv.log_lines())


def call_id_of(srv: Server, channel_id: str) -> str | None:
    """The call id `serve` gave the channel (from its log: the row may be in the journal)."""
    for line in srv.log_lines():
        if line.get("event") == "call_started" and line.get("channel_id") == channel_id:
            return str(line["call_id"])
    return None


async def final_rows(db: Database, channels: list[str]) -> dict[str, tuple[Call, list[str]]]:
    """Each channel's one row, closed, with its trail: opened first, closed once and last
    (but for a disposition), answered once, in time order, no event written twice."""
    out: dict[str, tuple[Call, list[str]]] = {}
    async with db.sessions() as session:
        rows = list(await session.scalars(select(Call).where(Call.channel_id.in_(channels))))
        assert sorted(r.channel_id for r in rows) == sorted(channels), [r.channel_id for r in rows]
        for row in rows:
            assert row.ended_at is not None and row.answered_at is not None, row.channel_id
            assert row.live_state is None, row.channel_id
            trail: list[Any] = list(
                await session.execute(
                    select(CallEvent.kind, CallEvent.at, CallEvent.data)
                    .where(CallEvent.call_id == row.id)
                    .order_by(CallEvent.id)
                )
            )
            kinds = [k for k, _, _ in trail]
            assert kinds[0] == "opened" and "closed" in kinds, kinds
            after = kinds[kinds.index("closed") + 1 :]  # the agent's disposition may follow
            assert set(after) <= {"disposition"}, kinds
            assert kinds.count("closed") == 1 and kinds.count("answered") == 1, kinds
            assert [at for _, at, _ in trail] == sorted(at for _, at, _ in trail), kinds
            keys = Counter((k, at, str(d)) for k, at, d in trail)
            assert not [e for e, n in keys.items() if n > 1], kinds
            out[row.channel_id] = (row, kinds)
    return out
