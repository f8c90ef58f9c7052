"""Screen-pop latency with 50 agents connected: from the ring/bridge event in `centrala serve`
to the agent's browser having rendered the caller's record.

    python bench/screenpop_latency.py [--agents 50] [--calls 100] [--concurrency 10]
        [--browser-calls 20]

Method. A real `centrala serve` (temporary SQLite database) on the local Asterisk, the info
line's flow with every queue open. N agents (default 50) with desktop passwords, all in queue
new_clients, each logged in through the desktop's own login form and made available:
agent 0 in a real headless Chromium page (Debian's /usr/bin/chromium through Playwright),
the others as aiohttp WebSocket clients holding the same session cookie a browser would
(they parse every message as the page does, without rendering). Callers are Local channels
into the info number, held by this script's Stasis app; each presses 0 at once (unknown
number: queue new_clients), so every call is offered to one of the agents (longest idle
first), rung (Local/...@test-agent answers at once) and bridged.

The server stamps each push with the wall-clock time of the event (``event_at``: the
"offered" moment right after the ACD's decision and the call log's "offered" row, when the
phone is about to ring, and the "connected" moment when the caller enters the bridge). A
WebSocket client's latency is its receipt time minus ``event_at``; the browser's is the time
after the record is in the DOM and a frame has been painted (``requestAnimationFrame`` then a
task) minus ``event_at``, read from ``window.__pops`` (everything is on one machine, so one
clock). Phase 1: --calls calls, --concurrency at a time, spread over all agents. Phase 2: the
WebSocket agents pause, and --browser-calls calls one after another all reach the browser,
so its render latency has enough samples. Disposition gating is turned off for the run
(CENTRALA_DISPOSITION_REQUIRED=false) so agents take call after call.

Needs root (it runs `centrala pbx up` with CENTRALA_PBX_EXTRA_CONFIG_DIR=tests/asterisk).
Leaves the PBX running. Do not run while the integration tests or another benchmark run:
they register the same Stasis app.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import re
import sys
import tempfile
import time
import uuid
from pathlib import Path

import aiohttp

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from infoline_load import Serve, bench_flow, centrala_cli, log, pct  # noqa: E402
from web.auth import hash_password  # noqa: E402

from ari_app.ari import ARIClient, ARINotFound, Event  # noqa: E402
from centrala.settings import Settings  # noqa: E402

APP = "centrala-bench-pop"
PASSWORD = "bench-password-1"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


class WSAgent:
    """An agent's desktop without the rendering: log-in form, session cookie, WebSocket."""

    def __init__(self, url: str, agent_id: str) -> None:
        self.url, self.agent_id = url, agent_id
        self.http = aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))
        self.csrf = ""
        self.samples: list[tuple[str, float]] = []  # (stage, seconds)
        self.task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        async with self.http.get(self.url + "/login") as resp:
            html = await resp.text()
        token = re.search(r'name="csrf" value="([^"]+)"', html)
        assert token, "no CSRF token on the login form"
        form = {"csrf": token.group(1), "agent_id": self.agent_id, "password": PASSWORD}
        async with self.http.post(self.url + "/login", data=form) as resp:
            page = await resp.text()
        meta = re.search(r'name="csrf-token" content="([^"]+)"', page)
        assert meta, f"login failed for {self.agent_id}"
        self.csrf = meta.group(1)
        await self.state("available")
        ws = await self.http.ws_connect(self.url.replace("http", "ws") + "/desk/ws")
        self.task = asyncio.create_task(self._listen(ws))

    async def state(self, state: str, reason: str | None = None) -> None:
        async with self.http.post(
            self.url + "/desk/api/state",
            json={"state": state, "reason": reason},
            headers={"X-CSRF-Token": self.csrf},
        ) as resp:
            assert resp.status == 200, await resp.text()

    async def _listen(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            data = msg.json()
            if data.get("type") == "screenpop":
                self.samples.append((data["pop"]["stage"], time.time() - data["event_at"]))

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.state("logged_out")
        if self.task:
            self.task.cancel()
        await self.http.close()


class Callers:
    def __init__(self, ari: ARIClient) -> None:
        self.ari = ari
        self.started: dict[str, asyncio.Event] = {}
        ari.on_event(self.on_event)

    async def on_event(self, event: Event) -> None:
        channel_id = str((event.get("channel") or {}).get("id", ""))
        if event.get("type") == "StasisStart" and channel_id in self.started:
            self.started[channel_id].set()

    async def call(self, hold: float) -> None:
        channel_id = f"pop-{uuid.uuid4().hex[:12]}"
        self.started[channel_id] = asyncio.Event()
        number = f"+3876{uuid.uuid4().int % 10**7:07d}"
        await self.ari.originate(
            "Local/0800100200@from-trunk",
            channel_id=channel_id,
            app=APP,
            caller_id=f'"Bench" <{number}>',
        )
        try:
            await asyncio.wait_for(self.started[channel_id].wait(), 10)
            await self.ari.send_dtmf(channel_id, "0")
            await asyncio.sleep(hold)
        finally:
            with contextlib.suppress(ARINotFound):
                await self.ari.hangup(channel_id)
            self.started.pop(channel_id, None)


async def create_agents(serve: Serve, n: int, tag: str) -> list[str]:
    from core.enums import AgentRole

    from models.db import create_engine, session_factory
    from models.flows import apply_flow
    from models.tables import Agent, Queue, QueueMember

    engine = create_engine(serve.database_url)
    sessions = session_factory(engine)
    await apply_flow(sessions, bench_flow())
    agents = [f"pop-{tag}-a{i:03d}" for i in range(n)]
    hashed = hash_password(PASSWORD)
    async with sessions() as session:
        if await session.get(Queue, "new_clients") is None:
            session.add(Queue(id="new_clients", name="new_clients", settings={}))
        for agent_id in agents:
            session.add(
                Agent(
                    id=agent_id,
                    name=agent_id,
                    role=AgentRole.AGENT,
                    endpoint=f"Local/{agent_id}@test-agent",
                    skills=[],
                    password_hash=hashed,
                    memberships=[QueueMember(queue_id="new_clients")],
                )
            )
        await session.commit()
    await engine.dispose()
    return agents


def figures(name: str, values: list[float]) -> str:
    if not values:
        return f"{name:<34} n=0"
    p50, p99 = pct(values, 0.5), pct(values, 0.99)
    assert p50 is not None and p99 is not None
    return (
        f"{name:<34} n={len(values):<4} p50 {p50 * 1000:7.1f} ms   p99 {p99 * 1000:7.1f} ms"
        f"   max {max(values) * 1000:7.1f} ms"
    )


async def main_async(args: argparse.Namespace) -> None:
    from playwright.async_api import async_playwright

    settings = Settings()
    centrala_cli("pbx", "up")
    workdir = Path(tempfile.mkdtemp(prefix="centrala-pop-"))
    serve = Serve(workdir, f"sqlite+aiosqlite:///{workdir / 'centrala.db'}")
    os.environ["CENTRALA_DISPOSITION_REQUIRED"] = "false"
    serve.start()
    ari = ARIClient(settings.ari_url, settings.ari_user, settings.ari_password, [APP])
    ws_agents: list[WSAgent] = []
    try:
        await serve.wait_ready()
        agents = await create_agents(serve, args.agents, uuid.uuid4().hex[:4])
        log(f"{len(agents)} agents; logging in 1 browser + {len(agents) - 1} WebSocket clients")
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            page = await (
                await browser.new_context(viewport={"width": 1280, "height": 800})
            ).new_page()
            await page.goto(serve.url + "/login")
            await page.get_by_label("Agent id").fill(agents[0])
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Log in").click()
            await page.get_by_role("button", name="Available").click()
            await page.locator("#state").filter(has_text="available").wait_for()
            ws_agents = [WSAgent(serve.url, a) for a in agents[1:]]
            await asyncio.gather(*(a.start() for a in ws_agents))
            await ari.start()
            await ari.wait_connected(10)
            callers = Callers(ari)

            log(f"phase 1: {args.calls} calls, {args.concurrency} at a time, all agents")
            sem = asyncio.Semaphore(args.concurrency)

            async def one() -> None:
                async with sem:
                    await callers.call(args.hold)

            await asyncio.gather(*(one() for _ in range(args.calls)))
            await asyncio.sleep(1)
            phase1_browser = len(await page.evaluate("window.__pops"))

            log(f"phase 2: WebSocket agents pause; {args.browser_calls} calls to the browser")
            await asyncio.gather(*(a.state("paused", "bench") for a in ws_agents))
            for _ in range(args.browser_calls):
                await callers.call(args.hold)
                await asyncio.sleep(0.3)
            await asyncio.sleep(1)
            pops = await page.evaluate("window.__pops")
            await page.screenshot(path=str(workdir / "browser.png"))
            await browser.close()

        ws = [s for a in ws_agents for s in a.samples]
        browser_ring = [
            (x["rendered_at"] - x["event_at"]) / 1000 for x in pops if x["stage"] == "offered"
        ]
        browser_bridge = [
            (x["rendered_at"] - x["event_at"]) / 1000 for x in pops if x["stage"] == "connected"
        ]
        print(
            f"screen-pop latency, {len(agents)} agents connected (1 Chromium + "
            f"{len(ws_agents)} WebSocket), event in serve -> pop handled by the client"
        )
        print(figures("WebSocket clients, ring (offered)", [v for s, v in ws if s == "offered"]))
        print(figures("WebSocket clients, bridge", [v for s, v in ws if s == "connected"]))
        print(figures("Chromium rendered, ring (offered)", browser_ring))
        print(figures("Chromium rendered, bridge", browser_bridge))
        print(
            f"(browser pops in phase 1: {phase1_browser}; agents that got a pop: "
            f"{sum(1 for a in ws_agents if a.samples) + (1 if pops else 0)}/{len(agents)})"
        )
    finally:
        for a in ws_agents:
            await a.stop()
        await ari.stop()
        code = serve.stop()
        log(f"serve stopped ({code}); log in {serve.log_path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=50)
    parser.add_argument("--calls", type=int, default=100)
    parser.add_argument("--concurrency", type=int, default=10)
    parser.add_argument("--browser-calls", type=int, default=20)
    parser.add_argument("--hold", type=float, default=2.0, help="seconds each caller stays")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
