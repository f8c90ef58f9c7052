"""Encrypted lines over real SIP on loopback (tests/sip/conftest.py): the carrier calls the free
number over TLS with SRTP (SDES) on a trunk configured as README's "Encrypted lines: TLS and
SRTP" shows, hears the info line, and both Asterisks report the call's signalling and media
secure; the same carrier's call in clear RTP is refused. The certificates are made by the test
(a CA, one certificate per side naming its address)."""

from __future__ import annotations

import contextlib
import json
import re
import shlex
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import select

from ari_app.ari import ARIClient, ARIError
from centrala.settings import REPO_ROOT
from models.flows import apply_flow
from models.tables import Call
from tests.conftest import make_database
from tests.integration import live
from tests.integration.conftest import PBX, Callers, Server, _centrala, _stop_and_check, start_serve
from tests.integration.test_infoline_paths import _flow, open_always
from tests.sip.conftest import CARRIER, PHONES, Far, TLSFiles, goertzel
from tests.sip.test_real_lines import rms, wait_row
from tests.support import wait_until

AGENT = "201"
CLIENT = "+38761222777"
CLEAR_CLIENT = "+38761222888"
TLS_BIND = "127.0.0.1:5061"


def readme_subsection() -> str:
    text = (REPO_ROOT / "README.md").read_text()
    section = text.split("### Encrypted lines: TLS and SRTP", 1)[1]
    return re.split(r"\n##+ ", section, maxsplit=1)[0]


def readme_toml(tls: TLSFiles) -> str:
    """README's encrypted trunk on this machine: the carrier on 127.0.0.2, TLS on loopback,
    the test's certificate files."""
    block = re.search(r"```toml\n(.*?)```", readme_subsection(), re.S)
    assert block is not None, "README: no toml block in 'Encrypted lines'"
    text = block.group(1).replace("198.51.100.7", CARRIER).replace("0.0.0.0:5061", TLS_BIND)
    for shown, ours in (
        ("/etc/centrala/tls/cert.pem", tls.centrala_cert),
        ("/etc/centrala/tls/key.pem", tls.centrala_key),
        ("/etc/centrala/tls/carrier-ca.pem", tls.ca),
    ):
        assert shown in text, shown
        text = text.replace(shown, str(ours))
    return text


def readme_commands() -> list[list[str]]:
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", readme_subsection(), re.S):
        for line in block.splitlines():
            line = line.split("  #", 1)[0].strip()
            if "centrala " in line:
                commands.append(shlex.split(line.split("centrala ", 1)[1]))
    return commands


@dataclass
class SecureLines:
    server: Server
    env: dict[str, str]
    transports: str  # what README's `pbx cli "pjsip show transports"` printed
    phone: dict[str, Any]

    def centrala(self, *args: str) -> str:
        return _centrala(*args, env=self.env)


