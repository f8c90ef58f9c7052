"""The database goes away under the info line: calls are answered from memory, the writes go
to the fsynced journal and drain back in order, each once (SQLite, with a session factory
that refuses connections as a stopped PostgreSQL does)."""

from __future__ import annotations

import os
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, cast

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ari_app.agents import AgentDesk
from ari_app.infoline import InfolineApp
from ari_app.testing import FakeARI
from core.acd import ACD
from models.calllog import CallLog
from models.crm import CRM
from models.db import create_engine, session_factory
from models.journal import WriteJournal
from models.tables import Call, Callback, CallEvent, Direction
from tests.conftest import Database
from tests.unit.test_infoline_app import APP, Line, template_db

__all__ = ["template_db"]  # the shared migrated database, copied per test

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


class Refused:
    async def __aenter__(self) -> AsyncSession:
        raise ConnectionRefusedError(111, "Connect call failed (injected: database stopped)")

    async def __aexit__(self, *exc: object) -> None:
        return None


class Switch:
    """A session factory whose database can be stopped and started."""

    def __init__(self, real: async_sessionmaker[AsyncSession]) -> None:
        self.real = real
        self.down = False
        self.opened = 0

    def __call__(self) -> Any:
        self.opened += 1
        return Refused() if self.down else self.real()

    def factory(self) -> async_sessionmaker[AsyncSession]:
        return cast(async_sessionmaker[AsyncSession], self)


@pytest.fixture
async def line(template_db: Path, tmp_path: Path) -> AsyncIterator[tuple[Line, Switch]]:
    shutil.copy(template_db, tmp_path / "centrala.db")
    url = f"sqlite+aiosqlite:///{tmp_path / 'centrala.db'}"
    engine = create_engine(url)
    real = session_factory(engine)
    switch = Switch(real)
    journal = WriteJournal(tmp_path / "journal" / "calls.jsonl")
    calllog = CallLog(switch.factory(), "BA", journal=journal)
    crm = CRM(switch.factory())
    ari = FakeARI([APP])
    acd = ACD()
    desk = AgentDesk(ari, crm, acd, APP)
    app = InfolineApp(ari, calllog, crm, desk, acd, name=APP, region="BA")
    ari.on_event(app.on_event)
    ari.on_connect(app.reconcile)
    await ari.start()
    await ari.settle()
    await app.warm()  # as serve does at start: an outage right after still answers
    try:
        yield Line(ari, app, desk, calllog, Database(url, engine, real)), switch
    finally:
        switch.down = False
        await ari.settle()
        await desk.close()
        await ari.stop()
        await calllog.aclose()
        await engine.dispose()


async def rows(db: Database) -> dict[str, Call]:
    async with db.sessions() as session:
        return {c.channel_id: c for c in await session.scalars(select(Call))}


async def kinds(db: Database, call_id: str) -> list[str]:
    async with db.sessions() as session:
        found = await session.scalars(
            select(CallEvent.kind).where(CallEvent.call_id == call_id).order_by(CallEvent.id)
        )
        return list(found)


