"""Calls over real SIP and RTP on loopback (tests/sip/conftest.py): the carrier sends a call to
the free number over the trunk, the info line answers and speaks, the caller presses 0 and
reaches the agent's phone, registered with the credentials `centrala agent phone` made, and
both hear each other; a campaign's call leaves through the trunk showing the trunk's number.
The commands are README's "Connecting a carrier and phones", run as written there."""

from __future__ import annotations

import array
import contextlib
import json
import math
import re
import shlex
import tomllib
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select

from ari_app.ari import ARIError
from centrala.settings import REPO_ROOT
from models.flows import apply_flow
from models.tables import Call
from tests.conftest import make_database
from tests.integration import live
from tests.integration.conftest import PBX, Callers, Server, _centrala, _stop_and_check, start_serve
from tests.integration.test_infoline_paths import _flow, open_always
from tests.integration.test_recording import check_file, wait_recording
from tests.sip.conftest import CARRIER, PHONES, Far, goertzel
from tests.support import wait_until

README = REPO_ROOT / "README.md"
AGENT = "101"
CLIENT = "+38761222333"
CALLED = "+38761444555"


def readme_section() -> str:
    text = README.read_text()
    section = text.split("## Connecting a carrier and phones", 1)[1].split("\n## ", 1)[0]
    return section.split("\n### ", 1)[0]  # "Calling out", TLS and SRTP: tests of their own


def readme_toml() -> str:
    """The config file of README's example, on this machine's loopback: the carrier's address
    is 127.0.0.2, and SIP stays on 127.0.0.1 (the far side holds 127.0.0.2/3:5060)."""
    block = re.search(r"```toml\n(.*?)```", readme_section(), re.S)
    assert block is not None, "README: no toml block in the section"
    text = block.group(1).replace("198.51.100.7", CARRIER)
    kept = [
        line
        for line in text.splitlines()
        if not line.startswith(("sip_bind", "sip_external_address", "sip_local_nets"))
    ]
    return "\n".join(kept) + "\n"


def readme_commands() -> list[str]:
    """Every `centrala …` command README's example shows, in order."""
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", readme_section(), re.S):
        for line in block.splitlines():
            line = line.split("  #", 1)[0].strip()
            if "centrala " in line:
                commands.append(line.split("centrala ", 1)[1])
    return commands


def rms(samples: array.array[int]) -> float:
    return math.sqrt(sum(x * x for x in samples) / max(len(samples), 1))


@dataclass
class Lines:
    server: Server
    env: dict[str, str]
    phone: dict[str, Any]
    ran: list[str]

    def centrala(self, *args: str) -> str:
        return _centrala(*args, env=self.env)


@pytest.fixture(scope="module")
async def lines(
    pbx: PBX, far: Far, callers: Callers, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Lines]:
    """README's example, command by command: the trunk into the Centrala PBX (`pbx up` with
    the config file), agent 101 imported, its phone made and registered from the far side,
    the agent logged in on it; a `serve` of its own (campaigns dial through the trunk)."""
    for other, running in list(live.servers.items()):  # one serve on the Stasis app at a time
        await _stop_and_check(other, running.value)
    tmp = tmp_path_factory.mktemp("lines")
    config = tmp / "centrala.toml"
    config.write_text(readme_toml())
    db = await make_database("sqlite", tmp)
    await apply_flow(db.sessions, _flow(open_always))
    srv = start_serve(db, tmp, CENTRALA_CONFIG=str(config), CENTRALA_OUTBOUND_DIAL=None)
    env = {**srv.env}
    (tmp / "agents.csv").write_text(
        "agent_id,name,role,endpoint,queues,skills\n"
        f"{AGENT},Ana Agent,agent,,new_clients;general,bs\n"
    )
    commands = readme_commands()
    ran: list[str] = []
    try:
        await srv.wait_ready()
        phone: dict[str, Any] = {}
        for command in commands:
            args = shlex.split(command)
            if args[:2] == ["pbx", "cli"]:
                continue  # the test runs it once the phone has registered
            if args[:2] == ["import", "agents"]:
                args[2] = str(tmp / "agents.csv")
            if args[:2] == ["campaign", "create"] or args[:2] == ["campaign", "start"]:
                continue  # test_a_campaign_call_leaves_through_the_trunk runs them
            out = _centrala(*args, env=env)
            ran.append(" ".join(args[:2]))
            if args[:2] == ["agent", "phone"]:
                phone = json.loads(out)
                await register_phone(far, phone, callers)
        assert phone, f"README shows no `centrala agent phone`: {commands}"
        yield Lines(srv, env, phone, ran)
    finally:
        with contextlib.suppress(pytest.fail.Exception):  # not logged in: set-up failed early
            _centrala("agent", "logout", AGENT, env=env)
        live.stop_server(srv.proc)
        await db.engine.dispose()
        with_phone = {**env, "CENTRALA_DATABASE_URL": db.url}
        with contextlib.suppress(pytest.fail.Exception):  # no phone: set-up failed early
            _centrala("agent", "phone", AGENT, "--remove", env=with_phone)
        far_phones = far.root / "rootfs/etc/asterisk/far_phones.conf"
        far_phones.unlink(missing_ok=True)
        far.cli("module reload res_pjsip.so")
        pbx.up()  # the PBX as the other tests know it: no trunk


