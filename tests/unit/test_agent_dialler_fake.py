"""The agent dialler on a fake ARI, beside its real-Asterisk tests (tests/integration/
test_agent_dialler.py): the paths a simulated phone cannot steer surely, AMD's machine verdict
and a person left without an agent past the 2 seconds. The dialler runs with its real parts
(``AgentDialler``, the real CallLog and DiallerStore on a migrated SQLite file, the pure ACD)
and is driven through its entry points (``tick``, ARI events), as `centrala serve` drives it;
the desk is a small stand-in holding one nailed-up agent's bridge."""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from ari_app.dialler.engine import AgentDialler
from ari_app.testing import FakeARI
from core.acd import ACD, AgentMode, AgentProfile, Offer
from core.dialler import CONNECT_MARGIN, CONNECT_SECONDS, AgentCampaignSettings, CampaignKind
from core.enums import AgentRole
from dialplan.model import WEEKDAYS, Calendar
from models.callback_tasks import feed_callbacks
from models.callbacks import add_callback
from models.calllog import CallLog
from models.campaigns import NewContact
from models.db import create_engine, session_factory
from models.dialler import DiallerStore
from models.tables import (
    Agent,
    Call,
    Callback,
    CallEvent,
    Campaign,
    CampaignContact,
    CampaignStatus,
    DoNotCall,
)
from tests.conftest import make_database
from tests.support import wait_until

APP = "centrala-dialler"
ALL_DAY = Calendar(timezone="UTC", weekly={d: ["00:00-24:00"] for d in WEEKDAYS})
AGENT = "ana"


@dataclass
class Desk:
    """What the dialler asks of ``AgentDesk``: one agent's nailed-up bridge, the ACD's news."""

    acd: ACD
    bridges: dict[str, str] = field(default_factory=dict)

    def nailed_bridge(self, agent_id: str) -> str | None:
        return self.bridges.get(agent_id)

    def publish(self, offers: list[Offer]) -> None:
        pass

    def call_ended(self, agent_id: str, wrap_up_seconds: float) -> None:
        self.acd.ended(agent_id, time.monotonic(), wrap_up_seconds)


@dataclass
class Rig:
    ari: FakeARI
    app: AgentDialler
    calllog: CallLog
    store: DiallerStore
    acd: ACD

    async def settle(self) -> None:
        await self.ari.settle()
        await self.calllog.flush()

    async def campaign(self, number: str, **settings: object) -> None:
        s = AgentCampaignSettings.model_validate(
            {
                "queue": "sales",
                "rules": {"window": ALL_DAY.model_dump(), "legal": ALL_DAY.model_dump()},
                **settings,
            }
        )
        campaign_id, _ = await self.store.create(
            "sales", CampaignKind.LEADS, s, [NewContact(number, timezone="UTC")]
        )
        await self.store.campaigns.set_status(campaign_id, CampaignStatus.RUNNING)

    async def place(self) -> str:
        await self.app.tick()
        await self.settle()
        (channel,) = [c.id for c in self.ari.originated() if c.id.startswith("dialler-")]
        return channel

    async def row(self, channel_id: str) -> Call:
        await self.calllog.flush()
        async with self.store.sessions() as session:
            row = await session.scalar(select(Call).where(Call.channel_id == channel_id))
        assert row is not None
        return row

    async def kinds(self, call_id: str) -> list[str]:
        async with self.store.sessions() as session:
            return list(
                await session.scalars(
                    select(CallEvent.kind)
                    .where(CallEvent.call_id == call_id)
                    .order_by(CallEvent.id)
                )
            )


@pytest.fixture
async def rig(tmp_path: Path) -> AsyncIterator[Rig]:
    db = await make_database("sqlite", tmp_path)
    async with db.sessions() as session, session.begin():
        session.add(Agent(id=AGENT, name="Ana", role=AgentRole.AGENT))
    await db.engine.dispose()
    engine = create_engine(db.url)
    sessions = session_factory(engine)
    calllog = CallLog(sessions, "BA")
    store = DiallerStore(sessions)
    acd = ACD()
    ari = FakeARI([APP])
    await ari.start()
    await ari.create_bridge("nailed-ana")
    desk = Desk(acd, {AGENT: "nailed-ana"})
    acd.login(
        AgentProfile(AGENT, "Ana", queues={"sales": 0}),
        "Local/ana@agents",
        AgentMode.NAILED,
        time.monotonic(),
    )
    app = AgentDialler(
        ari,
        calllog,
        store,
        acd,
        desk,  # type: ignore[arg-type]
        None,
        app=APP,
        dial="PJSIP/{number}@trunk",
        trunk=None,
        caller_id="033000000",
        queue_caller_ids={},
    )
    app.identification = {"": "sound:centrala/bs/dialler-identification"}
    ari.on_event(app.on_event)
    await app.reconcile()
    try:
        yield Rig(ari, app, calllog, store, acd)
    finally:
        await ari.settle()
        await app.stop()
        await ari.stop()
        await calllog.aclose()
        await engine.dispose()


