"""One site of two Asterisk nodes (``CENTRALA_SITE``, as asterisk-docker/compose.cluster.yaml
deploys it): how long the standby takes to own both nodes and adopt every call on them when
the owner is SIGKILLed, over several kills.

    python bench/site_takeover.py --talking 2 --queued 2 --ivr 2 --repeat 5 [--postgres URL]

The two nodes and their two instances as the deployment gives them (tests/cluster/topology.py:
the first instance owns both nodes, one ACD; the other stands by for both), on one database
(SQLite in the work directory, or PostgreSQL at URL). Each round places, on each node through
that node's own ARI, callers talking to agents (who answer at once), callers waiting in the
queue and callers in the IVR; SIGKILLs the owner; and times the kill to the standby's
`/status` answering 200 (both nodes owned, every call of both adopted). Then the callers hang
up and the killed instance starts again, now the standby; the next round kills the other.
Per round: the takeover time, calls adopted against those placed, callers dropped, agents
on call. Needs root (it starts Asterisk in chroots). Do not run while the tests run.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infoline_load import APP, BenchARI, Serve, log, setup_desk
from nodes_load import node_envs, pbx, stop_nodes
from restart import Legs, _at_least, wait_for
from takeover import back_as_standby, hang_up_all, kill_owner, print_kills, wait_standby

from centrala.settings import Settings
from tests.cluster.topology import local_site


def site_instance(workdir: Path, url: str, node: str, envs: dict[str, dict[str, str]]) -> Serve:
    """The instance whose own node is ``node``, with the deployment's CENTRALA_SITE."""
    env = envs[node]
    roots = {name: Path(e["CENTRALA_PBX_ROOT"]) for name, e in envs.items()}
    data = workdir / node
    data.mkdir(parents=True, exist_ok=True)
    settings = {k: v for k, v in env.items() if k.startswith("CENTRALA_")}
    settings.pop("CENTRALA_DATA_DIR")
    settings.update(
        CENTRALA_SITE=local_site(node, roots),
        CENTRALA_INSTANCE_ID=f"site-{node}",
        CENTRALA_LOG_LEVEL="WARNING",
    )
    return Serve(data, url, settings)


async def one_round(
    args: argparse.Namespace,
    owner: Serve,
    standby: Serve,
    legs: dict[str, Legs],
    n: int,
) -> dict[str, Any]:
    tag = f"s{n}"
    talkers = args.talking * len(legs)
    agents, (engine, _) = await setup_desk(owner, talkers, tag, "per_call")
    await engine.dispose()

    async def on_call(serve: Serve) -> int:
        snap = await serve.api("GET", "/api/acd")
        return sum(1 for a in agents if snap["agents"].get(a, {}).get("status") == "on_call")

    placed: dict[str, list[str]] = {}
    for node, node_legs in legs.items():
        placed[node] = await node_legs.place(f"{tag}-{node}-talk", args.talking, "0")
    await wait_for(lambda: _at_least(lambda: on_call(owner), talkers), "the talkers")
    queued = 0
    for node, node_legs in legs.items():
        placed[node] += await node_legs.place(f"{tag}-{node}-queue", args.queued, "0")
        queued += args.queued

    async def waiting() -> bool:
        snap = await owner.api("GET", "/api/acd")
        return bool((snap.get("queues", {}).get("new_clients") or {}).get("waiting", 0) >= queued)

    await wait_for(waiting, "the queued callers of both nodes to wait in the one queue")
    for node, node_legs in legs.items():
        placed[node] += await node_legs.place(f"{tag}-{node}-ivr", args.ivr, "")
    took, body = await kill_owner(owner, standby)
    still_on_call = await on_call(standby)
    everyone = [c for ids in placed.values() for c in ids]
    dropped = [c for node, ids in placed.items() for c in ids if c in legs[node].ended]
    for node, ids in placed.items():
        await hang_up_all(legs[node], ids, f"{node}'s callers")
    await back_as_standby(owner, standby, agents)
    return {
        "killed": owner.extra_env["CENTRALA_INSTANCE_ID"],
        "took_s": took,
        "placed": len(everyone),
        "adopted": body.get("calls_adopted"),
        "dropped": len(dropped),
        "agents_on_call": still_on_call,
        "talkers": talkers,
    }


async def main_async(args: argparse.Namespace) -> None:
    envs = node_envs()
    workdir = Path(tempfile.mkdtemp(prefix="centrala-site-"))
    url = args.postgres or f"sqlite+aiosqlite:///{workdir / 'centrala.db'}"
    settings = Settings()
    first, second = sorted(envs)
    a, b = site_instance(workdir, url, first, envs), site_instance(workdir, url, second, envs)
    aris: list[BenchARI] = []
    rounds = []
    try:
        for name, env in envs.items():
            run = await asyncio.to_thread(pbx, env, "up")
            if run.returncode != 0:
                raise SystemExit(f"node {name} did not come up:\n{run.stderr[-2000:]}")
        a.start()
        await a.wait_ready(timeout=120)
        b.start()
        await wait_standby(b)
        legs = {}
        for name, env in envs.items():
            ari = BenchARI(env["CENTRALA_ARI_URL"], settings.ari_user, settings.ari_password, [APP])
            aris.append(ari)
            await ari.start()
            await ari.wait_connected(10)
            legs[name] = Legs(ari)
        owner, standby = a, b
        for n in range(args.repeat):
            figures = await one_round(args, owner, standby, legs, n)
            rounds.append(figures)
            log(f"kill {n + 1}: {figures}")
            owner, standby = standby, owner
    finally:
        for ari in aris:
            await ari.stop()
        await stop_nodes(envs, [a, b])
    per_node = f"{args.talking} talking, {args.queued} queued, {args.ivr} in the IVR per node"
    print(
        f"takeover of a site of {len(envs)} nodes by its standby `serve` after SIGKILL of its "
        f"owner, with {per_node} ({args.repeat} kills, lease 9 s, renewal 2 s, "
        f"{url.split(':')[0]})"
    )
    print_kills(rounds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--talking", type=int, default=2)
    parser.add_argument("--queued", type=int, default=2)
    parser.add_argument("--ivr", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--postgres", help="a PostgreSQL URL (default: SQLite)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
