"""Screen-pop latency with 200 agents connected: from Asterisk's ring or bridge event to the
agent's browser having rendered the caller's record.

    python bench/screenpop_latency.py [--agents 200] [--calls 300] [--concurrency 20]
        [--browser-calls 30] [--busy-agents 20]

Method. A real `centrala serve` (temporary SQLite database) on the local Asterisk, the info
line's flow with every queue open. N agents (default 200) with desktop passwords, all in queue
new_clients, each logged in through the desktop's own login form and made available:
agent 0 in a real headless Chromium page (Debian's /usr/bin/chromium through Playwright),
the others as aiohttp WebSocket clients holding the same session cookie a browser would
(they parse every message as the page does, without rendering). Callers are Local channels
into the info number, held by this script's Stasis app; each presses 0 at once (unknown
number: queue new_clients), so every call is offered to one of the agents (longest idle
first), rung (Local/<agent>@test-agent answers at once) and bridged.

The clock starts at Asterisk's own events, with Asterisk's timestamps: a second ARI
WebSocket of this script subscribed to every event source (subscribeAll) records the
creation of each agent's leg (the ring: the channel that rings the agent's phone,
Local/<agent>@test-agent...;1) and each bridge's entries (the bridge: when the last of the
caller and the agent's leg entered it). A pop is paired with its agent's nearest such event
(an offer's pop may come before Asterisk's ring: serve tells the desk as it makes the
leg). A WebSocket client's latency is its receipt time minus the event's; the browser's
is the time after the record is in the DOM and a frame has been painted
(``requestAnimationFrame`` then a task) minus the event's (everything is on one machine, so
one clock). Serve's share is printed too: the event to when serve sent the pop (its
``sent_at``), the rest being the clients' own lag (199 of them in this one process).
Phase 1: --calls calls, --concurrency at a time, spread over all agents. Phase 2: all
WebSocket agents but --busy-agents pause, and calls go on --concurrency at a time until
the browser has had --browser-calls calls: its samples are taken under the same concurrent
load. Disposition gating is turned off for the run
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

from infoline_load import Serve, ari_ts, bench_flow, centrala_cli, log, pct  # noqa: E402

from ari_app.ari import ARIClient, ARINotFound, Event  # noqa: E402
from centrala.settings import Settings  # noqa: E402
from web.auth import hash_password  # noqa: E402

APP = "centrala-bench-pop"
CLOCK_APP = "centrala-bench-clock"
PAIR_WINDOW = 1.5  # seconds; less than a caller's --hold
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
        self.samples: list[tuple[str, float]] = []  # (stage, wall-clock time handled)
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
                self.samples.append((data["pop"]["stage"], time.time(), data.get("sent_at")))

    async def stop(self) -> None:
        with contextlib.suppress(Exception):
            await self.state("logged_out")
        if self.task:
            self.task.cancel()
        await self.http.close()


class AsteriskClock:
    """Asterisk's ring and bridge moments per agent, from its own event timestamps: a raw ARI
    WebSocket subscribed to every event source, so nothing of serve's is needed."""

    def __init__(self, settings: Settings, agents: list[str]) -> None:
        self.settings = settings
        self.agents = set(agents)
        self.rings: dict[str, list[float]] = {}  # agent -> creation times of its legs
        self.bridges: dict[str, list[float]] = {}  # agent -> times its bridge became whole
        self._entered: dict[str, dict[str, float]] = {}  # bridge -> channel -> entered
        self._agent_of_bridge: dict[str, str] = {}
        token = aiohttp.BasicAuth(settings.ari_user, settings.ari_password).encode()
        self.http = aiohttp.ClientSession(headers={"Authorization": token})
        self.task: asyncio.Task[None] | None = None
        self.ready = asyncio.Event()

    def _agent(self, name: str) -> str | None:
        m = re.match(r"Local/([^@]+)@test-agent-[0-9a-f]+;1$", name)
        return m.group(1) if m and m.group(1) in self.agents else None

    async def start(self) -> None:
        url = self.settings.ari_url.replace("http", "ws", 1) + "/events"
        ws = await self.http.ws_connect(
            url, params={"app": CLOCK_APP, "subscribeAll": "true"}, heartbeat=10
        )
        self.task = asyncio.create_task(self._listen(ws))

    async def _listen(self, ws: aiohttp.ClientWebSocketResponse) -> None:
        self.ready.set()
        async for msg in ws:
            if msg.type != aiohttp.WSMsgType.TEXT:
                continue
            self.on_event(msg.json())

    def on_event(self, event: dict[str, object]) -> None:
        kind = event.get("type")
        at = ari_ts(str(event.get("timestamp") or ""))
        channel = event.get("channel")
        if at is None or not isinstance(channel, dict):
            return
        name = str(channel.get("name", ""))
        if kind == "ChannelCreated":
            agent = self._agent(name)
            if agent is not None:
                self.rings.setdefault(agent, []).append(at)
        elif kind == "ChannelEnteredBridge":
            bridge = event.get("bridge")
            if not isinstance(bridge, dict):
                return
            bridge_id = str(bridge.get("id"))
            entered = self._entered.setdefault(bridge_id, {})
            entered[name] = at
            agent = self._agent(name)
            if agent is not None:
                self._agent_of_bridge[bridge_id] = agent
            owner = self._agent_of_bridge.get(bridge_id)
            # Whole when a caller's channel and the agent's leg are both in it.
            if (
                owner is not None
                and len(entered) >= 2
                and any(c.startswith("Local/0800100200@from-trunk") for c in entered)
            ):
                self.bridges.setdefault(owner, []).append(max(entered.values()))
                self._entered[bridge_id] = {}
                self._agent_of_bridge.pop(bridge_id, None)

    def latency(self, agent: str, stage: str, handled_at: float) -> float | None:
        """Seconds from the agent's ring (offered) or bridge (connected) event nearest to
        ``handled_at`` to it (negative: the pop was there before Asterisk's event, as when
        the desk is told of an offer before the leg to the phone is made); None when
        Asterisk showed no such event within ``PAIR_WINDOW`` seconds. An agent's calls are
        seconds apart, so the nearest is its own."""
        times = (self.rings if stage == "offered" else self.bridges).get(agent, [])
        if not times:
            return None
        nearest = min(times, key=lambda t: abs(handled_at - t))
        return handled_at - nearest if abs(handled_at - nearest) <= PAIR_WINDOW else None

    async def stop(self) -> None:
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
    from models.tables import Agent, DeskLanguage, Queue, QueueMember

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
                    # The browser below reads the English desk (its labels and buttons).
                    language=DeskLanguage.EN,
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
    clock = AsteriskClock(settings, [])
    try:
        await serve.wait_ready()
        agents = await create_agents(serve, args.agents, uuid.uuid4().hex[:4])
        clock.agents = set(agents)
        log(f"{len(agents)} agents; logging in 1 browser + {len(agents) - 1} WebSocket clients")
        async with async_playwright() as p:
            browser = await p.chromium.launch(
                executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS
            )
            page = await (
                await browser.new_context(viewport={"width": 1280, "height": 800}, locale="en-GB")
            ).new_page()
            await page.goto(serve.url + "/login")
            await page.get_by_label("Agent id").fill(agents[0])
            await page.get_by_label("Password").fill(PASSWORD)
            await page.get_by_role("button", name="Log in").click()
            await page.get_by_role("button", name="Available").click()
            await page.locator("#state").filter(has_text="available").wait_for()
            ws_agents = [WSAgent(serve.url, a) for a in agents[1:]]
            for start in range(0, len(ws_agents), 20):  # log-ins 20 at a time
                await asyncio.gather(*(a.start() for a in ws_agents[start : start + 20]))
            await clock.start()
            await ari.start()
            await ari.wait_connected(10)
            callers = Callers(ari)

            async def load(stop: asyncio.Event | None, count: int | None) -> None:
                sem = asyncio.Semaphore(args.concurrency)
                placed = 0

                async def one() -> None:
                    async with sem:
                        await callers.call(args.hold)

                tasks: list[asyncio.Task[None]] = []
                while (count is None or placed < count) and not (stop and stop.is_set()):
                    await sem.acquire()  # at most --concurrency callers at once
                    sem.release()
                    tasks.append(asyncio.create_task(one()))
                    placed += 1
                    await asyncio.sleep(0)
                await asyncio.gather(*tasks)

            log(f"phase 1: {args.calls} calls, {args.concurrency} at a time, all agents")
            await load(None, args.calls)
            phase1_browser = len(await page.evaluate("window.__pops"))

            log(
                f"phase 2: all but {args.busy_agents} WebSocket agents pause; calls go on "
                f"{args.concurrency} at a time until the browser has {args.browser_calls}"
            )
            await asyncio.gather(
                *(a.state("paused", "bench") for a in ws_agents[args.busy_agents :])
            )
            enough = asyncio.Event()

            async def watch() -> None:
                while True:
                    pops = await page.evaluate("window.__pops")
                    done = sum(1 for x in pops if x["stage"] == "connected")
                    if done - phase1_browser // 2 >= args.browser_calls:
                        enough.set()
                        return
                    await asyncio.sleep(0.5)

            watcher = asyncio.create_task(watch())
            try:
                await asyncio.wait_for(load(enough, None), args.phase2_limit)
            except TimeoutError:
                log("phase 2 stopped at its time limit")
            watcher.cancel()
            pops = await page.evaluate("window.__pops")
            await page.screenshot(path=str(workdir / "browser.png"))
            await browser.close()

        def lat(agent: str, stage: str, handled: float) -> float | None:
            return clock.latency(agent, stage, handled)

        ws: dict[str, list[float]] = {"offered": [], "connected": []}
        sent: dict[str, list[float]] = {"offered": [], "connected": []}
        unmatched = 0
        for a in ws_agents:
            for stage, handled, sent_at in a.samples:
                v = lat(a.agent_id, stage, handled)
                if v is None:
                    unmatched += 1
                else:
                    ws[stage].append(v)
                    if sent_at is not None:  # serve's own clock: its share of the latency
                        sent[stage].append(v - (handled - float(sent_at)))
        br: dict[str, list[float]] = {"offered": [], "connected": []}
        for x in pops:
            v = lat(agents[0], x["stage"], x["rendered_at"] / 1000)
            if v is None:
                unmatched += 1
            else:
                br[x["stage"]].append(v)
        print(
            f"screen-pop latency, {len(agents)} agents connected (1 Chromium + "
            f"{len(ws_agents)} WebSocket), {args.concurrency} callers at a time; "
            "Asterisk's event (timestamp) -> pop handled by the client"
        )
        print(figures("WebSocket clients, ring", ws["offered"]))
        print(figures("WebSocket clients, bridge", ws["connected"]))
        print(figures("Chromium rendered, ring", br["offered"]))
        print(figures("Chromium rendered, bridge", br["connected"]))
        everything = ws["offered"] + ws["connected"] + br["offered"] + br["connected"]
        print(figures("all pops", everything))
        print(figures("  of which serve: event -> sent, ring", sent["offered"]))
        print(figures("  of which serve: event -> sent, bridge", sent["connected"]))
        early = sum(1 for v in everything if v < 0)
        print(f"pops handled before Asterisk's event (negative latency): {early}")
        print(
            f"(browser pops: {len(pops)}, {phase1_browser} in phase 1; agents that got a "
            f"pop: {sum(1 for a in ws_agents if a.samples) + (1 if pops else 0)}/{len(agents)}; "
            f"pops without an Asterisk event: {unmatched})"
        )
    finally:
        for a in ws_agents:
            await a.stop()
        await ari.stop()
        await clock.stop()
        code = serve.stop()
        log(f"serve stopped ({code}); log in {serve.log_path}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--agents", type=int, default=200)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=20)
    parser.add_argument("--browser-calls", type=int, default=30)
    parser.add_argument(
        "--busy-agents", type=int, default=20, help="WebSocket agents still taking calls in phase 2"
    )
    parser.add_argument("--phase2-limit", type=float, default=600.0, help="seconds")
    parser.add_argument("--hold", type=float, default=2.0, help="seconds each caller stays")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
