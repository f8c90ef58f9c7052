"""Benchmark: the agent dialler on the real Asterisk beside its simulation, same parameters.

A fresh `centrala serve` on a fresh SQLite file runs one predictive campaign (or --mode) for
--agents agents with nailed-up phones (tests/asterisk [test-agent]: they answer and stay on)
for --minutes, against simulated clients (tests/asterisk [test-clients], kind "person"), each
drawn from a seeded generator as bench/dialler_sim.py draws its calls: a live answer with
probability --answer-rate after 5-25 s of ringing, talking an exponential time of mean --talk
seconds (the client hangs up), else busy (10%, after 3 s) or no answer (rings to the 25 s
timeout). The campaign's wrap-up is --wrap seconds. Then bench/dialler_sim.py's simulation runs
the production pacer with the same agents, answer rate, talk and wrap-up for the same time.

Printed for both: calls placed, live answers, abandoned (and the rate), agents' occupancy (talk
÷ logged-in time) and their mean wait between calls; for the real run also the live answers
not put through or given the message within 2 s of the answer (from each call's trail: must be
0). How far the simulator is from reality is the difference between the two rows. Not the
same: the simulation's answering machines (8% of answers, AMD) and failed lines (2%) are
plain no-answers here (AMD is off), and its agents log in over a minute, here before the start.

    python bench/dialler_asterisk.py --agents 5 --minutes 10 --answer-rate 0.3 --talk 30 --wrap 6

Needs the local PBX with the test contexts (it runs `centrala pbx up` with them) and owns it
while it runs: stop any other `centrala serve` first.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

import dialler_sim  # noqa: E402
from infoline_load import Serve, ensure_pbx, foreign_serves, log  # noqa: E402
from sqlalchemy import select  # noqa: E402

from ari_app.ami import AMIClient  # noqa: E402
from centrala.settings import Settings  # noqa: E402
from core.enums import AgentRole  # noqa: E402
from models.db import create_engine, session_factory, upgrade_async  # noqa: E402
from models.tables import Agent, Call, CallEvent, Queue, QueueMember  # noqa: E402

QUEUE = "outbound_sales"
ALWAYS = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}


def clients(n: int, rate: float, talk: float, seed: int) -> list[tuple[str, dict[str, str]]]:
    """(number, how it behaves) for n clients: the simulation's draws, as sim/ keys."""
    rng = random.Random(f"asterisk/{seed}")
    first = rng.randrange(10**6 - n)
    out = []
    for i in range(n):
        number = f"+38761{first + i:06d}"  # valid mobile numbers (the list import checks)
        r = rng.random()
        if r < rate:
            delay = rng.uniform(5, 25)
            out.append(
                (
                    number,
                    {
                        "": "person",
                        "delay": f"{delay:.1f}",
                        "talk": f"{max(1.0, rng.expovariate(1 / talk)):.1f}",
                    },
                )
            )
        elif r < rate + (1 - rate) * dialler_sim.BUSY:
            out.append((number, {"": "busy"}))
        else:
            out.append((number, {"": "noanswer"}))
    return out


async def tell(ami: AMIClient, behaviours: list[tuple[str, dict[str, str]]]) -> None:
    for number, keys in behaviours:
        for suffix, value in keys.items():
            key = f"{number}-{suffix}" if suffix else number
            await ami.action("DBPut", {"Family": "sim", "Key": key, "Val": value})


async def run_asterisk(
    settings: Settings, ami: AMIClient, args: argparse.Namespace
) -> dict[str, Any]:
    workdir = Path(tempfile.mkdtemp(prefix="dialler-bench-"))
    url = f"sqlite+aiosqlite:///{workdir / 'centrala.db'}"
    await upgrade_async(url)
    serve = Serve(
        workdir,
        url,
        {
            "CENTRALA_OUTBOUND_DIAL": "Local/{number}@test-clients",
            "CENTRALA_DIALLER_TICK_SECONDS": "0.5",
            "CENTRALA_PROCEDURES_GENERATE_SECONDS": "0",
        },
    )
    engine = create_engine(url)
    sessions = session_factory(engine)
    agents = [f"bench-agent-{i}" for i in range(args.agents)]
    async with sessions() as session, session.begin():
        session.add(Queue(id=QUEUE, name=QUEUE, settings={}))
        for agent in agents:
            session.add(
                Agent(
                    id=agent,
                    name=agent,
                    role=AgentRole.AGENT,
                    endpoint=f"Local/{agent}@test-agent",
                    skills=[],
                    memberships=[QueueMember(queue_id=QUEUE)],
                )
            )
    serve.start()
    try:
        await serve.wait_ready()
        for agent in agents:
            await serve.api("POST", f"/api/agents/{agent}/login", {"mode": "nailed"})
        deadline = time.monotonic() + 30
        while True:
            shown = (await serve.api("GET", "/api/acd"))["agents"]
            if all(shown.get(a, {}).get("status") == "available" for a in agents):
                break
            if time.monotonic() > deadline:
                raise SystemExit(f"agents' nailed-up legs did not come up: {shown}")
            await asyncio.sleep(0.2)
        # Enough clients that the list never runs out (each dialled once).
        per_agent = args.minutes * 60 / (args.talk + args.wrap) / max(args.answer_rate, 0.05)
        behaviours = clients(
            int(per_agent * args.agents * 2) + 50, args.answer_rate, args.talk, args.seed
        )
        await tell(ami, behaviours)
        body = {
            "name": f"bench-{args.seed}",
            "mode": args.mode,
            "queue": QUEUE,
            "contacts_csv": "number,timezone\n" + "".join(f"{n},UTC\n" for n, _ in behaviours),
            "settings": {
                "ring_seconds": 25,
                "wrap_up_seconds": args.wrap,
                "rules": {
                    "window": {"timezone": "UTC", "weekly": ALWAYS},
                    "legal": {"timezone": "UTC", "weekly": ALWAYS},
                    "max_attempts": 1,
                    "survey_cap_days": 0,
                },
            },
        }
        campaign = await serve.api("POST", "/api/campaigns", body)
        log(f"{len(behaviours)} clients; running {args.minutes} min with {args.agents} agents")
        started = datetime.now().astimezone()
        await serve.api("POST", f"/api/campaigns/{campaign['id']}/start")
        await asyncio.sleep(args.minutes * 60)  # the run itself: a fixed length, not a sync
        await serve.api("POST", f"/api/campaigns/{campaign['id']}/pause")
        ended = datetime.now().astimezone()
        # Calls under way finish by themselves (talks end, rings time out).
        deadline = time.monotonic() + 25 + 10 * args.talk
        while time.monotonic() < deadline:
            async with sessions() as session:
                still = await session.scalar(select(Call.id).where(Call.ended_at.is_(None)))
            if still is None:
                break
            await asyncio.sleep(1)
        async with sessions() as session:
            calls = list(await session.scalars(select(Call).where(Call.campaign_id.is_not(None))))
            events = list(
                await session.scalars(
                    select(CallEvent).where(CallEvent.kind.in_(["agent_connected", "abandoned"]))
                )
            )
        errors = [x for x in serve.log_lines() if x.get("level") in ("error", "critical")]
    finally:
        serve.stop()
        await engine.dispose()
    return figures(calls, events, started, ended, args, len(errors))