@pytest.fixture(scope="module")
async def secure(
    pbx: PBX,
    far: Far,
    callers: Callers,
    tls_files: TLSFiles,
    tmp_path_factory: pytest.TempPathFactory,
) -> AsyncIterator[SecureLines]:
    """README's encrypted trunk into the Centrala PBX (`pbx up` with the config file), and a
    `serve` of its own answering the info line."""
    for other, running in list(live.servers.items()):  # one serve on the Stasis app at a time
        await _stop_and_check(other, running.value)
    tmp = tmp_path_factory.mktemp("secure")
    config = tmp / "centrala.toml"
    config.write_text(readme_toml(tls_files))
    db = await make_database("sqlite", tmp)
    await apply_flow(db.sessions, _flow(open_always))
    srv = start_serve(db, tmp, CENTRALA_CONFIG=str(config), CENTRALA_OUTBOUND_DIAL=None)
    commands = readme_commands()
    assert [c[:2] for c in commands] == [["pbx", "up"], ["pbx", "cli"], ["pbx", "cli"]]
    env = {**srv.env}
    (tmp / "agents.csv").write_text(
        "agent_id,name,role,endpoint,queues,skills\n"
        f"{AGENT},Sara Secure,agent,,new_clients;general,bs\n"
    )
    try:
        await srv.wait_ready()
        _centrala(*commands[0], env=env)
        transports = _centrala(*commands[1], env=env)
        _centrala("import", "agents", str(tmp / "agents.csv"), env=env)
        phone = json.loads(_centrala("agent", "phone", AGENT, env=env))
        await register_phone_over_tls(far, phone, callers)
        _centrala("agent", "login", AGENT, env=env)
        yield SecureLines(srv, env, transports, phone)
    finally:
        with contextlib.suppress(pytest.fail.Exception):  # not logged in: set-up failed early
            _centrala("agent", "logout", AGENT, env=env)
        live.stop_server(srv.proc)
        await db.engine.dispose()
        with contextlib.suppress(pytest.fail.Exception):  # no phone: set-up failed early
            _centrala(
                "agent", "phone", AGENT, "--remove", env={**env, "CENTRALA_DATABASE_URL": db.url}
            )
        (far.root / "rootfs/etc/asterisk/far_phones.conf").unlink(missing_ok=True)
        far.cli("module reload res_pjsip.so")
        pbx.up()  # the PBX as the other tests know it: no trunk


async def register_phone_over_tls(far: Far, phone: dict[str, Any], callers: Callers) -> None:
    """The agent's desk phone registers from the far side over TLS (127.0.0.3 to Centrala's
    TLS listener), with the printed credentials."""
    user = phone["username"]
    (far.root / "rootfs/etc/asterisk/far_phones.conf").write_text(
        f"[phone{user}-auth]\ntype = auth\nauth_type = digest\nusername = {user}\n"
        f"password = {phone['password']}\n\n"
        f"[phone{user}]\ntype = registration\ntransport = phones-tls\n"
        f"server_uri = sip:{TLS_BIND};transport=tls\nclient_uri = sip:{user}@127.0.0.1\n"
        f"contact_user = 7{user}\noutbound_auth = phone{user}-auth\n"
        "retry_interval = 1\nexpiration = 120\n"
    )
    far.cli("module reload res_pjsip.so")

    async def online() -> bool:
        try:
            endpoint = await callers.ari.request("GET", f"/endpoints/PJSIP/{user}")
        except ARIError:
            return False
        return bool(endpoint.get("state") == "online")

    await wait_until(online, timeout=30, interval=0.2, message=f"PJSIP/{user} registered")


async def channel_var(ari: ARIClient, channel_id: str, name: str) -> str:
    got = await ari.request("GET", f"/channels/{channel_id}/variable", params={"variable": name})
    return str(got.get("value"))


def test_the_tls_transport_listens_with_the_operators_certificate(secure: SecureLines) -> None:
    assert re.search(r"transport-tls\s+tls\s+\S+\s+\S+\s+127\.0\.0\.1:5061", secure.transports), (
        secure.transports
    )
    shown = secure.centrala("pbx", "cli", "pjsip show transport transport-tls")
    assert re.search(r"cert_file\s*:\s*/etc/asterisk/centrala/tls-cert.pem", shown), shown
    assert re.search(r"verify_server\s*:\s*(Yes|true)", shown, re.I), shown
    endpoint = secure.centrala("pbx", "cli", "pjsip show endpoint carrier")
    assert re.search(r"media_encryption\s*:\s*sdes", endpoint), endpoint
    assert re.search(r"media_encryption_optimistic\s*:\s*(false|no)", endpoint), endpoint


