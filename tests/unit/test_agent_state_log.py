"""The agents' state log (agent_states, for the agents report) as the desk writes it, on a fake
ARI and SQLite with a database that can be stopped: each change once, in order with the
agents' sessions, journaled while the database is away and replayed once; a restart of
`serve` logs its agents in again with a row that continues their state, so the report built
from the rows neither doubles nor cuts their time; a session the restart cannot take up ends
in a logged-out row."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import func, select

from core.acd import AgentMode, AgentStatus
from core.surveys.report import REPORT_TIMEZONE
from models.crm import apply_agent_state
from models.tables import AgentSession, AgentState
from tests.conftest import Database
from tests.unit.test_database_down_gaps import Switch, _stop, _wire, parts
from tests.unit.test_infoline_app import Line, template_db
from web.agent_report_api import report_of

__all__ = ["parts", "template_db"]  # fixtures shared with the database-down tests


async def states(db: Database) -> list[AgentState]:
    async with db.sessions() as session:
        return list(
            await session.scalars(select(AgentState).order_by(AgentState.at, AgentState.id))
        )


def seen(rows: list[AgentState]) -> list[tuple[str, str, str | None]]:
    return [(r.agent_id, r.state, r.reason) for r in rows]


async def test_each_change_is_written_once_in_order_and_an_outage_loses_none(
    parts: tuple[Line, Switch, Path],
) -> None:
    line, switch, _ = parts
    await line.login("ana", ["new_clients"])
    await line.settle()
    await line.desk.close()  # the pending writes are through
    assert seen(await states(line.db)) == [("ana", "ready", None)]
    switch.down = True
    line.desk.pause("ana", "lunch")
    line.desk.pause("ana", "training")  # another reason, still paused
    line.desk.ready("ana")
    line.desk.ready("ana")  # twice: no change, no row
    await line.desk.logout("ana")
    await line.settle()
    await line.desk.close()
    journaled = [
        (e["state"], e["reason"])
        for e in await line.calllog.journal.entries()  # type: ignore[union-attr]
        if e["op"] == "agent_state"
    ]
    assert journaled == [
        ("paused", "lunch"),
        ("paused", "training"),
        ("ready", None),
        ("logged_out", None),
    ]
    switch.down = False
    assert await line.calllog.drain()
    rows = await states(line.db)
    assert seen(rows) == [
        ("ana", "ready", None),
        ("ana", "paused", "lunch"),
        ("ana", "paused", "training"),
        ("ana", "ready", None),
        ("ana", "logged_out", None),
    ]
    assert [r.at for r in rows] == sorted(r.at for r in rows)
    # A replay of a change already written (a crash between the write and the journal's
    # trim) writes nothing twice.
    last = rows[-1]
    op = {"agent_id": "ana", "state": "logged_out", "reason": None, "at": last.at.isoformat()}
    async with line.db.sessions() as session:
        await apply_agent_state(session, op, True)
        await session.commit()
        count = await session.scalar(select(func.count()).select_from(AgentState))
    assert count == 5


async def test_a_restart_continues_the_agents_state_and_the_report_counts_no_gap_nor_twice(
    parts: tuple[Line, Switch, Path],
) -> None:
    line, switch, data = parts
    await line.login("ana", ["new_clients"])
    line.desk.pause("ana", "meeting")
    await _stop(line)  # serve stops (a deploy); ana stays logged in, paused
    again = _wire(switch, data, line.db)
    await again.app.warm()
    await again.ari.start()  # restores the agents logged in
    await again.ari.settle()
    assert again.app.acd.agent("ana").status is AgentStatus.PAUSED
    await again.desk.close()
    rows = await states(line.db)
    assert seen(rows) == [
        ("ana", "ready", None),
        ("ana", "paused", "meeting"),
        ("ana", "paused", "meeting"),  # logged in again by the restart, as it was
    ]
    now = rows[-1].at + timedelta(seconds=90)
    zone = ZoneInfo(REPORT_TIMEZONE)  # the call centre's days
    days = {
        "since": str(rows[0].at.astimezone(zone).date()),
        "until": str(now.astimezone(zone).date()),
    }
    (ana,) = (await report_of(line.db.sessions, days, now=now))["agents"]
    total = ana["total"]
    assert total["logged_in"] == round((now - rows[0].at).total_seconds(), 1)
    assert total["pause_by_reason"] == {"meeting": round((now - rows[1].at).total_seconds(), 1)}
    await _stop(again)


async def test_a_session_the_restart_cannot_take_up_ends_in_a_logged_out_row(
    parts: tuple[Line, Switch, Path],
) -> None:
    line, switch, data = parts
    await line.login("ana", ["new_clients"])
    await _stop(line)
    async with line.db.sessions() as session:  # a nailed-up leg that is gone meanwhile
        row = await session.get(AgentSession, "ana")
        assert row is not None
        row.mode, row.nailed_channel, row.nailed_bridge = AgentMode.NAILED, "gone", "gone"
        await session.commit()
    again = _wire(switch, data, line.db)
    await again.app.warm()
    await again.ari.start()
    await again.ari.settle()
    await again.desk.close()
    rows = await states(line.db)
    assert seen(rows) == [("ana", "ready", None), ("ana", "logged_out", None)]
    assert rows[1].at <= datetime.now(UTC)
    await _stop(again)
