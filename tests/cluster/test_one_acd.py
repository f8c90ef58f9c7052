"""One ACD across nodes: one `serve` owns both nodes together (``CENTRALA_SITE``), another
stands by for both, and the callers of either node wait for the same agents, the longest
waiting first whatever node each is on.

The module's `serve`s replace the per-node ones of the `cluster` fixture while it runs (two
owners of one node's Stasis app cannot both be up), on a database of their own; the per-node
ones are started again after it.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import subprocess
import time
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import aiohttp
import pytest
from sqlalchemy import select

from ari_app.ami import AMIClient
from centrala.settings import RECORDINGS_IN_PBX, Settings
from models.flows import apply_flow
from models.tables import Call, Recording
from tests.cluster.conftest import (
    Cluster,
    Node,
    api_of,
    end_callers,
    serve_each_node,
    serve_overrides,
)
from tests.cluster.test_agent_across_nodes import (
    PHONE,
    SIPP,
    ari_of,
    flow,
    operator,
    register_phone,
    straight_to_an_operator,
)
from tests.cluster.test_balancer import call_in
from tests.cluster.topology import local_site
from tests.conftest import Database, make_database
from tests.integration.conftest import Server, _centrala, start_serve
from tests.support import wait_until


@dataclass
class Site:
    cluster: Cluster
    db: Database
    servers: dict[str, Server]  # by instance id: site-pbx1 (owner first), site-pbx2

    def owner(self) -> Server:
        return self.servers["site-pbx1"]

    async def api(
        self, server: Server, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        return await api_of(server, method, path, body)


def site_env(home: Node, cluster: Cluster, instance: str) -> dict[str, str | None]:
    """The instance whose own node is ``home``, with the deployment's CENTRALA_SITE (the
    other node owned with it; its CDR file where the local topology has it)."""
    roots = {n.plan.name: n.root for n in cluster.nodes}
    return {
        **serve_overrides(home),
        "CENTRALA_SITE": local_site(home.plan.name, roots),
        "CENTRALA_INSTANCE_ID": instance,
    }


async def role_of(server: Server) -> str | None:
    try:
        _, status = await server.status()
    except Exception:  # not up yet
        return None
    return str((status.get("cluster") or {}).get("role"))


@pytest.fixture(scope="module")
async def site(cluster: Cluster) -> AsyncIterator[Site]:
    for node in cluster.nodes:  # the per-node deployment steps aside
        assert node.serve is not None
        node.serve.stop()
    db = await make_database("postgresql", cluster.tmp, suffix="_site")
    servers: dict[str, Server] = {}
    pbx1, pbx2 = cluster.node("pbx1"), cluster.node("pbx2")
    try:
        for home in (pbx1, pbx2):
            instance = f"site-{home.plan.name}"
            own = cluster.tmp / instance
            own.mkdir()
            servers[instance] = start_serve(db, own, **site_env(home, cluster, instance))
            expected = "owner" if home is pbx1 else "standby"

            async def settled(server: Server = servers[instance], role: str = expected) -> bool:
                assert server.proc.poll() is None, server.log_path.read_text()[-3000:]
                return await role_of(server) == role

            await wait_until(settled, timeout=60, message=f"{instance} {expected}")
        await servers["site-pbx1"].wait_ready(timeout=30)
        yield Site(cluster, db, servers)
    finally:
        for server in servers.values():
            if server.proc.poll() is None:
                server.stop()
        await db.engine.dispose()
        await serve_each_node(cluster)


async def row_where(
    site: Site, call_id: str, check: Callable[[Call], bool], what: str, timeout: float = 30
) -> Call:
    async def found() -> Call | None:
        async with site.db.sessions() as session:
            row = await session.get(Call, call_id)
        return row if row is not None and check(row) else None

    row: Call = await wait_until(found, timeout=timeout, message=what)
    return row


async def new_caller(
    site: Site, since: datetime, known: set[str], hold_ms: int = 60_000
) -> tuple[asyncio.Task[str], Call]:
    """One SIPp caller through the balancer (each on a SIP port of its own), holding on for
    ``hold_ms`` (or until the test hangs them up); its row once opened."""
    port = 5070 + len(known)
    caller = asyncio.create_task(call_in(site.cluster, 1, hold_ms=hold_ms, check=False, port=port))

    async def arrived() -> Call | None:
        async with site.db.sessions() as session:
            rows = await session.scalars(
                select(Call).where(Call.started_at >= since, Call.handler == "ari")
            )
            return next((r for r in rows if r.id not in known), None)

    row: Call = await wait_until(arrived, timeout=30, message="the caller's row")
    known.add(row.id)
    return caller, row


async def hang_up(site: Site, row: Call) -> None:
    """The caller hangs up (their channel ended on their node)."""
    ari = await ari_of(site.cluster.node(str(row.node)))
    try:
        await ari.hangup(row.channel_id)
    finally:
        await ari.stop()


async def phone_on(site: Site, agent_id: str, node: Node) -> subprocess.Popen[bytes]:
    """The agent's desk phone, made with `centrala agent phone` on pbx1 (the owner's own
    node), registered with ``node`` once the owner has brought it into that node's Asterisk."""
    env = {**site.cluster.node("pbx1").env, "CENTRALA_DATABASE_URL": site.db.url}
    made = _centrala("agent", "phone", agent_id, env=env)
    (site.cluster.tmp / f"phone-{agent_id}.json").write_text(made)  # its credentials
    phone = json.loads(made)
    ari = await ari_of(node)
    try:

        async def endpoint() -> dict[str, Any] | None:
            with contextlib.suppress(Exception):
                found: dict[str, Any] = await ari.request("GET", f"/endpoints/PJSIP/{agent_id}")
                return found
            return None

        await wait_until(endpoint, timeout=20, message=f"the phone pushed to {node.plan.name}")
        proc = register_phone(site.cluster.tmp, node.env["CENTRALA_SIP_BIND"], phone)

        async def online() -> bool:
            assert proc.poll() is None, "SIPp phone ended"
            found = await endpoint()
            return found is not None and found.get("state") == "online"

        await wait_until(online, timeout=20, message=f"the phone registered with {node.plan.name}")
        return proc
    finally:
        await ari.stop()