async def test_calls_are_answered_with_the_database_down_and_their_rows_written_when_it_returns(
    line: tuple[Line, Switch],
) -> None:
    ln, switch = line
    endpoint = await ln.login("ana", ["new_clients"])  # logged in before the outage
    await ln.call("before")  # a call live when the database goes
    switch.down = True
    callers = [f"caller-{n}" for n in range(5)]
    for channel in callers:
        await ln.call(channel, "061 999 001", keys="0" if channel == "caller-0" else "")
        assert ln.ari.requests_to("POST", f"/channels/{channel}/answer"), channel
        assert ln.ari.playing(channel) or channel == "caller-0", channel
    # caller-0 pressed 0: routed from the queues as last read, offered to the agent
    leg = ln.agent_leg(endpoint)
    ln.ari.pick_up(leg)
    await ln.settle()
    assert ln.ari.bridge_of("caller-0") is not None
    for channel in ("before", "caller-0", "caller-1", "caller-2"):
        ln.ari.hang_up(channel)
    await ln.settle()
    assert ln.calllog.degraded and ln.calllog.journal_pending > 0
    during = await rows(ln.db)
    assert list(during) == ["before"] and during["before"].ended_at is None  # nothing written

    switch.down = False
    assert await ln.calllog.drain()
    assert not ln.calllog.degraded and ln.calllog.journal_pending == 0
    stored = await rows(ln.db)
    assert sorted(stored) == sorted(["before", *callers])
    for channel in ("before", "caller-0", "caller-1", "caller-2"):
        row = stored[channel]
        assert row.ended_at is not None and row.answered_at is not None, channel
        trail = await kinds(ln.db, row.id)
        assert trail[0] == "opened" and trail[-1] == "closed", (channel, trail)
        assert trail.count("closed") == 1 and trail.count("answered") == 1, trail
    assert stored["caller-0"].agent_id == "ana" and stored["caller-0"].outcome == "answered"
    assert stored["caller-3"].ended_at is None  # still talking to the IVR: open, rightly
    ln.ari.hang_up("caller-3")
    ln.ari.hang_up("caller-4")
    await ln.settle()
    assert all(r.ended_at is not None for r in (await rows(ln.db)).values())


async def test_replaying_a_journal_twice_writes_each_write_once_in_order(
    line: tuple[Line, Switch], tmp_path: Path
) -> None:
    ln, switch = line
    switch.down = True
    await ln.call("caller-a")
    ln.ari.hang_up("caller-a")
    await ln.settle()
    assert ln.calllog.journal is not None
    journal = ln.calllog.journal.path
    saved = journal.read_bytes()
    switch.down = False
    assert await ln.calllog.drain()
    first = await rows(ln.db)
    trail = await kinds(ln.db, first["caller-a"].id)
    # A crash after the drain's commits and before the journal was cleared: replayed again.
    journal.write_bytes(saved)
    again = WriteJournal(journal)
    assert again.pending == len(saved.decode().splitlines())
    ln.calllog.journal = again
    assert await ln.calllog.drain()
    assert await kinds(ln.db, first["caller-a"].id) == trail  # nothing doubled
    assert trail[:2] == ["opened", "answered"] and trail[-1] == "closed"
    async with ln.db.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Call)) == 1


async def test_a_callback_and_row_updates_made_during_the_outage_drain_once(
    line: tuple[Line, Switch],
) -> None:
    ln, switch = line
    calllog = ln.calllog
    switch.down = True
    opened = await calllog.open_call(
        channel_id="c-1",
        linkedid=None,
        direction=Direction.INBOUND,
        handler="ari",
        caller_number="061 999 001",
        caller_name="Test",
        called_number=None,
        started_at=T0,
    )
    assert opened.new and opened.client is None  # unknown caller: no lookup while down
    await calllog.update(opened.id, queue="new_clients")
    await calllog.callback(
        call_id=opened.id,
        client_id=None,
        number="+38761999001",
        reason="callback_requested",
        queue="new_clients",
        assigned_agent_id=None,
        due_at=T0 + timedelta(hours=1),
    )
    assert await calllog.close(opened.id, at=T0, cause=16, cause_text=None, outcome="callback")
    switch.down = False
    assert await calllog.drain()
    assert calllog.journal is not None
    assert calllog.journal.pending == 0 and calllog.journal.path.read_text() == ""
    async with ln.db.sessions() as session:
        row = await session.get(Call, opened.id)
        callbacks = list(await session.scalars(select(Callback)))
    assert row is not None and row.queue == "new_clients" and row.outcome == "callback"
    assert [c.number for c in callbacks] == ["+38761999001"]
    assert await kinds(ln.db, opened.id) == ["opened", "callback_requested", "closed"]