async def test_a_machine_verdict_hangs_up_and_frees_the_held_agent(rig: Rig) -> None:
    await rig.campaign("+38761000001", mode="progressive", amd=True)
    channel = await rig.place()
    assert rig.acd.agent(AGENT).current_call == channel  # held while it rings
    rig.ari.pick_up(channel)
    await rig.settle()
    (amd,) = rig.ari.requests_to("POST", f"/channels/{channel}/continue")
    assert amd.params == {"context": "centrala-amd-fast", "extension": "s", "priority": 1}
    rig.ari.stasis_start(channel, ["amd", "MACHINE", "LONGGREETING-1600-1500"])
    await rig.settle()

    row = await rig.row(channel)
    assert row.ended_at is not None and row.outcome == "machine" and row.connected_at is None
    assert "live_answer" not in await rig.kinds(row.id)
    assert rig.acd.agent(AGENT).status.value == "available"
    async with rig.store.sessions() as session:
        contact = await session.scalar(select(CampaignContact))
    assert contact is not None and contact.status == "pending"  # the rules retry a machine
    counts = await rig.store.abandon_count(row.campaign_id or 0, None)
    assert (counts.live, counts.abandoned, counts.machines) == (0, 0, 1)


async def test_a_person_nobody_takes_in_two_seconds_hears_the_message(rig: Rig) -> None:
    await rig.campaign("+38761000002", mode="predictive")
    rig.acd.adopt_call("someone-else", AGENT, time.monotonic())  # the only agent is busy
    # Predictive with no estimate yet paces progressively: no ready agent, no call. Free the
    # agent for the tick, then take them again before the answer.
    rig.app.desk.call_ended(AGENT, 0)  # type: ignore[attr-defined]
    channel = await rig.place()
    rig.acd.adopt_call("someone-else", AGENT, time.monotonic())
    answered = time.monotonic()
    rig.ari.pick_up(channel)
    await rig.settle()
    assert rig.ari.bridge_of(channel) is None

    def message_playing() -> list[str]:
        return [m for p in rig.ari.playing(channel) for m in p.media]

    media = await wait_until(message_playing, timeout=5, message="the identification message")
    # The agent had their chance (all but the margin), and the message starts within 2 s.
    assert time.monotonic() - answered >= CONNECT_SECONDS - CONNECT_MARGIN
    assert media == ["sound:centrala/bs/dialler-identification"]
    row = await rig.row(channel)
    assert "abandoned" in await rig.kinds(row.id)
    (playback,) = rig.ari.playing(channel)
    rig.ari.finish_playback(playback.id)
    await rig.settle()
    row = await rig.row(channel)
    assert row.outcome == "abandoned" and row.ended_at is not None
    async with rig.store.sessions() as session:
        assert await session.get(DoNotCall, "+38761000002") is not None
        assert await session.scalar(select(Callback.reason)) == "abandoned"


async def test_the_wallboard_figures_follow_the_calls(rig: Rig) -> None:
    assert rig.app.figures() == []
    await rig.campaign("+38761000003", mode="progressive")
    channel = await rig.place()
    (ringing,) = rig.app.figures()
    assert (ringing["pacing"], ringing["agents"], ringing["lines"], ringing["connected"]) == (
        "progressive",
        1,
        1,
        0,
    )
    assert ringing["lines_per_agent"] == 1.0 and ringing["abandoned_last_hour_percent"] is None
    assert ringing["available"] in (0, 1)  # the one agent, free or held for this call
    rig.ari.pick_up(channel)
    await rig.settle()
    (talking,) = rig.app.figures()
    assert (talking["lines"], talking["connected"]) == (0, 1)
    assert talking["abandoned_last_hour_percent"] == 0.0
    await rig.app.tick()  # counts the agent on the call
    (later,) = rig.app.figures()
    assert later["occupancy_percent"] is not None and later["occupancy_percent"] > 0


