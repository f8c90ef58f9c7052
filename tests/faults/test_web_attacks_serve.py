"""Web attacks on the real `centrala serve` and the real Asterisk (issue 10): a slow-loris
flood while calls come in, and a logged-out cookie after serve restarts."""

from __future__ import annotations

import asyncio
import resource
import signal
import uuid
from urllib.parse import urlsplit

import aiohttp
import psutil

from models.tables import Agent, AgentRole
from tests.faults.web_harness import PASSWORD, client, csrf_of_page, login, session_cookie
from tests.integration.conftest import Callers, Server, callers, no_leftovers, pbx, server
from tests.support import wait_until
from web.auth import COOKIE, hash_password

__all__ = ["callers", "no_leftovers", "pbx", "server"]

IDLE_SOCKETS = 1100
WEB_MAX_CONNECTIONS = 500  # the default of CENTRALA_WEB_MAX_CONNECTIONS


async def test_slowloris_flood_on_serve_leaves_calls_answered_and_is_closed(
    server: Server, callers: Callers
) -> None:
    """Measured before: ~1100 idle half-open requests on the web port were never closed and,
    at a 1024 file limit, stopped the info line from answering calls. Now the connection cap
    keeps serve's descriptors bounded, calls and /status are served during the flood, and
    every idle socket is closed at the header deadline (CENTRALA_WEB_HEADER_TIMEOUT, 15 s)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < IDLE_SOCKETS + 200:  # our side needs the sockets; serve must not
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, IDLE_SOCKETS + 400), hard))
    port = urlsplit(server.url).port
    serve = psutil.Process(server.proc.pid)
    fds_before = serve.num_fds()
    idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
    try:
        for _ in range(IDLE_SOCKETS):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /status HTTP/1.1\r\nHost: x\r\n")  # and never the blank line
            idle.append((reader, writer))

        code, _ = await server.status()
        assert code == 200
        assert serve.num_fds() < fds_before + WEB_MAX_CONNECTIONS + 50

        call = await callers.place(caller_id="<+38761888999>")
        await call.wait_for("StasisStart")
        await call.prompt_started("recording_notice")  # answered, and the caller hears it
        await call.hangup()
        row = await server.wait_closed(call.far_end)
        assert row.answered_at is not None

        await wait_until(
            lambda: all(reader.at_eof() for reader, _ in idle),
            timeout=40,
            message="serve closes every idle half-open request",
        )
        assert serve.num_fds() < fds_before + 50
    finally:
        for _, writer in idle:
            writer.close()


async def test_logged_out_cookie_is_refused_after_serve_restarts(server: Server) -> None:
    """Measured before: revocation lived in serve's memory, so a logged-out cookie worked
    again after a restart."""
    agent_id = f"web-{uuid.uuid4().hex[:8]}"
    async with server.db.sessions() as session, session.begin():
        session.add(
            Agent(
                id=agent_id,
                name="Web",
                role=AgentRole.AGENT,
                password_hash=hash_password(PASSWORD),
                active=True,
            )
        )
    async with client(server.url) as http:
        assert (await login(http, agent_id, PASSWORD)).status == 303
        logged_out = {"Cookie": f"{COOKIE}={session_cookie(http)}"}
        csrf = await csrf_of_page(http)
        async with http.post("/logout", data={"csrf": csrf}, allow_redirects=False) as r:
            assert r.status == 303
    async with client(server.url) as http:
        assert (await login(http, agent_id, PASSWORD)).status == 303
        kept = {"Cookie": f"{COOKIE}={session_cookie(http)}"}

    await server.restart(signal.SIGTERM)

    async with aiohttp.ClientSession(server.url) as http:
        async with http.get("/desk/api/me", headers=kept) as r:
            assert r.status == 200 and (await r.json())["agent_id"] == agent_id
        async with http.get("/desk/api/me", headers=logged_out) as r:
            assert r.status == 401
