"""Calls to the info number through the SIP load balancer (Kamailio's dispatcher) reach both
Asterisk nodes, each answered by the `serve` owning that node and recorded with its node in
the one database; a node that dies gets no new calls (the balancer sends them to the other);
back up, it gets its share again."""

from __future__ import annotations

import asyncio
import random
import subprocess
import uuid
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from core.enums import AgentRole
from models.tables import Agent, Call
from tests.cluster.conftest import BALANCER, CALLER, INFO_NUMBER, Cluster, Node
from tests.cluster.topology import caller_scenario
from tests.integration.conftest import _centrala
from tests.support import wait_until


async def call_in(
    cluster: Cluster,
    calls: int,
    *,
    hold_ms: int = 1500,
    rate: float = 5,
    check: bool = True,
    port: int = 5060,
) -> str:
    """``calls`` SIPp callers to the info number through the balancer, each hanging up after
    ``hold_ms`` in the IVR; returns SIPp's output. ``check``: fails unless every call was
    answered and ended well. ``port``: SIPp's own (another for each SIPp running at once)."""
    cluster.calls_placed += calls
    errors = cluster.tmp / f"sipp-errors-{cluster.calls_placed}.log"
    command = [
        "sipp", f"{BALANCER}:5060", "-sf", str(caller_scenario(hold_ms, cluster.tmp)),
        "-s", INFO_NUMBER,
        "-i", CALLER, "-p", str(port), "-m", str(calls), "-r", str(rate), "-l", str(calls),
        "-timeout", f"{hold_ms // 1000 + 90}s", "-timeout_error", "-nostdin",
        "-trace_err", "-error_file", str(errors),
    ]  # fmt: skip
    done = await asyncio.to_thread(
        subprocess.run,
        command,
        capture_output=True,
        text=True,
        timeout=hold_ms / 1000 + 150,
        check=False,
    )
    detail = errors.read_text()[-3000:] if errors.exists() else ""
    if check:
        assert done.returncode == 0, f"SIPp: {done.returncode}\n{done.stdout[-3000:]}\n{detail}"
    return done.stdout


async def rows_since(cluster: Cluster, since: datetime, expected: int) -> list[Call]:
    """The info line's calls opened since ``since``, once there are ``expected`` and all are
    closed."""

    async def closed() -> list[Call] | None:
        async with cluster.db.sessions() as session:
            rows = list(
                await session.scalars(
                    select(Call).where(Call.started_at >= since, Call.handler == "ari")
                )
            )
        if len(rows) == expected and all(r.ended_at is not None for r in rows):
            return rows
        return None

    rows: list[Call] = await wait_until(
        closed, timeout=60, message=f"{expected} calls recorded and closed"
    )
    return rows


async def test_calls_through_the_balancer_spread_over_both_nodes(cluster: Cluster) -> None:
    since = datetime.now(UTC)
    await call_in(cluster, 10)
    rows = await rows_since(cluster, since, 10)
    per_node = Counter(r.node for r in rows)
    assert per_node == {"pbx1": 5, "pbx2": 5}, per_node  # round-robin
    # Each node's channels carry its name (systemname): two nodes never make the same key.
    for row in rows:
        assert row.channel_id.startswith(f"{row.node}-"), row.channel_id
        assert row.called_number == INFO_NUMBER and row.caller_number == "sipp"
    # Each node's owner answered its own calls: the callers heard the IVR and hung up there.
    assert {r.outcome for r in rows} == {"abandoned_in_ivr"}, Counter(r.outcome for r in rows)


async def test_a_dead_node_gets_no_new_calls_and_its_share_again_once_back(
    cluster: Cluster,
) -> None:
    first = cluster.node("pbx1")
    first.kill_asterisk()
    since = datetime.now(UTC)
    await call_in(cluster, 6)
    rows = await rows_since(cluster, since, 6)
    assert Counter(r.node for r in rows) == {"pbx2": 6}

    await revive(cluster, "pbx1")
    since = datetime.now(UTC)
    await call_in(cluster, 4)
    rows = await rows_since(cluster, since, 4)
    assert Counter(r.node for r in rows) == {"pbx1": 2, "pbx2": 2}


async def revive(cluster: Cluster, name: str) -> None:
    """The node's Asterisk started again; returns once its owner is connected again and the
    balancer's probes send it calls again."""
    node = cluster.node(name)
    assert node.serve is not None
    _, before = await node.serve.status()
    node.up()
    await node.serve.wait_ready(timeout=60, min_connects=before["ari"]["connects"] + 1)

    async def probed_up() -> bool:
        return node.plan.sip in _active_nodes(cluster.balancer_log)

    await wait_until(probed_up, timeout=30, message=f"the balancer sending to {name} again")


