"""The several-nodes deployment (asterisk-docker/compose.cluster.yaml over compose.yaml) holds
together, and the local topology of tests/cluster runs its very configuration: the same node
settings, Kamailio configuration and node list, differing only in where things live and in
LOCAL_ONLY."""

from __future__ import annotations

import itertools
import json
import re
import subprocess
from pathlib import Path

import yaml

from centrala.settings import Settings
from tests.cluster.topology import (
    BALANCER,
    COMPOSE,
    DISPATCHER_LIST,
    KAMAILIO_CFG,
    LOCAL_ONLY,
    PLAN,
    node_env,
    sites,
)

DOCKER = COMPOSE.parent


def compose() -> dict:  # type: ignore[type-arg]
    return dict(yaml.safe_load(COMPOSE.read_text()))


def test_each_node_has_its_own_name_addresses_and_ports() -> None:
    assert [p.name for p in PLAN] == ["pbx1", "pbx2"]
    for key in ("CENTRALA_NODE", "CENTRALA_SIP_BIND", "CENTRALA_ARI_URL", "CENTRALA_AMI_PORT",
                "CENTRALA_AGI_PORT"):  # fmt: skip
        values = [p.settings[key] for p in PLAN]
        assert len(set(values)) == len(values), (key, values)
    ranges = sorted((int(p.settings["CENTRALA_RTP_START"]), int(p.settings["CENTRALA_RTP_END"]))
                    for p in PLAN)  # fmt: skip
    assert all(a[1] < b[0] for a, b in itertools.pairwise(ranges)), ranges
    shared = {k: v for k, v in compose()["x-cluster"].items()}
    for plan in PLAN:
        assert shared.items() <= plan.settings.items()  # leases and the balancer's trunk


def test_the_balancer_sends_to_exactly_the_nodes_and_each_takes_it_as_its_trunk() -> None:
    listed = [
        line.split()
        for line in DISPATCHER_LIST.read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert [(set_id, uri, attrs) for set_id, uri, _flags, _priority, attrs in listed] == [
        ("1", f"sip:{p.settings['CENTRALA_SIP_BIND']}", f"node={p.name}") for p in PLAN
    ]
    for plan in PLAN:
        (trunk,) = json.loads(plan.settings["CENTRALA_TRUNKS"])
        assert trunk["addresses"] == [BALANCER] and trunk["server"] == f"{BALANCER}:5060"
        assert trunk["numbers"] == {"0800100200": "infoline"}


def test_every_node_knows_every_node_as_the_balancer_does() -> None:
    """An agent's phone on any node is reached through CENTRALA_NODES: the very nodes of the
    dispatcher's list, at the very addresses each node binds."""
    for plan in PLAN:
        nodes = json.loads(plan.settings["CENTRALA_NODES"])
        assert nodes == {p.name: p.settings["CENTRALA_SIP_BIND"] for p in PLAN}


def test_each_nodes_renderer_and_instance_run_on_its_settings() -> None:
    services = compose()["services"]
    for plan, renderer, instance in zip(
        PLAN, ("pbx-config", "pbx2-config"), ("centrala", "centrala2"), strict=True
    ):
        for service in (renderer, instance):
            env = {k: str(v) for k, v in services[service]["environment"].items()}
            assert plan.settings.items() <= env.items(), service
    instances = [
        services[s]["environment"]["CENTRALA_INSTANCE_ID"] for s in ("centrala", "centrala2")
    ]
    assert len(set(instances)) == 2


def test_the_balancer_runs_the_repositorys_kamailio_configuration() -> None:
    balancer = compose()["services"]["balancer"]
    assert "./kamailio/kamailio.cfg:/etc/kamailio/centrala.cfg:ro" in balancer["volumes"]
    assert "./kamailio/dispatcher.list:/etc/kamailio/dispatcher.list:ro" in balancer["volumes"]
    assert balancer["command"][:6] == [
        "kamailio",
        "-DD",
        "-E",
        "-f",
        "/etc/kamailio/centrala.cfg",
        "-l",
    ]
    assert (DOCKER / "kamailio" / "kamailio.cfg") == KAMAILIO_CFG
    assert re.search(
        r'#!define DISPATCHER_LIST "/etc/kamailio/dispatcher.list"', KAMAILIO_CFG.read_text()
    )
    checked = subprocess.run(
        ["kamailio", "-c", "-f", str(KAMAILIO_CFG), "-A", f'DISPATCHER_LIST="{DISPATCHER_LIST}"'],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert checked.returncode == 0, checked.stderr[-2000:]


def test_the_local_topology_runs_the_deployments_settings(tmp_path: Path) -> None:
    assert set(LOCAL_ONLY) == {"CENTRALA_NODE_DEAD_SECONDS"}
    for plan in PLAN:
        env = node_env(plan, tmp_path / plan.name, agi_secret="s" * 32, phones=str(tmp_path))
        differing = {k for k, v in plan.settings.items() if env.get(k) != v}
        assert differing == set(LOCAL_ONLY), differing


def test_each_instance_owns_the_other_nodes_with_its_own_reading_their_cdr() -> None:
    """One ACD across the nodes: each node's instance lists every other node in CENTRALA_SITE,
    at that node's own ARI, and its CDR file in a volume mounted from that node's Asterisk."""
    services = compose()["services"]
    base = yaml.safe_load((DOCKER / "compose.yaml").read_text())["services"]
    cdr_volume = {"pbx1": "asterisk-cdr", "pbx2": "asterisk2-cdr"}  # each node's Asterisk's
    spool_volume = {"pbx1": "asterisk-spool", "pbx2": "asterisk2-spool"}
    for node, asterisk in (("pbx1", "asterisk"), ("pbx2", "asterisk2")):
        mounts = (base.get(asterisk) or services[asterisk])["volumes"]
        assert f"{cdr_volume[node]}:/var/log/asterisk/cdr-custom" in mounts, mounts
        assert f"{spool_volume[node]}:/var/spool/asterisk" in mounts, mounts
    site_of = sites()
    assert set(site_of) == {p.name for p in PLAN}
    for plan in PLAN:
        service = "centrala" if plan.name == "pbx1" else "centrala2"
        volumes = [*services[service]["volumes"], *(base.get(service) or {}).get("volumes", [])]
        site = site_of[plan.name]
        assert set(site) == {p.name for p in PLAN} - {plan.name}
        for other in PLAN:
            if other is plan:
                continue
            assert site[other.name]["ari_url"] == other.settings["CENTRALA_ARI_URL"]
            folder = str(Path(site[other.name]["cdr_file"]).parent)
            assert f"{cdr_volume[other.name]}:{folder}:ro" in volumes, (service, volumes)
            # Its callers recorded: its AMI, and its spool (where its recordings are written).
            assert str(site[other.name]["ami_port"]) == other.settings["CENTRALA_AMI_PORT"]
            spool = Path(site[other.name]["recording_dir"]).parents[1]  # …/monitor/centrala
            assert f"{spool_volume[other.name]}:{spool}" in volumes, (service, volumes)
        env = services[service]["environment"]
        settings = Settings(
            node=env["CENTRALA_NODE"],
            nodes=json.loads(env["CENTRALA_NODES"]),
            site=json.loads(env["CENTRALA_SITE"]),
        )
        assert set(settings.site) == set(site)
