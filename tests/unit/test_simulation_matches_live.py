"""The simulator against the live info line: the same caller, moment and keys go once through
``core.simulation.simulate`` and once through the info line's Stasis app on the fake ARI (with
its real CallLog and CRM on SQLite, the shipped flow applied with its real calendars), and the
call's row must say what the simulation says: the IVR path as stored, the prompts played, the
queue, the outcome, the callback task.

The live call is driven with the simulator's reading of the keys: a plain key is pressed when
the app waits for one (every prompt played to its end, a timer running), ``>key`` while a
prompt plays, ``w`` lets the running timer go off (in a queue: the maximum wait), ``h`` hangs
up; after the last key the prompts play out and the timers go off until the call is queued or
ended. Timers are fired by the test (a menu's 5 s are not waited for), and the app's clock for
opening hours is held at the simulation's moment."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

import ari_app.infoline.queueing as queueing
from ari_app.agents import AgentDesk
from ari_app.ari import TIMER, ChannelTimers
from ari_app.infoline import InfolineApp
from ari_app.testing import FakeARI
from core.acd import ACD
from core.callphase import Phase
from core.enums import ClientType
from core.routing import Caller
from core.simulation import Press, Simulation, parse_keys, simulate
from dialplan.validate import load_flow
from models.calllog import CallLog
from models.crm import CRM, caller_of
from models.db import create_engine, session_factory
from models.flows import active_flow, apply_flow
from models.tables import Call, Callback, Client, ClientPhone
from tests.conftest import make_database

APP = "infoline"
FLOW_FILE = Path(__file__).parents[2] / "dialplan" / "infoline.yaml"
SARAJEVO = ZoneInfo("Europe/Sarajevo")
OPEN = datetime(2026, 12, 1, 10, 0, tzinfo=SARAJEVO)  # a Tuesday morning
CLOSED = datetime(2026, 12, 1, 20, 0, tzinfo=SARAJEVO)
UNKNOWN_NUMBER = "061 999 001"
KEY_CLIENT_NUMBER = "061 555 001"
DEBT_CLIENT_NUMBER = "061 555 002"
QUEUE_TIMERS = ("max_wait", "announce")


@dataclass
class ManualTimers:
    """ChannelTimers that never go off by themselves: the test fires them."""

    pending: dict[str, dict[str, ChannelTimers]] = field(default_factory=dict)

    def install(self, monkeypatch: pytest.MonkeyPatch) -> None:
        timers = self

        def start(self: ChannelTimers, timer_id: str, seconds: float) -> None:
            timers.pending.setdefault(self.channel_id, {})[timer_id] = self

        def cancel(self: ChannelTimers, timer_id: str) -> None:
            timers.pending.get(self.channel_id, {}).pop(timer_id, None)

        def cancel_all(self: ChannelTimers) -> None:
            timers.pending.pop(self.channel_id, None)

        monkeypatch.setattr(ChannelTimers, "start", start)
        monkeypatch.setattr(ChannelTimers, "cancel", cancel)
        monkeypatch.setattr(ChannelTimers, "cancel_all", cancel_all)

    def ivr_timer(self, channel_id: str) -> str | None:
        names = [t for t in self.pending.get(channel_id, {}) if t not in QUEUE_TIMERS]
        assert len(names) <= 1, names
        return names[0] if names else None

    def fire(self, channel_id: str, timer_id: str) -> None:
        owner = self.pending[channel_id].pop(timer_id)
        owner.ari.dispatch(
            {
                "type": TIMER,
                "application": owner.app,
                "channel": {"id": channel_id},
                "timer": timer_id,
            }
        )


@pytest.fixture(scope="module")
async def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Migrated once, the shipped flow applied as it is, two clients on file."""
    tmp = tmp_path_factory.mktemp("simulation-template")
    db = await make_database("sqlite", tmp)
    try:
        await apply_flow(db.sessions, load_flow(FLOW_FILE.read_text(), str(FLOW_FILE)), "tests")
        async with db.sessions() as session, session.begin():
            session.add_all(
                [
                    Client(
                        external_id="k1",
                        name="Key Client",
                        language="en",
                        client_type=ClientType.KEY,
                        phones=[ClientPhone(number="+38761555001")],
                    ),
                    Client(
                        external_id="d1",
                        name="Debtor",
                        language="bs",
                        client_type=ClientType.REGULAR,
                        overdue_debt=True,
                        phones=[ClientPhone(number="+38761555002")],
                    ),
                ]
            )
    finally:
        await db.engine.dispose()
    return tmp / "centrala.db"


