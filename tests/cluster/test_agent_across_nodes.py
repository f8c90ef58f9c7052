"""A caller on one node reaches an agent whose desk phone is registered on the other node.

The caller (SIPp) arrives through the balancer on whichever node it sends them to; the
agent's phone (SIPp, registered with the credentials `centrala agent phone` printed on the
caller's node) registers with the other node, once that node's instance has brought the new
phone into its Asterisk; the agent logs in to the caller's node's instance. The agent's leg is
originated on the caller's node ([agent-phone]: no contact here) and reaches the phone through
the trunk between the nodes ([from-nodes] on the phone's node), as CENTRALA_NODES renders them.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import subprocess
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import yaml
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from ari_app.ari import ARIClient, ARINotFound
from centrala.settings import Settings
from core.enums import AgentRole
from dialplan.model import Flow
from models.flows import apply_flow
from models.tables import Agent, Call, Queue, QueueMember
from tests.cluster.conftest import Cluster, Node
from tests.cluster.test_balancer import call_in
from tests.integration.conftest import _centrala
from tests.support import wait_until

FLOW_FILE = Path(__file__).parents[2] / "dialplan" / "infoline.yaml"
SIPP = Path(__file__).parent / "sipp"
PHONE = "127.0.0.14"  # the agent's desk phone


def flow(edit: Callable[[dict[str, Any]], None] | None = None) -> Flow:
    data = yaml.safe_load(FLOW_FILE.read_text())
    if edit is not None:
        edit(data)
    return Flow.model_validate(data)


async def operator(sessions: async_sessionmaker[AsyncSession], agent_id: str, name: str) -> None:
    """An agent in every queue, with no phone yet."""
    async with sessions() as session:
        queues = list(await session.scalars(select(Queue)))
        session.add(
            Agent(
                id=agent_id,
                name=name,
                role=AgentRole.AGENT,
                skills=[],
                memberships=[QueueMember(queue_id=q.id) for q in queues],
            )
        )
        await session.commit()


def straight_to_an_operator(data: dict[str, Any]) -> None:
    """Callers go straight to the operators' queue, open now (SIPp presses no keys)."""
    data["start"] = "operator"
    data.pop("recording", None)
    data["nodes"] = {k: data["nodes"][k] for k in ("operator", "callback_request", "goodbye")}
    for queue in data["queues"].values():
        queue["calendar"] = "always"
        queue["wrap_up_seconds"] = 0


async def ari_of(node: Node) -> ARIClient:
    """The node's ARI for REST requests (on the credentials its `serve` has too)."""
    settings = Settings()
    ari = ARIClient(node.env["CENTRALA_ARI_URL"], settings.ari_user, settings.ari_password, [])
    await ari.open()
    return ari


async def channel_names(node: Node) -> list[str]:
    ari = await ari_of(node)
    try:
        return [str(c["name"]) for c in await ari.channels()]
    finally:
        await ari.stop()


