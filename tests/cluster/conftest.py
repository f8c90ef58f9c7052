"""Several nodes on one machine, as asterisk-docker/compose.cluster.yaml deploys them and
with its very settings (read from it): two Asterisk nodes (copies of the chroot `centrala pbx
up` builds, each with its own name, SIP address, ARI, AMI, RTP and FastAGI ports), Kamailio's
dispatcher in front of them with the deployment's kamailio.cfg and dispatcher.list, and
`centrala serve` on one PostgreSQL database: by default (the ``cluster`` fixture) one owning
each node, as the deployment's instances run without their CENTRALA_SITE (an ACD per node);
test_one_acd.py runs them with it (one instance owning both nodes, the other standing by).
Only where things live differs (chroots, data directories, the database, web ports), and a
dead node's calls are closed after 3 s instead of 30 (LOCAL_ONLY). Callers are SIPp user
agents on loopback calling the info number at the balancer.

    caller (SIPp, 127.0.0.13) ──SIP──▶ Kamailio 127.0.0.10 ──▶ node pbx1 127.0.0.11 ◀── serve
                                                         └──▶ node pbx2 127.0.0.12 ◀── serve
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from centrala.settings import Settings
from tests.cluster.topology import (
    BALANCER,
    CALLER,
    DISPATCHER_LIST,
    INFO_NUMBER,
    KAMAILIO_CFG,
    PLAN,
    NodePlan,
    node_env,
    node_root,
    sip_answers,
    stop_group,
)
from tests.conftest import Database, make_database
from tests.integration.conftest import PBX, Server, _centrala, pbx, start_serve
from tests.support import wait_until

__all__ = ["BALANCER", "CALLER", "INFO_NUMBER", "pbx"]


async def api_of(
    server: Server, method: str, path: str, body: dict[str, Any] | None = None
) -> tuple[int, Any]:
    """A request to a `serve`'s API, with its token: (status, JSON)."""
    token = (server.data_dir / "api-token").read_text().strip()
    async with (
        aiohttp.ClientSession() as http,
        http.request(
            method,
            f"{server.url}{path}",
            json=body or {},
            headers={"Authorization": f"Bearer {token}"},
        ) as resp,
    ):
        return resp.status, await resp.json()


async def end_callers(callers: list[asyncio.Task[str]]) -> None:
    """SIPp callers still running are stopped; every one is waited for."""
    for task in callers:
        if not task.done():
            task.cancel()
        with contextlib.suppress(BaseException):
            await task


@dataclass
class Node:
    plan: NodePlan
    root: Path
    env: dict[str, str]  # `centrala pbx ...` and `serve` of this node
    serve: Server | None = None

    def up(self) -> None:
        _centrala("pbx", "up", env=self.env)

    def down(self) -> None:
        _centrala("pbx", "down", env=self.env)

    async def api(
        self, method: str, path: str, body: dict[str, Any] | None = None
    ) -> tuple[int, Any]:
        """A request to the node's instance's API, with its token: (status, JSON)."""
        assert self.serve is not None
        return await api_of(self.serve, method, path, body)

    def kill_asterisk(self) -> None:
        """SIGKILL the node's Asterisk: a machine that died (no goodbye to anyone)."""
        pid = int((self.root / "rootfs" / "run" / "asterisk" / "asterisk.pid").read_text())
        os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)


@dataclass
class Cluster:
    nodes: list[Node]
    db: Database
    balancer: subprocess.Popen[bytes]
    balancer_log: Path
    tmp: Path
    calls_placed: int = field(default=0)

    def node(self, name: str) -> Node:
        return next(n for n in self.nodes if n.plan.name == name)


def start_balancer(tmp: Path) -> tuple[subprocess.Popen[bytes], Path]:
    """Kamailio on the deployment's configuration and node list."""
    listing = DISPATCHER_LIST
    log = tmp / "kamailio.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                "kamailio", "-DD", "-E", "-f", str(KAMAILIO_CFG),
                "-l", f"udp:{BALANCER}:5060",
                "-A", f'DISPATCHER_LIST="{listing}"', "-A", "PROBE_SECONDS=1",
                "-P", str(tmp / "kamailio.pid"), "-Y", str(tmp),
            ],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip
    return proc, log


def serve_overrides(node: Node) -> dict[str, str | None]:
    """`serve`'s settings for ``node``: the node's, but its data directory (start_serve's
    own)."""
    return {
        k: v for k, v in node.env.items() if k.startswith("CENTRALA_") and k != "CENTRALA_DATA_DIR"
    }


async def serve_each_node(cluster: Cluster) -> None:
    """One `serve` owning each node, as the deployment runs them; ready."""
    for node in cluster.nodes:
        own = cluster.tmp / node.plan.name
        own.mkdir(exist_ok=True)
        node.serve = start_serve(cluster.db, own, **serve_overrides(node))
    for node in cluster.nodes:
        assert node.serve is not None
        await node.serve.wait_ready(timeout=60)


@pytest.fixture(scope="session")
def cluster_nodes(pbx: PBX, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Node]]:
    """The two Asterisk nodes, up (each with its own prompts copied from the built ones)."""
    cached = Settings().pbx_root
    sounds = Settings().data_dir / "sounds"
    nodes = []
    for plan in PLAN:
        root = node_root(cached, plan.name)
        env = node_env(
            plan,
            root,
            agi_secret=os.environ["CENTRALA_AGI_SECRET"],
            phones=os.environ["CENTRALA_PBX_EXTRA_CONFIG_DIR"],
        )
        data = root / "data"
        if sounds.is_dir() and not (data / "sounds").exists():
            shutil.copytree(sounds, data / "sounds")
        env["CENTRALA_DATA_DIR"] = str(data)
        nodes.append(Node(plan, root, env))
    try:
        for node in nodes:
            node.up()
        yield nodes
    finally:
        for node in nodes:
            with contextlib.suppress(BaseException):
                node.down()


@pytest.fixture(scope="session")
async def cluster(
    cluster_nodes: list[Node], tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Cluster]:
    """The nodes, the balancer, and one `serve` owning each node, on one PostgreSQL."""
    tmp = tmp_path_factory.mktemp("cluster")
    db = await make_database("postgresql", tmp, suffix="_cluster")
    balancer, balancer_log = start_balancer(tmp)
    cluster = Cluster(cluster_nodes, db, balancer, balancer_log, tmp)
    try:
        await serve_each_node(cluster)

        def balancer_up() -> bool:
            assert balancer.poll() is None, balancer_log.read_text()[-3000:]
            return sip_answers(BALANCER)

        await wait_until(balancer_up, timeout=30, message="Kamailio answering OPTIONS")
        yield cluster
    finally:
        for node in cluster_nodes:
            if node.serve is not None and node.serve.proc.poll() is None:
                node.serve.stop()
        stop_group(balancer)
        await db.engine.dispose()
