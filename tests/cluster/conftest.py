"""Several nodes on one machine: two Asterisk nodes (copies of the chroot `centrala pbx up`
builds, each with its own SIP address, ARI, AMI and RTP ports, and its own name), Kamailio's
dispatcher in front of them with asterisk-docker/kamailio/kamailio.cfg (the configuration the
Docker deployment uses), one `centrala serve` owning each node, all on one PostgreSQL
database. Callers are SIPp user agents on loopback calling the info number at the balancer.

    caller (SIPp, 127.0.0.13) ──SIP──▶ Kamailio 127.0.0.10 ──▶ node pbx1 127.0.0.11 ◀── serve
                                                         └──▶ node pbx2 127.0.0.12 ◀── serve
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from centrala.settings import REPO_ROOT, Settings
from tests.conftest import Database, make_database
from tests.integration.conftest import PBX, Server, _centrala, pbx, start_serve
from tests.support import free_port, wait_until

__all__ = ["pbx"]

BALANCER = "127.0.0.10"
CALLER = "127.0.0.13"
KAMAILIO_CFG = REPO_ROOT / "asterisk-docker" / "kamailio" / "kamailio.cfg"
INFO_NUMBER = "0800100200"


@dataclass(frozen=True)
class NodePlan:
    """Where one node listens: its name, SIP address, ARI and AMI ports, RTP range."""

    name: str
    sip: str
    ari_port: int
    ami_port: int
    rtp: tuple[int, int]


PLAN = (
    NodePlan("pbx1", "127.0.0.11", 28088, 25038, (21000, 22998)),
    NodePlan("pbx2", "127.0.0.12", 38088, 35038, (23000, 24998)),
)

# The balancer as each node's trunk: calls to the info number arrive from it (README:
# "Connecting a carrier and phones", with the balancer in the carrier's place).
BALANCER_TRUNK = f"""\
[[trunks]]
name = "balancer"
server = "{BALANCER}:5060"
addresses = ["{BALANCER}"]
codecs = ["alaw", "ulaw"]
numbers = {{ "{INFO_NUMBER}" = "infoline" }}
"""


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


def _node_root(cached: Path, name: str) -> Path:
    """A node's chroot: a copy of the built one, made once (as tests/sip's far side)."""
    root = Path(f"{cached}-{name}")
    if (root / "rootfs" / ".centrala-rootfs-ready").is_file():
        return root
    partial = root / "rootfs.partial"
    if partial.exists():
        shutil.rmtree(partial)
    root.mkdir(parents=True, exist_ok=True)
    subprocess.run(["cp", "-a", str(cached / "rootfs"), str(partial)], check=True)
    partial.rename(root / "rootfs")
    return root


def node_env(plan: NodePlan, root: Path, config: Path, agi_port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CENTRALA_")}
    env.update(
        CENTRALA_PBX_ROOT=str(root),
        CENTRALA_CONFIG=str(config),
        CENTRALA_NODE=plan.name,
        CENTRALA_INSTANCE_ID=f"centrala-{plan.name}",
        CENTRALA_ARI_URL=f"http://127.0.0.1:{plan.ari_port}/ari",
        CENTRALA_AMI_PORT=str(plan.ami_port),
        CENTRALA_SIP_BIND=f"{plan.sip}:5060",
        CENTRALA_RTP_START=str(plan.rtp[0]),
        CENTRALA_RTP_END=str(plan.rtp[1]),
        CENTRALA_AGI_PORT=str(agi_port),
        CENTRALA_AGI_SECRET=os.environ["CENTRALA_AGI_SECRET"],
        CENTRALA_PBX_EXTRA_CONFIG_DIR=os.environ["CENTRALA_PBX_EXTRA_CONFIG_DIR"],
        # A dead node's calls are closed 3 s after its link was lost (30 s by default).
        CENTRALA_NODE_DEAD_SECONDS="3",
    )
    return env


def dispatcher_list(nodes: list[NodePlan]) -> str:
    """Set 1: every node's SIP address (the list compose's balancer reads has this shape)."""
    return "".join(f"1 sip:{n.sip}:5060 0 0 node={n.name}\n" for n in nodes)


def start_balancer(tmp: Path, nodes: list[NodePlan]) -> tuple[subprocess.Popen[bytes], Path]:
    listing = tmp / "dispatcher.list"
    listing.write_text(dispatcher_list(nodes))
    log = tmp / "kamailio.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [
                "kamailio", "-DD", "-E", "-f", str(KAMAILIO_CFG),
                "-l", f"udp:{BALANCER}:5060",
                "-A", f'DISPATCHER_LIST="{listing}"', "-A", "PROBE_SECONDS=1",
                "-P", str(tmp / "kamailio.pid"), "-Y", str(tmp),
            ],
            stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    return proc, log


@pytest.fixture(scope="session")
def cluster_nodes(pbx: PBX, tmp_path_factory: pytest.TempPathFactory) -> Iterator[list[Node]]:
    """The two Asterisk nodes, up (each with its own prompts copied from the built ones)."""
    cached = Settings().pbx_root
    tmp = tmp_path_factory.mktemp("cluster-nodes")
    config = tmp / "centrala.toml"
    config.write_text(BALANCER_TRUNK)
    sounds = Settings().data_dir / "sounds"
    nodes = []
    for plan in PLAN:
        root = _node_root(cached, plan.name)
        env = node_env(plan, root, config, free_port())
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
    balancer, balancer_log = start_balancer(tmp, [n.plan for n in cluster_nodes])
    cluster = Cluster(cluster_nodes, db, balancer, balancer_log, tmp)
    try:
        for node in cluster_nodes:
            own = tmp / node.plan.name
            own.mkdir()
            # The node's settings but its data directory (start_serve's own: tmp).
            overrides: dict[str, str | None] = {
                k: v
                for k, v in node.env.items()
                if k.startswith("CENTRALA_") and k != "CENTRALA_DATA_DIR"
            }
            node.serve = start_serve(db, own, **overrides)
        for node in cluster_nodes:
            assert node.serve is not None
            await node.serve.wait_ready(timeout=60)

        def balancer_up() -> bool:
            assert balancer.poll() is None, balancer_log.read_text()[-3000:]
            return sip_answers(BALANCER)

        await wait_until(balancer_up, timeout=30, message="Kamailio answering OPTIONS")
        yield cluster
    finally:
        for node in cluster_nodes:
            if node.serve is not None and node.serve.proc.poll() is None:
                node.serve.stop()
        balancer.terminate()
        try:
            balancer.wait(15)
        except subprocess.TimeoutExpired:
            balancer.kill()
        await db.engine.dispose()


def sip_answers(address: str, port: int = 5060) -> bool:
    """Does a SIP server answer an OPTIONS at ``address`` (any response)?"""
    branch = uuid.uuid4().hex
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((CALLER, 0))
        s.settimeout(1.0)
        s.sendto(_options(address, port, s.getsockname()[1], branch), (address, port))
        try:
            return s.recv(4096).startswith(b"SIP/2.0 ")
        except OSError:  # no answer in a second (or refused)
            return False


def _options(address: str, port: int, ours: int, branch: str) -> bytes:
    request = (
        f"OPTIONS sip:{address}:{port} SIP/2.0\r\n"
        f"Via: SIP/2.0/UDP {CALLER}:{ours};branch=z9hG4bK{branch}\r\n"
        "Max-Forwards: 70\r\n"
        f"From: <sip:probe@{CALLER}>;tag={branch[:8]}\r\n"
        f"To: <sip:{address}:{port}>\r\n"
        f"Call-ID: {branch}@{CALLER}\r\n"
        "CSeq: 1 OPTIONS\r\nContent-Length: 0\r\n\r\n"
    )
    return request.encode()