async def test_a_person_amd_took_too_long_over_is_told_not_put_through_late(rig: Rig) -> None:
    await rig.campaign("+38761000004", mode="progressive", amd=True)
    channel = await rig.place()
    rig.ari.pick_up(channel)
    await rig.settle()
    rig.app.calls[channel].answered_at -= 2.5  # AMD listened 2.5 s before its verdict
    rig.ari.stasis_start(channel, ["amd", "HUMAN", "HUMAN-1-1"])
    await rig.settle()
    assert rig.ari.bridge_of(channel) is None  # not put through after the 2 seconds
    (message,) = rig.ari.playing(channel)
    assert message.media == ["sound:centrala/bs/dialler-identification"]
    row = await rig.row(channel)
    assert "abandoned" in await rig.kinds(row.id)
    assert rig.acd.agent(AGENT).status.value == "available"  # the held agent is free again


async def test_a_campaign_cap_under_the_default_paces_under_it(rig: Rig) -> None:
    await rig.campaign("+38761000005", mode="predictive", abandon_cap_percent=1)
    await rig.place()  # a new campaign paces progressively: one call for the free agent
    (pacer,) = rig.app.pacers.values()
    s = pacer.settings
    assert s.abandon_cap == pytest.approx(0.01)
    assert 0 < s.target < s.fallback_rate <= s.abandon_cap


async def test_an_agents_own_callback_is_held_on_their_desk_before_the_queues(rig: Rig) -> None:
    at = datetime.now(UTC)
    async with rig.store.sessions() as session, session.begin():
        for number, agent in (("+38761000010", None), ("+38761000011", AGENT)):
            add_callback(
                session,
                call_id=None,
                client_id=None,
                number=number,
                reason="after_hours",
                queue="sales",
                assigned_agent_id=agent,
                due_at=at,
            )
    assert (await feed_callbacks(rig.store.sessions, at)).fed == {"sales": 2}
    async with rig.store.sessions() as session, session.begin():
        campaign = await session.scalar(select(Campaign))
        assert campaign is not None and campaign.kind == "callbacks"
        rules = {**campaign.settings["rules"], "legal": ALL_DAY.model_dump(mode="json")}
        campaign.settings = {**campaign.settings, "rules": rules}

    await rig.app.tick()
    await rig.settle()
    assert not [c for c in rig.ari.originated() if c.id.startswith("dialler-")]
    held = await rig.app.preview_next(AGENT)
    assert held is not None and held.claimed.number == "+38761000011"
    assert held.json()["kind"] == "callbacks"
    assert held.json()["purpose"] == "Callback: called after hours"

    # She logs out with it on her desk: back to pending, uncounted, hers again when back.
    rig.acd.logout(AGENT, time.monotonic())
    await rig.app.tick()
    assert AGENT not in rig.app.previews
    async with rig.store.sessions() as session:
        own = await session.get(CampaignContact, held.claimed.contact_id)
    assert own is not None and (own.status, own.attempts) == ("pending", 0)
    rig.acd.login(
        AgentProfile(AGENT, "Ana", queues={"sales": 0}),
        "Local/ana@agents",
        AgentMode.NAILED,
        time.monotonic(),
    )
    await rig.app.tick()
    await rig.settle()
    assert not [c for c in rig.ari.originated() if c.id.startswith("dialler-")]
    held = await rig.app.preview_next(AGENT)
    assert held is not None and held.claimed.number == "+38761000011"
    await rig.app.preview_skip(AGENT, held.claimed.contact_id, "spoke at the branch")
    async with rig.store.sessions() as session:
        skipped = await session.scalar(select(Callback).where(Callback.number == "+38761000011"))
    assert skipped is not None and skipped.status.value == "cancelled"
    assert skipped.closed_reason == "skipped: spoke at the branch"

    channel = await rig.place()  # then the queue's callback, progressive: held for her
    assert rig.acd.agent(AGENT).current_call == channel
    assert (await rig.row(channel)).called_number == "+38761000010"


async def test_an_own_callback_of_another_queue_is_on_the_agents_desk_when_asked(
    rig: Rig,
) -> None:
    """A call-back assigned to her from a queue she does not work (she moved, or covered it):
    still hers, on her preview card, never dialled for that queue's agents."""
    at = datetime.now(UTC)
    async with rig.store.sessions() as session, session.begin():
        add_callback(
            session,
            call_id=None,
            client_id=None,
            number="+38761000020",
            reason="callback_personal",
            queue="info",
            assigned_agent_id=AGENT,
            due_at=at,
        )
    assert (await feed_callbacks(rig.store.sessions, at)).fed == {"info": 1}
    async with rig.store.sessions() as session, session.begin():
        campaign = await session.scalar(select(Campaign))
        assert campaign is not None and campaign.name == "callbacks-info"
        rules = {**campaign.settings["rules"], "legal": ALL_DAY.model_dump(mode="json")}
        campaign.settings = {**campaign.settings, "rules": rules}
    await rig.app.tick()
    await rig.settle()
    assert not rig.ari.originated()
    held = await rig.app.preview_next(AGENT)
    assert held is not None and held.claimed.number == "+38761000020"
    assert held.json()["purpose"] == "Callback: an agent agreed a call-back time"