async def register_phone(far: Far, phone: dict[str, Any], callers: Callers) -> None:
    """The agent's desk phone: the far Asterisk registers to Centrala from 127.0.0.3 with
    the printed credentials (contact sip:7<agent>@127.0.0.3)."""
    user = phone["username"]
    (far.root / "rootfs/etc/asterisk/far_phones.conf").write_text(
        f"[phone{user}-auth]\ntype = auth\nauth_type = digest\nusername = {user}\n"
        f"password = {phone['password']}\n\n"
        f"[phone{user}]\ntype = registration\ntransport = phones-udp\n"
        f"server_uri = sip:{phone['registrar']}\nclient_uri = sip:{user}@127.0.0.1\n"
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


async def wait_row(server: Server, **where: Any) -> Call:
    async def found() -> Call | None:
        async with server.db.sessions() as session:
            return await session.scalar(select(Call).filter_by(**where))

    return await wait_until(found, timeout=20, message=f"a call row {where}")


def test_readme_example_ran_in_full(lines: Lines) -> None:
    assert lines.ran == ["pbx up", "import agents", "agent phone", "agent login"]
    assert lines.phone["username"] == AGENT and lines.phone["dial"] == f"PJSIP/{AGENT}"
    assert lines.phone["realm"] == "centrala"
    assert lines.phone["asterisk"] == "updated"
    assert len(lines.phone["password"]) >= 24
    # The password is nowhere in the database: only its digest.
    db_file = Path(lines.server.data_dir) / "centrala.db"
    assert lines.phone["password"].encode() not in db_file.read_bytes()


async def test_the_phone_registered_with_its_credentials_and_a_wrong_password_fails(
    lines: Lines, far: Far
) -> None:
    shown = next(c for c in readme_commands() if c.startswith("pbx cli"))
    contacts = lines.centrala(*shlex.split(shown))
    assert f"{AGENT}/sip:7{AGENT}@{PHONES}:5060" in contacts, contacts
    # Asterisk holds the digest Centrala pushed, never the password.
    auth = lines.centrala("pbx", "cli", f"pjsip show auth {AGENT}")
    assert "password_digest" in auth and lines.phone["password"] not in auth
    # Another phone with a wrong password is refused and takes nothing from the agent's.
    conf = far.root / "rootfs/etc/asterisk/far_phones.conf"
    good = conf.read_text()
    wrong = good.replace(f"phone{AGENT}", "intruder").replace(
        f"contact_user = 7{AGENT}", "contact_user = 7999"
    )
    wrong = re.sub(r"password = .*", "password = guessed-wrong", wrong)
    conf.write_text(good + "\n" + wrong)
    far.cli("module reload res_pjsip.so")
    try:
        seen: list[str] = []

        def refused() -> bool:
            seen.append(far.cli("pjsip show registrations"))
            return bool(re.search(r"intruder/\S+\s+intruder-auth\s+Rejected", seen[-1]))

        try:
            await wait_until(refused, timeout=20, interval=0.2, message="the intruder refused")
        except AssertionError as exc:
            raise AssertionError(f"{exc}\n{seen[-1]}") from None
        contacts = lines.centrala(*shlex.split(shown))
        assert "7999" not in contacts and f"7{AGENT}@{PHONES}" in contacts, contacts
    finally:
        conf.write_text(good)
        far.cli("module reload res_pjsip.so")


async def test_the_carrier_calls_the_free_number_the_caller_reaches_the_agents_phone(
    lines: Lines, far: Far, callers: Callers
) -> None:
    caller = await far.call("0800100200", f'"Client" <{CLIENT}>')
    await far.wait_event(caller, "ChannelStateChange", state="Up")  # the info line answered
    row = await wait_row(lines.server, caller_number=CLIENT)
    ours = await callers.ari.get_channel(row.channel_id)
    assert ours["name"].startswith("PJSIP/carrier-"), ours["name"]  # came in over the trunk
    assert ours["dialplan"]["context"] == "centrala-infoline"
    # The caller hears the IVR: the recording notice arrives over RTP.
    heard, _rate = await far.listen(caller, 3)
    assert rms(heard) > 300, f"the caller heard silence (rms {rms(heard):.0f})"

    await far.ari.send_dtmf(caller, "0")  # RFC 4733 over RTP: an operator, please
    ring = await far.wait_incoming(f"7{AGENT}")  # Centrala rings the registered phone
    phone = str(ring["channel"]["id"])
    await far.ari.answer(phone)

    async def with_agent() -> Call | None:
        async with lines.server.db.sessions() as session:
            got = await session.get(Call, row.id)
        return got if got is not None and got.connected_at is not None else None

    connected = await wait_until(with_agent, timeout=20, message="the caller with the agent")
    assert connected.agent_id == AGENT

    # Audio both ways through Centrala's bridge: a tone from each side, found on the other.
    sides = ((caller, phone, 1000, 1600), (phone, caller, 1600, 1000))
    for speaker, listener, freq, other in sides:
        playback = f"tone-{uuid.uuid4().hex[:8]}"
        await far.ari.play(speaker, f"tone:{freq}", playback)
        samples, rate = await far.listen(listener, 2)
        await far.ari.stop_playback(playback)
        tail = samples[rate // 2 :]  # past the bridge's first moments
        power, noise = goertzel(tail, rate, freq), goertzel(tail, rate, other)
        assert power > 20 * noise, (
            f"{freq} Hz from one side not heard on the other: {power:.1f} vs {noise:.1f} "
            f"at {other} Hz, rms {rms(tail):.0f}, {len(samples)} samples; "
            f"{[e['type'] for e in far.events.get(speaker, [])]}"
            f"{far.cli('pjsip show channelstats')}\n"
            f"{lines.centrala('pbx', 'cli', 'pjsip show channelstats')}"
            f"{far.cli('rtp show settings')}"
        )

    await far.ari.hangup(caller)
    closed = await lines.server.wait_closed(row.channel_id)
    assert closed.agent_id == AGENT and closed.connected_at is not None
    await far.wait_event(phone, "StasisEnd")  # Centrala hung the phone up too

    # The call was recorded from the end of the notice, both sides: each tone, sent over
    # RTP from the carrier and from the phone, is in the file (checked against its row).
    recording = await wait_recording(lines.server, row.id, finished=True)
    samples, rate = check_file(recording)
    window = rate // 2
    found = {1000: 0.0, 1600: 0.0}
    for start in range(0, len(samples) - window, window // 2):
        part = samples[start : start + window]
        noise = goertzel(part, rate, 1300) or 1e-9
        for freq in found:
            found[freq] = max(found[freq], goertzel(part, rate, freq) / noise)
    assert all(ratio > 20 for ratio in found.values()), f"tone/noise in the recording: {found}"


async def test_a_campaign_call_leaves_through_the_trunk_showing_its_number(
    lines: Lines, far: Far, tmp_path: Path
) -> None:
    (tmp_path / "contacts.csv").write_text(f"number,timezone\n{CALLED},UTC\n")
    always = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    calendar = {"timezone": "UTC", "weekly": always}
    (tmp_path / "settings.json").write_text(
        json.dumps({"rules": {"window": calendar, "legal": calendar}, "ring_seconds": 10})
    )
    create = next(c for c in readme_commands() if c.startswith("campaign create"))
    args = shlex.split(create)
    args[args.index("--contacts") + 1] = str(tmp_path / "contacts.csv")
    args += ["--settings", str(tmp_path / "settings.json")]
    name = args[2]
    lines.centrala(*args)
    start = next(c for c in readme_commands() if c.startswith("campaign start"))
    assert shlex.split(start) == ["campaign", "start", name]
    lines.centrala(*shlex.split(start))
    try:
        ring = await far.wait_incoming(CALLED)
    finally:
        lines.centrala("campaign", "stop", name)
    channel = ring["channel"]
    assert channel["name"].startswith("PJSIP/centrala-")  # arrived over SIP from Centrala
    assert channel["caller"]["number"] == tomllib.loads(readme_toml())["trunks"][0]["caller_id"]
    await far.ari.hangup(str(channel["id"]), reason="busy")
    row = await wait_row(lines.server, called_number=CALLED)
    assert row.direction == "outbound"
    assert lines.env.get("CENTRALA_OUTBOUND_DIAL") is None  # the route is the trunk's
