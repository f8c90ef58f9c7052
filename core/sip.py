"""Real phone lines as Centrala's settings describe them: the carrier's SIP trunks, the numbers
(DIDs) that arrive on them and the entry point each goes to, SIP's addresses and RTP ports, and
the agents' phones. Pure: checks return every problem, renders return Asterisk's text (the
files ``centrala pbx up`` and the Docker deployment write under /etc/asterisk/centrala/) or the
sorcery objects pushed through ARI.

Trunk objects are named after the trunk (endpoint, aor and identify ``NAME``, auth
``NAME-auth``, registration ``NAME-reg``); an agent's phone is endpoint, aor and auth named
after the agent, so a trunk and an agent may never share a name.
"""

from __future__ import annotations

import hashlib
import ipaddress
import re
from dataclasses import dataclass
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

# Entry points a number can go to, and the dialplan context each one is (extensions.conf).
# Besides these, ``queue:NAME``: the info line's app puts the caller straight into queue NAME
# (no greeting, no menu).
ENTRY_POINTS: dict[str, str] = {"infoline": "centrala-infoline"}
QUEUE_ENTRY = re.compile(r"^queue:([A-Za-z0-9_.@-]{1,64})$")


def entry_context(entry: str) -> str | None:
    """The dialplan context a number's entry point enters (None: no such entry point)."""
    if entry in ENTRY_POINTS:
        return ENTRY_POINTS[entry]
    return ENTRY_POINTS["infoline"] if QUEUE_ENTRY.match(entry) else None


# Codecs whose modules modules.conf loads (codec_* and the pass-through ones).
CODECS = ("alaw", "ulaw", "g722", "gsm")
TRUNK_NAME = r"^[a-z][a-z0-9_-]{0,31}$"
# Asterisk object names and SIP user parts: nothing that means something in a dial string
# (``/``, ``@``, ``,``), in a config file (``;``, ``[``, ``]``, ``=``) or in a URI.
ENDPOINT_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
# Several nodes: each other node is a trunk named this + its name (core/sip_nodes.py), so no
# trunk or phone may take such a name.
NODE_TRUNK_PREFIX = "node-"
DID = r"^\+?[0-9]{2,20}$"
# Values written into pjsip.conf: a ';' starts a comment there, brackets open sections.
_CONFIG_UNSAFE = re.compile(r"[;\[\]\r\n\0\"]")
HOST = re.compile(r"^[A-Za-z0-9.-]{1,253}$")
# Where Asterisk reads what Centrala renders, and the TLS files it copies there (the operator's
# own paths may be anywhere on the host, outside Asterisk's chroot or container).
GENERATED_DIR = "/etc/asterisk/centrala"
TLS_CERT = "tls-cert.pem"
TLS_KEY = "tls-key.pem"
TLS_CA = "tls-ca.pem"

