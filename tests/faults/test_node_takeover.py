"""Two `serve` instances for one Asterisk node (``CENTRALA_NODE``): the owner is SIGKILLed
with callers talking, queued and in the IVR; the standby takes the node over within 15 s
(the default lease) and adopts every call as a restarted `serve` would; nobody is hung up,
and every row closes once with what happened. While the owner lives the standby serves
nothing (its /status says standby, 503) and both are listed on /status."""

from __future__ import annotations

import asyncio
import re
import shlex
import signal
import time
from pathlib import Path
from typing import Any

from sqlalchemy import select

from models.tables import Call
from tests.integration.conftest import CallerLeg, Callers, Server, start_serve
from tests.integration.test_infoline_paths import (
    Desk,
    bridged_with,
    call_and_press,
    desk,  # noqa: F401  (the fixture)
    wait_connected,
)
from tests.integration.test_restart import closed_count, row_of, wait_agents, wait_row
from tests.support import free_port, wait_until

QUEUE = "new_clients"
GAP_CALLER = "+38761999340"
README = Path(__file__).resolve().parents[2] / "README.md"
# Where the test's instances must differ from the README's (its ports and directories).
OWN_PER_TEST = {"CENTRALA_WEB_PORT", "CENTRALA_AGI_PORT", "CENTRALA_DATA_DIR"}


def readme_instances() -> list[dict[str, str]]:
    """The README's two `centrala serve` commands of one node, as their settings."""
    section = README.read_text().split("### A standby instance takes the node over", 1)[1]
    block = re.search(r"```sh\n(.*?)```", section.split("\n### ", 1)[0], re.S)
    assert block is not None, "the section's commands are gone from the README"
    text = block.group(1).replace("\\\n", " ")
    found = []
    for line in text.splitlines():
        words = shlex.split(line.split("  #")[0])
        assert words[-2:] == ["centrala", "serve"], words
        found.append(dict(w.split("=", 1) for w in words[:-2]))
    return found


def shared_secrets(server: Server) -> dict[str, str]:
    """What every instance of a node shares: the API token, the desks' session key and the
    dialplan's FastAGI secret (each would otherwise generate its own)."""
    data = Path(server.data_dir)
    return {
        "CENTRALA_API_TOKEN": (data / "api-token").read_text().strip(),
        "CENTRALA_WEB_SECRET": (data / "web-secret").read_text().strip(),
        "CENTRALA_AGI_SECRET": server.env["CENTRALA_AGI_SECRET"],  # the test PBX's
    }


def owners(status: dict[str, Any], node: str) -> list[str | None]:
    return [n["owner"] for n in status["cluster"]["nodes"] if n["name"] == node]


async def status_of(server: Server) -> tuple[int, dict[str, Any]] | None:
    try:
        return await server.status()
    except Exception:  # not up yet
        return None