async def test_the_carrier_calls_over_tls_with_srtp_and_hears_the_info_line(
    secure: SecureLines, far: Far, callers: Callers
) -> None:
    contacts = secure.centrala("pbx", "cli", "pjsip show contacts")
    assert re.search(rf"{AGENT}/sip:7{AGENT}@{PHONES}:\d+;transport=(tls|TLS)", contacts), contacts
    caller = await far.call("0800100200", f'"Client" <{CLIENT}>', via="carrier-tls-out")
    await far.wait_event(caller, "ChannelStateChange", state="Up")  # the info line answered
    row = await wait_row(secure.server, caller_number=CLIENT)
    ours = await callers.ari.get_channel(row.channel_id)
    assert ours["name"].startswith("PJSIP/carrier-"), ours["name"]  # the trunk, known by address
    assert ours["dialplan"]["context"] == "centrala-infoline"
    # Both Asterisks see the call encrypted: SIP over TLS, audio in SRTP.
    for ari, channel in ((callers.ari, row.channel_id), (far.ari, caller)):
        assert await channel_var(ari, channel, "CHANNEL(pjsip,secure)") == "1", channel
        assert await channel_var(ari, channel, "CHANNEL(rtp,secure,audio)") == "1", channel
    listing = secure.centrala(*readme_commands()[2])
    assert ours["name"] in listing, listing
    # The caller hears the IVR: the recording notice arrives, decrypted, from SRTP.
    heard, _rate = await far.listen(caller, 3)
    assert rms(heard) > 300, f"the caller heard silence (rms {rms(heard):.0f})"

    await far.ari.send_dtmf(caller, "0")  # RFC 4733 inside SRTP: an operator, please
    ring = await far.wait_incoming(f"7{AGENT}")  # the phone registered over TLS rings
    phone = str(ring["channel"]["id"])
    await far.ari.answer(phone)
    connected = await wait_until(
        lambda: _connected(secure.server, row.id), timeout=20, message="the caller with the agent"
    )
    assert connected.agent_id == AGENT
    # The phone's leg is encrypted too, on both Asterisks.
    ours_to_phone = next(
        c for c in await callers.ari.channels() if c["name"].startswith(f"PJSIP/{AGENT}-")
    )
    for ari, channel in ((callers.ari, ours_to_phone["id"]), (far.ari, phone)):
        assert await channel_var(ari, channel, "CHANNEL(pjsip,secure)") == "1", channel
        assert await channel_var(ari, channel, "CHANNEL(rtp,secure,audio)") == "1", channel
    # A tone from the caller crosses both SRTP legs to the phone.
    playback = f"tone-{uuid.uuid4().hex[:8]}"
    await far.ari.play(caller, "tone:1000", playback)
    samples, rate = await far.listen(phone, 2)
    await far.ari.stop_playback(playback)
    tail = samples[rate // 2 :]
    power, noise = goertzel(tail, rate, 1000), goertzel(tail, rate, 1600)
    assert power > 20 * noise, f"1000 Hz not heard on the phone: {power:.1f} vs {noise:.1f}"

    await far.ari.hangup(caller)
    closed = await secure.server.wait_closed(row.channel_id)
    assert closed.answered_at is not None and closed.agent_id == AGENT
    await far.wait_event(phone, "StasisEnd")  # Centrala hung the phone up too


async def _connected(server: Server, call_id: Any) -> Call | None:
    async with server.db.sessions() as session:
        got = await session.get(Call, call_id)
    return got if got is not None and got.connected_at is not None else None


async def test_a_clear_call_on_the_encrypted_trunk_is_refused(
    secure: SecureLines, far: Far, callers: Callers
) -> None:
    # The same carrier (same address, so the same trunk) offers plain RTP over UDP.
    caller = await far.call("0800100200", f'"Client" <{CLEAR_CLIENT}>', via="carrier-out")
    gone = await far.wait_event(caller, "ChannelDestroyed")
    states = [e["channel"]["state"] for e in far.events[caller] if "channel" in e]
    assert "Up" not in states, states
    # 488 Not Acceptable Here: refused at the offer, before any dialplan ran.
    assert gone["cause"] == 58, gone
    async with secure.server.db.sessions() as session:
        row = await session.scalar(select(Call).filter_by(caller_number=CLEAR_CLIENT))
    assert row is None, "Centrala took a clear call on the encrypted trunk"
    assert not [c for c in await callers.ari.channels() if CLEAR_CLIENT in str(c["caller"])]
