"""The info line's Stasis app on a fake ARI: events in through ``FakeARI`` (callers entering
Stasis, pressing keys, hanging up; agents' phones answering), requests and call rows out.

The app runs with its real parts (``InfolineApp``, ``AgentDesk``, the pure ACD, the real
CallLog and CRM on a migrated SQLite file, the shipped flow applied), so these tests see what
the integration tests see, in milliseconds; they talk to the app only through its entry points
(ARI events, ``AgentDesk.login``/``logout``, ``InfolineApp.control``) so a refactor of its
insides leaves them standing."""

from __future__ import annotations

import asyncio
import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy import select

from ari_app.agents import AgentDesk
from ari_app.ari import ARIConflict, ARINotFound
from ari_app.infoline import InfolineApp
from ari_app.testing import FakeARI
from core.acd import ACD, AgentMode
from core.enums import AgentRole
from core.media import prompt_of
from dialplan.validate import load_flow
from models.calllog import CallLog
from models.crm import CRM
from models.db import create_engine, session_factory
from models.flows import apply_flow
from models.tables import Agent, Call, CallEvent, QueueMember
from tests.conftest import Database, make_database

APP = "infoline"
FLOW_FILE = Path(__file__).parents[2] / "dialplan" / "infoline.yaml"
INFO_NUMBER = "0800100200"


def shipped_flow_open_always() -> str:
    """The shipped flow, with every queue open and no wrap-up: a test must not depend on the
    time of day (as in tests/integration/test_infoline_paths.py)."""
    data = yaml.safe_load(FLOW_FILE.read_text())
    for queue in data["queues"].values():
        queue["calendar"] = "always"
        queue["wrap_up_seconds"] = 0
    return yaml.safe_dump(data, allow_unicode=True)


@pytest.fixture(scope="module")
async def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrated once, flow applied; each test gets a copy of the file (a migration per test
    would cost more than the test)."""
    tmp = tmp_path_factory.mktemp("infoline-template")
    db = await make_database("sqlite", tmp)
    try:
        flow = load_flow(shipped_flow_open_always(), str(FLOW_FILE))
        await apply_flow(db.sessions, flow, created_by="tests")
    finally:
        await db.engine.dispose()
    return tmp / "centrala.db"


@dataclass
class Line:
    """The info line wired as `centrala serve` wires it, on a fake ARI."""

    ari: FakeARI
    app: InfolineApp
    desk: AgentDesk
    calllog: CallLog
    db: Database

    async def settle(self) -> None:
        """Every event handled and the call log's trail written."""
        await self.ari.settle()
        await self.calllog.flush()

    async def add_agent(self, agent_id: str, queues: list[str], *, role: str = "agent") -> str:
        endpoint = f"PJSIP/{agent_id}"
        async with self.db.sessions() as session:
            session.add(
                Agent(
                    id=agent_id,
                    name=agent_id.title(),
                    role=AgentRole(role),
                    endpoint=endpoint,
                    skills=[],
                    memberships=[QueueMember(queue_id=q) for q in queues],
                )
            )
            await session.commit()
        return endpoint

    async def login(self, agent_id: str, queues: list[str], *, role: str = "agent") -> str:
        endpoint = await self.add_agent(agent_id, queues, role=role)
        await self.desk.login(agent_id, None, AgentMode.PER_CALL)
        return endpoint

    async def call(self, channel_id: str, number: str = "061 999 001", keys: str = "") -> None:
        """A caller dials the info line (and presses ``keys`` during the recording notice)."""
        self.ari.stasis_start(
            channel_id, [f"linked-{channel_id}"], caller=("Test", number), exten=INFO_NUMBER
        )
        await self.settle()
        if keys:
            self.ari.dtmf(channel_id, keys)
            await self.settle()

    async def row(self, channel_id: str) -> Call:
        async with self.db.sessions() as session:
            row = await session.scalar(select(Call).where(Call.channel_id == channel_id))
        assert row is not None, f"no call row for {channel_id}"
        return row

    async def events(self, call_id: str, kind: str | None = None) -> list[tuple[str, Any]]:
        async with self.db.sessions() as session:
            stmt = select(CallEvent.kind, CallEvent.data).where(CallEvent.call_id == call_id)
            if kind is not None:
                stmt = stmt.where(CallEvent.kind == kind)
            rows = await session.execute(stmt.order_by(CallEvent.id))
            return [(r[0], r[1]) for r in rows]

    def agent_leg(self, endpoint: str) -> str:
        legs = [c.id for c in self.ari.originated() if c.endpoint == endpoint]
        assert len(legs) == 1, f"{endpoint}: {legs}"
        return legs[0]


