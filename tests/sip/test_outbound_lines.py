"""Agents' manual outbound calls, the trunk's call rate and a registration trunk, over real SIP
and RTP on loopback (tests/sip/conftest.py): the agent calls a client from the desk (their
registered phone rings, then the client through the trunk, presenting the queue's number)
and from the desk phone itself (refused when the number is on the do-not-call list or is
malformed); a campaign's burst leaves at the trunk's rate; Centrala registers to a second
carrier (127.0.0.4) and that carrier's call arrives over the registration. The commands are
README's "Calling out", run as written there."""

from __future__ import annotations

import contextlib
import itertools
import json
import re
import secrets
import shlex
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from playwright.async_api import Browser, expect
from sqlalchemy import select

from ari_app.ari import ARIError
from centrala.settings import REPO_ROOT
from models.flows import apply_flow
from models.tables import Call, Callback, CallbackStatus, CallEvent, Client
from tests.browser.conftest import browser
from tests.browser.test_desktop import log_in, set_password
from tests.conftest import make_database
from tests.integration import live
from tests.integration.conftest import PBX, Callers, Server, _centrala, _stop_and_check, start_serve
from tests.integration.test_infoline_paths import _flow, open_always
from tests.sip.conftest import CARRIER, FAR_APP, PHONES, Far, goertzel
from tests.support import wait_until

__all__ = ["browser"]

README = REPO_ROOT / "README.md"
AGENT = "101"
CLIENT = "+38761222333"
REGISTRAR = "127.0.0.4"
QUEUE_NUMBER = "033555001"
CAMPAIGN_NUMBER = "033555002"
RATE = 2  # calls a second the carrier takes


def readme_section() -> str:
    text = README.read_text()
    return text.split("### Calling out", 1)[1].split("\n## ", 1)[0].split("\n### ", 1)[0]


def readme_toml(password: str) -> str:
    """README's config for calling out, on loopback: the carriers on 127.0.0.2 and .4."""
    block = re.search(r"```toml\n(.*?)```", readme_section(), re.S)
    assert block is not None, "README: no toml block in 'Calling out'"
    return (
        block.group(1)
        .replace("198.51.100.7", CARRIER)
        .replace("198.51.100.9", REGISTRAR)
        .replace('"the password the carrier gave"', f'"{password}"')
    )


def readme_commands() -> list[str]:
    commands = []
    for block in re.findall(r"```sh\n(.*?)```", readme_section(), re.S):
        for line in block.splitlines():
            line = line.split("  #", 1)[0].strip()
            if line:
                commands.append(line)
    return commands