@dataclass
class LiveLine:
    ari: FakeARI
    app: InfolineApp
    calllog: CallLog
    crm: CRM
    timers: ManualTimers
    clock: list[datetime]

    async def settle(self) -> None:
        await self.ari.settle()
        await self.calllog.flush()

    def phase(self, channel_id: str) -> Phase | None:
        session = self.app.calls.get(channel_id)
        return None if session is None else session.phase

    async def step(self, channel_id: str) -> bool:
        """Let the next thing happen in the IVR: the prompt playing ends, or else the IVR's
        timer goes off. False when nothing was pending."""
        playing = self.ari.playing(channel_id)
        if playing:
            self.ari.finish_playback(playing[0].id)
        elif (timer := self.timers.ivr_timer(channel_id)) is not None:
            self.timers.fire(channel_id, timer)
        else:
            return False
        await self.settle()
        return True

    async def press(self, channel_id: str, press: Press) -> None:
        if press.action == "hang_up":
            self.ari.hang_up(channel_id)
        elif self.phase(channel_id) is Phase.QUEUED:
            await self.in_queue(channel_id, press)
        elif press.action == "wait":
            # Prompts play to their end until a timer runs, which goes off.
            while self.phase(channel_id) is Phase.IVR:
                timer = self.timers.ivr_timer(channel_id)
                playing = self.ari.playing(channel_id)
                if timer is not None and not playing:
                    self.timers.fire(channel_id, timer)
                    await self.settle()
                    break
                if not playing:
                    break
                self.ari.finish_playback(playing[0].id)
                await self.settle()
            if self.phase(channel_id) is Phase.QUEUED:
                await self.in_queue(channel_id, press)
            return
        else:
            if not (press.during_prompt and self.ari.playing(channel_id)):
                while self.phase(channel_id) is Phase.IVR and (
                    self.ari.playing(channel_id) or self.timers.ivr_timer(channel_id) is None
                ):
                    if not await self.step(channel_id):
                        break
            if self.phase(channel_id) is Phase.QUEUED:
                await self.in_queue(channel_id, press)
                return
            self.ari.dtmf(channel_id, press.key)
        await self.settle()

    async def in_queue(self, channel_id: str, press: Press) -> None:
        if press.action == "wait":
            self.timers.fire(channel_id, "max_wait")
        else:
            self.ari.dtmf(channel_id, press.key)
        await self.settle()

    async def call(self, channel_id: str, number: str, keys: str) -> Call:
        self.ari.stasis_start(channel_id, [f"linked-{channel_id}"], caller=("T", number))
        await self.settle()
        for press in parse_keys(keys):
            if self.phase(channel_id) in (None, Phase.ENDED):
                break
            await self.press(channel_id, press)
        while self.phase(channel_id) is Phase.IVR and await self.step(channel_id):
            pass
        if channel_id in self.ari.live_channels:
            self.ari.hang_up(channel_id)
        await self.settle()
        async with self.calllog.sessions() as session:
            row = await session.scalar(select(Call).where(Call.channel_id == channel_id))
        assert row is not None
        return row


@pytest.fixture
async def live(
    template_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[LiveLine]:
    shutil.copy(template_db, tmp_path / "centrala.db")
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'centrala.db'}")
    sessions = session_factory(engine)
    timers = ManualTimers()
    timers.install(monkeypatch)
    clock = [OPEN]
    # The queue's hours and the callback's due time are decided on this clock.
    monkeypatch.setattr(queueing, "now", lambda: clock[0])
    calllog = CallLog(sessions, "BA")
    crm = CRM(sessions)
    ari = FakeARI([APP])
    acd = ACD()
    desk = AgentDesk(ari, crm, acd, APP)
    app = InfolineApp(ari, calllog, crm, desk, acd, name=APP, region="BA")
    ari.on_event(app.on_event)
    ari.on_connect(app.reconcile)
    await ari.start()
    await ari.settle()
    try:
        yield LiveLine(ari, app, calllog, crm, timers, clock)
    finally:
        await ari.settle()
        await desk.close()
        await ari.stop()
        await calllog.aclose()
        await engine.dispose()