async def test_a_standby_takes_the_node_over_and_adopts_every_call(
    server: Server,
    callers: Callers,
    desk: Desk,  # noqa: F811
    tmp_path: Path,
) -> None:
    owner_env, standby_env = readme_instances()
    assert owner_env.keys() == {"CENTRALA_NODE", "CENTRALA_INSTANCE_ID"}, owner_env
    assert standby_env.keys() - OWN_PER_TEST == {"CENTRALA_NODE", "CENTRALA_INSTANCE_ID"}
    node = owner_env["CENTRALA_NODE"]
    assert standby_env["CENTRALA_NODE"] == node
    first, second = owner_env["CENTRALA_INSTANCE_ID"], standby_env["CENTRALA_INSTANCE_ID"]
    secrets = shared_secrets(server)
    before = dict(server.env)
    # The shared serve becomes the node's owner (a deploy: SIGTERM and start again).
    server.env.update(owner_env, **secrets)
    await server.restart(signal.SIGTERM)
    standby: Server | None = None
    try:
        _, status = await server.status()
        assert status["cluster"]["role"] == "owner", status
        standby_env["CENTRALA_AGI_PORT"] = str(free_port())
        standby_env.pop("CENTRALA_WEB_PORT")  # start_serve's own, free
        standby_env.pop("CENTRALA_DATA_DIR")  # tmp_path
        standby = start_serve(server.db, tmp_path, **standby_env, **secrets)

        async def both_listed() -> dict[str, Any] | None:
            assert standby is not None and standby.proc.poll() is None, standby.log_path
            seen = await status_of(standby)
            if seen is None or seen[0] != 503:
                return None
            cluster = seen[1]["cluster"]
            alive = {
                i["id"] for i in cluster["instances"] or [] if i["alive"]
            }  # None: not read yet
            return seen[1] if alive == {first, second} else None

        waiting = await wait_until(both_listed, timeout=30, message="the standby listed")
        assert waiting["cluster"]["role"] == "standby" and "standby" in waiting
        # (Other tests' nodes may be listed too: the shared serve's database keeps them.)
        assert owners(waiting, node) == [first]
        assert waiting["calls_in_progress"] == 0 and not waiting["ari"]["connected"]

        ana = await desk.agent("ana", [QUEUE])
        ben = await desk.agent("ben", [QUEUE])
        talking: list[CallerLeg] = []
        for n in range(2):
            call = await call_and_press(callers, f"+3876199930{n}", "0")
            await wait_connected(desk.server, call)
            talking.append(call)
        agent_of = {c.id: (await row_of(server, c)).agent_id for c in talking}  # type: ignore[union-attr]
        assert sorted(agent_of.values()) == sorted([ana, ben])
        queued: list[CallerLeg] = []
        for n in range(2):
            call = await call_and_press(callers, f"+3876199931{n}", "0")
            await wait_row(server, call, lambda r: r.queued_at is not None, "never queued")
            queued.append(call)
        in_ivr: list[CallerLeg] = []
        for n in range(2):
            call = await callers.place(caller_id=f'"Node {n}" <+3876199932{n}>')
            await wait_row(server, call, lambda r: r.answered_at is not None, "never answered")
            in_ivr.append(call)
        everyone = talking + queued + in_ivr

        # The owner dies (SIGKILL: no release); the standby takes the node after its lease.
        killed = time.monotonic()
        server.proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(server.proc.wait, 20)
        # A caller while nobody owns the node gets the dialplan's last word (the apology),
        # and hangs up: only Asterisk's CDR file tells of them, written before the takeover.
        gap = await callers.place(caller_id=f'"Gap" <{GAP_CALLER}>')
        await gap.wait_for("StasisStart", timeout=10)  # answered: the apology begins
        await gap.hangup()
        await gap.wait_for("StasisEnd", timeout=10)
        assert standby.proc.poll() is None and not (await standby.status())[1].get("ari", {}).get(
            "connected"
        ), "the gap's caller must be gone before the takeover"
        ready = await standby.wait_ready(timeout=30)
        took = time.monotonic() - killed
        assert took <= 15, f"the node was taken over in {took:.1f} s"
        assert ready["calls_adopted"] == 6 and ready["calls_in_progress"] == 6, ready
        assert ready["cluster"]["role"] == "owner" and "standby" not in ready
        assert owners(ready, node) == [second]
        desk.server = standby  # the desks' load balancer sends them to the new owner

        for call in everyone:
            assert (await callers.ari.get_channel(call.id))["state"] == "Up"
        for call in talking:
            names = await bridged_with(callers, call)
            assert len(names) == 2 and any(agent_of[call.id] in n for n in names), names
        await wait_agents(desk, {ana: "on_call", ben: "on_call"})

        # The new owner reads the node's CDR from where the owner stopped: that caller too.
        async def gap_recorded() -> Call | None:
            async with standby.db.sessions() as session:
                return await session.scalar(select(Call).where(Call.caller_number == GAP_CALLER))

        gap_row = await wait_until(gap_recorded, timeout=30, message="the gap's caller recorded")
        assert (gap_row.handler, gap_row.node, gap_row.outcome) == ("pbx", node, "unserved")

        # The IVR goes on under the new owner; the queue kept its order.
        for call in in_ivr:
            await call.dtmf("0")
        for call in in_ivr:
            await wait_row(server, call, lambda r: r.queued_at is not None, "IVR lost")
        await talking[0].hangup()
        head = await wait_connected(standby, queued[0])
        assert head.agent_id == agent_of[talking[0].id]
        for call in [*queued[1:], *in_ivr]:
            await call.hangup()
        for call in [talking[1], queued[0]]:
            await call.hangup()
        rows = {c.id: await standby.wait_closed(c.far_end) for c in everyone}
        for call in everyone:
            row = rows[call.id]
            assert await closed_count(standby, row.id) == 1
            assert (await standby.event_kinds(row.id)).count("adopted") == 1
        assert {rows[c.id].outcome for c in [*talking, queued[0]]} == {"answered"}
        assert {rows[c.id].outcome for c in [*queued[1:], *in_ivr]} == {"abandoned_in_queue"}
        await wait_agents(desk, {ana: "available", ben: "available"})
    finally:
        if standby is not None:
            standby.stop()  # releases the node
        desk.server = server
        server.env.clear()
        server.env.update(before)
        if server.proc.poll() is None:
            server.proc.send_signal(signal.SIGTERM)
            await asyncio.to_thread(server.proc.wait, 20)
        server.spawn()
        await server.wait_ready()