@pytest.fixture
async def line(template_db: Path, tmp_path: Path) -> AsyncIterator[Line]:
    shutil.copy(template_db, tmp_path / "centrala.db")
    url = f"sqlite+aiosqlite:///{tmp_path / 'centrala.db'}"
    engine = create_engine(url)
    sessions = session_factory(engine)
    calllog = CallLog(sessions, "BA")
    crm = CRM(sessions)
    ari = FakeARI([APP])
    acd = ACD()
    desk = AgentDesk(ari, crm, acd, APP)
    app = InfolineApp(ari, calllog, crm, desk, acd, name=APP, region="BA")
    ari.on_event(app.on_event)
    ari.on_connect(app.reconcile)  # as serve wires it: adopt on the first connect, resync after
    await ari.start()
    await ari.settle()
    try:
        yield Line(ari, app, desk, calllog, Database(url, engine, sessions))
    finally:
        await ari.settle()
        await desk.close()
        await ari.stop()
        await calllog.aclose()
        await engine.dispose()


def no_leftovers(ari: FakeARI) -> None:
    assert ari.live_channels == {}, list(ari.live_channels)
    assert ari.live_bridges == {}, list(ari.live_bridges)
    assert ari.live_playbacks == {}, list(ari.live_playbacks)


# ---- the fake itself ----------------------------------------------------------------------


async def test_fake_ari_records_requests_and_models_channels_bridges_and_playbacks() -> None:
    ari = FakeARI(["app"])
    seen: list[tuple[str, str]] = []

    async def handler(event: dict[str, Any]) -> None:
        holder = event.get("playback") or event.get("recording") or {}
        key = event.get("channel", {}).get("id") or holder["target_uri"]
        seen.append((event["type"], key))

    ari.on_event(handler)
    ari.stasis_start("caller", ["x"], caller="061 000 000")
    await ari.answer("caller")
    playback = await ari.play("caller", ["sound:a", "sound:b"], "caller-p1")
    assert playback["target_uri"] == "channel:caller"
    leg = await ari.originate("PJSIP/101", channel_id="leg", app="app", app_args="agent,a1")
    assert leg["state"] == "Down"
    with pytest.raises(ARIConflict):  # an originate retried with the same id does not dial
        await ari.originate("PJSIP/101", channel_id="leg", app="app")
    ari.pick_up("leg")
    await ari.request("POST", "/bridges/b1", params={"type": "mixing"})
    await ari.request("POST", "/bridges/b1/addChannel", params={"channel": "leg"})
    await ari.request("POST", "/bridges/b1/addChannel", params={"channel": "caller"})
    assert [b["channels"] for b in await ari.bridges()] == [["leg", "caller"]]
    ari.finish_playback("caller-p1")
    await ari.request("POST", "/channels/caller/record", params={"name": "why", "format": "wav"})
    finished = ari.finish_recording("why", seconds=3)
    assert finished["recording"]["talking_duration"] == 3
    ari.hang_up("caller")
    await ari.settle()

    with pytest.raises(ARINotFound):
        await ari.get_channel("caller")
    with pytest.raises(ARINotFound):
        await ari.hangup("caller")
    assert ari.bridge_of("leg") is not None and ari.live_bridges["b1"].channels == ["leg"]
    assert [(r.method, r.path) for r in ari.requests[:3]] == [
        ("POST", "/channels/caller/answer"),
        ("POST", "/channels/caller/play/caller-p1"),
        ("POST", "/channels/leg"),
    ]
    assert ari.requests[1].params == {"media": ["sound:a", "sound:b"]}
    assert ari.requests[2].params["appArgs"] == "agent,a1"
    caller_events = [kind for kind, key in seen if key in ("caller", "channel:caller")]
    assert caller_events == [
        "StasisStart",
        "ChannelStateChange",
        "PlaybackStarted",
        "ChannelEnteredBridge",
        "PlaybackFinished",
        "RecordingStarted",
        "RecordingFinished",
        "ChannelHangupRequest",
        "ChannelLeftBridge",
        "StasisEnd",
        "ChannelDestroyed",
    ]
    assert ("StasisStart", "leg") in seen
    assert next(
        e for e in ari.emitted if e["type"] == "StasisStart" and e["channel"]["id"] == "leg"
    )["args"] == ["agent", "a1"]
    await ari.stop()


