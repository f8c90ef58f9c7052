"""New calls per second carried through the IVR by one Asterisk node and by two, behind the
SIP load balancer, with the same load generator.

    python bench/nodes_load.py --rates 5 10 15 20 --duration 20 [--postgres URL]

The several-nodes deployment of asterisk-docker/compose.cluster.yaml, run locally as
tests/cluster runs it: two Asterisk nodes, a `serve` owning each, one database (SQLite in the
work directory, or PostgreSQL at URL), Kamailio's dispatcher in front. SIPp places new calls
to the info number at the balancer at each RATE per second for DURATION seconds; each caller
hears the IVR for --hold seconds and hangs up. Carried: the calls answered and ended cleanly,
per second of load. First with the balancer sending every call to node pbx1 (a node list of
one), then to both nodes. Per rate: placed, answered, failed, carried per second, and the
calls recorded per node. Needs root (it starts Asterisk in chroots); on the 2 cores here the
nodes, both `serve`s, Kamailio and SIPp share the same CPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import os
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infoline_load import EXTRA_CONFIG, REPO, Serve, centrala_cli, foreign_serves, log
from sqlalchemy import func, select

from centrala.settings import Settings
from models.db import create_engine, session_factory
from models.tables import Call
from tests.cluster.topology import (
    BALANCER,
    CALLER,
    DISPATCHER_LIST,
    INFO_NUMBER,
    KAMAILIO_CFG,
    PLAN,
    caller_scenario,
    node_env,
    node_root,
    sip_answers,
    stop_group,
)


def node_list(names: set[str], to: Path) -> Path:
    """The deployment's node list, kept to the nodes named."""
    lines = [
        line
        for line in DISPATCHER_LIST.read_text().splitlines(keepends=True)
        if line.startswith("#") or any(f"node={n}" in line for n in names)
    ]
    to.write_text("".join(lines))
    return to


