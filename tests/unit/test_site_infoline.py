"""One instance owning two nodes (``CENTRALA_SITE``), on two fake ARIs: one info line app
per node sharing the ACD and the agent desk, wired as `centrala serve` wires them. A caller
on either node waits for the same agents, the longest waiting first; the agent's leg is rung
from the caller's node; and a start adopts every node's talks before anyone is offered an
agent."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select

from ari_app.agents import AgentDesk
from ari_app.infoline import InfolineApp
from ari_app.infoline.site import SiteCalls, join_site
from ari_app.testing import FakeARI
from core.acd import ACD, AgentMode
from core.enums import AgentRole
from core.errors import AgentDeskError, CallControlError
from models.calllog import CallLog
from models.crm import CRM
from models.db import create_engine, session_factory
from models.tables import Agent, Call, QueueMember
from tests.unit.test_infoline_app import APP, INFO_NUMBER, template_db

__all__ = ["template_db"]  # the shipped flow's database, migrated once


@dataclass
class Site:
    home: FakeARI  # pbx1, the instance's own node
    other: FakeARI  # pbx2
    apps: list[InfolineApp]
    desk: AgentDesk
    acd: ACD
    calllog: CallLog
    crm: CRM

    async def settle(self) -> None:
        for ari in (self.home, self.other):
            await ari.settle()
        await self.calllog.flush()

    async def call(self, ari: FakeARI, channel_id: str, number: str) -> None:
        """A caller dials the info line and presses 0 (the operators) during the notice."""
        ari.stasis_start(channel_id, [f"l-{channel_id}"], caller=("T", number), exten=INFO_NUMBER)
        await self.settle()
        ari.dtmf(channel_id, "0")
        await self.settle()

    async def row(self, channel_id: str) -> Call:
        async with self.crm.sessions() as session:
            row = await session.scalar(select(Call).where(Call.channel_id == channel_id))
        assert row is not None, channel_id
        return row


def wire(
    home: FakeARI, other: FakeARI, calllog: CallLog, crm: CRM
) -> tuple[list[InfolineApp], AgentDesk, ACD]:
    acd = ACD()
    desk = AgentDesk(home, crm, acd, APP)
    desk.nodes = {"pbx2": other}  # type: ignore[dict-item]  # the fake stands for ARIClient
    desk.adopting([None, "pbx2"])
    first = InfolineApp(home, calllog, crm, desk, acd, name=APP, region="BA")
    second = InfolineApp(other, calllog, crm, desk, acd, name=APP, region="BA")
    join_site(first, second, "pbx2")
    for ari, app in ((home, first), (other, second)):
        ari.on_event(app.on_event)
        ari.on_connect(app.reconcile)
    return [first, second], desk, acd


@pytest.fixture
async def site(template_db: Path, tmp_path: Path) -> AsyncIterator[Site]:
    shutil.copy(template_db, tmp_path / "centrala.db")
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'centrala.db'}")
    sessions = session_factory(engine)
    calllog = CallLog(sessions, "BA", node="pbx1")
    calllog.nodes = ("pbx1", "pbx2")
    crm = CRM(sessions)
    crm.node, crm.site = "pbx1", ("pbx2",)
    async with sessions() as session:
        for agent_id in ("ana", "ben"):
            session.add(
                Agent(
                    id=agent_id,
                    name=agent_id.title(),
                    role=AgentRole.AGENT,
                    endpoint=f"PJSIP/{agent_id}",
                    skills=[],
                    memberships=[QueueMember(queue_id="new_clients")],
                )
            )
        await session.commit()
    home, other = FakeARI([APP]), FakeARI([APP])
    apps, desk, acd = wire(home, other, calllog, crm)
    for ari in (home, other):
        await ari.start()
    built = Site(home, other, apps, desk, acd, calllog, crm)
    await built.settle()
    try:
        yield built
    finally:
        await built.settle()
        await built.desk.close()
        for ari in (home, other):
            await ari.stop()
        await calllog.aclose()
        await engine.dispose()


async def test_a_caller_on_the_other_node_rings_the_agent_from_that_node(site: Site) -> None:
    await site.desk.login("ana", None, AgentMode.PER_CALL)
    await site.call(site.other, "pbx2-100.1", "061 999 001")

    assert site.home.originated() == []
    (leg,) = site.other.originated()
    assert site.other.requests_to("POST", f"/channels/{leg.id}")[0].params["appArgs"] == (
        "agent,ana,pbx2-100.1"
    )
    site.other.pick_up(leg.id)
    await site.settle()
    bridge = site.other.bridge_of("pbx2-100.1")
    assert bridge is not None and sorted(bridge.channels) == sorted([leg.id, "pbx2-100.1"])
    row = await site.row("pbx2-100.1")
    assert (row.agent_id, row.node) == ("ana", "pbx2")

    # The desk controls it through the site's calls, whichever node holds it.
    calls = SiteCalls(site.apps)
    assert row.id in calls.by_call and "pbx2-100.1" in calls.calls
    await calls.control(row.id, "hold")
    with pytest.raises(CallControlError) as unknown:
        await calls.control("no-such-call", "hold")
    assert unknown.value.error_id == "unknown_call"

    site.other.hang_up("pbx2-100.1")
    await site.settle()
    row = await site.row("pbx2-100.1")
    assert row.outcome == "answered" and row.node == "pbx2"
    assert site.other.live_channels == {} and site.home.live_channels == {}


async def test_the_longest_waiting_caller_is_offered_the_next_agent_whatever_their_node(
    site: Site,
) -> None:
    await site.call(site.other, "pbx2-100.1", "061 999 001")
    await site.call(site.home, "pbx1-100.2", "061 999 002")
    assert [c.call_id for c in site.acd.waiting()] == ["pbx2-100.1", "pbx1-100.2"]

    await site.desk.login("ana", None, AgentMode.PER_CALL)
    await site.settle()
    (ring,) = site.other.originated()  # for pbx2's caller, from pbx2
    assert site.home.originated() == []
    assert site.other.requests_to("POST", f"/channels/{ring.id}")[0].params["appArgs"] == (
        "agent,ana,pbx2-100.1"
    )
    await site.desk.login("ben", None, AgentMode.PER_CALL)
    await site.settle()
    (ring,) = site.home.originated()  # the next agent for the next caller, on pbx1
    assert site.home.requests_to("POST", f"/channels/{ring.id}")[0].params["appArgs"] == (
        "agent,ben,pbx1-100.2"
    )


async def test_a_start_adopts_every_nodes_talks_before_anyone_is_offered_an_agent(
    site: Site,
) -> None:
    await site.desk.login("ana", None, AgentMode.PER_CALL)
    await site.call(site.home, "pbx1-100.1", "061 999 001")
    (leg,) = site.home.originated()
    site.home.pick_up(leg.id)
    await site.call(site.other, "pbx2-100.2", "061 999 002")
    await site.settle()
    assert [c.call_id for c in site.acd.waiting()] == ["pbx2-100.2"]

    # The process dies; Asterisk keeps everything. The new one's pbx2 app happens to
    # connect first: its waiting caller must not be offered ana, who is talking on pbx1.
    for app in site.apps:
        for session in app.calls.values():
            session.timers.cancel_all()
    await site.desk.close()
    for ari in (site.home, site.other):
        ari.new_process()
    site.apps, site.desk, site.acd = wire(
        site.home, site.other, site.calllog, CRM(site.crm.sessions)
    )
    site.desk.crm.node, site.desk.crm.site = "pbx1", ("pbx2",)
    before = len(site.other.originated())
    await site.other.reconnect()
    await site.settle()
    assert site.acd.agent("ana").status == "available"  # logged in again, offered nothing yet
    assert len(site.other.originated()) == before
    await site.home.reconnect()
    await site.settle()
    ana = site.acd.agent("ana")
    assert (ana.status, ana.current_call) == ("on_call", "pbx1-100.1")
    assert len(site.other.originated()) == before and site.home.destroyed == []

    # The talk ends: ana is rung for the waiting caller, from pbx2.
    site.home.hang_up("pbx1-100.1")
    await site.settle()
    (ring,) = site.other.originated()[before:]
    assert site.other.requests_to("POST", f"/channels/{ring.id}")[0].params["appArgs"] == (
        "agent,ana,pbx2-100.2"
    )
    assert (await site.row("pbx1-100.1")).outcome == "answered"


async def test_no_nailed_phone_across_nodes_and_no_agent_command_on_a_standby(site: Site) -> None:
    with pytest.raises(AgentDeskError) as nailed:
        await site.desk.login("ana", None, AgentMode.NAILED)
    assert (nailed.value.error_id, nailed.value.status) == ("nailed_one_node", 409)
    assert site.home.originated() == [] and site.acd.agents() == []

    site.desk.standing_by = lambda: "http://10.0.0.1:8080"
    with pytest.raises(AgentDeskError) as standby:
        await site.desk.login("ana", None, AgentMode.PER_CALL)
    assert (standby.value.error_id, standby.value.status) == ("standby", 503)
    assert "http://10.0.0.1:8080" in str(standby.value)
    with pytest.raises(AgentDeskError, match="stands by"):
        site.desk.pause("ana", "lunch")
    with pytest.raises(AgentDeskError, match="stands by"):
        site.desk.ready("ana")
    assert site.acd.agents() == []


async def test_a_caller_whose_channel_id_names_no_node_is_still_the_node_it_came_on(
    site: Site,
) -> None:
    """A Local channel we originated has our id, not Asterisk's: the node is the one whose
    info line holds the caller, for the agent's leg and for the row (a takeover adopts it
    there)."""
    await site.desk.login("ana", None, AgentMode.PER_CALL)
    await site.call(site.other, "bench-caller;2", "061 999 001")
    assert site.home.originated() == []
    (leg,) = site.other.originated()
    site.other.pick_up(leg.id)
    await site.settle()
    row = await site.row("bench-caller;2")
    assert (row.node, row.agent_id) == ("pbx2", "ana")
    assert [r.channel_id for r in await site.calllog.live_calls("ari", "pbx2")] == [
        "bench-caller;2"
    ]
    assert await site.calllog.live_calls("ari") == []  # not the instance's own node's
