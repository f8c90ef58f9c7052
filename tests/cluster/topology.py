"""The several-nodes deployment as asterisk-docker/compose.cluster.yaml gives it, read from
that file: the nodes' settings and the balancer's address. tests/cluster runs it locally;
tests/unit/test_cluster_compose.py checks it holds together; bench/nodes_load.py loads it."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import uuid
from dataclasses import dataclass
from pathlib import Path

import yaml

from centrala.settings import CDR_FILE_IN_PBX, RECORDINGS_IN_PBX, REPO_ROOT
from tests.support import copy_pbx_root

DOCKER = REPO_ROOT / "asterisk-docker"
COMPOSE = DOCKER / "compose.cluster.yaml"
KAMAILIO_CFG = DOCKER / "kamailio" / "kamailio.cfg"
DISPATCHER_LIST = DOCKER / "kamailio" / "dispatcher.list"
CALLER = "127.0.0.13"
# SIPp's caller: its 'uac' scenario routing the ACK and BYE as a real UA does (Record-Route).
CALLER_SCENARIO = Path(__file__).parent / "sipp" / "caller.xml"
INFO_NUMBER = "0800100200"
# What the tests set otherwise than the deployment (besides where things live).
LOCAL_ONLY = {"CENTRALA_NODE_DEAD_SECONDS": "3"}


@dataclass(frozen=True)
class NodePlan:
    """One node as the deployment gives it: its settings (an x-pbxN block), and from them
    its name and SIP address."""

    settings: dict[str, str]

    @property
    def name(self) -> str:
        return self.settings["CENTRALA_NODE"]

    @property
    def sip(self) -> str:
        return self.settings["CENTRALA_SIP_BIND"].rsplit(":", 1)[0]


def sites() -> dict[str, dict[str, dict[str, str]]]:
    """Each node's instance's CENTRALA_SITE in the deployment: the other nodes it owns with its
    own, with their ARI and CDR file (as the instance's container sees it)."""
    services = yaml.safe_load(COMPOSE.read_text())["services"]
    found = {}
    for service in services.values():
        env = service.get("environment") or {}
        if "CENTRALA_SITE" in env and "CENTRALA_INSTANCE_ID" in env:
            found[str(env["CENTRALA_NODE"])] = json.loads(env["CENTRALA_SITE"])
    return found


def local_site(node: str, roots: dict[str, Path]) -> str:
    """``node``'s instance's CENTRALA_SITE as the deployment gives it, each other node's CDR
    file and recordings where the local topology has them (its chroot: ``roots``)."""
    site = sites()[node]
    for other, settings in site.items():
        settings["cdr_file"] = str(roots[other] / "rootfs" / CDR_FILE_IN_PBX)
        settings["recording_dir"] = str(roots[other] / "rootfs" / RECORDINGS_IN_PBX.lstrip("/"))
    return json.dumps(site)


def deployment() -> tuple[list[NodePlan], str]:
    """The nodes of compose.cluster.yaml, and the balancer's SIP address (its -l)."""
    compose = yaml.safe_load(COMPOSE.read_text())
    blocks = sorted(k for k in compose if k.startswith("x-pbx"))
    nodes = [NodePlan({k: str(v) for k, v in compose[k].items()}) for k in blocks]
    command = compose["services"]["balancer"]["command"]
    listen = command[command.index("-l") + 1]  # udp:ADDRESS:PORT
    return nodes, listen.split(":")[1]


PLAN, BALANCER = deployment()


def node_env(plan: NodePlan, root: Path, *, agi_secret: str, phones: str) -> dict[str, str]:
    """`centrala` for the node: the deployment's settings, the session's FastAGI secret and
    test phones (``phones``: CENTRALA_PBX_EXTRA_CONFIG_DIR), the node's own chroot, and
    LOCAL_ONLY."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("CENTRALA_")}
    env.update(plan.settings)
    env.update(
        CENTRALA_PBX_ROOT=str(root),
        CENTRALA_INSTANCE_ID=f"centrala-{plan.name}",
        CENTRALA_AGI_SECRET=agi_secret,
        CENTRALA_PBX_EXTRA_CONFIG_DIR=phones,
        **LOCAL_ONLY,
    )
    return env


def caller_scenario(hold_ms: int, workdir: Path) -> Path:
    """The SIPp caller's scenario, hanging up ``hold_ms`` after the answer (written into
    ``workdir``: SIPp takes a recv's timeout only as written in the scenario)."""
    path = workdir / f"caller-{hold_ms}.xml"
    path.write_text(
        CALLER_SCENARIO.read_text().replace('timeout="HOLD_MS"', f'timeout="{hold_ms}"')
    )
    return path


def stop_group(proc: subprocess.Popen[bytes], timeout: float = 15) -> None:
    """SIGTERM to a process started in its own session and every child of it (Kamailio's
    workers); SIGKILL to them all if they are not gone in ``timeout``."""
    if proc.poll() is not None:
        return
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


def node_root(cached: Path, name: str) -> Path:
    """A node's chroot: a copy of the built one, made once (as tests/sip's far side)."""
    return copy_pbx_root(cached, Path(f"{cached}-{name}"))


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