async def test_fake_ari_orders_each_channels_events_and_never_lets_one_call_hold_another() -> None:
    ari = FakeARI(["app"])
    order: list[str] = []
    gate, b_started = asyncio.Event(), asyncio.Event()

    async def handler(event: dict[str, Any]) -> None:
        channel_id = event["channel"]["id"]
        if (channel_id, event["type"]) == ("a", "StasisStart"):
            await gate.wait()  # a slow handler on "a"
            await ari.answer("a")
        if channel_id == "b":
            b_started.set()
        order.append(f"{channel_id}:{event['type']}")

    ari.on_event(handler)
    ari.stasis_start("a")
    ari.dtmf("a", "1")
    ari.stasis_start("b")
    await asyncio.wait_for(b_started.wait(), 1)
    assert order == ["b:StasisStart"]  # "b" was not held up by "a"
    gate.set()
    await ari.settle()
    # The key was queued behind StasisStart before the answer's state change was sent.
    assert [e for e in order if e.startswith("a:")] == [
        "a:StasisStart",
        "a:ChannelDtmfReceived",
        "a:ChannelStateChange",
    ]
    await ari.stop()


# ---- the info line ------------------------------------------------------------------------


async def test_caller_hanging_up_in_the_ivr_closes_the_row_as_abandoned_in_ivr(
    line: Line,
) -> None:
    await line.call("caller-1", "061 999 001")
    assert line.ari.requests_to("POST", "/channels/caller-1/answer")
    notice = line.ari.playing("caller-1")
    assert len(notice) == 1 and notice[0].id.startswith("caller-1-")

    line.ari.hang_up("caller-1")
    await line.settle()

    row = await line.row("caller-1")
    assert (row.outcome, row.hangup_cause, row.caller_number) == (
        "abandoned_in_ivr",
        16,
        "061 999 001",
    )
    assert row.linkedid == "linked-caller-1" and row.called_number == INFO_NUMBER
    assert row.answered_at is not None and row.ended_at is not None
    assert row.ivr_path == ["notice"]
    assert [k for k, _ in await line.events(row.id)] == ["opened", "answered", "closed"]
    no_leftovers(line.ari)


async def test_caller_pressing_nine_after_the_language_prompt_hears_the_rest_in_english(
    line: Line,
) -> None:
    await line.call("caller-2")

    def now_playing() -> list[str]:
        (playback,) = line.ari.playing("caller-2")
        return [prompt_of(media) for media in playback.media]

    for prompt in ("bs/recording_notice", "bs/choose_language"):
        assert now_playing() == [f"sound:centrala/{prompt}"]
        line.ari.finish_playback(line.ari.playing("caller-2")[0].id)
        await line.settle()
    assert line.ari.playing("caller-2") == []  # the language prompt waits for a key
    line.ari.dtmf("caller-2", "9")
    await line.settle()
    for prompt in ("en/welcome", "en/main_menu"):
        assert now_playing() == [f"sound:centrala/{prompt}"]
        line.ari.finish_playback(line.ari.playing("caller-2")[0].id)
        await line.settle()

    line.ari.hang_up("caller-2")
    await line.settle()
    row = await line.row("caller-2")
    assert row.ivr_path == ["notice", "language", "language:9", "who", "greeting_new", "main_menu"]
    assert [d for _, d in await line.events(row.id, "language")] == [{"language": "en"}]
    no_leftovers(line.ari)