async def test_the_longest_waiting_caller_gets_the_next_free_agent_whatever_their_nodes(
    site: Site,
) -> None:
    sessions = site.db.sessions
    owner = site.owner()
    agent_id = f"site-{uuid.uuid4().hex[:6]}"
    await apply_flow(sessions, flow(straight_to_an_operator))
    await operator(sessions, agent_id, "Ana Site")
    pbx2 = site.cluster.node("pbx2")
    callers: list[asyncio.Task[str]] = []
    phone_proc: subprocess.Popen[bytes] | None = None
    try:
        # The phone, made on the owner's own node, registers with the site's other node:
        # the owner brings it into that node's Asterisk too.
        phone_proc = await phone_on(site, agent_id, pbx2)
        assert (await site.api(owner, "POST", f"/api/agents/{agent_id}/login"))[0] == 200
        # The standby's ACD serves nobody: it sends the agent to the owner.
        standby = site.servers["site-pbx2"]
        status, refused = await site.api(standby, "POST", f"/api/agents/{agent_id}/pause")
        assert (status, refused["error_id"]) == (503, "standby"), refused
        assert owner.url in refused["message"], refused
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"{standby.url}/desk?x=1", allow_redirects=False) as page,
        ):
            assert page.status == 307 and page.headers["Location"] == f"{owner.url}/desk?x=1"

        # Three callers one after another: the first talks to the agent, two wait, and the
        # balancer's round robin puts the two waiting ones on different nodes.
        since, known_rows = datetime.now(UTC), set[str]()
        first_task, first = await new_caller(site, since, known_rows)
        callers.append(first_task)
        first = await row_where(
            site, first.id, lambda r: r.agent_id == agent_id, "the first caller connected"
        )
        waiting: list[Call] = []
        for _ in range(2):
            task, row = await new_caller(site, since, known_rows)
            callers.append(task)
            waiting.append(
                await row_where(site, row.id, lambda r: r.queued_at is not None, "queued")
            )
        longest, next_one = waiting
        assert {longest.node, next_one.node} == {"pbx1", "pbx2"}, (longest.node, next_one.node)

        # The agent is free: the longest-waiting caller is offered them, whatever node.
        await hang_up(site, first)
        longest = await row_where(
            site, longest.id, lambda r: r.agent_id == agent_id, "the longest waiting connected"
        )
        async with sessions() as session:
            still = await session.get(Call, next_one.id)
        assert still is not None and still.agent_id is None and still.ended_at is None
        assert longest.connected_at is not None
        await hang_up(site, longest)
        next_one = await row_where(
            site, next_one.id, lambda r: r.agent_id == agent_id, "the next caller connected"
        )
        await hang_up(site, next_one)

        # Each call closed once, answered by the agent, on its own node.
        for row in (first, longest, next_one):
            closed = await row_where(site, row.id, lambda r: r.ended_at is not None, "closed")
            assert closed.outcome == "answered" and closed.agent_id == agent_id, closed
            assert closed.node == row.node
        firsts = sorted([first, longest, next_one], key=lambda r: r.connected_at or since)
        assert [r.id for r in firsts] == [first.id, longest.id, next_one.id]
    finally:
        await end_callers(callers)
        with contextlib.suppress(Exception):
            await site.api(owner, "POST", f"/api/agents/{agent_id}/logout")
        if phone_proc is not None:
            phone_proc.kill()
            phone_proc.wait(10)