@pytest.mark.parametrize("row_written", [True, False])
async def test_a_restart_right_after_the_connect_keeps_the_talking_caller(
    rig: Rig, row_written: bool
) -> None:
    """`serve` killed between putting a caller through and writing that down (the live state
    is written behind the call row): the restarted dialler finds them talking, from the call
    row or else from the agent's bridge on the PBX, and never plays them the abandonment
    message nor hangs them up."""
    await rig.campaign("+38761000031", mode="progressive")
    channel = await rig.place()
    rig.ari.pick_up(channel)
    await rig.settle()
    assert rig.ari.bridge_of(channel) is not None
    row = await rig.row(channel)
    assert row.connected_at is not None and row.agent_id == AGENT
    # What the database held at the kill: the live state from before the answer, and the
    # call row's connect written (or not yet).
    async with rig.store.sessions() as session, session.begin():
        stored = await session.get(Call, row.id)
        assert stored is not None
        stored.live_state = {"dialler": {"channel_id": channel, "phase": "waiting"}}
        if not row_written:
            stored.agent_id = stored.connected_at = None
    # The restarted serve: a new dialler, same PBX and database.
    rig.ari.new_process()
    restarted = AgentDialler(
        rig.ari,
        rig.calllog,
        rig.store,
        rig.acd,
        rig.app.desk,
        None,
        app=APP,
        dial="PJSIP/{number}@trunk",
        trunk=None,
        caller_id="033000000",
        queue_caller_ids={},
    )
    restarted.identification = {"": "sound:centrala/bs/dialler-identification"}
    rig.ari.on_event(restarted.on_event)
    await restarted.reconcile()
    await rig.settle()
    assert channel in restarted.calls and restarted.calls[channel].agent_id == AGENT
    assert rig.ari.playing(channel) == []  # no message
    assert channel in rig.ari.live_channels and rig.ari.bridge_of(channel) is not None
    # The talk ends: a connected call, its contact done once.
    rig.ari.hang_up(channel)
    await rig.settle()
    row = await rig.row(channel)
    assert (row.outcome, row.agent_id, row.ended_at is not None) == ("connected", AGENT, True)
    assert "abandoned" not in await rig.kinds(row.id)
    async with rig.store.sessions() as session:
        contact = await session.scalar(select(CampaignContact))
        assert contact is not None
        assert (contact.status, contact.last_outcome, contact.attempts) == ("done", "connected", 1)
        assert await session.get(DoNotCall, "+38761000031") is None
    await restarted.stop()


@pytest.mark.parametrize("talking", [True, False])
async def test_a_dead_nodes_call_ends_when_its_link_went_and_the_agent_is_free(
    rig: Rig, talking: bool
) -> None:
    """The node's Asterisk died: a call talking to the agent ends connected, one still
    ringing ends unanswered (its contact left to the campaign's retry rules), either at the
    moment the link was lost (not when someone noticed), the agent freed."""
    await rig.campaign("+38761000041", mode="progressive")
    channel = await rig.place()
    if talking:
        rig.ari.pick_up(channel)
        await rig.settle()
        assert (await rig.row(channel)).connected_at is not None
    rig.ari.disconnect()
    lost_at = datetime.now(UTC).replace(microsecond=0)

    assert await rig.app.pbx_gone(lost_at) == 1
    await rig.settle()
    assert rig.app.calls == {}
    row = await rig.row(channel)
    assert row.ended_at is not None and row.ended_at.replace(tzinfo=UTC) == lost_at
    assert row.hangup_cause_text == "lost with its Asterisk node"
    assert (row.outcome == "connected") is talking and (row.agent_id == AGENT) is talking
    # Freed: to write the talk up, or at once (held only while it rang).
    assert rig.acd.agent(AGENT).status.value == ("wrap_up" if talking else "available")
    async with rig.store.sessions() as session:
        contact = await session.scalar(select(CampaignContact))
    assert contact is not None and contact.attempts == 1
    assert contact.status == ("done" if talking else "pending")  # retried later by the rules