def pbx(env: dict[str, str], command: str) -> subprocess.CompletedProcess[str]:
    """`centrala pbx COMMAND` for a node."""
    return subprocess.run(
        [sys.executable, "-m", "centrala.cli", "pbx", command],
        env=env, cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


def start_balancer(listing: Path, workdir: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [
            "kamailio", "-DD", "-E", "-f", str(KAMAILIO_CFG), "-l", f"udp:{BALANCER}:5060",
            "-A", f'DISPATCHER_LIST="{listing}"', "-A", "PROBE_SECONDS=1",
            "-P", str(workdir / "kamailio.pid"), "-Y", str(workdir),
        ],
        stdout=open(workdir / f"kamailio-{listing.stem}.log", "wb"),
        stderr=subprocess.STDOUT, start_new_session=True,
    )  # fmt: skip


def sipp(rate: float, duration: float, hold: float, workdir: Path, tag: str) -> dict[str, int]:
    """SIPp callers at ``rate`` per second for ``duration`` seconds; their final counts."""
    calls = max(1, round(rate * duration))
    stats = workdir / f"sipp-{tag}.csv"
    subprocess.run(
        [
            "sipp", f"{BALANCER}:5060", "-sf", str(caller_scenario(int(hold * 1000), workdir)),
            "-s", INFO_NUMBER, "-i", CALLER,
            "-p", "5060", "-r", str(rate), "-m", str(calls),
            "-l", str(max(10, int(rate * (hold + 5) * 2))),
            "-timeout", f"{int(duration + hold + 90)}s", "-nostdin",
            "-trace_stat", "-stf", str(stats), "-fd", "1",
        ],
        capture_output=True, timeout=duration + hold + 150, check=False,
    )  # fmt: skip
    with open(stats, newline="") as f:
        rows = list(csv.reader(f, delimiter=";"))
    header, last = rows[0], rows[-1]

    def count(name: str) -> int:
        return int(last[header.index(name)])

    return {
        "placed": count("OutgoingCall(C)"),
        "answered": count("SuccessfulCall(C)"),
        "failed": count("FailedCall(C)"),
    }


async def rows_by_node(url: str, since: datetime, drain: float = 120) -> dict[str, int]:
    """The calls recorded per node since ``since``, once every one of them is closed (the
    next rate starts on idle nodes), or after ``drain`` seconds."""
    engine = create_engine(url)
    deadline = time.monotonic() + drain
    try:
        while True:
            async with session_factory(engine)() as session:
                rows = await session.execute(
                    select(Call.node, func.count(), func.count(Call.ended_at))
                    .where(Call.started_at >= since, Call.handler == "ari")
                    .group_by(Call.node)
                )
                counts = {str(node): (int(n), int(ended)) for node, n, ended in rows}
            if all(n == ended for n, ended in counts.values()) or time.monotonic() > deadline:
                return {node: n for node, (n, _) in counts.items()}
            await asyncio.sleep(1)  # a look a second while the last calls end
    finally:
        await engine.dispose()


def node_envs() -> dict[str, dict[str, str]]:
    """Each node's settings, as the deployment gives them, on its own chroot (copied from
    the built one, which is built first if need be) and data directory."""
    settings = Settings()
    if foreign_serves():
        raise SystemExit("another `centrala serve` is running: stop it first")
    cached = settings.pbx_root
    if not (cached / "rootfs" / ".centrala-rootfs-ready").is_file():
        centrala_cli("pbx", "up")  # builds the chroot the nodes are copied from
        centrala_cli("pbx", "down")
    sounds = settings.data_dir / "sounds"
    envs = {}
    for plan in PLAN:
        root = node_root(cached, plan.name)
        env = node_env(
            plan, root, agi_secret=settings.effective_agi_secret(), phones=str(EXTRA_CONFIG)
        )
        data = root / "data"
        if sounds.is_dir() and not (data / "sounds").exists():
            shutil.copytree(sounds, data / "sounds")
        envs[plan.name] = {**env, "CENTRALA_DATA_DIR": str(data)}
    return envs


async def start_nodes(
    envs: dict[str, dict[str, str]], workdir: Path, url: str, serves: list[Serve]
) -> None:
    """Every node up, and a `serve` owning each (added to ``serves`` as started, so the
    caller stops them whatever happens), ready."""
    for name, env in envs.items():
        run = await asyncio.to_thread(pbx, env, "up")
        if run.returncode != 0:
            raise SystemExit(f"node {name} did not come up:\n{run.stderr[-2000:]}")
        own = workdir / name
        own.mkdir()
        settings_of = {
            k: v for k, v in env.items() if k.startswith("CENTRALA_") and k != "CENTRALA_DATA_DIR"
        }
        serve = Serve(own, url, {**settings_of, "CENTRALA_LOG_LEVEL": "WARNING"})
        serve.start()
        serves.append(serve)
    for serve in serves:
        await serve.wait_ready(timeout=120)


async def stop_nodes(envs: dict[str, dict[str, str]], serves: list[Serve]) -> None:
    for serve in serves:
        serve.stop()
    for env in envs.values():
        await asyncio.to_thread(pbx, env, "down")


async def main_async(args: argparse.Namespace) -> None:
    envs = node_envs()
    workdir = Path(tempfile.mkdtemp(prefix="centrala-nodes-"))
    url = args.postgres or f"sqlite+aiosqlite:///{workdir / 'centrala.db'}"
    serves: list[Serve] = []
    balancer: subprocess.Popen[bytes] | None = None
    results: list[dict[str, Any]] = []
    try:
        await start_nodes(envs, workdir, url, serves)
        for nodes in ({PLAN[0].name}, {p.name for p in PLAN}):
            listing = node_list(nodes, workdir / f"nodes-{len(nodes)}.list")
            balancer = start_balancer(listing, workdir)
            deadline = time.monotonic() + 30
            while not await asyncio.to_thread(sip_answers, BALANCER):
                if balancer.poll() is not None or time.monotonic() > deadline:
                    raise SystemExit("Kamailio did not start: see its log in " + str(workdir))
            for rate in args.rates:
                since = datetime.now(UTC)
                log(f"{len(nodes)} node(s), {rate}/s for {args.duration} s")
                counts = await asyncio.to_thread(
                    sipp, rate, args.duration, args.hold, workdir, f"{len(nodes)}-{rate}"
                )
                recorded = await rows_by_node(url, since)
                results.append({"nodes": len(nodes), "rate": rate, **counts, "recorded": recorded})
                log(f"  {counts}, recorded {recorded}")
            stop_group(balancer)
            balancer = None
    finally:
        if balancer is not None:
            stop_group(balancer)
        await stop_nodes(envs, serves)
    print(
        f"new calls through the IVR behind the balancer, {args.duration:g} s per rate, each "
        f"caller {args.hold:g} s in the IVR ({url.split(':')[0]}, {os.cpu_count()} CPUs)"
    )
    print("nodes  rate/s  placed  answered  failed  carried/s  recorded per node")
    best: dict[int, float] = {}
    for r in results:
        carried = r["answered"] / args.duration
        best[r["nodes"]] = max(best.get(r["nodes"], 0.0), carried)
        per_node = ", ".join(f"{k} {v}" for k, v in sorted(r["recorded"].items())) or "-"
        print(
            f"{r['nodes']:>5}  {r['rate']:>6g}  {r['placed']:>6}  {r['answered']:>8}  "
            f"{r['failed']:>6}  {carried:>9.1f}  {per_node}"
        )
    print(
        "most carried: "
        + "; ".join(f"{n} node{'s' if n > 1 else ''} {v:.1f}/s" for n, v in sorted(best.items()))
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rates", type=float, nargs="+", default=[5, 10, 15, 20])
    parser.add_argument("--duration", type=float, default=20)
    parser.add_argument("--hold", type=float, default=3.0)
    parser.add_argument("--postgres", help="a PostgreSQL URL (default: SQLite)")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
