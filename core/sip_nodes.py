"""Several Asterisk nodes in SIP terms: each node's trunk to every other one and the dialplan
that rings an agent's phone on whichever node it is registered (the files ``centrala pbx
render`` writes from ``CENTRALA_NODES``), and the dial string that rings it from here. Pure,
as ``core.sip`` (whose names and address checks it uses); may import only from ``core``.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from core.sip import ENDPOINT_NAME, NODE_TRUNK_PREFIX, check_hostport

AGENT_PHONE_CONTEXT = "agent-phone"
# A desk phone on file: PJSIP/ and a phone's name (core.sip.ENDPOINT_NAME), nothing after.
_PHONE_ON_FILE = re.compile(
    rf"^PJSIP/({ENDPOINT_NAME.pattern.removeprefix('^').removesuffix('$')})$"
)


def check_nodes(nodes: dict[str, str], node: str | None) -> list[str]:
    """What is wrong with the cluster's list of nodes (name -> SIP host:port) for ``node``."""
    problems = []
    for name, address in nodes.items():
        if not ENDPOINT_NAME.match(name):
            problems.append(f"CENTRALA_NODES: {name!r} is not a node name")
        try:
            check_hostport(address)
        except ValueError as exc:
            problems.append(f"CENTRALA_NODES[{name}]: {exc}")
    if nodes and node not in nodes:
        problems.append(f"CENTRALA_NODES lists the cluster's nodes: this node ({node}) is not one")
    return problems


def check_site(site: Mapping[str, object], nodes: Mapping[str, str], node: str | None) -> list[str]:
    """What is wrong with the other nodes an instance owns with its own (``CENTRALA_SITE``):
    they must be nodes of the cluster (their phones' trunks), and not this one."""
    if not site:
        return []
    if node is None:
        return ["CENTRALA_SITE names the nodes owned with this one: set CENTRALA_NODE too"]
    problems = [
        f"CENTRALA_SITE: {name!r} is not one of CENTRALA_NODES"
        for name in site
        if name not in nodes
    ]
    if node in site:
        problems.append(f"CENTRALA_SITE lists the other nodes: this node ({node}) is not one")
    return problems


def agent_ring(endpoint: str, *, anywhere: bool) -> str:
    """The dial string that rings an agent's phone on file (``endpoint``). On several nodes
    (``anywhere``) a desk phone (PJSIP/NAME) may be registered on any node: the node's
    [agent-phone] context rings it here or on the node where it is (nodes.conf). ``/n``: the
    Local channel stays in our bridge (optimised away, the agent's leg would seem to hang up)."""
    found = _PHONE_ON_FILE.match(endpoint) if anywhere else None
    return f"Local/{found[1]}@{AGENT_PHONE_CONTEXT}/n" if found else endpoint


def render_node_trunks(nodes: dict[str, str], node: str | None) -> str:
    """pjsip_nodes.conf: a trunk to each other node (known by its address; calls from it
    enter [from-nodes])."""
    out = []
    for name, address in sorted(nodes.items()):
        if name == node:
            continue
        trunk = NODE_TRUNK_PREFIX + name
        host = check_hostport(address)[0]
        out.append(
            f"[{trunk}](node-endpoint)\naors = {trunk}\n\n"
            f"[{trunk}](trunk-aor)\ncontact = sip:{address}\n\n"
            f"[{trunk}](trunk-identify)\nendpoint = {trunk}\nmatch = {host}\n"
        )
    return "\n".join(out) if out else "; one node: no other node to reach (CENTRALA_NODES)\n"


def render_node_dialplan(nodes: dict[str, str], node: str | None) -> str:
    """nodes.conf: [agent-phone] rings an agent's phone registered here, or else asks every
    other node at once (a node without it refuses, the node with it rings it); [from-nodes]
    rings only a phone registered here, never onward, so no call goes round the nodes."""
    others = [NODE_TRUNK_PREFIX + name for name in sorted(nodes) if name != node]
    away = "&".join(f"PJSIP/${{EXTEN}}@{trunk}" for trunk in others)
    # The name is checked again here: a Dial() string must not be built from anything else.
    valid = '$[${REGEX("^[A-Za-z0-9][A-Za-z0-9_.-]*$" ${EXTEN})}]'
    onward = (
        f" same => n(away),Dial({away})\n same => n,Hangup()\n"
        if others
        else " same => n(away),Hangup(1)\n"
    )
    here = (
        f" same => n,GotoIf({valid}?:refuse)\n"
        " same => n,Set(HERE=${PJSIP_DIAL_CONTACTS(${EXTEN})})\n"
        ' same => n,GotoIf($["${HERE}" = ""]?away)\n'
        " same => n,Dial(${HERE})\n"
        " same => n,Hangup()\n"
    )
    return (
        f"[{AGENT_PHONE_CONTEXT}]\n"
        "exten => _[A-Za-z0-9]!,1,NoOp(Agent's phone ${EXTEN})\n"
        + here
        + onward
        + " same => n(refuse),Hangup(1)\n\n"
        "[from-nodes]\n"
        "exten => _[A-Za-z0-9]!,1,NoOp(Another node rings the agent's phone ${EXTEN})\n"
        + here
        + " same => n(away),Hangup(1)\n same => n(refuse),Hangup(1)\n"
    )