def recorded_queue(data: dict[str, Any]) -> None:
    """Straight to the operators' queue, which records its callers."""
    straight_to_an_operator(data)
    for queue in data["queues"].values():
        queue["record"] = True


async def test_a_caller_on_the_other_node_is_recorded_through_that_nodes_ami(site: Site) -> None:
    """The site's other node records its callers too: MixMonitor through its own AMI, the file
    in its own spool, finished by the owner's keeper from there."""
    sessions = site.db.sessions
    await apply_flow(sessions, flow(recorded_queue))
    callers: list[asyncio.Task[str]] = []
    try:
        since, known_rows = datetime.now(UTC), set[str]()
        rows = []
        for _ in range(2):  # the balancer's round robin: one on each node
            task, row = await new_caller(site, since, known_rows, hold_ms=4000)
            callers.append(task)
            rows.append(row)
        (on_pbx2,) = [r for r in rows if r.node == "pbx2"]

        async def finished() -> Recording | None:
            async with sessions() as session:
                found = await session.scalar(
                    select(Recording).where(Recording.call_id == on_pbx2.id)
                )
            return found if found is not None and found.seconds is not None else None

        recording = await wait_until(finished, timeout=60, message="pbx2's recording finished")
        name = recording.file.removeprefix("pbx2/")
        assert recording.file == f"pbx2/{name}" and recording.seconds > 1, recording
        spool = site.cluster.node("pbx2").root / "rootfs" / RECORDINGS_IN_PBX.lstrip("/")
        assert (spool / name).stat().st_size == recording.size_bytes
    finally:
        await end_callers(callers)


async def test_a_number_dialled_on_a_phone_of_the_other_node_goes_out_from_that_node(
    site: Site,
) -> None:
    """An agent's phone registered with the site's other node dials a number: the owner's
    manual-call app on that node takes it (the agent known by the phone, the client dialled
    through that node's trunk) and records it on that node."""
    sessions = site.db.sessions
    owner, pbx2 = site.owner(), site.cluster.node("pbx2")
    agent_id = f"site-{uuid.uuid4().hex[:6]}"
    await operator(sessions, agent_id, "Dina Site")
    number = f"+38761{uuid.uuid4().int % 900_000 + 100_000}"  # a valid mobile number
    settings = Settings()
    ami = AMIClient("127.0.0.1", int(pbx2.env["CENTRALA_AMI_PORT"]), settings.ami_user,
                    settings.ami_secret)  # fmt: skip
    await ami.start()
    phone_proc: subprocess.Popen[bytes] | None = None
    try:
        await ami.wait_connected(10)
        # The client answers after a second of ringing, talks 3 s and hangs up.
        await ami.action("DBPut", {"Family": "sim", "Key": number, "Val": "person"})
        phone_proc = await phone_on(site, agent_id, pbx2)
        assert (await site.api(owner, "POST", f"/api/agents/{agent_id}/login"))[0] == 200
        since = datetime.now(UTC)
        phone = json.loads((site.cluster.tmp / f"phone-{agent_id}.json").read_text())
        dialled = await asyncio.to_thread(
            subprocess.run,
            [
                "sipp", pbx2.env["CENTRALA_SIP_BIND"], "-sf", str(SIPP / "phone_call.xml"),
                "-s", number, "-key", "user", phone["username"],
                "-au", phone["username"], "-ap", phone["password"],
                "-i", PHONE, "-p", "5062", "-m", "1", "-rtp_echo", "-mp", "16100",
                "-timeout", "60s", "-timeout_error", "-nostdin",
                "-trace_err", "-error_file", str(site.cluster.tmp / "phone-call-errors.log"),
            ],
            capture_output=True, text=True, timeout=90, check=False,
        )  # fmt: skip
        errors = site.cluster.tmp / "phone-call-errors.log"
        assert dialled.returncode == 0, dialled.stdout[-2000:] + (
            errors.read_text()[-2000:] if errors.exists() else ""
        )

        async def recorded() -> Call | None:
            async with sessions() as session:
                return await session.scalar(
                    select(Call).where(
                        Call.started_at >= since,
                        Call.handler == "outbound",
                        Call.agent_id == agent_id,
                    )
                )

        row = await wait_until(recorded, timeout=30, message="the phone's call recorded")
        closed = await row_where(site, row.id, lambda r: r.ended_at is not None, "closed")
        assert (closed.node, closed.outcome, closed.called_number) == ("pbx2", "answered", number)
        assert closed.talk_seconds is not None and closed.talk_seconds > 1, closed
    finally:
        await ami.stop()
        with contextlib.suppress(Exception):
            await site.api(owner, "POST", f"/api/agents/{agent_id}/logout")
        if phone_proc is not None:
            phone_proc.kill()
            phone_proc.wait(10)


