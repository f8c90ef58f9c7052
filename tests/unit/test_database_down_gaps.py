"""The pure and fast parts of serving without the database (issue 10): the snapshot file a
start without the database answers from, the open calls a restart during an outage adopts
from the journal, agents' sessions and survey answers journaled in order with the calls and
replayed once, and desk sessions through an outage (SQLite, with a session factory that
refuses connections as a stopped PostgreSQL does)."""

from __future__ import annotations

import json
import os
import shutil
import stat
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ari_app.agents import AgentDesk
from ari_app.infoline import InfolineApp
from ari_app.infoline.calls import NoFlowKnown
from ari_app.testing import FakeARI
from core.acd import ACD, AgentMode, AgentProfile, AgentStatus
from core.surveys.interpreter import Answer, SurveyStatus
from core.surveys.validate import check_survey
from dialplan.model import QueueDef
from models import livecalls
from models.calllog import CallLog
from models.crm import CRM
from models.db import create_engine, session_factory
from models.journal import WriteJournal
from models.snapshot import SessionRow, Snapshot
from models.surveys import apply_survey
from models.tables import (
    Agent,
    AgentRole,
    AgentSession,
    Call,
    CallEvent,
    Direction,
    SurveyAnswer,
    WebSession,
)
from models.web_sessions import OUTAGE_GRACE, WebSessionStore
from tests.conftest import Database
from tests.unit.test_call_journal import Switch
from tests.unit.test_infoline_app import APP, Line, template_db
from usecases.surveying import SurveyLog, apply_survey_write

__all__ = ["template_db"]

T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


# ---- the snapshot file ----------------------------------------------------------------------


async def test_snapshot_keeps_what_was_read_in_a_private_file_and_reads_it_back(
    tmp_path: Path,
) -> None:
    path = tmp_path / "data" / "snapshot.json"
    snap = Snapshot(path)
    assert not snap.has_flow and snap.queues() is None and snap.sessions() is None
    ana = AgentProfile("ana", "Ana", "agent", frozenset({"bs"}), {"new_clients": 1})
    snap.set_agents([(ana, "PJSIP/101")])
    snap.set_queues({"new_clients": QueueDef(name="New clients", max_wait_seconds=60)})
    snap.session_saved(SessionRow("ana", "PJSIP/101", "per_call", logged_in_at=T0.isoformat()))
    snap.session_paused("ana", "lunch")
    await snap.save()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600

    again = Snapshot(path)  # a new process
    assert again.agent("ana") == (ana, "PJSIP/101")
    queues = again.queues()
    assert queues is not None and queues["new_clients"].max_wait_seconds == 60
    assert again.sessions() == [
        SessionRow("ana", "PJSIP/101", "per_call", "lunch", logged_in_at=T0.isoformat())
    ]
    again.session_dropped("ana")
    await again.save()
    assert Snapshot(path).sessions() == []