async def test_new_caller_pressing_zero_is_connected_to_a_per_call_agent(line: Line) -> None:
    endpoint = await line.login("ana", ["new_clients"])
    await line.call("caller-3", keys="0")  # 0 during the notice: typed ahead to the menu

    leg = line.agent_leg(endpoint)
    (originate,) = line.ari.requests_to("POST", f"/channels/{leg}")
    assert originate.params["endpoint"] == endpoint
    assert originate.params["app"] == APP
    assert originate.params["appArgs"] == "agent,ana,caller-3"
    assert originate.params["callerId"] == "<061999001>"  # the number as dialled, cleaned
    queued = await line.row("caller-3")
    assert queued.queue == "new_clients" and queued.queued_at is not None
    assert line.ari.live_channels["caller-3"].moh == "default"  # music while it rings

    line.ari.pick_up(leg)
    await line.settle()

    bridge = line.ari.bridge_of("caller-3")
    assert bridge is not None and sorted(bridge.channels) == sorted([leg, "caller-3"])
    assert line.ari.live_channels["caller-3"].moh is None
    row = await line.row("caller-3")
    assert (row.agent_id, row.queue) == ("ana", "new_clients")
    assert row.connected_at is not None
    assert [d["agent_id"] for _, d in await line.events(row.id, "agent_connected")] == ["ana"]

    line.ari.hang_up("caller-3")
    await line.settle()
    row = await line.row("caller-3")
    assert row.outcome == "answered" and row.talk_seconds is not None
    assert row.ivr_path[-2:] == ["main_menu:0", "operator"]
    no_leftovers(line.ari)  # the agent's leg hung up, the call's bridge gone


async def test_caller_leaving_the_queue_while_the_agent_rings_is_abandoned_in_queue(
    line: Line,
) -> None:
    endpoint = await line.login("ana", ["new_clients"])
    await line.call("caller-4", keys="0")
    leg = line.agent_leg(endpoint)

    line.ari.hang_up("caller-4")
    await line.settle()

    assert leg in line.ari.destroyed  # the ringing agent leg was hung up by the app
    assert line.ari.requests_to("DELETE", f"/channels/{leg}")
    row = await line.row("caller-4")
    assert (row.outcome, row.queue) == ("abandoned_in_queue", "new_clients")
    assert row.agent_id is None and row.connected_at is None
    no_leftovers(line.ari)

    # The agent is free again: the next caller rings them.
    await line.call("caller-5", keys="0")
    assert line.agent_leg(endpoint) != leg
    line.ari.hang_up("caller-5")
    await line.settle()


async def test_caller_with_nobody_logged_in_waits_on_music_and_abandons_in_queue(
    line: Line,
) -> None:
    await line.call("caller-6", keys="0")
    assert line.ari.originated() == []
    assert line.ari.live_channels["caller-6"].moh == "default"
    assert [
        d["queue"] for _, d in await line.events((await line.row("caller-6")).id, "queued")
    ] == ["new_clients"]
    line.ari.hang_up("caller-6")
    await line.settle()
    assert (await line.row("caller-6")).outcome == "abandoned_in_queue"
    no_leftovers(line.ari)


async def test_nailed_up_agent_waits_in_own_bridge_and_gets_the_caller_bridged_in(
    line: Line,
) -> None:
    endpoint = await line.add_agent("nina", ["new_clients"])
    await line.desk.login("nina", None, AgentMode.NAILED)
    await line.settle()
    leg = line.agent_leg(endpoint)
    assert line.ari.requests_to("POST", f"/channels/{leg}")[0].params["appArgs"] == "nailed,nina"

    line.ari.pick_up(leg)
    await line.settle()
    own = line.ari.bridge_of(leg)
    assert own is not None and own.channels == [leg]  # alone in their bridge, logged in

    await line.call("caller-7", keys="0")
    assert line.ari.bridge_of("caller-7") is own
    assert sorted(own.channels) == sorted([leg, "caller-7"])
    assert [c.id for c in line.ari.originated()] == [leg]  # nobody else was rung
    row = await line.row("caller-7")
    assert row.agent_id == "nina" and row.connected_at is not None

    line.ari.hang_up("caller-7")
    await line.settle()
    assert (await line.row("caller-7")).outcome == "answered"
    assert own.channels == [leg] and leg in line.ari.live_channels  # the leg stays up

    await line.call("caller-8", keys="0")  # and takes the next caller
    assert sorted(own.channels) == sorted([leg, "caller-8"])
    line.ari.hang_up("caller-8")
    await line.settle()

    await line.desk.logout("nina")
    await line.settle()
    no_leftovers(line.ari)