@dataclass
class Out:
    server: Server
    env: dict[str, str]
    tmp: Path
    token: str
    client_id: int

    def centrala(self, *args: str) -> str:
        return _centrala(*args, env=self.env)

    async def api(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        async with (
            aiohttp.ClientSession() as http,
            http.request(
                method,
                self.server.url + path,
                json=body,
                headers={"Authorization": f"Bearer {self.token}"},
            ) as resp,
        ):
            return resp.status, await resp.json()


def far_phone_conf(phone: dict[str, Any]) -> str:
    """The agent's desk phone on the far side: registered to Centrala (it rings as
    7<agent>), and able to place calls as the agent (endpoint phone<agent>-out)."""
    user = phone["username"]
    return (
        f"[phone{user}-auth]\ntype = auth\nauth_type = digest\nusername = {user}\n"
        f"password = {phone['password']}\n\n"
        f"[phone{user}]\ntype = registration\ntransport = phones-udp\n"
        f"server_uri = sip:{phone['registrar']}\nclient_uri = sip:{user}@127.0.0.1\n"
        f"contact_user = 7{user}\noutbound_auth = phone{user}-auth\n"
        "retry_interval = 1\nexpiration = 120\n\n"
        f"[phone{user}-out]\ntype = endpoint\ntransport = phones-udp\ncontext = from-centrala\n"
        "disallow = all\nallow = alaw\naors = centrala\ndirect_media = no\n"
        f"rtp_symmetric = yes\ndtmf_mode = rfc4733\nfrom_user = {user}\n"
        f"outbound_auth = phone{user}-auth\n"
    )


def far_registrar_conf(password: str) -> str:
    """The second carrier's account for Centrala: it registers there, and gets its calls."""
    return (
        "[centrala-reg]\ntype = auth\nauth_type = digest\nusername = centrala-reg\n"
        f"password = {password}\n\n"
        "[centrala-reg]\ntype = aor\nmax_contacts = 1\nremove_existing = yes\n\n"
        "[centrala-reg]\ntype = endpoint\ntransport = registrar-udp\ncontext = from-centrala\n"
        "disallow = all\nallow = alaw\nauth = centrala-reg\naors = centrala-reg\n"
        "direct_media = no\nrtp_symmetric = yes\n"
    )


@pytest.fixture(scope="module")
async def out(
    pbx: PBX, far: Far, callers: Callers, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Out]:
    for other, running in list(live.servers.items()):  # one serve on the Stasis apps
        await _stop_and_check(other, running.value)
    tmp = tmp_path_factory.mktemp("outbound")
    password = secrets.token_urlsafe(18)  # made here, in no file of the repository
    far_root = far.root / "rootfs/etc/asterisk"
    (far_root / "far_registrar.conf").write_text(far_registrar_conf(password))
    config = tmp / "centrala.toml"
    config.write_text(readme_toml(password))
    db = await make_database("sqlite", tmp)
    await apply_flow(db.sessions, _flow(open_always))
    # The trunks into the PBX before serve connects: its ARI link (and the phones it pushes
    # at connect) then stays as it is while the phone registers.
    srv = start_serve(
        db, tmp, spawn=False, CENTRALA_CONFIG=str(config), CENTRALA_OUTBOUND_DIAL=None
    )
    env = {**srv.env}
    # The carrier knows the account before the PBX first registers: a REGISTER refused for an
    # unknown account is retried only after forbidden_retry_interval (300 s).
    far.cli("module reload res_pjsip.so")
    _centrala("pbx", "up", env=env)
    srv.spawn()
    (tmp / "agents.csv").write_text(
        "agent_id,name,role,endpoint,queues,skills\n"
        f"{AGENT},Ana Agent,agent,,new_clients;general,bs\n"
    )
    (tmp / "clients.csv").write_text(
        "external_id,name,phone,language,client_type,assigned_manager,birthday,"
        "document_expiry,overdue_debt\n"
        f"C1,Client One,{CLIENT},bs,regular,,,,0\n"
    )
    try:
        await srv.wait_ready()
        _centrala("import", "agents", str(tmp / "agents.csv"), env=env)
        _centrala("import", "clients", str(tmp / "clients.csv"), env=env)
        phone = json.loads(_centrala("agent", "phone", AGENT, env=env))
        (far_root / "far_phones.conf").write_text(far_phone_conf(phone))
        far.cli("module reload res_pjsip.so")

        async def online() -> bool:
            try:
                endpoint = await callers.ari.request("GET", f"/endpoints/PJSIP/{AGENT}")
            except ARIError:
                return False
            return bool(endpoint.get("state") == "online")

        await wait_until(online, timeout=30, interval=0.2, message="the agent's phone registered")
        _centrala("agent", "login", AGENT, env=env)
        async with db.sessions() as session:
            client_id = await session.scalar(select(Client.id).where(Client.external_id == "C1"))
        assert client_id is not None
        token = (tmp / "api-token").read_text().strip()
        yield Out(srv, env, tmp, token, client_id)
    finally:
        with contextlib.suppress(pytest.fail.Exception):  # not logged in: set-up failed early
            _centrala("agent", "logout", AGENT, env=env)
        if srv.proc is not None:  # None: the PBX refused the config before serve started
            live.stop_server(srv.proc)
        await db.engine.dispose()
        for name in ("far_phones.conf", "far_registrar.conf"):
            (far_root / name).unlink(missing_ok=True)
        far.cli("module reload res_pjsip.so")
        pbx.up()  # the PBX as the other tests know it: no trunk


async def row_of(server: Server, **where: Any) -> Call:
    async def found() -> Call | None:
        async with server.db.sessions() as session:
            call = await session.scalar(select(Call).filter_by(**where))
        return call if call is not None and call.ended_at is not None else None

    return await wait_until(found, timeout=30, message=f"a closed call row {where}")


async def events_of(server: Server, call_id: str) -> list[CallEvent]:
    async with server.db.sessions() as session:
        rows = await session.scalars(
            select(CallEvent).where(CallEvent.call_id == call_id).order_by(CallEvent.id)
        )
        return list(rows)


async def tones_both_ways(far: Far, one: str, other: str) -> None:
    for speaker, listener, freq, noise_freq in ((one, other, 1000, 1600), (other, one, 1600, 1000)):
        playback = f"tone-{uuid.uuid4().hex[:8]}"
        await far.ari.play(speaker, f"tone:{freq}", playback)
        samples, rate = await far.listen(listener, 2)
        await far.ari.stop_playback(playback)
        tail = samples[rate // 2 :]
        power, noise = goertzel(tail, rate, freq), goertzel(tail, rate, noise_freq)
        assert power > 20 * noise, f"{freq} Hz not heard across: {power:.1f} vs {noise:.1f}"


async def ring_after(far: Far, exten: str, seen: int, timeout: float = 30) -> Any:
    """A call from Centrala to ``exten`` among those arriving after the first ``seen``."""

    def found() -> Any:
        return next((e for e in far.incoming[seen:] if e.get("args") == [exten]), None)

    return await wait_until(found, timeout=timeout, message=f"a new call from Centrala to {exten}")


async def dial_from_phone(far: Far, number: str) -> str:
    """The agent dials ``number`` on their desk phone (it calls Centrala as agent 101)."""
    channel_id = f"far-{uuid.uuid4().hex[:12]}"
    far.placed.add(channel_id)
    await far.ari.originate(f"PJSIP/{number}@phone{AGENT}-out", channel_id=channel_id, app=FAR_APP)
    return channel_id


def test_readme_calling_out_commands_are_the_ones_run(out: Out) -> None:
    commands = readme_commands()
    assert any("/api/agents/101/call" in c for c in commands), commands
    assert any(c.startswith(".venv/bin/centrala dnc add") for c in commands), commands


async def test_the_agent_calls_a_client_from_the_desk_showing_the_queues_number(
    out: Out, far: Far
) -> None:
    call = next(c for c in readme_commands() if "/api/agents/101/call" in c)
    body = json.loads(re.search(r"-d '(\{.*?\})'", call).group(1))  # type: ignore[union-attr]
    assert body == {"client_id": 1} and out.client_id == 1  # the first client imported
    seen = len(far.incoming)
    status, placed = await out.api(
        "POST", f"/api/agents/{AGENT}/call", {"client_id": out.client_id}
    )
    assert status == 202, placed
    assert placed["number"] == CLIENT and placed["presented"] == QUEUE_NUMBER, placed
    assert placed["queue"] == "new_clients"
    ring = await ring_after(far, f"7{AGENT}", seen)  # the agent's own phone rings first
    phone = str(ring["channel"]["id"])
    await far.ari.answer(phone)
    client_ring = await ring_after(far, CLIENT, seen)  # then the client, through the trunk
    client = str(client_ring["channel"]["id"])
    assert client_ring["channel"]["name"].startswith("PJSIP/centrala-")
    assert client_ring["channel"]["caller"]["number"] == QUEUE_NUMBER
    await far.ari.answer(client)

    async def connected() -> bool:
        async with out.server.db.sessions() as session:
            row = await session.get(Call, placed["call_id"])
        return row is not None and row.connected_at is not None

    await wait_until(connected, timeout=20, message="the agent and the client bridged")
    await tones_both_ways(far, phone, client)
    await far.ari.hangup(client)
    row = await row_of(out.server, id=placed["call_id"])
    assert row.direction == "outbound" and row.handler == "outbound"
    assert row.agent_id == AGENT and row.client_id == out.client_id
    assert row.called_number == CLIENT and row.caller_number == QUEUE_NUMBER
    assert row.outcome == "answered" and row.talk_seconds is not None and row.talk_seconds > 3
    await far.wait_event(phone, "StasisEnd")  # Centrala hung the agent's phone up too


async def test_the_call_button_on_the_clients_card_in_the_desk_rings_phone_then_client(
    out: Out, far: Far, browser: Browser
) -> None:
    await set_password(out.server, AGENT)
    page = await log_in(browser, out.server, AGENT)
    await page.get_by_label("Name or phone").fill("Client One")
    await page.get_by_role("button", name="Search").click()
    await page.get_by_role("button", name=re.compile("Client One")).click()
    seen = len(far.incoming)
    await page.get_by_role("button", name=f"Call {CLIENT}").click()
    await expect(page.locator("#call-msg")).to_contain_text(f"Calling {CLIENT} as {QUEUE_NUMBER}")
    ring = await ring_after(far, f"7{AGENT}", seen)
    await far.ari.answer(str(ring["channel"]["id"]))
    client = await ring_after(far, CLIENT, seen)
    assert client["channel"]["caller"]["number"] == QUEUE_NUMBER
    await far.ari.hangup(str(client["channel"]["id"]), reason="no_answer")
    async with out.server.db.sessions() as session:
        row = await session.scalar(
            select(Call).where(Call.channel_id.like("outbound-%")).order_by(Call.started_at.desc())
        )
    assert row is not None
    closed = await row_of(out.server, id=row.id)
    assert closed.agent_id == AGENT and closed.client_id == out.client_id
    # A number the rules refuse: the desk says why, nothing rings.
    dnc = next(c for c in readme_commands() if "centrala dnc add" in c)
    out.centrala(*shlex.split(dnc.split("centrala ", 1)[1]))
    await page.get_by_label("Call a number").fill("061 999 888")
    await page.get_by_role("button", name="Call", exact=True).click()
    await expect(page.locator("#call-msg")).to_contain_text("do-not-call list")
    await page.context.close()


async def test_a_callback_task_dialled_from_the_desk_is_marked_with_the_call(
    out: Out, far: Far
) -> None:
    async with out.server.db.sessions() as session, session.begin():
        task = Callback(
            client_id=out.client_id,
            number=CLIENT,
            reason="callback_requested",
            queue="general",
            due_at=datetime.now().astimezone(),
        )
        session.add(task)
    seen = len(far.incoming)
    status, placed = await out.api("POST", f"/api/agents/{AGENT}/call", {"callback_id": task.id})
    assert status == 202 and placed["queue"] == "general", placed
    ring = await ring_after(far, f"7{AGENT}", seen)
    await far.ari.answer(str(ring["channel"]["id"]))
    client = await ring_after(far, CLIENT, seen)
    await far.ari.hangup(str(client["channel"]["id"]), reason="busy")
    row = await row_of(out.server, id=placed["call_id"])
    assert row.outcome == "busy" and row.talk_seconds is None

    async def attempted() -> Callback | None:
        async with out.server.db.sessions() as session:
            got = await session.get(Callback, task.id)
        return got if got is not None and got.attempts == 1 else None

    got = await wait_until(attempted, timeout=10, message="the callback task attempted")
    assert got.status is CallbackStatus.OPEN  # not reached: still to do
    kinds = [e.kind for e in await events_of(out.server, row.id)]
    assert "callback_dialled" in kinds


async def test_the_agent_dials_from_the_desk_phone_and_the_call_leaves_through_the_trunk(
    out: Out, far: Far
) -> None:
    called = "+38761444555"
    seen = len(far.incoming)
    phone = await dial_from_phone(far, "0038761444555")  # dialled as people dial
    ring = await ring_after(far, called, seen)  # normalised, out through the trunk
    assert ring["channel"]["caller"]["number"] == QUEUE_NUMBER
    client = str(ring["channel"]["id"])
    await far.ari.answer(client)
    await far.wait_event(phone, "ChannelStateChange", state="Up")
    await tones_both_ways(far, phone, client)
    await far.ari.hangup(phone)
    row = await row_of(out.server, called_number=called)
    assert row.direction == "outbound" and row.agent_id == AGENT
    assert row.outcome == "answered" and (row.talk_seconds or 0) > 3
    assert row.client_id is None  # nobody on record with that number


async def test_a_crash_of_serve_leaves_a_manual_call_talking_and_its_row_right(
    out: Out, far: Far
) -> None:
    seen = len(far.incoming)
    status, placed = await out.api("POST", f"/api/agents/{AGENT}/call", {"number": CLIENT})
    assert status == 202, placed
    phone = str((await ring_after(far, f"7{AGENT}", seen))["channel"]["id"])
    await far.ari.answer(phone)
    client = str((await ring_after(far, CLIENT, seen))["channel"]["id"])
    await far.ari.answer(client)

    async def connected() -> Call | None:
        async with out.server.db.sessions() as session:
            row = await session.get(Call, placed["call_id"])
        return row if row is not None and row.connected_at is not None else None

    await wait_until(connected, timeout=20, message="bridged")
    await out.server.crash_and_restart()  # SIGKILL: nothing tidied up
    await tones_both_ways(far, phone, client)  # still talking through the same bridge
    await far.ari.hangup(phone)  # the agent ends it: the adopted call follows
    await far.wait_event(client, "StasisEnd")
    row = await row_of(out.server, id=placed["call_id"])
    assert row.outcome == "answered" and row.agent_id == AGENT
    assert row.talk_seconds is not None and row.talk_seconds > 4  # across the restart
    assert row.ended_at is not None and row.connected_at is not None
    assert row.talk_seconds == pytest.approx(
        (row.ended_at - row.connected_at).total_seconds(), abs=0.5
    )


async def test_a_client_who_hangs_up_while_serve_is_away_ends_the_call_at_the_restart(
    out: Out, far: Far
) -> None:
    seen = len(far.incoming)
    status, placed = await out.api("POST", f"/api/agents/{AGENT}/call", {"number": CLIENT})
    assert status == 202, placed
    phone = str((await ring_after(far, f"7{AGENT}", seen))["channel"]["id"])
    await far.ari.answer(phone)
    client = str((await ring_after(far, CLIENT, seen))["channel"]["id"])
    await far.ari.answer(client)

    async def connected() -> Call | None:
        async with out.server.db.sessions() as session:
            row = await session.get(Call, placed["call_id"])
        return row if row is not None and row.connected_at is not None else None

    await wait_until(connected, timeout=20, message="bridged")

    async def client_leaves() -> None:
        await far.ari.hangup(client)
        await far.wait_event(client, "StasisEnd")

    await out.server.restart_stopped(client_leaves)
    await far.wait_event(phone, "StasisEnd")  # the restarted serve hung the agent up
    row = await row_of(out.server, id=placed["call_id"])
    assert row.outcome == "answered" and row.talk_seconds is not None and row.talk_seconds > 0
    assert "ended while serve was away" in (row.hangup_cause_text or "")


async def test_with_serve_away_the_desk_phone_is_told_no_circuit(out: Out, far: Far) -> None:
    causes: list[int] = []

    async def dial_while_away() -> None:
        phone = await dial_from_phone(far, "061444555")
        causes.append(int((await far.wait_event(phone, "ChannelDestroyed"))["cause"]))

    await out.server.restart_stopped(dial_while_away)
    assert causes == [34]  # from-agents: the outbound app is not there


@pytest.mark.parametrize(
    ("dialled", "reason", "cause"),
    [("061999888", "do_not_call", 21), ("12345", "bad_number", 28)],
)
async def test_a_number_the_rules_refuse_is_not_dialled_and_the_phone_is_told_why(
    out: Out, far: Far, dialled: str, reason: str, cause: int
) -> None:
    dnc = next(c for c in readme_commands() if "centrala dnc add" in c)
    out.centrala(*shlex.split(dnc.split("centrala ", 1)[1]))
    phone = await dial_from_phone(far, dialled)
    gone = await far.wait_event(phone, "ChannelDestroyed")
    assert gone["cause"] == cause, gone
    row = await row_of(out.server, called_number=dialled)
    assert row.outcome == "refused" and row.agent_id == AGENT
    refused = [e for e in await events_of(out.server, row.id) if e.kind == "refused"]
    assert refused and refused[0].data["reason"] == reason
    assert not [e for e in far.incoming if e.get("args") == ["+38761999888"]]


async def test_a_burst_of_campaign_calls_leaves_at_the_trunks_rate(out: Out, far: Far) -> None:
    numbers = [f"+3876155500{i}" for i in range(5)]
    (out.tmp / "burst.csv").write_text("number,timezone\n" + "".join(f"{n},UTC\n" for n in numbers))
    always = {d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")}
    calendar = {"timezone": "UTC", "weekly": always}
    (out.tmp / "burst.json").write_text(
        json.dumps(
            {
                "rules": {"window": calendar, "legal": calendar},
                "ring_seconds": 20,
                "calls_per_second": 50,  # the campaign would go faster than the carrier takes
                "concurrency": 10,
                "caller_id": CAMPAIGN_NUMBER,
            }
        )
    )
    out.centrala(
        "campaign",
        "create",
        "burst",
        "--contacts",
        str(out.tmp / "burst.csv"),
        "--settings",
        str(out.tmp / "burst.json"),
    )
    out.centrala("campaign", "start", "burst")
    try:
        rings = [await ring_after(far, n, 0, timeout=40) for n in numbers]
    finally:
        out.centrala("campaign", "stop", "burst")
    for ring in rings:
        assert ring["channel"]["caller"]["number"] == CAMPAIGN_NUMBER  # the campaign's own
        await far.ari.hangup(str(ring["channel"]["id"]), reason="busy")
    arrived = sorted(datetime.fromisoformat(r["timestamp"]) for r in rings)
    gaps = [(b - a).total_seconds() for a, b in itertools.pairwise(arrived)]
    # The carrier's side: never two calls closer than the limit allows (a little jitter).
    assert min(gaps) > 1 / RATE - 0.1, gaps
    assert (arrived[-1] - arrived[0]).total_seconds() >= (len(numbers) - 1) / RATE - 0.1


async def test_a_call_to_a_queues_number_rings_its_agent_with_no_menu(
    out: Out, far: Far, callers: Callers
) -> None:
    seen = len(far.incoming)
    caller = await far.call("+38733555222", f'"Client" <{CLIENT}>')
    ring = await ring_after(far, f"7{AGENT}", seen, timeout=20)  # general's agent, at once
    phone = str(ring["channel"]["id"])
    await far.ari.answer(phone)

    async def connected() -> Call | None:
        async with out.server.db.sessions() as session:
            row = await session.scalar(select(Call).where(Call.called_number == "+38733555222"))
        return row if row is not None and row.connected_at is not None else None

    row = await wait_until(connected, timeout=20, message="the caller with the agent")
    assert row.queue == "general" and row.agent_id == AGENT and row.ivr_path == []
    kinds = [e.kind for e in await events_of(out.server, row.id)]
    assert "entered_queue_number" in kinds and "prompt" not in " ".join(kinds), kinds
    await far.ari.hangup(caller)
    closed = await out.server.wait_closed(row.channel_id)
    assert closed.outcome == "answered" and closed.direction == "inbound"
    await far.wait_event(phone, "StasisEnd")


async def test_the_registration_trunk_registers_and_the_carriers_call_arrives_over_it(
    out: Out, far: Far, callers: Callers
) -> None:
    def registered() -> str | None:
        contacts = far.cli("pjsip show contacts")
        return contacts if "centrala-reg/sip:centrala-reg@127.0.0.1" in contacts else None

    shown = await wait_until(registered, timeout=30, interval=0.3, message="registered")
    assert "Avail" in shown or "NonQual" in shown or "Unknown" in shown, shown
    shown_command = next(c for c in readme_commands() if "pjsip show registrations" in c)
    ours = out.centrala(*shlex.split(shown_command.split("centrala ", 1)[1]))
    assert re.search(r"carrier2-reg/\S+\s+carrier2-auth\s+Registered", ours), ours
    channel_id = f"far-{uuid.uuid4().hex[:12]}"
    far.placed.add(channel_id)
    await far.ari.originate(
        "PJSIP/+38733555111@centrala-reg",
        channel_id=channel_id,
        app=FAR_APP,
        caller_id=f'"Client" <{CLIENT}>',
    )
    await far.wait_event(channel_id, "ChannelStateChange", state="Up")  # the info line

    async def arrived() -> Call | None:
        async with out.server.db.sessions() as session:
            return await session.scalar(
                select(Call).where(
                    Call.called_number == "+38733555111", Call.direction == "inbound"
                )
            )

    row = await wait_until(arrived, timeout=20, message="the info line's row")
    channel = await callers.ari.get_channel(row.channel_id)
    assert channel["name"].startswith("PJSIP/carrier2-"), channel["name"]  # over the registration
    await far.ari.hangup(channel_id)
    await out.server.wait_closed(row.channel_id)
    assert PHONES  # the phones' address stays apart from both carriers
