"""How long a waiting caller takes to reach a free agent whose desk phone is registered on the
caller's own Asterisk node, and on the other node.

    python bench/agent_across.py --calls 20 [--postgres URL]

The several-nodes deployment of asterisk-docker/compose.cluster.yaml, run locally as
tests/cluster runs it: two nodes, a `serve` owning each, one database (SQLite in the work
directory, or PostgreSQL at URL), Kamailio's dispatcher in front sending every call to node
pbx1. The flow sends callers straight to the operators' queue. One agent, logged in to
pbx1's instance; their phone is SIPp (answering at once), registered first with pbx2, then
with pbx1. SIPp callers then call one after another (each waits --hold seconds and hangs
up). Per call, from the call's row: the caller's entry into the queue to the agent connected
(the offer, the agent's leg originated on pbx1, rung there or through the trunk to pbx2, and
answered). Median, 90th percentile and max for each place of the phone. Needs root.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import statistics
import subprocess
import sys
import tempfile
import uuid
from datetime import UTC, datetime
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infoline_load import REPO, Serve, log
from nodes_load import node_envs, node_list, start_balancer, start_nodes, stop_nodes
from sqlalchemy import select

from models.db import create_engine, session_factory
from models.flows import apply_flow
from models.tables import Call
from tests.cluster.test_agent_across_nodes import (
    flow,
    operator,
    register_phone,
    straight_to_an_operator,
)
from tests.cluster.topology import (
    BALANCER,
    CALLER,
    INFO_NUMBER,
    PLAN,
    caller_scenario,
    sip_answers,
    stop_group,
)


async def connect_times(url: str, since: datetime, calls: int) -> list[float]:
    """Seconds from queue entry to the agent connected, for each call since ``since``, once
    ``calls`` of them are closed."""
    engine = create_engine(url)
    try:
        for _ in range(600):
            async with session_factory(engine)() as session:
                rows = list(
                    await session.scalars(
                        select(Call).where(Call.started_at >= since, Call.handler == "ari")
                    )
                )
            if len(rows) >= calls and all(r.ended_at is not None for r in rows):
                return [
                    (r.connected_at - r.queued_at).total_seconds()
                    for r in rows
                    if r.connected_at is not None and r.queued_at is not None
                ]
            await asyncio.sleep(0.5)  # a look every half second while the last calls end
        raise SystemExit(f"{calls} calls not all closed: see the serves' logs")
    finally:
        await engine.dispose()


async def prepare(url: str, agent_id: str) -> None:
    """The flow straight to the operators, and the agent, a member of every queue."""
    engine = create_engine(url)
    try:
        sessions = session_factory(engine)
        await apply_flow(sessions, flow(straight_to_an_operator))
        await operator(sessions, agent_id, "Bench Agent")
    finally:
        await engine.dispose()


def cli(env: dict[str, str], *args: str) -> str:
    """`centrala ARGS` with a node's settings; its output (SystemExit on a failure)."""
    run = subprocess.run(
        [sys.executable, "-m", "centrala.cli", *args],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    if run.returncode != 0:
        raise SystemExit(f"centrala {' '.join(args)}: {run.stderr[-2000:]}")
    return run.stdout


def callers(calls: int, hold: float, workdir: Path, tag: str) -> None:
    """SIPp callers to the info number at the balancer, one at a time, each holding on
    ``hold`` seconds once answered (in the queue, then with the agent)."""
    subprocess.run(
        [
            "sipp", f"{BALANCER}:5060", "-sf", str(caller_scenario(int(hold * 1000), workdir)),
            "-s", INFO_NUMBER, "-i", CALLER,
            "-p", "5060", "-m", str(calls), "-l", "1", "-r", "10",
            "-timeout", f"{int(calls * (hold + 10) + 60)}s", "-nostdin",
            "-trace_err", "-error_file", str(workdir / f"sipp-{tag}-errors.log"),
        ],
        capture_output=True, timeout=calls * (hold + 10) + 120, check=False,
    )  # fmt: skip


async def main_async(args: argparse.Namespace) -> None:
    envs = node_envs()
    workdir = Path(tempfile.mkdtemp(prefix="centrala-across-"))
    url = args.postgres or f"sqlite+aiosqlite:///{workdir / 'centrala.db'}"
    serves: list[Serve] = []
    balancer: subprocess.Popen[bytes] | None = None
    phone: subprocess.Popen[bytes] | None = None
    agent_id = f"bench-{uuid.uuid4().hex[:6]}"
    first = PLAN[0].name
    results: dict[str, list[float]] = {}
    try:
        await start_nodes(envs, workdir, url, serves)
        await prepare(url, agent_id)
        made = json.loads(
            cli({**envs[first], "CENTRALA_DATABASE_URL": url}, "agent", "phone", agent_id)
        )
        balancer = start_balancer(node_list({first}, workdir / "first.list"), workdir)
        while not await asyncio.to_thread(sip_answers, BALANCER):
            if balancer.poll() is not None:
                raise SystemExit("Kamailio did not start: see its log in " + str(workdir))
            await asyncio.sleep(0.2)
        owner = serves[0]
        await owner.api("POST", f"/api/agents/{agent_id}/login", {})
        # The other node first: a phone that leaves a node stays registered there until its
        # registration expires, and a node rings a phone registered with it first.
        for plan in reversed(PLAN):
            place = "same node" if plan.name == first else "other node"
            await known(envs[plan.name], agent_id)
            phone = register_phone(workdir, plan.settings["CENTRALA_SIP_BIND"], made)
            await online(envs[plan.name], agent_id)
            since = datetime.now(UTC)
            log(f"{args.calls} calls, the agent's phone on {plan.name} ({place})")
            await asyncio.to_thread(callers, args.calls, args.hold, workdir, place)
            results[place] = await connect_times(url, since, args.calls)
            phone.kill()
            phone.wait(10)
            phone = None
    finally:
        if phone is not None:
            phone.kill()
        if balancer is not None:
            stop_group(balancer)
        with contextlib.suppress(Exception):
            await stop_nodes(envs, serves)
    print(
        f"caller in the queue -> agent connected, one agent on pbx1's instance, calls one after "
        f"another ({url.split(':')[0]})"
    )
    print("phone on     calls  median ms  p90 ms  max ms")
    for place, times in results.items():
        ms = sorted(t * 1000 for t in times)
        p90 = ms[min(len(ms) - 1, int(0.9 * len(ms)))] if ms else 0.0
        median = statistics.median(ms) if ms else 0.0
        print(f"{place:<11}  {len(ms):>5}  {median:>9.0f}  {p90:>6.0f}  {max(ms or [0]):>6.0f}")
    if len(results) == 2 and all(results.values()):
        same = statistics.median(results["same node"]) * 1000
        other = statistics.median(results["other node"]) * 1000
        print(f"across the nodes adds {other - same:.0f} ms to the median")


async def known(env: dict[str, str], agent_id: str) -> None:
    """The phone in that node's Asterisk (pushed by its instance, which brings in the phones
    made elsewhere every few seconds)."""
    for _ in range(300):
        shown = await asyncio.to_thread(
            cli, env, "pbx", "cli", f"pjsip show endpoints like {agent_id}"
        )
        if "Endpoint:" in shown and agent_id in shown:
            return
        await asyncio.sleep(0.1)  # a look every 100 ms
    raise SystemExit(f"{agent_id}'s phone never reached the node")


async def online(env: dict[str, str], agent_id: str) -> None:
    """The phone registered, as that node's Asterisk says (`pjsip show contacts`)."""
    for _ in range(300):
        shown = await asyncio.to_thread(
            cli, env, "pbx", "cli", f"pjsip show contacts like {agent_id}"
        )
        if "Avail" in shown:
            return
        await asyncio.sleep(0.1)  # a look every 100 ms while SIPp registers
    raise SystemExit(f"{agent_id}'s phone never registered")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=20)
    parser.add_argument("--hold", type=float, default=2.0)
    parser.add_argument("--postgres", help="a PostgreSQL URL (default: SQLite)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