async def test_a_write_the_database_refuses_raises_and_loses_none_of_the_writes_queued_before_it(
    line: tuple[Line, Switch],
) -> None:
    ln, _ = line
    calllog = ln.calllog
    calllog.write_behind_seconds = 3600.0  # the test writes them itself
    opened = await calllog.open_call(
        channel_id="c-2",
        linkedid=None,
        direction=Direction.INBOUND,
        handler="ari",
        caller_number="061 999 002",
        caller_name="Test",
        called_number=None,
        started_at=T0,
    )
    await calllog.event(opened.id, "ivr", node="main_menu")
    await calllog.answered(opened.id, T0)
    await calllog.update(opened.id, queue="new_clients")
    calllog.set_state(opened.id, {"phase": "queued"})
    with pytest.raises(ValueError, match="unknown call-log write"):
        await calllog.write([{"op": "no-such-write"}])  # a bug, not an outage: raised
    assert not calllog.degraded
    await calllog.flush()  # what the refused batch took is written with the next one
    async with ln.db.sessions() as session:
        row = await session.get(Call, opened.id)
    assert row is not None and row.answered_at is not None and row.queue == "new_clients"
    assert row.live_state == {"phase": "queued"}
    assert await kinds(ln.db, opened.id) == ["opened", "ivr", "answered"]


async def test_journal_appends_fsync_keep_order_and_ignore_a_torn_last_line(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    synced: list[int] = []
    real_fsync = os.fsync
    monkeypatch.setattr(os, "fsync", lambda fd: (synced.append(fd), real_fsync(fd))[1])
    journal = WriteJournal(tmp_path / "j" / "calls.jsonl")
    await journal.append([{"op": "a", "at": T0}, {"op": "b"}])
    await journal.append([{"op": "c"}])
    assert len(synced) == 2  # each append is on disk before it returns
    assert (journal.path.stat().st_mode & 0o777) == 0o600  # it holds callers' numbers
    with journal.path.open("a") as f:
        f.write('{"seq": 4, "op": "d"')  # the process died mid-write
    reopened = WriteJournal(journal.path)
    entries = await reopened.entries()
    assert [(e["seq"], e["op"]) for e in entries] == [(1, "a"), (2, "b"), (3, "c")]
    assert entries[0]["at"] == T0  # times come back as times
    assert reopened.pending == 3
    # The torn line was cut: the next entry starts on a line of its own, numbered on.
    await reopened.append([{"op": "e"}])
    await reopened.clear(2)
    assert [(e["seq"], e["op"]) for e in await reopened.entries()] == [(3, "c"), (4, "e")]
    assert reopened.pending == 2


def test_an_outage_is_told_from_a_bad_statement_through_the_drivers_wrapping() -> None:
    from asyncpg.exceptions import CannotConnectNowError, UniqueViolationError
    from sqlalchemy.exc import DBAPIError, IntegrityError

    from models.db import is_outage

    class AdapterError(Exception):  # SQLAlchemy's asyncpg adapter wraps asyncpg's error
        pass

    def wrapped(cause: Exception) -> DBAPIError:
        adapted = AdapterError(str(cause))
        adapted.__cause__ = cause
        return DBAPIError("SELECT 1", None, adapted)

    # PostgreSQL shutting down (seen when it is stopped under load), refused, reset.
    assert is_outage(wrapped(CannotConnectNowError("the database system is shutting down")))
    assert is_outage(ConnectionRefusedError(111, "Connect call failed"))
    assert is_outage(ConnectionResetError())
    # A statement the database refuses is a bug or bad input, not an outage: it is raised.
    assert not is_outage(wrapped(UniqueViolationError("duplicate key")))
    assert not is_outage(IntegrityError("INSERT", None, ValueError("constraint")))
    assert not is_outage(ValueError("bad"))


async def test_a_journal_left_by_a_previous_process_drains_at_start_before_calls_are_adopted(
    line: tuple[Line, Switch],
) -> None:
    ln, switch = line
    switch.down = True
    await ln.call("caller-z")  # answered while the database is away, then serve dies
    assert ln.calllog.journal is not None
    path = ln.calllog.journal.path
    switch.down = False
    restarted = CallLog(switch.factory(), "BA", journal=WriteJournal(path))
    assert restarted.journal is not None and restarted.journal.pending > 0
    restarted.start()
    assert restarted.degraded  # new writes queue behind the old journal until it drains
    live = await restarted.live_calls("ari")  # what a reconnect adopts: the journaled call
    assert [r.channel_id for r in live] == ["caller-z"]
    assert not restarted.degraded and restarted.journal.pending == 0
    await restarted.aclose()