def register_phone(workdir: Path, registrar: str, phone: dict[str, Any]) -> subprocess.Popen[bytes]:
    """The agent's desk phone: SIPp registering with ``registrar`` (a node's SIP host:port)
    on the credentials `centrala agent phone` printed, and answering the calls to it at once
    (its media echoed back). Its log and errors in ``workdir``."""
    log = workdir / f"phone-{phone['username']}.log"
    host, port = registrar.rsplit(":", 1)
    with open(log, "wb") as out:
        return subprocess.Popen(
            [
                "sipp", f"{host}:{port}", "-sf", str(SIPP / "phone_register.xml"),
                "-oocsf", str(SIPP / "phone_answer.xml"),
                "-s", phone["username"], "-au", phone["username"], "-ap", phone["password"],
                "-i", PHONE, "-p", "5060", "-m", "1", "-rtp_echo", "-mp", "16000",
                "-nostdin", "-trace_err", "-error_file", str(workdir / "phone-errors.log"),
            ],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip


async def test_a_caller_on_one_node_reaches_an_agent_whose_phone_is_on_the_other(
    cluster: Cluster,
) -> None:
    sessions = cluster.db.sessions
    agent_id = f"across-{uuid.uuid4().hex[:6]}"
    await apply_flow(sessions, flow(straight_to_an_operator))
    phone_proc: subprocess.Popen[bytes] | None = None
    caller: asyncio.Task[str] | None = None
    served_by: Node | None = None
    try:
        await operator(sessions, agent_id, "Ana Across")

        # A caller through the balancer, holding on in the queue: on which node?
        since = datetime.now(UTC)
        caller = asyncio.create_task(call_in(cluster, 1, hold_ms=25_000))

        async def arrived() -> Call | None:
            async with sessions() as session:
                return await session.scalar(
                    select(Call).where(Call.started_at >= since, Call.handler == "ari")
                )

        row = await wait_until(arrived, timeout=30, message="the caller's row")
        served_by = cluster.node(str(row.node))
        (phones_node,) = [n for n in cluster.nodes if n is not served_by]

        # The agent's phone, made with the README's command on the caller's node: that
        # node's Asterisk has it at once, the other node's gets it from its instance (which
        # brings in the phones others made, every few seconds). It registers with the other.
        env = {**served_by.env, "CENTRALA_DATABASE_URL": cluster.db.url}
        made = _centrala("agent", "phone", agent_id, env=env)
        phone = json.loads(made)
        assert phone["registrar"] == served_by.env["CENTRALA_SIP_BIND"], phone
        assert phone["dial"] == f"PJSIP/{agent_id}" and phone["asterisk"] == "updated", phone
        ari = await ari_of(phones_node)
        try:

            async def known() -> bool:
                with contextlib.suppress(ARINotFound):
                    await ari.request("GET", f"/endpoints/PJSIP/{agent_id}")
                    return True
                return False

            await wait_until(known, timeout=20, message=f"{agent_id} pushed to the other node")
            phone_proc = register_phone(cluster.tmp, phones_node.env["CENTRALA_SIP_BIND"], phone)

            async def registered() -> bool:
                assert phone_proc is not None and phone_proc.poll() is None, "SIPp phone ended"
                endpoint = await ari.request("GET", f"/endpoints/PJSIP/{agent_id}")
                return bool(endpoint.get("state") == "online")

            await wait_until(registered, timeout=20, message=f"{agent_id} registered")
        finally:
            await ari.stop()

        # The agent logs in to the caller's node's instance: the ACD offers them the caller.
        assert (await served_by.api("POST", f"/api/agents/{agent_id}/login"))[0] == 200
        # One ACD per node's instance: the other node's instance will not log them in too.
        status, refused = await phones_node.api("POST", f"/api/agents/{agent_id}/login")
        assert (status, refused["error_id"]) == (409, "logged_in_elsewhere"), refused
        assert served_by.plan.name in refused["message"]

        async def connected() -> Call | None:
            async with sessions() as session:
                found = await session.get(Call, row.id)
                return found if found is not None and found.agent_id == agent_id else None

        await wait_until(connected, timeout=30, message="the caller connected to the agent")
        # The agent's leg on the caller's node is the Local channel of [agent-phone]; it
        # reached the phone through the trunk between the nodes.
        here = await channel_names(served_by)
        assert any(n.startswith(f"Local/{agent_id}@agent-phone-") for n in here), here
        there = await channel_names(phones_node)
        assert any(n.startswith(f"PJSIP/node-{served_by.plan.name}-") for n in there), there
        assert any(n.startswith(f"PJSIP/{agent_id}-") for n in there), there

        # The caller hangs up: the call ends everywhere, answered by the agent.
        await caller

        async def closed() -> Call | None:
            async with sessions() as session:
                found = await session.get(Call, row.id)
                return found if found is not None and found.ended_at is not None else None

        ended = await wait_until(closed, timeout=30, message="the call's row closed")
        assert ended.agent_id == agent_id and ended.connected_at is not None, ended
        assert ended.node == served_by.plan.name

        async def phone_hung_up() -> bool:
            return not any(agent_id in n for n in await channel_names(phones_node))

        await wait_until(phone_hung_up, timeout=15, message="the phone's leg ended")
    finally:
        if caller is not None and not caller.done():
            caller.cancel()
            with contextlib.suppress(BaseException):
                await caller
        if served_by is not None:
            with contextlib.suppress(Exception):
                await served_by.api("POST", f"/api/agents/{agent_id}/logout")
        if phone_proc is not None:
            phone_proc.kill()
            phone_proc.wait(10)
        # The other cluster tests expect the shipped flow.
        await apply_flow(sessions, flow())
        async with sessions() as session:
            for m in await session.scalars(
                select(QueueMember).where(QueueMember.agent_id == agent_id)
            ):
                await session.delete(m)
            await session.commit()