async def caller_with(line: LiveLine, number: str) -> Caller:
    """The caller as the live line reads them from the CRM (by their number)."""
    async with line.calllog.sessions() as session:
        found = await line.calllog.find_clients(session, {e164(number)})
    clients = next(iter(found.values()), [])
    return caller_of(clients[0] if clients else None)


def played(line: LiveLine, channel_id: str) -> list[str]:
    plays = line.ari.requests_to("POST", f"/channels/{channel_id}/play")
    return [m for r in plays for m in r.params["media"]]


async def callback_row(line: LiveLine, call_id: str) -> Callback | None:
    async with line.calllog.sessions() as session:
        return await session.scalar(select(Callback).where(Callback.call_id == call_id))


def e164(number: str) -> str:
    return "+387" + number.replace(" ", "")[1:]


@dataclass(frozen=True)
class Case:
    keys: str
    number: str = UNKNOWN_NUMBER
    at: datetime = OPEN


CASES = {
    "language then loan": Case("9 2"),
    "typed ahead in the notice": Case(">0"),
    "silent": Case(""),
    "invalid keys": Case("7 7 7"),
    "a menu timeout then information": Case("w w 1 w 4"),
    "survey agreement": Case("6 0"),
    "star in the queue": Case("0*1"),
    "overflow twice": Case("0ww1"),
    "hangs up in the queue": Case("0h"),
    "hangs up in the notice": Case("h"),
    "key client": Case("2", KEY_CLIENT_NUMBER),
    "client in debt": Case("w 0", DEBT_CLIENT_NUMBER),
    "after hours, own number": Case("0 1", at=CLOSED),
    "after hours, another number": Case("0 061222333#", at=CLOSED),
    "after hours, digits then silence": Case("0 0 6 1 2 2 2 w", at=CLOSED),
    "after hours, no answer": Case("0", at=CLOSED),
    "urgent at night": Case("5", at=CLOSED),
}


@pytest.mark.parametrize("name", list(CASES))
async def test_the_live_call_records_what_the_simulation_shows(live: LiveLine, name: str) -> None:
    case = CASES[name]
    live.clock[0] = case.at.astimezone(UTC)
    caller = await caller_with(live, case.number)
    active = await active_flow(live.calllog.sessions, "infoline")
    assert active is not None
    sim: Simulation = simulate(
        active[1],
        caller,
        case.at,
        case.keys,
        queues=await live.crm.queues(),
        caller_number=case.number,
        caller_e164=e164(case.number),
    )
    row = await live.call("caller", case.number, case.keys)

    assert row.ivr_path == sim.path
    assert played(live, "caller") == [p.media for p in sim.prompts]
    assert row.client_id == caller.client_id
    route = sim.end.route
    assert row.queue == (route.queue if route else None)
    if sim.end.outcome is not None:
        assert row.outcome == sim.end.outcome
    else:  # queued in the simulation; the test hung the live caller up while waiting
        assert sim.end.kind == "queued" and row.outcome == "abandoned_in_queue"
    task = await callback_row(live, row.id)
    if sim.end.callback is None:
        assert task is None
    else:
        assert task is not None
        assert (task.number, task.reason, task.queue, task.assigned_agent_id) == (
            sim.end.callback.number,
            sim.end.callback.reason,
            sim.end.callback.queue,
            sim.end.callback.assigned_agent_id,
        )
        # Due when the queue opens (the same instant), or at once when it is open: the live
        # clock stood still while the simulated one ran through the prompts.
        due = task.due_at.replace(tzinfo=UTC)
        assert sim.end.callback.due_at - timedelta(seconds=sim.end.seconds) <= due
        assert due <= sim.end.callback.due_at


def test_every_case_differs_from_the_others() -> None:
    """Each case is there for a path of its own (a copy would only cost time)."""
    keys = [(c.keys, c.number, c.at) for c in CASES.values()]
    assert len(set(keys)) == len(keys)