async def test_snapshot_is_rewritten_only_when_what_was_read_changed(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.json"
    snap = Snapshot(path)
    queues = {"q": QueueDef(name="Q")}
    snap.set_queues(queues)
    await snap.save()
    written = path.stat().st_mtime_ns
    os.utime(path, ns=(0, 0))
    snap.set_queues({"q": QueueDef(name="Q")})  # the same read again
    await snap.save()
    assert path.stat().st_mtime_ns == 0
    snap.set_queues({"q": QueueDef(name="Q2")})
    await snap.save()
    assert path.stat().st_mtime_ns != 0 and written


def test_a_damaged_snapshot_is_ignored_not_fatal(tmp_path: Path) -> None:
    path = tmp_path / "snapshot.json"
    path.write_text("{not json")
    assert not Snapshot(path).has_flow
    path.write_text(json.dumps({"version": 99, "flows": {"infoline": {}}}))
    assert not Snapshot(path).has_flow
    assert Snapshot(None).flow("infoline") is None  # memory only


# ---- the open calls beside the journal ------------------------------------------------------


def _open(call_id: str, channel: str) -> dict[str, Any]:
    return {
        "op": "open",
        "row": {"id": call_id, "channel_id": channel, "handler": "ari", "flow_version": 1},
    }


def test_open_calls_are_rebuilt_from_the_journal_head_and_what_follows() -> None:
    head = {"op": "live", "rows": {"a": {"channel_id": "ch-a", "handler": "ari", "state": None}}}
    ops = [
        head,
        _open("b", "ch-b"),
        {"op": "flush", "events": [], "states": {"a": {"phase": "queued"}, "b": {"phase": "ivr"}}},
        {"op": "update", "call_id": "b", "values": {"queued_at": T0, "agent_id": "x"}},
        _open("c", "ch-c"),
        {"op": "close", "call_id": "c", "values": {}},
    ]
    live = livecalls.rebuild(ops)
    assert sorted(live) == ["a", "b"]
    assert live["a"]["state"] == {"phase": "queued"}
    assert live["b"]["queued_at"] == T0 and "agent_id" not in live["b"]
    # What a partial drain leaves, headed by the map it reached: the same map again.
    for cut in range(len(ops)):
        again = livecalls.rebuild([{"op": "live", "rows": live}, *ops[cut:]])
        assert again == live, cut


async def test_a_partial_clear_keeps_the_open_calls_at_the_head(tmp_path: Path) -> None:
    journal = WriteJournal(tmp_path / "calls.jsonl")
    await journal.append([_open("a", "ch-a"), _open("b", "ch-b"), _open("c", "ch-c")])
    await journal.clear(2, head={"op": "live", "rows": {"a": {"channel_id": "ch-a"}}})
    entries = await journal.entries()
    assert [(e["seq"], e["op"]) for e in entries] == [(2, "live"), (3, "open")]
    assert sorted(livecalls.rebuild(entries)) == ["a", "c"]
    assert WriteJournal(tmp_path / "calls.jsonl").pending == 2


# ---- the info line on a fake ARI, the database switched off ---------------------------------


@pytest.fixture
async def parts(template_db: Path, tmp_path: Path) -> AsyncIterator[tuple[Line, Switch, Path]]:
    shutil.copy(template_db, tmp_path / "centrala.db")
    url = f"sqlite+aiosqlite:///{tmp_path / 'centrala.db'}"
    engine = create_engine(url)
    switch = Switch(session_factory(engine))
    line = _wire(switch, tmp_path, Database(url, engine, switch.real))
    await line.ari.start()
    await line.ari.settle()
    await line.app.warm()
    try:
        yield line, switch, tmp_path
    finally:
        switch.down = False
        await _stop(line)
        await engine.dispose()


def _wire(switch: Switch, data: Path, db: Database, ari: FakeARI | None = None) -> Line:
    """The parts as `serve` wires them, on ``data`` (journal and snapshot)."""
    journal = WriteJournal(data / "journal" / "calls.jsonl")
    calllog = CallLog(switch.factory(), "BA", journal=journal)
    crm = CRM(switch.factory(), snapshot=Snapshot(data / "snapshot.json"), writer=calllog)
    ari = ari or FakeARI([APP])
    acd = ACD()
    desk = AgentDesk(ari, crm, acd, APP)
    app = InfolineApp(ari, calllog, crm, desk, acd, name=APP, region="BA")
    ari.on_event(app.on_event)
    ari.on_connect(app.reconcile)
    return Line(ari, app, desk, calllog, db)


async def _stop(line: Line) -> None:
    await line.ari.settle()
    await line.desk.close()
    await line.ari.stop()
    await line.calllog.aclose()


async def test_a_start_without_database_answers_from_the_snapshot_and_restores_agents(
    parts: tuple[Line, Switch, Path],
) -> None:
    line, switch, data = parts
    await line.login("ana", ["new_clients"])
    await line.settle()
    await _stop(line)  # serve stops; the host reboots; PostgreSQL is slow to come up
    switch.down = True
    again = _wire(switch, data, line.db)
    again.calllog.schema_ready.clear()
    again.calllog.start(database_down=True)
    await again.app.warm()  # the flow and queues from the snapshot
    await again.ari.start()
    await again.ari.settle()
    assert again.app.acd.agent("ana").status is AgentStatus.AVAILABLE  # logged in again
    await again.call("caller", keys="0")
    assert again.ari.requests_to("POST", "/channels/caller/answer")
    assert [c.endpoint for c in again.ari.originated()] == ["PJSIP/ana"]  # offered to ana
    switch.down = False
    again.calllog.schema_ready.set()
    assert await again.calllog.drain()
    assert (await again.row("caller")).flow_version == 1
    await _stop(again)


async def test_a_start_without_database_or_snapshot_cannot_run_the_ivr(
    template_db: Path, tmp_path: Path
) -> None:
    shutil.copy(template_db, tmp_path / "centrala.db")
    url = f"sqlite+aiosqlite:///{tmp_path / 'centrala.db'}"
    engine = create_engine(url)
    switch = Switch(session_factory(engine))
    switch.down = True
    line = _wire(switch, tmp_path, Database(url, engine, switch.real))
    with pytest.raises(NoFlowKnown, match="no snapshot"):
        await line.app.warm()
    await line.calllog.aclose()
    await engine.dispose()


async def test_a_restart_during_an_outage_adopts_the_calls_the_journal_holds(
    parts: tuple[Line, Switch, Path],
) -> None:
    line, switch, data = parts
    endpoint = await line.login("ana", ["new_clients"])
    await line.call("before")  # live before the outage: its row is in the database only
    switch.down = True
    await line.call("talker", keys="0")
    line.ari.pick_up(line.agent_leg(endpoint))
    await line.call("waiter", number="061 999 002", keys="0")  # ana is busy: queued
    await line.settle()
    ids = {ch: s.call_id for ch, s in line.app.calls.items()}
    # The process dies (nothing tidied up, its journal stays); a new one starts, the
    # database still down, on the same Asterisk.
    for session in line.app.calls.values():
        session.timers.cancel_all()
    await line.desk.close()
    line.ari.new_process()
    again = _wire(switch, data, line.db, line.ari)
    again.calllog.schema_ready.clear()
    again.calllog.start(database_down=True)
    await again.app.warm()
    await line.ari.reconnect()
    await line.ari.settle()
    assert again.app.adopted == 3
    assert {ch: s.call_id for ch, s in again.app.calls.items()} == ids
    acd = again.app.acd
    assert acd.agent("ana").current_call == "talker"  # still talking
    assert acd.snapshot(0)["queues"]["new_clients"]["waiting"] == 1  # kept their place
    line.ari.hang_up("talker")
    await again.settle()
    assert acd.agent("ana").current_call == "waiter"  # offered the next caller
    switch.down = False
    again.calllog.schema_ready.set()
    assert await again.calllog.drain()
    async with line.db.sessions() as db_session:
        stored = {c.channel_id: c for c in await db_session.scalars(select(Call))}
    assert sorted(stored) == ["before", "talker", "waiter"]
    assert stored["talker"].ended_at is not None and stored["talker"].agent_id == "ana"
    await _stop(again)


async def test_agent_sessions_are_journaled_in_order_and_replayed_once(
    parts: tuple[Line, Switch, Path],
) -> None:
    line, switch, data = parts
    await line.login("ana", ["new_clients"])
    await line.add_agent("bob", ["new_clients"])
    await line.app.crm.agent("bob")  # read once: known for the outage
    switch.down = True
    line.desk.pause("ana", "lunch")
    await line.desk.login("bob", None, AgentMode.PER_CALL)
    await line.desk.logout("bob")
    line.desk.ready("ana")
    line.desk.pause("ana", "meeting")
    await line.settle()
    await line.desk.close()  # the pending session writes are through
    assert line.app.acd.agent("ana").pause_reason == "meeting"
    kept = Snapshot(data / "snapshot.json").sessions()  # what a restart would log in
    assert [(r.agent_id, r.pause_reason) for r in kept or []] == [("ana", "meeting")]
    journaled = [
        (e["action"], e["agent_id"])
        for e in await line.calllog.journal.entries()  # type: ignore[union-attr]
        if e["op"] == "agent_session"
    ]
    assert journaled == [
        ("pause", "ana"),
        ("save", "bob"),
        ("drop", "bob"),
        ("pause", "ana"),
        ("pause", "ana"),
    ]
    switch.down = False
    assert await line.calllog.drain()
    async with line.db.sessions() as session:
        rows = list(await session.scalars(select(AgentSession)))
    assert [(r.agent_id, r.pause_reason) for r in rows] == [("ana", "meeting")]


async def test_survey_answers_during_an_outage_are_stored_once(
    parts: tuple[Line, Switch, Path],
) -> None:
    line, switch, _ = parts
    surveys = SurveyLog(switch.factory(), calllog=line.calllog, crm=line.app.crm)
    await line.call("caller")
    call_id = line.app.calls["caller"].call_id
    text = (Path(__file__).parents[2] / "surveys" / "nps.yaml").read_text()
    survey_id = (await apply_survey(line.db.sessions, check_survey(text, "nps.yaml"))).id
    switch.down = True
    respondent = await surveys.respondent(call_id)  # from the live call, not the row
    assert respondent is not None and respondent.call_id == call_id
    await surveys.started(call_id, survey_id)
    assert await surveys.save_answer(call_id, survey_id, None, Answer("recommend", 9), T0)
    await surveys.ended(call_id, SurveyStatus.COMPLETED)
    again = await surveys.respondent(call_id)
    assert again is not None and again.survey_status == "completed"  # not surveyed twice
    switch.down = False
    assert await line.calllog.drain()
    # A second replay of the same entries (a crash mid-drain) writes nothing twice.
    async with line.db.sessions() as session:
        op = {
            "action": "answer",
            "call_id": call_id,
            "survey_id": survey_id,
            "client_id": None,
            "question_key": "recommend",
            "value_int": 9,
            "value_text": None,
            "recording": None,
            "answered_at": T0,
        }
        assert await apply_survey_write(session, op, True) is False
        answers = list(await session.scalars(select(SurveyAnswer)))
        call = await session.get(Call, call_id)
    assert [(a.question_key, a.value_int) for a in answers] == [("recommend", 9)]
    assert call is not None and call.survey_status == "completed"


# ---- desk sessions through an outage --------------------------------------------------------


async def test_desk_sessions_last_the_outage_and_a_log_out_holds(
    parts: tuple[Line, Switch, Path],
) -> None:
    line, switch, _ = parts
    async with line.db.sessions() as session, session.begin():
        session.add(Agent(id="web", name="Web", role=AgentRole.AGENT, active=True))
    store = WebSessionStore(switch.factory(), timedelta(hours=9), writer=line.calllog)
    kept = await store.open("web", T0)
    ended = await store.open("web", T0)
    assert await store.live(kept, T0) is not None and await store.live(ended, T0) is not None
    switch.down = True
    late = T0 + OUTAGE_GRACE * 3  # confirmed before the outage: good for all of it
    assert await store.live(kept, T0 + timedelta(minutes=1)) is not None
    assert await store.live(kept, late) is not None
    await store.revoke(ended, late)  # journaled
    assert await store.live(ended, late) is None
    switch.down = False
    assert await line.calllog.drain()
    assert await store.live(ended, late) is None
    async with line.db.sessions() as session:
        revoked = await session.scalar(select(WebSession.revoked_at).where(WebSession.id == ended))
    assert revoked is not None
    fresh = WebSessionStore(line.db.sessions, timedelta(hours=9))  # a restarted process
    assert await fresh.live(ended, late) is None and await fresh.live(kept, late) is not None


async def test_a_call_started_again_during_an_outage_writes_onto_the_row_it_has(
    parts: tuple[Line, Switch, Path],
) -> None:
    """A caller found in the app that nothing readable knows (its row is in the database,
    which is away) is started as a new call under a new id; the drain puts every write of
    it on the row the channel already has, and makes no second row."""
    line, switch, _ = parts
    calllog = line.calllog
    kwargs: dict[str, Any] = {
        "linkedid": None,
        "direction": Direction.INBOUND,
        "handler": "ari",
        "caller_number": "061 999 001",
        "caller_name": None,
        "called_number": "0800100200",
        "started_at": T0,
    }
    first = await calllog.open_call(channel_id="lost", **kwargs)
    switch.down = True
    again = await calllog.open_call(channel_id="lost", adopted=True, **kwargs)
    assert again.new and again.id != first.id
    await calllog.answered(again.id, T0 + timedelta(seconds=1))
    await calllog.event(again.id, "language", language="bs")
    await calllog.close(
        again.id, at=T0 + timedelta(seconds=9), cause=16, cause_text=None, outcome="completed"
    )
    switch.down = False
    assert await calllog.drain()
    async with line.db.sessions() as session:
        rows = list(await session.scalars(select(Call).where(Call.channel_id == "lost")))
        assert [r.id for r in rows] == [first.id]
        assert rows[0].outcome == "completed" and rows[0].answered_at is not None
        kinds = list(
            await session.scalars(
                select(CallEvent.kind).where(CallEvent.call_id == first.id).order_by(CallEvent.id)
            )
        )
    assert kinds == ["opened", "adopted", "answered", "language", "closed"], kinds
    # Later writes of the same call (the database back) go to that row too.
    await calllog.event(again.id, "late")
    await calllog.flush()
    async with line.db.sessions() as session:
        late = await session.scalar(select(CallEvent.call_id).where(CallEvent.kind == "late"))
    assert late == first.id
