"""Calls to the info number through the SIP load balancer (Kamailio's dispatcher) reach both
Asterisk nodes, each answered by the `serve` owning that node and recorded with its node in
the one database; a node that dies gets no new calls (the balancer sends them to the other);
back up, it gets its share again."""

from __future__ import annotations

import asyncio
import subprocess
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path

from sqlalchemy import select

from models.tables import Call
from tests.cluster.conftest import BALANCER, CALLER, INFO_NUMBER, Cluster
from tests.support import wait_until


async def call_in(cluster: Cluster, calls: int, *, hold_ms: int = 1500, rate: float = 5) -> str:
    """``calls`` SIPp callers to the info number through the balancer, each hanging up after
    ``hold_ms`` in the IVR; returns SIPp's output. Fails unless every call was answered."""
    cluster.calls_placed += calls
    errors = cluster.tmp / f"sipp-errors-{cluster.calls_placed}.log"
    command = [
        "sipp", f"{BALANCER}:5060", "-sn", "uac", "-s", INFO_NUMBER,
        "-i", CALLER, "-p", "5060", "-m", str(calls), "-r", str(rate), "-l", str(calls),
        "-d", str(hold_ms), "-timeout", "90s", "-timeout_error", "-nostdin",
        "-trace_err", "-error_file", str(errors),
    ]  # fmt: skip
    done = await asyncio.to_thread(
        subprocess.run, command, capture_output=True, text=True, timeout=150, check=False
    )
    detail = errors.read_text()[-3000:] if errors.exists() else ""
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

    first.up()  # the node comes back; its owner reconnects
    assert first.serve is not None
    await first.serve.wait_ready(timeout=60, min_connects=2)

    async def probed_up() -> bool:  # the balancer's probes see it again
        return first.plan.sip in _active_nodes(cluster.balancer_log)

    await wait_until(probed_up, timeout=30, message="the balancer sending to pbx1 again")
    since = datetime.now(UTC)
    await call_in(cluster, 4)
    rows = await rows_since(cluster, since, 4)
    assert Counter(r.node for r in rows) == {"pbx1": 2, "pbx2": 2}


def _active_nodes(log: Path) -> set[str]:
    """The nodes' SIP addresses the balancer's log last said were up ("node_state sip:… up")."""
    state: dict[str, bool] = {}
    for line in log.read_text().splitlines():
        if "node_state sip:" in line:
            address = line.split("node_state sip:", 1)[1].split(":", 1)[0]
            state[address] = line.rstrip().endswith("up")
    return {a for a, up in state.items() if up}