async def test_duplicated_stasis_start_changes_nothing(line: Line) -> None:
    await line.call("caller-9")
    first = next(
        e
        for e in line.ari.emitted
        if e["type"] == "StasisStart" and e["channel"]["id"] == "caller-9"
    )
    requests_before = list(line.ari.requests)

    line.ari.emit(first)
    await line.settle()

    assert line.ari.requests == requests_before  # not answered twice, no second notice
    async with line.db.sessions() as session:
        rows = list(await session.scalars(select(Call).where(Call.channel_id == "caller-9")))
    assert len(rows) == 1
    assert [k for k, _ in await line.events(rows[0].id)] == ["opened", "answered"]
    line.ari.hang_up("caller-9")
    await line.settle()
    assert (await line.row("caller-9")).outcome == "abandoned_in_ivr"


CONNECTED_TRAIL = ["opened", "answered", "routed", "queued", "offered", "agent_connected", "closed"]


async def test_forty_callers_at_once_each_get_their_whole_trail_once_and_in_order(
    line: Line,
) -> None:
    """Issue 18: rows and trails of many calls are written behind in shared batches; under
    that load every call still has each event exactly once, in the order it happened, and
    its row the values written last."""
    agents = [f"agent{i}" for i in range(8)]
    for agent in agents:
        await line.login(agent, ["new_clients"])
    callers = [f"load-{i:02d}" for i in range(40)]
    for i, caller in enumerate(callers):
        line.ari.stasis_start(
            caller, [f"linked-{caller}"], caller=("Test", f"061 998 {i:03d}"), exten=INFO_NUMBER
        )
    for caller in callers:
        line.ari.dtmf(caller, "0")  # all typed ahead during the notice, all queued at once
    await line.settle()
    # Eight callers give up: four while their agent's phone rings, four while waiting.
    rung = [
        str(r.params["appArgs"]).split(",")[2]
        for r in line.ari.requests_to("POST", "/channels/")
        if str(r.params.get("appArgs", "")).startswith("agent,")
    ]
    assert len(rung) == len(agents)
    leavers = rung[:4] + [c for c in callers if c not in rung][:4]
    for caller in leavers:
        line.ari.hang_up(caller)
    await line.settle()
    for _ in range(len(callers)):
        ringing = [c.id for c in line.ari.originated() if c.state != "Up"]
        talking = [c for c in callers if c in line.ari.live_channels and line.ari.bridge_of(c)]
        if not ringing and not talking:
            break
        for leg in ringing:
            line.ari.pick_up(leg)
        await line.settle()
        for caller in talking:
            line.ari.hang_up(caller)
        await line.settle()
    no_leftovers(line.ari)

    async with line.db.sessions() as session:
        rows = {
            r.channel_id: r
            for r in await session.scalars(select(Call).where(Call.channel_id.in_(callers)))
        }
        trail = list(
            await session.execute(
                select(CallEvent.call_id, CallEvent.id, CallEvent.at, CallEvent.kind)
                .where(CallEvent.call_id.in_([r.id for r in rows.values()]))
                .order_by(CallEvent.id)
            )
        )
    assert sorted(rows) == callers
    by_call: dict[str, list[Any]] = {}
    for event in trail:
        by_call.setdefault(event.call_id, []).append(event)
    connected = 0
    for caller, row in rows.items():
        events = by_call[row.id]
        kinds = [e.kind for e in events]
        assert [e.at for e in events] == sorted(e.at for e in events), caller  # written in order
        if caller in leavers:
            assert row.outcome == "abandoned_in_queue", caller
            assert kinds in ([*CONNECTED_TRAIL[:4], "closed"], [*CONNECTED_TRAIL[:5], "closed"])
            assert row.agent_id is None and row.connected_at is None
            continue
        connected += 1
        assert kinds == CONNECTED_TRAIL, caller
        assert row.outcome == "answered" and row.queue == "new_clients"
        assert row.agent_id in agents and row.answered_at is not None
        assert row.queued_at is not None and row.connected_at is not None
        assert row.queued_at <= row.connected_at <= row.ended_at
        assert row.live_state is None
    assert connected == len(callers) - len(leavers)
    for caller in leavers[:4]:  # left while it rang
        assert "offered" in [e.kind for e in by_call[rows[caller].id]]