def figures(
    calls: list[Call],
    events: list[CallEvent],
    started: datetime,
    ended: datetime,
    args: argparse.Namespace,
    errors: int,
) -> dict[str, Any]:
    length = (ended - started).total_seconds()
    fate = {e.call_id: e.at for e in events}
    live = [c for c in calls if c.outcome in ("connected", "abandoned")]
    abandoned = [c for c in live if c.outcome == "abandoned"]
    late = 0
    for c in live:
        at = fate.get(c.id)
        if c.answered_at is None or at is None or at - c.answered_at > timedelta(seconds=2):
            late += 1
    talk = 0.0
    waits: list[float] = []
    by_agent: dict[str, list[Call]] = {}
    for c in calls:
        if c.outcome == "connected" and c.connected_at is not None and c.agent_id:
            end = min(c.ended_at or ended, ended)
            talk += max(0.0, (end - max(c.connected_at, started)).total_seconds())
            by_agent.setdefault(c.agent_id, []).append(c)
    for taken in by_agent.values():
        taken.sort(key=lambda c: c.connected_at or started)
        for before, after in pairwise(taken):
            if before.ended_at and after.connected_at:
                ready = before.ended_at + timedelta(seconds=args.wrap)
                waits.append(max(0.0, (after.connected_at - ready).total_seconds()))
    return {
        "placed": len(calls),
        "live": len(live),
        "abandoned": len(abandoned),
        "abandon": len(abandoned) / len(live) if live else 0.0,
        "occupancy": talk / (args.agents * length) if length else 0.0,
        "wait": sum(waits) / len(waits) if waits else float("nan"),
        "late": late,
        "errors": errors,
    }


def run_simulation(args: argparse.Namespace) -> dict[str, Any]:
    # The simulation's call model, with this run's talk and wrap-up.
    cell = dialler_sim.Cell(
        agents=args.agents,
        rate=args.answer_rate,
        scenario="steady",
        dialler=args.mode,
        seed=args.seed,
        hours=args.minutes / 60,
        ratio=2.0,
        talk=args.talk,
        wrap=args.wrap,
    )
    r = dialler_sim.run(cell)
    return {
        "placed": r.placed,
        "live": r.live,
        "abandoned": r.abandoned,
        "abandon": r.abandon,
        "occupancy": r.occupancy,
        "wait": r.wait,
        "late": 0,
        "errors": 0,
    }


async def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--agents", type=int, default=5)
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--answer-rate", type=float, default=0.3)
    parser.add_argument("--talk", type=float, default=30, help="mean talk, seconds")
    parser.add_argument("--wrap", type=float, default=6, help="wrap-up, seconds")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--mode", choices=["predictive", "progressive"], default="predictive")
    args = parser.parse_args()
    settings = Settings()
    if foreign_serves():
        raise SystemExit("another `centrala serve` is running on this PBX: stop it first")
    ensure_pbx(settings)
    ami = AMIClient(settings.ami_host, settings.ami_port, settings.ami_user, settings.ami_secret)
    await ami.start()
    await ami.wait_connected(10)
    try:
        real = await run_asterisk(settings, ami, args)
    finally:
        await ami.stop()
    sim = run_simulation(args)
    print(
        f"{args.mode}, {args.agents} agents, {args.minutes:g} min, answer rate "
        f"{args.answer_rate:g}, talk {args.talk:g} s, wrap-up {args.wrap:g} s, seed {args.seed}"
    )
    print(
        f"{'':>10} {'placed':>7} {'live':>5} {'abandoned':>9} {'abandon %':>9} "
        f"{'occupancy %':>11} {'wait s':>7} {'late > 2 s':>10} {'errors':>6}"
    )
    for label, r in (("asterisk", real), ("simulated", sim)):
        print(
            f"{label:>10} {r['placed']:>7} {r['live']:>5} {r['abandoned']:>9} "
            f"{100 * r['abandon']:>9.2f} {100 * r['occupancy']:>11.1f} {r['wait']:>7.1f} "
            f"{r['late']:>10} {r['errors']:>6}",
            flush=True,
        )
    return 1 if real["late"] or real["errors"] else 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