Number = Annotated[str, Field(pattern=DID)]
# SRTP with its keys in the SDP (SDES): only where the SDP travels over TLS.
MediaEncryption = Literal["none", "sdes"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trunk(_Strict):
    """One carrier trunk. Calls from the carrier are recognised by their source address
    (``addresses``, IP authentication) or arrive on our registration with it (``registration``);
    calls to it go to ``server``, authenticated with ``username``/``password`` when given."""

    name: Annotated[str, Field(pattern=TRUNK_NAME)]
    server: str | None = Field(default=None, description="host or host:port of the carrier")
    addresses: list[str] = Field(
        default_factory=list, description="the carrier's addresses or networks (IP auth)"
    )
    username: str | None = None
    password: SecretStr | None = None
    registration: bool = False
    codecs: list[str] = Field(default_factory=lambda: ["alaw", "ulaw"])
    numbers: dict[Number, str] = Field(
        default_factory=dict, description="DID -> entry point, e.g. 0800100200 -> infoline"
    )
    caller_id: Annotated[str, Field(pattern=DID)] | None = Field(
        default=None, description="the number presented on calls out through this trunk"
    )
    calls_per_second: float | None = Field(
        default=None, gt=0, le=1000, description="the carrier's limit on new calls out"
    )
    transport: Literal["udp", "tls"] = Field(
        default="udp", description="tls: signalling encrypted (needs CENTRALA_SIP_TLS_BIND)"
    )
    media_encryption: MediaEncryption = Field(
        default="none", description="sdes: SRTP, keys in the SDP (needs transport = tls)"
    )

    @field_validator("addresses")
    @classmethod
    def _networks(cls, value: list[str]) -> list[str]:
        for address in value:
            try:
                ipaddress.ip_network(address, strict=False)
            except ValueError:
                raise ValueError(f"{address!r} is not an IP address or network") from None
        return value

    @field_validator("codecs")
    @classmethod
    def _codecs(cls, value: list[str]) -> list[str]:
        return _known_codecs(value)

    @field_validator("server")
    @classmethod
    def _server(cls, value: str | None) -> str | None:
        if value is not None:
            check_hostport(value)
        return value

    @field_validator("username")
    @classmethod
    def _username(cls, value: str | None) -> str | None:
        if value is not None and not ENDPOINT_NAME.match(value):
            raise ValueError("username: 1-64 of A-Z a-z 0-9 _ . - (starting with a letter/digit)")
        return value

    @field_validator("password")
    @classmethod
    def _password(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            secret = value.get_secret_value()
            if not secret or _CONFIG_UNSAFE.search(secret) or secret != secret.strip():
                raise ValueError(
                    'password: non-empty, no ; [ ] " or line breaks, no surrounding spaces'
                )
        return value

    @field_validator("numbers")
    @classmethod
    def _entry_points(cls, value: dict[str, str]) -> dict[str, str]:
        for number, entry in value.items():
            if entry_context(entry) is None:
                known = ", ".join([*sorted(ENTRY_POINTS), "queue:NAME"])
                raise ValueError(f"number {number} goes to {entry!r}: entry points are {known}")
        return value


def _known_codecs(value: list[str]) -> list[str]:
    if not value:
        raise ValueError("at least one codec")
    for codec in value:
        if codec not in CODECS:
            raise ValueError(f"codec {codec!r}: one of {', '.join(CODECS)}")
    return value


def check_hostport(value: str) -> tuple[str, int | None]:
    """``host`` or ``host:port`` (an IPv6 address in brackets); ValueError saying why not."""
    host, port = value, None
    if value.startswith("["):
        host, _, rest = value[1:].partition("]")
        if rest:
            port = _port(rest.removeprefix(":"), value)
        try:
            ipaddress.IPv6Address(host)
        except ValueError:
            raise ValueError(f"{value!r}: not an IPv6 address in brackets") from None
        return f"[{host}]", port
    if value.count(":") == 1:
        host, raw = value.split(":")
        port = _port(raw, value)
    if not HOST.match(host):
        raise ValueError(f"{value!r}: expected host or host:port")
    return host, port


def _port(raw: str, value: str) -> int:
    if not raw.isdigit() or not 1 <= int(raw) <= 65535:
        raise ValueError(f"{value!r}: the port must be 1-65535")
    return int(raw)


@dataclass(frozen=True)
class SipNetwork:
    """Where Asterisk's SIP listens and how it is seen from outside (NAT)."""

    bind: str = "127.0.0.1:5060"
    external_address: str | None = None
    local_nets: tuple[str, ...] = ()
    rtp_start: int = 10000
    rtp_end: int = 20000
    # SIP over TLS: where it listens, and whether the files it needs were given (their
    # contents are the wiring's business; here only whether they go together).
    tls_bind: str | None = None
    tls_cert: bool = False
    tls_key: bool = False
    tls_ca: bool = False  # the CA that signed the carrier's certificate: verify it


def check_sip(
    network: SipNetwork,
    trunks: list[Trunk],
    *,
    outbound_trunk: str | None,
    infoline_number: str,
    phone_media_encryption: MediaEncryption = "none",
) -> list[str]:
    """Every problem of the SIP settings taken together, one line each (empty: fine)."""
    problems = []
    binds = [("CENTRALA_SIP_BIND", network.bind, 5060)]
    if network.tls_bind is not None:
        binds.append(("CENTRALA_SIP_TLS_BIND", network.tls_bind, 5061))
    for setting, bind, usual in binds:
        try:
            host, port = check_hostport(bind)
            ipaddress.ip_address(host.strip("[]"))
            if port is None:
                raise ValueError(f"{bind!r}: the port is needed")
        except ValueError as exc:
            problems.append(f"{setting}: {exc} (an IP address and port, e.g. 0.0.0.0:{usual})")
    if network.tls_bind is not None and not (network.tls_cert and network.tls_key):
        problems.append(
            "CENTRALA_SIP_TLS_BIND needs CENTRALA_SIP_TLS_CERT_FILE and CENTRALA_SIP_TLS_KEY_FILE "
            "(the certificate the carrier and phones see, and its private key)"
        )
    if network.tls_bind is None and (network.tls_cert or network.tls_key or network.tls_ca):
        problems.append("CENTRALA_SIP_TLS_CERT_FILE, _KEY_FILE, _CA_FILE: no CENTRALA_SIP_TLS_BIND")
    if network.external_address is not None:
        try:
            check_hostport(network.external_address)
        except ValueError as exc:
            problems.append(f"CENTRALA_SIP_EXTERNAL_ADDRESS: {exc}")
        if not network.local_nets:
            problems.append(
                "CENTRALA_SIP_EXTERNAL_ADDRESS needs CENTRALA_SIP_LOCAL_NETS (the networks "
                "reached without NAT), or Asterisk puts the external address in every message"
            )
    for net in network.local_nets:
        try:
            ipaddress.ip_network(net, strict=False)
        except ValueError:
            problems.append(f"CENTRALA_SIP_LOCAL_NETS: {net!r} is not a network")
    if not 1024 <= network.rtp_start < network.rtp_end <= 65535:
        problems.append("CENTRALA_RTP_START < CENTRALA_RTP_END, both within 1024-65535")
    if phone_media_encryption == "sdes" and network.tls_bind is None:
        problems.append(
            "CENTRALA_PHONE_MEDIA_ENCRYPTION = sdes needs CENTRALA_SIP_TLS_BIND (phones "
            "register over TLS, or the SRTP keys travel in clear)"
        )
    names = [t.name for t in trunks]
    for name in sorted({n for n in names if names.count(n) > 1}):
        problems.append(f"trunk {name!r} is defined twice")
    entries: dict[str, tuple[str, str]] = {
        infoline_number: ("infoline", "CENTRALA_INFOLINE_NUMBER")
    }
    for trunk in trunks:
        where = f"trunk {trunk.name!r}"
        if not trunk.addresses and not trunk.registration:
            problems.append(
                f"{where}: calls from it cannot be recognised: give its addresses (IP "
                "authentication) or registration = true"
            )
        if trunk.registration and not (trunk.server and trunk.username and trunk.password):
            problems.append(f"{where}: registration = true needs server, username and password")
        if (trunk.username is None) != (trunk.password is None):
            problems.append(f"{where}: username and password go together")
        if trunk.transport == "tls" and network.tls_bind is None:
            problems.append(f"{where}: transport = tls needs CENTRALA_SIP_TLS_BIND")
        if trunk.media_encryption == "sdes" and trunk.transport != "tls":
            # SDES sends the SRTP keys in the SDP: over plain UDP anyone on the path reads them.
            problems.append(f"{where}: media_encryption = sdes needs transport = tls")
        for number, entry in trunk.numbers.items():
            seen = entries.setdefault(number, (entry, where))
            if seen[0] != entry:
                problems.append(
                    f"{where}: number {number} goes to {entry}, {seen[1]} says {seen[0]}"
                )
    if outbound_trunk is not None:
        trunk_by_name = {t.name: t for t in trunks}
        chosen = trunk_by_name.get(outbound_trunk)
        if chosen is None:
            problems.append(f"CENTRALA_OUTBOUND_TRUNK: no trunk named {outbound_trunk!r}")
        elif chosen.server is None:
            problems.append(f"CENTRALA_OUTBOUND_TRUNK: trunk {outbound_trunk!r} has no server")
    return problems


def numbers(trunks: list[Trunk], infoline_number: str) -> dict[str, str]:
    """Every number that enters from a trunk, and its entry point (the info number always
    goes to the info line)."""
    found = {infoline_number: "infoline"}
    for trunk in trunks:
        for number, entry in trunk.numbers.items():
            found.setdefault(number, entry)
    return dict(sorted(found.items()))


# ---- what Asterisk reads --------------------------------------------------------------------


def render_transports(network: SipNetwork) -> str:
    """pjsip_transports.conf: UDP, and TLS when it has an address; NAT applies to both. Then
    the browser softphones' WebSocket transports (core/softphone.py): SIP over WebSocket
    arrives through Asterisk's HTTP server (ws on its address, wss when http.conf has TLS);
    their ``bind`` is not used."""
    udp = ["[transport-udp]", "type = transport", "protocol = udp", f"bind = {network.bind}"]
    blocks = [udp + _nat(network, tls=False)]
    if network.tls_bind is not None:
        tls = ["[transport-tls]", "type = transport", "protocol = tls"]
        tls += [f"bind = {network.tls_bind}", f"cert_file = {GENERATED_DIR}/{TLS_CERT}"]
        tls.append(f"priv_key_file = {GENERATED_DIR}/{TLS_KEY}")
        if network.tls_ca:
            tls += [f"ca_list_file = {GENERATED_DIR}/{TLS_CA}", "verify_server = yes"]
        else:
            tls.append("verify_server = no")
        # Carriers and phones present no certificate of their own (digest or IP auth).
        tls.append("verify_client = no")
        blocks.append(tls + _nat(network, tls=True))
    blocks.append(["[transport-ws]", "type = transport", "protocol = ws", "bind = 0.0.0.0"])
    blocks.append(["[transport-wss]", "type = transport", "protocol = wss", "bind = 0.0.0.0"])
    return "\n".join("\n".join(block) + "\n" for block in blocks)


def _nat(network: SipNetwork, *, tls: bool) -> list[str]:
    """Behind NAT: the public address in SIP headers and SDP, except towards local nets.
    An external port given with the address is the UDP one (TLS keeps its bind port)."""
    if network.external_address is None:
        return []
    host, port = check_hostport(network.external_address)
    lines = [f"external_signaling_address = {host}"]
    if port is not None and not tls:
        lines.append(f"external_signaling_port = {port}")
    lines.append(f"external_media_address = {host}")
    return lines + [f"local_net = {net}" for net in network.local_nets]


def render_rtp(network: SipNetwork) -> str:
    return f"rtpstart = {network.rtp_start}\nrtpend = {network.rtp_end}\n"


def render_trunks(trunks: list[Trunk]) -> str:
    """pjsip_trunks.conf: each trunk from the templates of the shipped pjsip.conf."""
    out: list[str] = []
    for t in trunks:
        auth = f"{t.name}-auth" if t.username is not None else None
        tls = t.transport == "tls"
        uri_params = ";transport=tls" if tls else ""
        endpoint = [f"[{t.name}](trunk-endpoint)", f"aors = {t.name}", "disallow = all"]
        endpoint.append(f"allow = {','.join(t.codecs)}")
        if tls:
            endpoint.append("transport = transport-tls")
        if t.media_encryption == "sdes":
            # SRTP or no call: never fall back to clear RTP (media_encryption_optimistic).
            endpoint += ["media_encryption = sdes", "media_encryption_optimistic = no"]
        if auth:
            endpoint.append(f"outbound_auth = {auth}")
        out.append("\n".join(endpoint))
        aor = [f"[{t.name}](trunk-aor)"]
        if t.server:
            aor.append(f"contact = sip:{t.server}{uri_params}")
        out.append("\n".join(aor))
        if auth and t.password is not None:
            out.append(
                f"[{auth}](trunk-auth)\nusername = {t.username}\n"
                f"password = {t.password.get_secret_value()}"
            )
        if t.addresses:
            out.append(
                f"[{t.name}](trunk-identify)\nendpoint = {t.name}\nmatch = {','.join(t.addresses)}"
            )
        if t.registration and t.server and t.username:
            host = check_hostport(t.server)[0]
            out.append(
                f"[{t.name}-reg]\ntype = registration\nserver_uri = sip:{t.server}{uri_params}\n"
                f"client_uri = sip:{t.username}@{host}{uri_params}\n"
                + ("transport = transport-tls\n" if tls else "")
                + f"contact_user = {t.username}\n"
                f"outbound_auth = {auth}\nretry_interval = 20\nforbidden_retry_interval = 300\n"
                f"max_retries = 10000\nexpiration = 300\nline = yes\nendpoint = {t.name}"
            )
    return "".join(block + "\n\n" for block in out)


def render_numbers(entries: dict[str, str]) -> str:
    """The numbers' lines of [from-trunk] (extensions.conf includes them there). A number
    for a queue sets CENTRALA_ENTRY, which centrala-infoline hands to the Stasis app."""
    lines = []
    for number, entry in entries.items():
        goto = f"Goto({entry_context(entry)},${{EXTEN}},1)"
        if QUEUE_ENTRY.match(entry):
            lines.append(f"exten => {number},1,Set(CENTRALA_ENTRY={entry})\n same => n,{goto}\n")
        else:
            lines.append(f"exten => {number},1,{goto}\n")
    return "".join(lines)


def outbound_dial(trunk: str) -> str:
    return f"PJSIP/{{number}}@{trunk}"


# ---- agents' phones -------------------------------------------------------------------------


@dataclass(frozen=True)
class SorceryObject:
    """One res_pjsip object as ARI's dynamic configuration takes it."""

    type: str
    id: str
    fields: tuple[tuple[str, str], ...]


def check_phone_name(name: str, trunks: list[Trunk]) -> str | None:
    """Why ``name`` cannot be an agent's phone endpoint (None: it can)."""
    if not ENDPOINT_NAME.match(name):
        return (
            f"{name!r} cannot be a SIP user name: 1-64 of A-Z a-z 0-9 _ . - "
            "(starting with a letter or digit)"
        )
    if name in {t.name for t in trunks}:
        return f"{name!r} is the name of a trunk"
    if name.startswith(NODE_TRUNK_PREFIX):
        return f"{name!r}: names starting with {NODE_TRUNK_PREFIX!r} are the other nodes' trunks"
    return None


def phone_digest(username: str, realm: str, password: str) -> str:
    """SIP digest's HA1, ``md5:<hex>`` as Asterisk's password_digest takes it: what the
    phone's password proves, without the password."""
    ha1 = hashlib.md5(f"{username}:{realm}:{password}".encode(), usedforsecurity=False)
    return f"md5:{ha1.hexdigest()}"


def digest_auth(endpoint: str, digest: str, realm: str) -> SorceryObject:
    """A phone's credentials as Asterisk keeps them: the user name is the endpoint's, the
    password only as its digest (HA1)."""
    return SorceryObject(
        "auth",
        endpoint,
        (
            ("auth_type", "digest"),
            ("username", endpoint),
            ("realm", realm),
            ("password_digest", digest),
        ),
    )


def phone_objects(
    endpoint: str,
    digest: str,
    realm: str,
    codecs: list[str],
    media_encryption: MediaEncryption = "none",
) -> list[SorceryObject]:
    """An agent's phone: auth and aor first (the endpoint names them), then the endpoint.
    One registered contact (a new registration replaces it); calls the phone places enter
    ``from-agents``. ``sdes``: its calls in SRTP only (the phone registers over TLS, where
    the keys in the SDP are safe)."""
    encryption: tuple[tuple[str, str], ...] = ()
    if media_encryption == "sdes":
        encryption = (("media_encryption", "sdes"), ("media_encryption_optimistic", "no"))
    return [
        digest_auth(endpoint, digest, realm),
        SorceryObject(
            "aor",
            endpoint,
            (
                ("max_contacts", "1"),
                ("remove_existing", "yes"),
                ("qualify_frequency", "30"),
                # A reset or a removal holds for a phone still registered within 10 minutes.
                ("default_expiration", "300"),
                ("maximum_expiration", "600"),
            ),
        ),
        SorceryObject(
            "endpoint",
            endpoint,
            (
                ("context", "from-agents"),
                ("disallow", "all"),
                ("allow", ",".join(_known_codecs(codecs))),
                ("auth", endpoint),
                ("aors", endpoint),
                ("direct_media", "no"),
                ("rtp_symmetric", "yes"),
                ("force_rport", "yes"),
                ("rewrite_contact", "yes"),
                ("dtmf_mode", "rfc4733"),
                ("allow_transfer", "yes"),
                ("callerid", f"<{endpoint}>"),
                *encryption,
            ),
        ),
    ]


def phone_dial(endpoint: str) -> str:
    return f"PJSIP/{endpoint}"