async def test_blind_transfer_to_the_supervisor_rings_them_and_frees_the_first_agent(
    line: Line,
) -> None:
    first = await line.login("ana", ["new_clients"])
    boss = await line.login("boss", ["supervisor"], role="supervisor")
    await line.call("caller-10", keys="0")
    first_leg = line.agent_leg(first)
    line.ari.pick_up(first_leg)
    await line.settle()
    row = await line.row("caller-10")
    assert row.agent_id == "ana"
    first_bridge = line.ari.bridge_of("caller-10")
    assert first_bridge is not None

    await line.app.control(row.id, "transfer", "supervisor")
    await line.settle()

    assert first_leg in line.ari.destroyed  # the first agent is released
    assert first_bridge.id not in line.ari.live_bridges
    assert line.ari.bridge_of("caller-10") is None
    assert line.ari.live_channels["caller-10"].moh == "default"  # waits on music
    boss_leg = line.agent_leg(boss)
    line.ari.pick_up(boss_leg)
    await line.settle()

    bridge = line.ari.bridge_of("caller-10")
    assert bridge is not None and sorted(bridge.channels) == sorted([boss_leg, "caller-10"])
    row = await line.row("caller-10")
    assert (row.agent_id, row.queue) == ("boss", "supervisor")
    assert [d for _, d in await line.events(row.id, "transferred")] == [
        {"mode": "blind", "from_agent": "ana", "to": "supervisor"}
    ]

    # The first agent takes the next caller at once.
    await line.call("caller-11", keys="0")
    assert line.agent_leg(first) != first_leg

    line.ari.hang_up("caller-11")
    line.ari.hang_up("caller-10")
    await line.settle()
    closed = await line.row("caller-10")
    assert (closed.outcome, closed.queue, closed.agent_id) == ("answered", "supervisor", "boss")
    no_leftovers(line.ari)


async def test_agent_that_does_not_answer_is_logged_and_the_caller_keeps_waiting(
    line: Line,
) -> None:
    endpoint = await line.login("sleepy", ["new_clients"])
    await line.call("caller-12", keys="0")
    leg = line.agent_leg(endpoint)

    line.ari.hang_up(leg, cause=19, cause_txt="No answer")  # the phone rang out
    await line.settle()

    row = await line.row("caller-12")
    assert [d["agent_id"] for _, d in await line.events(row.id, "agent_no_answer")] == ["sleepy"]
    assert row.connected_at is None and row.ended_at is None
    line.ari.hang_up("caller-12")
    await line.settle()
    assert (await line.row("caller-12")).outcome == "abandoned_in_queue"
    no_leftovers(line.ari)


# ---- a restart of the process -------------------------------------------------------------


async def new_process(line: Line) -> tuple[InfolineApp, ACD, AgentDesk]:
    """The process dies (its timers with it; Asterisk keeps every channel and bridge) and a
    new one, wired as serve wires it, connects and adopts what it finds."""
    for session in line.app.calls.values():
        session.timers.cancel_all()
    await line.desk.close()
    line.ari.new_process()
    acd = ACD()
    crm = CRM(line.db.sessions)
    desk = AgentDesk(line.ari, crm, acd, APP)
    app = InfolineApp(line.ari, line.calllog, crm, desk, acd, name=APP, region="BA")
    line.ari.on_event(app.on_event)
    line.ari.on_connect(app.reconcile)
    await line.ari.reconnect()
    await line.ari.settle()
    return app, acd, desk