# The takeover's callers hold on long enough to be served after it all (three menus, a
# takeover and two talks, on a loaded machine): the test hangs each up itself.
HOLD_ON = 240_000


def a_menu_then_the_operators(data: dict[str, Any]) -> None:
    """Callers hear the main menu and wait in it 20 s (SIPp presses no keys), then go to
    the operators' queue, open now."""
    straight_to_an_operator(data)
    data["start"] = "main_menu"
    data["nodes"]["main_menu"] = {
        "type": "menu",
        "prompt": "main_menu",
        "options": {"0": "operator"},
        "timeout_seconds": 20,
        "retries": 0,
        "on_fail": "operator",
    }


async def test_the_standby_takes_every_node_of_a_dead_owner_and_adopts_their_calls(
    site: Site,
) -> None:
    """The owner is SIGKILLed with a caller talking to the agent, one waiting and one in the
    IVR, on both nodes: the standby owns both nodes within 15 s, adopts the three, logs the
    agent in again, and serves the waiting ones in their order; each call closes once."""
    sessions = site.db.sessions
    owner, standby = site.owner(), site.servers["site-pbx2"]
    assert await role_of(owner) == "owner" and await role_of(standby) == "standby"
    agent_id = f"site-{uuid.uuid4().hex[:6]}"
    await apply_flow(sessions, flow(a_menu_then_the_operators))
    await operator(sessions, agent_id, "Ben Site")
    callers: list[asyncio.Task[str]] = []
    phone_proc: subprocess.Popen[bytes] | None = None
    try:
        phone_proc = await phone_on(site, agent_id, site.cluster.node("pbx1"))
        assert (await site.api(owner, "POST", f"/api/agents/{agent_id}/login"))[0] == 200
        since, known_rows = datetime.now(UTC), set[str]()
        task, talking = await new_caller(site, since, known_rows, HOLD_ON)
        callers.append(task)
        # Each caller is in the menu for 20 s first.
        talking = await row_where(
            site, talking.id, lambda r: r.agent_id == agent_id, "the first connected", 60
        )
        task, queued = await new_caller(site, since, known_rows, HOLD_ON)
        callers.append(task)
        queued = await row_where(
            site, queued.id, lambda r: r.queued_at is not None, "the second queued", 60
        )
        task, in_ivr = await new_caller(site, since, known_rows, HOLD_ON)
        callers.append(task)
        assert {talking.node, queued.node} == {"pbx1", "pbx2"}
        assert in_ivr.queued_at is None and in_ivr.agent_id is None

        killed = time.monotonic()
        owner.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(owner.proc.wait, 20)
        ready = await standby.wait_ready(timeout=30)
        took = time.monotonic() - killed
        assert took <= 15, f"the site was taken over in {took:.1f} s"
        assert ready["cluster"]["role"] == "owner", ready["cluster"]
        owned = {n["name"]: n["owner"] for n in ready["cluster"]["nodes"] or []}
        assert owned == {"pbx1": "site-pbx2", "pbx2": "site-pbx2"}, owned
        # Both nodes' calls adopted (/status counts every node of the site).
        assert (ready["calls_adopted"], ready["calls_in_progress"]) == (3, 3), ready
        assert ready["site"]["pbx1"]["connected"] and ready["ok"], ready

        # The agent is logged in again by the standby; the talk goes on, then the waiting
        # caller, then the one who was in the IVR, all with the same agent.
        async def adopted() -> bool:
            async with sessions() as session:
                rows = [await session.get(Call, r.id) for r in (talking, queued, in_ivr)]
            return all(r is not None and r.ended_at is None for r in rows)

        assert await adopted()
        await hang_up(site, talking)
        queued = await row_where(
            site, queued.id, lambda r: r.agent_id == agent_id, "the waiting caller connected"
        )
        await hang_up(site, queued)
        in_ivr = await row_where(
            site, in_ivr.id, lambda r: r.agent_id == agent_id, "the IVR's caller connected", 60
        )
        await hang_up(site, in_ivr)
        for row in (talking, queued, in_ivr):
            closed = await row_where(site, row.id, lambda r: r.ended_at is not None, "closed")
            assert closed.outcome == "answered" and closed.agent_id == agent_id, closed
        async with sessions() as session:
            channels = list(
                await session.scalars(select(Call.channel_id).where(Call.started_at >= since))
            )
        assert sorted(channels) == sorted(r.channel_id for r in (talking, queued, in_ivr)), (
            "a call recorded twice, or one nobody placed"
        )
    finally:
        await end_callers(callers)
        if phone_proc is not None:
            phone_proc.kill()
            phone_proc.wait(10)