async def manual_call_talking(node: Node, cluster: Cluster) -> tuple[str, Call]:
    """An agent of the node's instance (a test phone that answers and stays on) calls a client
    from the desk (a simulated person who talks for two minutes); returns the agent and the
    call's row once they talk."""
    agent_id = f"manual-{uuid.uuid4().hex[:6]}"
    number = f"+38761{random.randrange(10**5, 10**6)}"
    for command in (f"database put sim {number} person", f"database put sim {number}-talk 120"):
        _centrala("pbx", "cli", command, env=node.env)
    async with cluster.db.sessions() as session:
        session.add(
            Agent(
                id=agent_id,
                name="Manual",
                role=AgentRole.AGENT,
                endpoint=f"Local/{agent_id}@test-agent",
                skills=[],
            )
        )
        await session.commit()
    assert (await node.api("POST", f"/api/agents/{agent_id}/login"))[0] == 200
    status, placed = await node.api("POST", f"/api/agents/{agent_id}/call", {"number": number})
    assert status == 202, placed

    async def talking() -> Call | None:
        async with cluster.db.sessions() as session:
            row = await session.get(Call, placed["call_id"])
            return row if row is not None and row.connected_at is not None else None

    row = await wait_until(talking, timeout=30, message="the agent and the client talking")
    return agent_id, row


async def agent_status(node: Node, agent_id: str) -> str | None:
    status, acd = await node.api("GET", "/api/acd")
    assert status == 200, acd
    agent = acd["agents"].get(agent_id)
    return None if agent is None else str(agent["status"])


async def test_a_dead_nodes_calls_are_closed_as_lost_when_it_went(cluster: Cluster) -> None:
    """Callers on both nodes, and an agent talking to a client on node pbx1 (a manual call);
    node pbx1's Asterisk dies: its calls' rows are closed at the moment its owner lost the
    link (CENTRALA_NODE_DEAD_SECONDS after), the callers' as lost, the talk as answered, and
    the agent is free again; the other node's callers carry on and end as they do."""
    first = cluster.node("pbx1")
    agent_id, manual = await manual_call_talking(first, cluster)
    assert await agent_status(first, agent_id) == "on_call"
    since = datetime.now(UTC)
    calling = asyncio.create_task(call_in(cluster, 4, hold_ms=12_000, rate=20, check=False))

    async def all_open() -> list[Call] | None:
        async with cluster.db.sessions() as session:
            rows = list(
                await session.scalars(
                    select(Call).where(Call.started_at >= since, Call.handler == "ari")
                )
            )
        return rows if len(rows) == 4 and all(r.answered_at for r in rows) else None

    opened = await wait_until(all_open, timeout=30, message="4 callers in the IVR")
    assert Counter(r.node for r in opened) == {"pbx1": 2, "pbx2": 2}
    killed = datetime.now(UTC)
    first.kill_asterisk()
    rows = await rows_since(cluster, since, 4)
    for row in rows:
        assert row.ended_at is not None
        if row.node == "pbx1":
            assert row.outcome == "lost" and row.hangup_cause_text == "lost with its Asterisk node"
            # Closed when the link went, not when someone noticed (3 s on).
            assert abs((row.ended_at - killed).total_seconds()) < 1.5, (row.ended_at, killed)
        else:
            assert row.outcome is not None and row.outcome != "lost", row.outcome
            assert (row.ended_at - killed).total_seconds() > 5  # the callers' own hang-up
    await calling  # SIPp: the dead node's callers could not say goodbye
    async with cluster.db.sessions() as session:
        talked = await session.get(Call, manual.id)
    assert talked is not None and talked.ended_at is not None, talked
    assert (talked.outcome, talked.agent_id) == ("answered", agent_id)
    assert talked.hangup_cause_text == "lost with its Asterisk node"
    assert abs((talked.ended_at - killed).total_seconds()) < 1.5, (talked.ended_at, killed)
    assert await agent_status(first, agent_id) == "available"
    assert first.serve is not None
    gone = [line for line in first.serve.log_lines() if line.get("event") == "pbx_gone"]
    assert gone and gone[-1]["manual_calls_closed"] == 1, gone
    assert (await first.api("POST", f"/api/agents/{agent_id}/logout"))[0] == 200
    await revive(cluster, "pbx1")


def _active_nodes(log: Path) -> set[str]:
    """The nodes' SIP addresses the balancer's log last said were up ("node_state sip:… up")."""
    state: dict[str, bool] = {}
    for line in log.read_text().splitlines():
        if "node_state sip:" in line:
            address = line.split("node_state sip:", 1)[1].split(":", 1)[0]
            state[address] = line.rstrip().endswith("up")
    return {a for a, up in state.items() if up}