async def test_a_new_process_adopts_the_talking_the_queued_and_the_ivr_caller(line: Line) -> None:
    endpoint = await line.login("ana", ["new_clients"])
    await line.call("talker", keys="0")
    line.ari.pick_up(line.agent_leg(endpoint))
    await line.call("waiter", number="061 999 002", keys="0")
    await line.call("browser", number="061 999 003")  # still hearing the recording notice
    await line.settle()
    (old_prompt,) = line.ari.playing("browser")

    app, acd, desk = await new_process(line)
    assert app.ready and app.adopted == 3
    await line.settle()

    assert line.ari.destroyed == []  # nobody hung up
    assert acd.agent("ana").status == "on_call" and acd.agent("ana").current_call == "talker"
    assert [c.call_id for c in acd.waiting()] == ["waiter"]
    assert line.ari.live_channels["waiter"].moh == "default"
    # The IVR caller hears the node again; the old prompt is stopped, the new id is new.
    assert line.ari.requests_to("DELETE", f"/playbacks/{old_prompt.id}")
    (new_prompt,) = line.ari.playing("browser")
    assert new_prompt.id != old_prompt.id

    line.ari.hang_up("talker")
    await line.settle()
    talker = await line.row("talker")
    assert talker.outcome == "answered" and talker.agent_id == "ana"
    assert talker.live_state is None
    # The freed agent's phone rings for the caller who was waiting.
    (ring,) = [c for c in line.ari.originated() if c.endpoint == endpoint and c.state == "Down"]
    assert line.ari.requests_to("POST", f"/channels/{ring.id}")[0].params["appArgs"] == (
        "agent,ana,waiter"
    )
    for caller in ("waiter", "browser"):
        line.ari.hang_up(caller)
    await line.settle()
    assert (await line.row("waiter")).outcome == "abandoned_in_queue"
    assert (await line.row("browser")).outcome == "abandoned_in_ivr"
    for caller in ("talker", "waiter", "browser"):
        row = await line.row(caller)
        assert [k for k, _ in await line.events(row.id, "closed")] == ["closed"]
        assert [k for k, _ in await line.events(row.id, "adopted")] == ["adopted"]
    await desk.close()
    no_leftovers(line.ari)


async def test_a_call_row_with_an_unreadable_live_state_starts_the_flow_again(line: Line) -> None:
    await line.call("caller-x")
    row = await line.row("caller-x")
    async with line.db.sessions() as session:
        await session.execute(
            Call.__table__.update().where(Call.id == row.id).values(live_state={"v": 99})
        )
        await session.commit()
    app, _, _ = await new_process(line)
    assert app.adopted == 1 and "caller-x" in app.calls
    assert app.calls["caller-x"].ivr.node == "notice"  # from the top of the flow
    line.ari.hang_up("caller-x")
    await line.settle()
    assert (await line.row("caller-x")).outcome == "abandoned_in_ivr"


# ---- a reconnect: what the calls missed while Asterisk's events could not reach us -------


async def reconnect(line: Line) -> None:
    await line.ari.reconnect()
    await line.settle()
    await line.ari.settle()


async def test_prompt_that_ended_while_disconnected_does_not_leave_the_caller_in_silence(
    line: Line,
) -> None:
    await line.call("flap-1")
    (notice,) = line.ari.playing("flap-1")
    line.ari.disconnect()
    line.ari.finish_playback(notice.id)  # its PlaybackFinished is lost
    assert [e["type"] for e in line.ari.lost] == ["PlaybackFinished"]
    assert line.ari.playing("flap-1") == []  # silence, until we notice
    await reconnect(line)
    (now_playing,) = line.ari.playing("flap-1")
    assert [prompt_of(m) for m in now_playing.media] == ["sound:centrala/bs/choose_language"]
    line.ari.hang_up("flap-1")
    await line.settle()
    no_leftovers(line.ari)


