"""Info line under load: N concurrent callers through the IVR into agents, on the local
Asterisk, against a real `centrala serve`; then the same callers through a dialplan-only
baseline (Asterisk alone answers, plays the same first prompt, bridges to an always-free
agent), and the ratios.

    python bench/infoline_load.py --callers 50 --agents 20 --talk 2
        [--ramp 0] [--mode per_call|nailed] [--database-url URL] [--timeout 600]
        [--no-baseline] [--baseline-only]

Each caller is a Local channel `Local/0800100200@from-trunk` (baseline: `@bench-baseline`)
whose ;1 half sits in this script's Stasis app; the script subscribes the app to the ;2 half
(the one that runs the info line). The caller waits for the first prompt, presses 0 (an
operator; the callers' numbers are unknown, so the call routes to queue new_clients), waits
to be bridged to an agent, talks --talk seconds and hangs up.

Figures (all latencies from Asterisk's own event timestamps, so a busy benchmark process
does not inflate them):
  first prompt   ;2's creation -> PlaybackStarted on ;2 (baseline: ChannelDialplan entering
                 Background on ;2)
  key->connected pressing 0 (this process' clock) -> ChannelEnteredBridge of ;2, for calls
                 taken by an agent who had been idle since the start (no queueing)
  agent free     serve's JSON log: an agent's `agent_free` -> that agent's next
                 `agent_connected`, while callers were waiting; also from the caller's
                 hang-up request (this process) to that next `agent_connected`
  CPU per call   user+system CPU delta of `centrala serve` and of Asterisk over the run,
                 divided by completed calls

Needs root (it runs `centrala pbx up` with CENTRALA_PBX_EXTRA_CONFIG_DIR=tests/asterisk).
Leaves the PBX running. Do not run while the integration tests run (they own the PBX, and
their `centrala serve` would register the same Stasis app).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import re
import resource
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import aiohttp
import psutil
import yaml

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from ari_app.ami import AMIClient, AMIError, Message  # noqa: E402
from ari_app.ari import ARIClient, ARIError, Event  # noqa: E402
from centrala.logs import configure_logging  # noqa: E402
from centrala.settings import Settings  # noqa: E402

APP = "centrala-bench-load"
INFO_NUMBER = "0800100200"
EXTRA_CONFIG = REPO / "tests" / "asterisk"
FLOW_FILE = REPO / "dialplan" / "infoline.yaml"
PROMPT_APPS = {"background", "playback"}
# Dialplan Answer() (and Background's own answer) waits up to 500 ms for the caller's first
# audio frame; a Local-channel caller sends none, a SIP caller's RTP would end it at once.
# ARI's answer does not wait. The baseline's first prompt is reported raw and without it.
ANSWER_MEDIA_WAIT = 0.5


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def ari_ts(value: str | None) -> float | None:
    """ARI timestamps look like 2026-11-23T16:40:00.123+0000 (Asterisk's wall clock)."""
    if not value:
        return None
    try:
        return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z").timestamp()
    except ValueError:
        return None


def log_ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    s = sorted(values)
    # nearest rank
    k = max(0, min(len(s) - 1, math.ceil(q * len(s)) - 1))
    return s[k]


def ms(v: float | None) -> str:
    return "   n/a" if v is None else f"{v * 1000:6.0f}"


# --------------------------------------------------------------------------- the PBX


def centrala_cli(*args: str, timeout: float = 300) -> str:
    env = {**os.environ, "CENTRALA_PBX_EXTRA_CONFIG_DIR": str(EXTRA_CONFIG)}
    proc = subprocess.run(
        [sys.executable, "-m", "centrala.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        raise SystemExit(f"centrala {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def pbx_status() -> dict[str, Any]:
    env = {**os.environ, "CENTRALA_PBX_EXTRA_CONFIG_DIR": str(EXTRA_CONFIG)}
    proc = subprocess.run(
        [sys.executable, "-m", "centrala.cli", "pbx", "status"],
        capture_output=True,
        text=True,
        env=env,
        cwd=REPO,
        timeout=30,
        check=False,
    )
    try:
        return dict(json.loads(proc.stdout.strip().splitlines()[-1]))
    except (ValueError, IndexError):
        return {"running": False, "pid": None}


def ensure_pbx(settings: Settings) -> int:
    """`centrala pbx up` with the test contexts; make sure the baseline context is loaded."""
    status = json.loads(centrala_cli("pbx", "up").strip().splitlines()[-1])
    if not status.get("ari"):
        raise SystemExit(f"the PBX did not come up: {status}")
    conf = settings.pbx_root / "rootfs" / "etc" / "asterisk" / "extensions.conf"
    text = conf.read_text()
    if not re.search(r'^#(try)?include\s+"?extensions_bench\.conf', text, re.M):
        # Until asterisk-docker/asterisk/extensions.conf includes it itself.
        conf.write_text(text.rstrip("\n") + '\n#tryinclude "extensions_bench.conf"\n')
        centrala_cli("pbx", "cli", "dialplan reload")
    shown = centrala_cli("pbx", "cli", f"dialplan show {INFO_NUMBER}@bench-baseline")
    if "Background" not in shown:
        raise SystemExit(f"context bench-baseline not loaded:\n{shown}")
    return int(status["pid"])


def _net_namespace(pid: int | str) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/net")
    except OSError:
        return None


def foreign_serves(own: int | None = None) -> list[int]:
    """`centrala serve` processes in this network namespace (one in another namespace has
    its own ports and its own Asterisk, and does not disturb this one)."""
    here = _net_namespace("self")
    found = []
    for p in psutil.process_iter(["pid", "cmdline"]):
        cmd = " ".join(p.info.get("cmdline") or [])
        serving = re.search(r"centrala(\.cli)?\s+serve\b", cmd)
        if p.info["pid"] != own and serving and _net_namespace(p.info["pid"]) == here:
            found.append(p.info["pid"])
    return found


def cpu_seconds(pid: int) -> float:
    """User+system CPU of a process; NaN once it is gone (e.g. someone restarted the PBX)."""
    try:
        t = psutil.Process(pid).cpu_times()
    except psutil.NoSuchProcess:
        return math.nan
    return float(t.user + t.system)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


# --------------------------------------------------------------------------- centrala serve


class Serve:
    def __init__(
        self, workdir: Path, database_url: str, extra_env: dict[str, str] | None = None
    ) -> None:
        self.workdir = workdir
        self.database_url = database_url
        self.extra_env = extra_env or {}
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "serve.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.headers: dict[str, str] = {}

    def start(self) -> None:
        env = {
            **os.environ,
            "CENTRALA_DATABASE_URL": self.database_url,
            "CENTRALA_DATA_DIR": str(self.workdir),
            "CENTRALA_WEB_HOST": "127.0.0.1",
            "CENTRALA_WEB_PORT": str(self.port),
            "CENTRALA_LOG_FORMAT": "json",
            "CENTRALA_LOG_LEVEL": "INFO",
            **self.extra_env,
        }
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "centrala.cli", "serve"],
                env=env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
            )

    async def wait_ready(self, timeout: float = 60) -> None:  # noqa: ASYNC109
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        last: Any = None
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                if self.proc.poll() is not None:
                    raise SystemExit(f"centrala serve exited:\n{self.log_path.read_text()[-3000:]}")
                try:
                    async with http.get(
                        self.url + "/status", timeout=aiohttp.ClientTimeout(total=3)
                    ) as resp:
                        body = await resp.json()
                        last = (resp.status, body)
                        if resp.status == 200 and body["ari"]["connects"] >= 1:
                            break
                except (TimeoutError, aiohttp.ClientError, ValueError, KeyError) as exc:
                    last = exc
                await asyncio.sleep(0.1)
            else:
                raise SystemExit(f"centrala serve not ready: {last}")
        token = (self.workdir / "api-token").read_text().strip()
        self.headers = {"Authorization": f"Bearer {token}"}

    async def api(self, method: str, path: str, body: dict[str, Any] | None = None) -> Any:
        async with (
            aiohttp.ClientSession() as http,
            http.request(method, self.url + path, json=body, headers=self.headers) as resp,
        ):
            data = await resp.json()
            if resp.status != 200:
                raise RuntimeError(f"{method} {path}: {resp.status} {data}")
            return data

    def stop(self) -> int | None:
        if self.proc is None or self.proc.poll() is not None:
            return self.proc.returncode if self.proc else None
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(timeout=5)

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log_path.read_text(errors="replace").splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                lines.append({"event": "<non-json>", "level": "error", "text": line[:300]})
                continue
            if isinstance(item, dict):
                lines.append(item)
        return lines


def bench_flow() -> Any:
    from dialplan.model import Flow

    data = yaml.safe_load(FLOW_FILE.read_text())
    for queue in data["queues"].values():
        queue["calendar"] = "always"
        queue["announce_every_seconds"] = 0
        queue["wrap_up_seconds"] = 0
        queue["max_wait_seconds"] = 600
    return Flow.model_validate(data)


async def setup_desk(
    serve: Serve, n_agents: int, tag: str, mode: str, flow: Any = None
) -> tuple[list[str], Any]:
    """Apply the bench flow (or ``flow``), create the agents in queue new_clients, log them
    in."""
    from core.enums import AgentRole
    from models.db import create_engine, session_factory
    from models.flows import apply_flow
    from models.tables import Agent, Queue, QueueMember

    engine = create_engine(serve.database_url)
    sessions = session_factory(engine)
    await apply_flow(sessions, flow if flow is not None else bench_flow())
    agents = [f"bench-{tag}-a{i:03d}" for i in range(n_agents)]
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
                    memberships=[QueueMember(queue_id="new_clients")],
                )
            )
        await session.commit()
    for agent_id in agents:
        await serve.api("POST", f"/api/agents/{agent_id}/login", {"mode": mode})
    # Nailed agents are logged in once their phone answered; wait until all are.
    deadline = time.monotonic() + 30
    while True:
        snap = await serve.api("GET", "/api/acd")
        states = {a: (snap.get("agents", {}).get(a) or {}).get("status") for a in agents}
        if all(s not in (None, "logged_out") for s in states.values()):
            break
        if time.monotonic() > deadline:
            raise SystemExit(f"agents not logged in: {Counter(states.values())}")
        await asyncio.sleep(0.2)
    return agents, (engine, sessions)