async def test_agent_answering_while_disconnected_is_bridged_to_the_caller_on_reconnect(
    line: Line,
) -> None:
    endpoint = await line.login("ana", ["new_clients"])
    await line.call("flap-2", keys="0")
    leg = line.agent_leg(endpoint)
    line.ari.disconnect()
    line.ari.pick_up(leg)  # its StasisStart is lost
    await reconnect(line)
    bridge = line.ari.bridge_of("flap-2")
    assert bridge is not None and sorted(bridge.channels) == sorted([leg, "flap-2"])
    assert (await line.row("flap-2")).agent_id == "ana"
    line.ari.hang_up("flap-2")
    await line.settle()
    no_leftovers(line.ari)


async def test_agent_hanging_up_while_disconnected_ends_the_call_and_frees_the_agent(
    line: Line,
) -> None:
    endpoint = await line.login("ana", ["new_clients"])
    await line.call("flap-3", keys="0")
    leg = line.agent_leg(endpoint)
    line.ari.pick_up(leg)
    await line.settle()
    line.ari.disconnect()
    line.ari.hang_up(leg)  # the agent's ChannelDestroyed is lost
    await reconnect(line)
    row = await line.row("flap-3")
    assert row.outcome == "answered" and row.ended_at is not None
    assert [k for k, _ in await line.events(row.id, "agent_hung_up")] == ["agent_hung_up"]
    assert line.app.acd.agent("ana").status in ("available", "wrap_up")
    no_leftovers(line.ari)


async def test_asterisk_restart_frees_the_agents_and_closes_calls_as_lost_at_the_outage(
    line: Line,
) -> None:
    endpoint = await line.login("ana", ["new_clients"])
    await line.call("talker", keys="0")
    line.ari.pick_up(line.agent_leg(endpoint))
    await line.call("waiter", number="061 999 002", keys="0")
    await line.settle()

    line.ari.restart_asterisk()
    outage = line.ari.disconnected_at
    assert outage is not None
    await reconnect(line)

    talker, waiter = await line.row("talker"), await line.row("waiter")
    # The talk happened; the wait was cut by us, not given up by the caller.
    assert talker.outcome == "answered" and waiter.outcome == "lost"
    assert talker.ended_at == waiter.ended_at == outage  # not the reconnect's time
    assert talker.connected_at is not None and talker.talk_seconds == pytest.approx(
        (outage - talker.connected_at).total_seconds()
    )
    assert talker.hangup_cause_text == "lost in a restart of Asterisk"
    assert line.app.calls == {}
    assert line.app.acd.agent("ana").status in ("available", "wrap_up")
    await line.desk.logout("ana")  # not stuck on a call that no longer exists
    no_leftovers(line.ari)


async def test_callers_arriving_together_after_an_apply_read_the_new_flow_once(
    line: Line, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An admin applies a new flow version, then 20 callers arrive at once: the version is
    read and checked once, not by each of them (each did, and 50 callers at once heard the
    first prompt up to 1 s late)."""
    import ari_app.infoline.calls as calls_module

    data = yaml.safe_load(shipped_flow_open_always())
    for queue in data["queues"].values():
        queue["wrap_up_seconds"] = 1  # a change: a new version
    flow = load_flow(yaml.safe_dump(data, allow_unicode=True), str(FLOW_FILE))
    version = await apply_flow(line.db.sessions, flow, created_by="tests")
    reads: list[int] = []
    real = calls_module.flow_version

    async def counted(sessions: Any, name: str, version: int) -> Any:
        reads.append(version)
        await asyncio.sleep(0)  # the others arrive while it reads
        return await real(sessions, name, version)

    monkeypatch.setattr(calls_module, "flow_version", counted)
    for n in range(20):
        line.ari.stasis_start(
            f"burst-{n}",
            [f"linked-burst-{n}"],
            caller=("Test", f"06199900{n:02d}"),
            exten=INFO_NUMBER,
        )
    await line.settle()
    assert reads == [version]
    rows = [await line.row(f"burst-{n}") for n in range(20)]
    assert {r.flow_version for r in rows} == {version}