async def teardown_desk(serve: Serve, agents: list[str]) -> None:
    deadline = time.monotonic() + 15
    for agent_id in agents:
        while True:
            try:
                await serve.api("POST", f"/api/agents/{agent_id}/logout")
                break
            except (RuntimeError, aiohttp.ClientError) as exc:
                if time.monotonic() > deadline:
                    log(f"logout {agent_id} failed: {exc}")
                    break
                await asyncio.sleep(0.1)


# --------------------------------------------------------------------------- callers


class BenchARI(ARIClient):
    """Our ARIClient with a bounded HTTP connection pool: Asterisk's HTTP server takes 100
    sessions by default (http.conf sessionlimit), and `centrala serve` needs its share."""

    def __init__(self, *args: Any, connections: int = 20, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._connections = connections

    async def start(self) -> None:
        self._session = aiohttp.ClientSession(
            headers=self._headers,
            timeout=self._timeout,
            connector=aiohttp.TCPConnector(limit=self._connections),
        )
        self._runner = asyncio.create_task(self._run(), name="ari-events")


@dataclass
class Leg:
    idx: int
    id: str
    number: str
    created: float | None = None  # Asterisk clock
    prompt: float | None = None  # Asterisk clock
    answer_app: float | None = None  # baseline: Answer() started (Asterisk clock)
    key_wall: float | None = None  # our clock (same machine)
    connected: float | None = None  # Asterisk clock (ARI) or our receipt time (AMI)
    connected_via: str = ""
    hangup_wall: float | None = None
    stage: str = "not started"
    error: str | None = None
    completed: bool = False
    kinds: Counter[str] = field(default_factory=Counter)
    stasis: asyncio.Event = field(default_factory=asyncio.Event)
    prompted: asyncio.Event = field(default_factory=asyncio.Event)
    bridged: asyncio.Event = field(default_factory=asyncio.Event)
    destroyed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def far(self) -> str:
        return f"{self.id};2"


class Callers:
    """The callers' legs and their events: ARI (the ;1 leg in our app, the ;2 leg by
    subscription) and AMI's BridgeEnter (ARI does not send ChannelEnteredBridge to an app
    that is only subscribed to the channel, not to the bridge)."""

    def __init__(self, ari: ARIClient, ami: AMIClient) -> None:
        self.ari = ari
        self.legs: dict[str, Leg] = {}
        self.unknown_events: Counter[str] = Counter()
        ari.on_event(self.on_event)
        ami.on_event("BridgeEnter", self.on_bridge_enter)

    def on_bridge_enter(self, msg: Message) -> None:
        uid = msg.get("Uniqueid", "")
        leg = self.legs.get(uid.removesuffix(";2")) if uid.endswith(";2") else None
        if leg is not None and leg.connected is None:
            leg.connected = time.time()
            leg.connected_via = "ami"
            leg.kinds["far:AMI BridgeEnter"] += 1
            leg.bridged.set()

    async def on_event(self, event: Event) -> None:
        kind = str(event.get("type"))
        channel = event.get("channel") or {}
        cid = str(channel.get("id", ""))
        if not cid and "playback" in event:
            cid = str(event["playback"].get("target_uri", "")).removeprefix("channel:")
        leg = self.legs.get(cid.removesuffix(";2"))
        if leg is None:
            self.unknown_events[kind] += 1
            return
        far = cid.endswith(";2")
        leg.kinds[("far:" if far else "near:") + kind] += 1
        at = ari_ts(event.get("timestamp"))
        if not far:
            if kind == "StasisStart":
                leg.stasis.set()
            elif kind == "ChannelDestroyed":
                leg.destroyed.set()
            return
        app_name = str(
            event.get("dialplan_app") or (channel.get("dialplan") or {}).get("app_name") or ""
        ).lower()
        if kind == "ChannelDialplan" and app_name == "answer" and leg.answer_app is None:
            leg.answer_app = at
        if kind == "PlaybackStarted" or (kind == "ChannelDialplan" and app_name in PROMPT_APPS):
            if leg.prompt is None:
                leg.prompt = at or time.time()
                leg.prompted.set()
        elif kind == "ChannelEnteredBridge":
            if leg.connected is None:
                leg.connected = at or time.time()
                leg.connected_via = "ari"
                leg.bridged.set()
        elif kind == "ChannelDestroyed":
            leg.destroyed.set()

    async def call(
        self,
        leg: Leg,
        context: str,
        delay: float,
        talk: float,
        connect_timeout: float,
    ) -> None:
        await asyncio.sleep(delay)
        self.legs[leg.id] = leg
        try:
            leg.stage = "originate"
            resp = await self.ari.originate(
                f"Local/{INFO_NUMBER}@{context}",
                channel_id=leg.id,
                app=APP,
                caller_id=f'"Bench caller" <{leg.number}>',
                dial_timeout=60,
            )
            leg.created = ari_ts(resp.get("creationtime")) or time.time()
            leg.stage = "subscribe"
            await self.ari.subscribe(APP, f"channel:{leg.far}")
            leg.stage = "StasisStart"
            await asyncio.wait_for(leg.stasis.wait(), 60)
            leg.stage = "first prompt"
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(leg.prompted.wait(), 30)
            leg.stage = "press 0"
            leg.key_wall = time.time()
            await self.ari.send_dtmf(leg.id, "0")
            leg.stage = "connected"
            await asyncio.wait_for(leg.bridged.wait(), connect_timeout)
            leg.stage = "talk"
            await asyncio.sleep(talk)
            leg.stage = "hangup"
            leg.hangup_wall = time.time()
            await self.ari.hangup(leg.id)
            leg.stage = "ChannelDestroyed"
            await asyncio.wait_for(leg.destroyed.wait(), 30)
            leg.completed = True
            leg.stage = "done"
        except TimeoutError:
            leg.error = f"timeout waiting for {leg.stage}"
        except ARIError as exc:
            leg.error = f"{leg.stage}: {type(exc).__name__} {exc}"
        finally:
            if not leg.destroyed.is_set():
                with contextlib.suppress(ARIError):
                    await self.ari.hangup(leg.id)


async def run_callers(
    callers: Callers,
    *,
    context: str,
    n: int,
    ramp: float,
    talk: float,
    tag: str,
    connect_timeout: float,
) -> tuple[list[Leg], float, float]:
    callers.legs.clear()
    callers.unknown_events.clear()
    legs = [
        Leg(i, f"bench-{tag}-c{i:04d}", f"+3876199{(hash(tag) + i) % 100000:05d}") for i in range(n)
    ]
    t0 = time.time()
    await asyncio.gather(
        *(
            callers.call(leg, context, ramp * i / max(1, n), talk, connect_timeout)
            for i, leg in enumerate(legs)
        )
    )
    t1 = time.time()
    callers.unknown_events.pop("Dial", None)  # Dial events name caller/peer, not channel
    if callers.unknown_events:
        log(f"events for channels not ours: {dict(callers.unknown_events)}")
    kinds: Counter[str] = Counter()
    for leg in legs:
        kinds.update(leg.kinds)
    log(f"events seen on the callers' legs: {dict(sorted(kinds.items()))}")
    via = Counter(leg.connected_via for leg in legs if leg.connected_via)
    log(f"connected detected via: {dict(via)}")
    return legs, t0, t1


async def hang_up_leftovers(ari: ARIClient, tag: str) -> int:
    n = 0
    with contextlib.suppress(ARIError):
        for ch in await ari.channels():
            if tag in ch["id"] or tag in ch.get("name", ""):
                with contextlib.suppress(ARIError):
                    await ari.hangup(ch["id"])
                    n += 1
    return n


# --------------------------------------------------------------------------- figures


def caller_figures(legs: list[Leg]) -> dict[str, Any]:
    prompt = [leg.prompt - leg.created for leg in legs if leg.prompt and leg.created]
    errors = Counter((leg.error or "").split(":")[0] for leg in legs if leg.error)
    adjusted = [
        leg.prompt
        - leg.created
        - (min(ANSWER_MEDIA_WAIT, leg.prompt - leg.answer_app) if leg.answer_app else 0.0)
        for leg in legs
        if leg.prompt and leg.created
    ]
    return {
        "first_prompt_no_answer_wait_p50_s": pct(adjusted, 0.5),
        "first_prompt_no_answer_wait_p99_s": pct(adjusted, 0.99),
        "attempted": len(legs),
        "completed": sum(leg.completed for leg in legs),
        "no_prompt_seen": sum(1 for leg in legs if leg.prompt is None),
        "first_prompt_p50_s": pct(prompt, 0.5),
        "first_prompt_p99_s": pct(prompt, 0.99),
        "first_prompt_max_s": max(prompt) if prompt else None,
        "errors": dict(errors),
    }


def agent_figures(
    lines: list[dict[str, Any]], legs: list[Leg], agents: list[str]
) -> dict[str, Any]:
    """Agent free -> next caller connected, from serve's log; and key -> connected for calls
    taken by an idle agent (their first call)."""
    by_far = {leg.far: leg for leg in legs}
    seq: dict[str, list[tuple[str, float, str]]] = defaultdict(list)
    for item in lines:
        ev = item.get("event")
        if ev in ("agent_connected", "agent_free") and item.get("agent_id") in agents:
            seq[item["agent_id"]].append(
                (str(ev), log_ts(item["timestamp"]), str(item.get("channel_id", "")))
            )

    def waiting_at(t: float) -> int:
        return sum(
            1
            for leg in legs
            if leg.key_wall is not None
            and leg.key_wall < t
            and (leg.connected is None or leg.connected > t)
            and (leg.hangup_wall is None or leg.hangup_wall > t)
        )

    from_end: list[float] = []
    from_hangup: list[float] = []
    first_key_to_connect: list[float] = []
    negative = 0
    for evs in seq.values():
        connects = [e for e in evs if e[0] == "agent_connected"]
        # `agent_free` is logged the moment the ACD frees the agent (before the record closes)
        ends = [e for e in evs if e[0] == "agent_free"]
        if connects:
            leg = by_far.get(connects[0][2])
            if leg and leg.key_wall and leg.connected:
                first_key_to_connect.append(leg.connected - leg.key_wall)
        for k, end in enumerate(ends):
            if k + 1 >= len(connects):
                continue
            nxt = connects[k + 1]
            prev_leg = by_far.get(connects[k][2])
            free_at = prev_leg.hangup_wall if prev_leg and prev_leg.hangup_wall else end[1]
            if waiting_at(free_at) <= 0:
                continue
            d = nxt[1] - end[1]
            negative += d < 0
            from_end.append(d)
            from_hangup.append(nxt[1] - free_at)
    return {
        "agent_free_pairs": len(from_end),
        "call_ended_to_connected_p50_s": pct(from_end, 0.5),
        "call_ended_to_connected_p99_s": pct(from_end, 0.99),
        "call_ended_after_next_connect": negative,
        "hangup_to_connected_p50_s": pct(from_hangup, 0.5),
        "hangup_to_connected_p99_s": pct(from_hangup, 0.99),
        "idle_agent_key_to_connected_p50_s": pct(first_key_to_connect, 0.5),
        "idle_agent_key_to_connected_p99_s": pct(first_key_to_connect, 0.99),
    }


def key_to_connected(legs: list[Leg]) -> dict[str, Any]:
    d = [leg.connected - leg.key_wall for leg in legs if leg.connected and leg.key_wall]
    return {"key_to_connected_p50_s": pct(d, 0.5), "key_to_connected_p99_s": pct(d, 0.99)}


def log_problems(lines: list[dict[str, Any]]) -> dict[str, int]:
    bad = Counter(
        str(item.get("event"))
        for item in lines
        if item.get("level") in ("warning", "error", "critical", "exception")
    )
    return dict(bad.most_common(12))


async def db_outcomes(sessions: Any, tag: str) -> dict[str, int]:
    from sqlalchemy import func, select

    from models.tables import Call

    async with sessions() as session:
        rows = await session.execute(
            select(Call.outcome, func.count())
            .where(Call.caller_number.like("+3876199%"))
            .group_by(Call.outcome)
        )
        return {str(o): int(c) for o, c in rows}


# --------------------------------------------------------------------------- runs


async def app_run(
    args: argparse.Namespace, callers: Callers, tag: str, pbx_pid: int
) -> dict[str, Any]:
    ari = callers.ari
    work = Path(tempfile.mkdtemp(prefix="centrala-bench-"))
    db_url = args.database_url or f"sqlite+aiosqlite:///{work / 'centrala.db'}"
    serve = Serve(work, db_url)
    log(f"app run: starting centrala serve (log {serve.log_path})")
    serve.start()
    agents: list[str] = []
    engine = sessions = None
    result: dict[str, Any] = {"run": "app", "serve_log": str(serve.log_path)}
    try:
        await serve.wait_ready()
        assert serve.proc is not None
        agents, (engine, sessions) = await setup_desk(serve, args.agents, tag, args.mode)
        log(f"app run: {len(agents)} agents logged in ({args.mode}); {args.callers} callers")
        await asyncio.sleep(0.5)
        serve_cpu0, ast_cpu0 = cpu_seconds(serve.proc.pid), cpu_seconds(pbx_pid)
        self0 = resource.getrusage(resource.RUSAGE_SELF)
        connect_timeout = max(60.0, args.callers / max(1, args.agents) * (args.talk + 2) * 2)
        legs, t0, t1 = await run_callers(
            callers,
            context="from-trunk",
            n=args.callers,
            ramp=args.ramp,
            talk=args.talk,
            tag=tag,
            connect_timeout=min(connect_timeout, 580),
        )
        serve_cpu = cpu_seconds(serve.proc.pid) - serve_cpu0
        ast_cpu = cpu_seconds(pbx_pid) - ast_cpu0
        self1 = resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.sleep(0.5)  # the last call_ended lines
        lines = serve.log_lines()
        done = sum(leg.completed for leg in legs)
        result |= caller_figures(legs)
        result |= key_to_connected(legs)
        result |= agent_figures(lines, legs, agents)
        result |= {
            "wall_s": t1 - t0,
            "serve_cpu_s": serve_cpu,
            "asterisk_cpu_s": ast_cpu,
            "serve_cpu_per_call_ms": serve_cpu / done * 1000 if done else None,
            "asterisk_cpu_per_call_ms": ast_cpu / done * 1000 if done else None,
            "bench_cpu_s": (self1.ru_utime - self0.ru_utime) + (self1.ru_stime - self0.ru_stime),
            "serve_log_problems": log_problems(lines),
            "db_outcomes": await db_outcomes(sessions, tag),
        }
        result["_legs"] = legs
    finally:
        left = await hang_up_leftovers(ari, tag)
        if left:
            log(f"app run: hung up {left} leftover channels")
        if serve.proc is not None and serve.proc.poll() is None and serve.headers:
            await teardown_desk(serve, agents)
        code = serve.stop()
        result["serve_exit"] = code
        if engine is not None:
            await engine.dispose()
        await asyncio.sleep(0.5)
        left = await hang_up_leftovers(ari, tag)
        if left:
            log(f"app run: hung up {left} leftover channels after serve stopped")
    return result


async def baseline_run(
    args: argparse.Namespace, callers: Callers, tag: str, pbx_pid: int
) -> dict[str, Any]:
    ari = callers.ari
    log(f"baseline run: {args.callers} callers into bench-baseline")
    result: dict[str, Any] = {"run": "baseline"}
    try:
        ast_cpu0 = cpu_seconds(pbx_pid)
        self0 = resource.getrusage(resource.RUSAGE_SELF)
        legs, t0, t1 = await run_callers(
            callers,
            context="bench-baseline",
            n=args.callers,
            ramp=args.ramp,
            talk=args.talk,
            tag=tag,
            connect_timeout=60,
        )
        ast_cpu = cpu_seconds(pbx_pid) - ast_cpu0
        self1 = resource.getrusage(resource.RUSAGE_SELF)
        done = sum(leg.completed for leg in legs)
        result |= caller_figures(legs)
        result |= key_to_connected(legs)
        result |= {
            "wall_s": t1 - t0,
            "asterisk_cpu_s": ast_cpu,
            "asterisk_cpu_per_call_ms": ast_cpu / done * 1000 if done else None,
            "bench_cpu_s": (self1.ru_utime - self0.ru_utime) + (self1.ru_stime - self0.ru_stime),
        }
        result["_legs"] = legs
    finally:
        left = await hang_up_leftovers(ari, tag)
        if left:
            log(f"baseline run: hung up {left} leftover channels")
    return result


def ratio(a: float | None, b: float | None) -> float | None:
    return a / b if a is not None and b else None


def report(
    args: argparse.Namespace, app: dict[str, Any] | None, base: dict[str, Any] | None
) -> None:
    def fmt(v: Any, scale: float = 1000, unit: str = "ms") -> str:
        return "n/a" if v is None else f"{v * scale:.1f} {unit}"

    out = [
        f"infoline_load: callers={args.callers} agents={args.agents} talk={args.talk}s "
        f"ramp={args.ramp}s mode={args.mode}"
    ]
    for r in (app, base):
        if r is None:
            continue
        out.append(f"-- {r['run']} --")
        out.append(
            f"  completed               {r['completed']}/{r['attempted']}"
            f" ({r['completed'] / max(1, r['attempted']):.1%}) in {r['wall_s']:.1f}s wall"
            + (f"; errors {r['errors']}" if r["errors"] else "")
        )
        out.append(
            f"  first prompt            p50 {fmt(r['first_prompt_p50_s'])}  "
            f"p99 {fmt(r['first_prompt_p99_s'])}  max {fmt(r['first_prompt_max_s'])}"
            + (f"  (no prompt seen: {r['no_prompt_seen']})" if r["no_prompt_seen"] else "")
        )
        if r["run"] == "baseline":
            out.append(
                f"  first prompt w/o Answer's 500 ms media wait  "
                f"p50 {fmt(r['first_prompt_no_answer_wait_p50_s'])}  "
                f"p99 {fmt(r['first_prompt_no_answer_wait_p99_s'])}"
            )
        out.append(
            f"  key 0 -> connected      p50 {fmt(r['key_to_connected_p50_s'])}  "
            f"p99 {fmt(r['key_to_connected_p99_s'])}"
            + ("  (includes queueing)" if r["run"] == "app" else "")
        )
        if r["run"] == "app":
            out.append(
                f"  idle agent: key->conn   p50 {fmt(r['idle_agent_key_to_connected_p50_s'])}  "
                f"p99 {fmt(r['idle_agent_key_to_connected_p99_s'])}"
            )
            out.append(
                f"  agent free -> connected p50 {fmt(r['call_ended_to_connected_p50_s'])}  "
                f"p99 {fmt(r['call_ended_to_connected_p99_s'])}  (log agent_free -> "
                f"agent_connected, {r['agent_free_pairs']} pairs, "
                f"{r['call_ended_after_next_connect']} negative)"
            )
            out.append(
                f"  caller hangup -> next   p50 {fmt(r['hangup_to_connected_p50_s'])}  "
                f"p99 {fmt(r['hangup_to_connected_p99_s'])}  (hang-up request -> agent_connected)"
            )
            out.append(
                f"  CPU per call            serve {fmt(r['serve_cpu_per_call_ms'], 1)}  "
                f"asterisk {fmt(r['asterisk_cpu_per_call_ms'], 1)}  "
                f"(totals {r['serve_cpu_s']:.2f}s / {r['asterisk_cpu_s']:.2f}s; "
                f"bench itself {r['bench_cpu_s']:.2f}s)"
            )
            out.append(f"  call outcomes (db)      {r['db_outcomes']}")
            if r["serve_log_problems"]:
                out.append(f"  serve log warnings      {r['serve_log_problems']}")
        else:
            out.append(
                f"  CPU per call            asterisk {fmt(r['asterisk_cpu_per_call_ms'], 1)}  "
                f"(total {r['asterisk_cpu_s']:.2f}s; bench itself {r['bench_cpu_s']:.2f}s)"
            )
    ratios: dict[str, float | None] = {}
    if app and base:
        ratios = {
            "first_prompt_p50": ratio(
                app["first_prompt_p50_s"], base["first_prompt_no_answer_wait_p50_s"]
            ),
            "first_prompt_p99": ratio(
                app["first_prompt_p99_s"], base["first_prompt_no_answer_wait_p99_s"]
            ),
            "first_prompt_p50_vs_raw_baseline": ratio(
                app["first_prompt_p50_s"], base["first_prompt_p50_s"]
            ),
            "cpu_per_call": ratio(
                (app["serve_cpu_per_call_ms"] or 0) + (app["asterisk_cpu_per_call_ms"] or 0)
                if app["asterisk_cpu_per_call_ms"] is not None
                else None,
                base["asterisk_cpu_per_call_ms"],
            ),
            "asterisk_cpu_per_call": ratio(
                app["asterisk_cpu_per_call_ms"], base["asterisk_cpu_per_call_ms"]
            ),
        }
        f = {k: ("n/a" if v is None else f"{v:.2f}x") for k, v in ratios.items()}
        out.append("-- app / baseline --")
        out.append(
            f"  first prompt p50 {f['first_prompt_p50']}  p99 {f['first_prompt_p99']} "
            f"(vs baseline w/o Answer wait; vs raw p50 {f['first_prompt_p50_vs_raw_baseline']});  "
            f"CPU per call (serve+asterisk vs asterisk alone) {f['cpu_per_call']}  "
            f"(asterisk only {f['asterisk_cpu_per_call']})"
        )
    for r in (app, base):
        if r is not None and args.carries_check:
            ok = r["completed"] >= 0.99 * r["attempted"] and (r["first_prompt_p99_s"] or 99) < 1.0
            out.append(f"  {r['run']}: carries N={args.callers}: {'yes' if ok else 'NO'}")
    out.append("note: the local PBX is left running (`centrala pbx down` stops it)")
    print("\n".join(out), flush=True)
    strip = {k: v for k, v in (app or {}).items() if not k.startswith("_")}
    strip_b = {k: v for k, v in (base or {}).items() if not k.startswith("_")}
    print(
        "JSON "
        + json.dumps(
            {
                "callers": args.callers,
                "agents": args.agents,
                "talk": args.talk,
                "ramp": args.ramp,
                "mode": args.mode,
                "app": strip or None,
                "baseline": strip_b or None,
                "ratios": ratios,
            },
            default=str,
        ),
        flush=True,
    )


async def main_async(args: argparse.Namespace) -> None:
    configure_logging("console", "WARNING")
    settings = Settings()
    log("pbx up (with tests/asterisk contexts)")
    pbx_pid = ensure_pbx(settings)
    others = foreign_serves()
    if others and not args.force:
        raise SystemExit(
            f"another `centrala serve` is running (pids {others}); it would share the Stasis "
            "app and the PBX. Retry later, or --force."
        )
    ari = BenchARI(settings.ari_url, settings.ari_user, settings.ari_password, [APP])
    await ari.start()
    await ari.wait_connected(10)
    ami = AMIClient(settings.ami_host, settings.ami_port, settings.ami_user, settings.ami_secret)
    await ami.start()
    await ami.wait_connected(10)
    with contextlib.suppress(AMIError):
        # Only what we use: less work for Asterisk on our account.
        await ami.action("Filter", {"Operation": "Add", "Filter": "Event: BridgeEnter"})
    callers = Callers(ari, ami)
    foreign = [c["name"] for c in await ari.channels()]
    if foreign:
        log(f"warning: {len(foreign)} channels already up in the PBX (someone else's calls?)")
    tag = uuid.uuid4().hex[:6]
    app = base = None
    try:
        async with asyncio.timeout(args.timeout):
            if not args.baseline_only:
                app = await app_run(args, callers, tag, pbx_pid)
            if not args.no_baseline:
                await asyncio.sleep(1)
                base = await baseline_run(args, callers, tag + "b", pbx_pid)
    except TimeoutError:
        log(f"global timeout ({args.timeout}s) hit; reporting what was measured")
        await hang_up_leftovers(ari, tag)
    finally:
        await ari.stop()
        await ami.stop()
    now_pid = pbx_status().get("pid")
    if now_pid != pbx_pid:
        log(f"warning: Asterisk restarted during the run (pid {pbx_pid} -> {now_pid}): discard")
    report(args, app, base)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--callers", type=int, default=50)
    parser.add_argument("--agents", type=int, default=20)
    parser.add_argument("--talk", type=float, default=2.0, help="seconds connected")
    parser.add_argument("--ramp", type=float, default=0.0, help="spread call starts over S s")
    parser.add_argument("--mode", choices=["per_call", "nailed"], default="per_call")
    parser.add_argument("--database-url", default=None, help="default: a temp SQLite file")
    parser.add_argument("--timeout", type=float, default=600, help="global bound, seconds")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--baseline-only", action="store_true")
    parser.add_argument("--force", action="store_true", help="run despite another serve")
    parser.add_argument(
        "--carries-check", action="store_true", help="print ≥99%% completed and p99 prompt < 1 s"
    )
    args = parser.parse_args()
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
