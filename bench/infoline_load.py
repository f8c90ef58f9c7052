"""Info line under load: N callers through the IVR into agents, on the local Asterisk,
against a real `centrala serve`; then the same callers through a dialplan-only baseline doing
the same work (Asterisk alone answers, plays the same first prompt, and on 0 queues the caller
with app_queue for as many agents, each a simulated phone that answers), and the ratios.

    python bench/infoline_load.py --callers 50 --agents 20 --talk 2
        [--ramp 0] [--mode per_call|nailed] [--database-url URL] [--timeout 600]
        [--no-baseline] [--baseline-only]
    python bench/infoline_load.py --capacity [--reps 3] [--duration 10] [--talk 1]
        [--rate-start 8] [--resolution 1.1]

Each caller is a Local channel `Local/0800100200@from-trunk` (baseline: `@bench-baseline`)
whose ;1 half sits in this script's Stasis app, with TALK_DETECT on it: the caller "hears"
the first prompt when audio first reaches them (ChannelTalkingStarted on ;1), the same
event for both runs. The caller then presses 0 (an operator; the callers' numbers are
unknown, so the call routes to queue new_clients / the baseline's queue), waits to be bridged
to an agent, talks --talk seconds and hangs up.

Figures (latencies from Asterisk's own event timestamps where there are any, so a busy
benchmark process does not inflate them):
  first prompt   ;2's creation -> the caller hears audio. Percentiles over ALL callers: one
                 who never heard it (refused, cut, timed out) counts as infinitely late.
                 Also ;2's creation -> Asterisk's own start of the prompt (PlaybackStarted;
                 baseline: ChannelDialplan entering Background), without --capacity.
  key->connected pressing 0 (this process' clock) -> BridgeEnter of ;2 (AMI, receipt time)
  agent free     an agent free again (ours: serve's log `agent_free`; baseline: AMI
                 AgentComplete) -> that agent's next connect, when its caller was already
                 waiting at that moment and not ringing another agent (ours: the call's
                 first `offered` event in the database; baseline: AMI AgentCalled)
  CPU per call   user+system CPU delta of `centrala serve` and of Asterisk over the run,
                 divided by completed calls

--capacity: the calls per second carried with >= 99% of all callers hearing the first prompt
within 1 s, found by search (doubling from --rate-start until a rate fails, then bisecting
until the bounds are within --resolution); each probe puts round(rate * --duration) callers
at that rate through, with ceil(rate * (talk + 1)) agents (or --agents if larger). Ours and
the baseline alternate which goes first in each of --reps repetitions; prints each rate, the
ratio per repetition, and its median and spread.

Needs root (it runs `centrala pbx up` with CENTRALA_PBX_EXTRA_CONFIG_DIR=tests/asterisk, and
loads app_queue and func_talkdetect). Leaves the PBX running. Do not run while the
integration tests run in the same network namespace (they own the PBX, and their `centrala
serve` would register the same Stasis app).
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
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
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
from centrala.prompts import load_flow  # noqa: E402
from centrala.settings import Settings  # noqa: E402
from core.media import prompt_media  # noqa: E402

APP = "centrala-bench-load"
INFO_NUMBER = "0800100200"
EXTRA_CONFIG = REPO / "tests" / "asterisk"
FLOW_FILE = REPO / "dialplan" / "infoline.yaml"
PROMPT_APPS = {"background", "playback"}
BASELINE_QUEUE = "bench-baseline"
HEARD_WITHIN = 1.0  # the capacity criterion: >= 99% of callers hear the first prompt by then
CARRIED_SHARE = 0.99
# Talk detection on the caller's leg: audio above this mean magnitude is the prompt arriving
# (the prompts start with speech; silence and comfort noise stay below it).
TALK_THRESHOLD = "2500,256"


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
    """`centrala pbx up` with the test contexts; make sure the baseline's context and queue,
    and talk detection, are loaded (the shipped modules.conf loads neither app_queue nor
    func_talkdetect)."""
    status = json.loads(centrala_cli("pbx", "up").strip().splitlines()[-1])
    if not status.get("ari"):
        raise SystemExit(f"the PBX did not come up: {status}")
    # The baseline's dialplan plays the first prompt by its plain name; the flow's file is
    # named after its text too (core.media.sound_name): the same sound under both names.
    sounds = settings.pbx_root / "rootfs" / "usr" / "share" / "asterisk" / "sounds"
    first = prompt_media(load_flow(FLOW_FILE), "recording_notice", "bs").removeprefix("sound:")
    shutil.copyfile(sounds / f"{first}.wav", sounds / "centrala" / "bs" / "recording_notice.wav")
    conf = settings.pbx_root / "rootfs" / "etc" / "asterisk" / "extensions.conf"
    text = conf.read_text()
    if not re.search(r'^#(try)?include\s+"?extensions_bench\.conf', text, re.M):
        # Until asterisk-docker/asterisk/extensions.conf includes it itself.
        conf.write_text(text.rstrip("\n") + '\n#tryinclude "extensions_bench.conf"\n')
        centrala_cli("pbx", "cli", "dialplan reload")
    for module in ("app_queue.so", "func_talkdetect.so"):
        if "1 modules loaded" not in centrala_cli("pbx", "cli", f"module show like {module}"):
            centrala_cli("pbx", "cli", f"module load {module}")
    shown = centrala_cli("pbx", "cli", "dialplan show bench-baseline-menu")
    if "Background" not in shown or "Queue" not in shown:
        raise SystemExit(f"context bench-baseline-menu not loaded:\n{shown}")
    shown = centrala_cli("pbx", "cli", f"queue show {BASELINE_QUEUE}")
    if BASELINE_QUEUE not in shown or "No such queue" in shown:
        raise SystemExit(f"queue {BASELINE_QUEUE} not loaded:\n{shown}")
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
    heard: float | None = None  # the prompt's audio reached the caller (Asterisk clock)
    prompt: float | None = None  # Asterisk started the prompt (Asterisk clock)
    key_wall: float | None = None  # our clock (same machine)
    offered: float | None = None  # first offered to an agent (serve's / our clock)
    connected: float | None = None  # our receipt time of AMI BridgeEnter
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


@dataclass
class MemberEvent:
    """The baseline queue's member events (AMI, our receipt time)."""

    kind: str  # AgentCalled | AgentConnect | AgentComplete
    member: str
    caller: str  # the caller's ;2 uniqueid
    at: float


class Callers:
    """The callers' legs and their events: ARI (the ;1 leg in our app, the ;2 leg by
    subscription unless `watch_far` is off) and AMI's BridgeEnter (ARI does not send
    ChannelEnteredBridge to an app that is only subscribed to the channel, not to the
    bridge), plus the baseline queue's AgentCalled / AgentConnect / AgentComplete."""

    def __init__(self, ari: ARIClient, ami: AMIClient) -> None:
        self.ari = ari
        self.ami = ami
        self.legs: dict[str, Leg] = {}
        self.unknown_events: Counter[str] = Counter()
        self.members: list[MemberEvent] = []
        self.watch_far = True
        ari.on_event(self.on_event)
        ami.on_event("BridgeEnter", self.on_bridge_enter)
        for name in ("AgentCalled", "AgentConnect", "AgentComplete"):
            ami.on_event(name, self.on_member_event)

    def on_bridge_enter(self, msg: Message) -> None:
        uid = msg.get("Uniqueid", "")
        leg = self.legs.get(uid.removesuffix(";2")) if uid.endswith(";2") else None
        if leg is not None and leg.connected is None:
            leg.connected = time.time()
            leg.connected_via = "ami"
            leg.kinds["far:AMI BridgeEnter"] += 1
            leg.bridged.set()

    def on_member_event(self, msg: Message) -> None:
        now = time.time()
        kind = msg.get("Event", "")
        caller = msg.get("Uniqueid", "")
        self.members.append(MemberEvent(kind, msg.get("MemberName", ""), caller, now))
        leg = self.legs.get(caller.removesuffix(";2"))
        if kind == "AgentCalled" and leg is not None and leg.offered is None:
            leg.offered = now

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
            elif kind == "ChannelTalkingStarted" and leg.heard is None:
                leg.heard = at or time.time()
                leg.prompted.set()
            elif kind == "ChannelDestroyed":
                leg.destroyed.set()
            return
        app_name = str(
            event.get("dialplan_app") or (channel.get("dialplan") or {}).get("app_name") or ""
        ).lower()
        if kind == "PlaybackStarted" or (kind == "ChannelDialplan" and app_name in PROMPT_APPS):
            if leg.prompt is None:
                leg.prompt = at or time.time()
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
                # On the caller's half: what it reads is what the far end plays to it.
                variables={"TALK_DETECT(set)": TALK_THRESHOLD},
            )
            leg.created = ari_ts(resp.get("creationtime")) or time.time()
            if self.watch_far:
                leg.stage = "subscribe"
                await self.ari.subscribe(APP, f"channel:{leg.far}")
            leg.stage = "StasisStart"
            await asyncio.wait_for(leg.stasis.wait(), 60)
            leg.stage = "first prompt"
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
    quiet: bool = False,
) -> tuple[list[Leg], float, float]:
    callers.legs.clear()
    callers.unknown_events.clear()
    callers.members.clear()
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
    if quiet:
        return legs, t0, t1
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
    """First prompt over all callers: one who never heard it counts as infinitely late (a
    caller refused or cut under overload is the worst case, not a missing sample)."""

    def delays(attr: str) -> list[float]:
        out = []
        for leg in legs:
            at = getattr(leg, attr)
            out.append(at - leg.created if at is not None and leg.created else math.inf)
        return out

    heard = delays("heard")
    started = delays("prompt")
    errors = Counter((leg.error or "").split(":")[0] for leg in legs if leg.error)
    return {
        "attempted": len(legs),
        "completed": sum(leg.completed for leg in legs),
        "never_heard": sum(1 for d in heard if math.isinf(d)),
        "heard_within_1s": sum(1 for d in heard if d <= HEARD_WITHIN),
        "first_prompt_p50_s": pct(heard, 0.5),
        "first_prompt_p99_s": pct(heard, 0.99),
        "first_prompt_max_s": max(heard) if heard else None,
        "prompt_started_p50_s": pct(started, 0.5),
        "prompt_started_p99_s": pct(started, 0.99),
        "errors": dict(errors),
    }


def carried(figures: dict[str, Any]) -> bool:
    return bool(figures["heard_within_1s"] >= CARRIED_SHARE * figures["attempted"])


def free_to_connected(
    frees: dict[str, list[float]],
    connects: dict[str, list[tuple[float, str]]],
    legs: list[Leg],
) -> dict[str, Any]:
    """Per agent: free again -> their next connect, counted when the caller of that connect
    was already waiting at that moment (had pressed 0) and was not ringing another agent."""
    by_far = {leg.far: leg for leg in legs}
    gaps: list[float] = []
    for agent, free_times in frees.items():
        later = sorted(connects.get(agent, []))
        for free_at in free_times:
            nxt = next((c for c in later if c[0] >= free_at), None)
            leg = by_far.get(nxt[1]) if nxt is not None else None
            if (
                nxt is not None
                and leg is not None
                and leg.key_wall is not None
                and leg.key_wall < free_at
                and (leg.offered is None or leg.offered >= free_at)
            ):
                gaps.append(nxt[0] - free_at)
    return {
        "agent_free_pairs": len(gaps),
        "agent_free_to_connected_p50_s": pct(gaps, 0.5),
        "agent_free_to_connected_p99_s": pct(gaps, 0.99),
    }


def agent_figures(
    lines: list[dict[str, Any]], legs: list[Leg], agents: list[str]
) -> dict[str, Any]:
    """Ours: serve's log `agent_free` -> that agent's next `agent_connected`."""
    frees: dict[str, list[float]] = defaultdict(list)
    connects: dict[str, list[tuple[float, str]]] = defaultdict(list)
    wanted = set(agents)
    for item in lines:
        ev = item.get("event")
        agent = item.get("agent_id")
        if agent not in wanted:
            continue
        if ev == "agent_free":
            frees[agent].append(log_ts(item["timestamp"]))
        elif ev == "agent_connected":
            connects[agent].append((log_ts(item["timestamp"]), str(item.get("channel_id", ""))))
    return free_to_connected(frees, connects, legs)


def baseline_agent_figures(members: list[MemberEvent], legs: list[Leg]) -> dict[str, Any]:
    """The baseline: AMI AgentComplete -> that member's next AgentConnect."""
    frees: dict[str, list[float]] = defaultdict(list)
    connects: dict[str, list[tuple[float, str]]] = defaultdict(list)
    for m in members:
        if m.kind == "AgentComplete":
            frees[m.member].append(m.at)
        elif m.kind == "AgentConnect":
            connects[m.member].append((m.at, m.caller))
    return free_to_connected(frees, connects, legs)


async def offered_times(sessions: Any, legs: list[Leg]) -> None:
    """Ours: when each caller was first offered to an agent (the `offered` event of their
    call), from the database."""
    from sqlalchemy import func, select

    from models.tables import Call, CallEvent

    by_far = {leg.far: leg for leg in legs}
    async with sessions() as session:
        rows = await session.execute(
            select(Call.channel_id, func.min(CallEvent.at))
            .join(CallEvent, CallEvent.call_id == Call.id)
            .where(CallEvent.kind == "offered", Call.channel_id.in_(list(by_far)))
            .group_by(Call.channel_id)
        )
        for channel_id, at in rows:
            leg = by_far.get(str(channel_id))
            if leg is not None and at is not None:
                stamp = at if at.tzinfo else at.replace(tzinfo=UTC)
                leg.offered = stamp.timestamp()


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


async def db_outcomes(sessions: Any, tag: str, settle_s: float = 30.0) -> dict[str, int]:
    """The calls' outcomes as the call log wrote them, once every row is closed: the log is
    written behind the calls, so on a loaded machine the last hang-up may not be in yet
    (given up after ``settle_s``: an open row then shows as None)."""
    from sqlalchemy import func, select

    from models.tables import Call

    mine = Call.caller_number.like("+3876199%")
    deadline = time.monotonic() + settle_s
    while True:
        async with sessions() as session:
            still_open = await session.scalar(
                select(func.count()).where(mine, Call.ended_at.is_(None))
            )
            if not still_open or time.monotonic() >= deadline:
                rows = await session.execute(
                    select(Call.outcome, func.count()).where(mine).group_by(Call.outcome)
                )
                return {str(o): int(c) for o, c in rows}
        await asyncio.sleep(0.2)  # polling the rows, not a synchronisation


# --------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Load:
    callers: int
    agents: int
    talk: float
    ramp: float
    mode: str = "per_call"
    quiet: bool = False  # capacity probes: fewer lines, no subscription to the far legs


def connect_timeout(load: Load) -> float:
    return min(580.0, max(60.0, load.callers / max(1, load.agents) * (load.talk + 2) * 2))


async def app_run(
    args: argparse.Namespace, callers: Callers, tag: str, pbx_pid: int, load: Load
) -> dict[str, Any]:
    ari = callers.ari
    work = Path(tempfile.mkdtemp(prefix="centrala-bench-"))
    db_url = args.database_url or f"sqlite+aiosqlite:///{work / 'centrala.db'}"
    serve = Serve(work, db_url)
    if not load.quiet:
        log(f"app run: starting centrala serve (log {serve.log_path})")
    serve.start()
    agents: list[str] = []
    engine = sessions = None
    result: dict[str, Any] = {"run": "app", "serve_log": str(serve.log_path)}
    try:
        await serve.wait_ready()
        assert serve.proc is not None
        agents, (engine, sessions) = await setup_desk(serve, load.agents, tag, load.mode)
        if not load.quiet:
            log(f"app run: {len(agents)} agents logged in ({load.mode}); {load.callers} callers")
        await asyncio.sleep(0.5)
        serve_cpu0, ast_cpu0 = cpu_seconds(serve.proc.pid), cpu_seconds(pbx_pid)
        self0 = resource.getrusage(resource.RUSAGE_SELF)
        callers.watch_far = not load.quiet
        legs, t0, t1 = await run_callers(
            callers,
            context="from-trunk",
            n=load.callers,
            ramp=load.ramp,
            talk=load.talk,
            tag=tag,
            connect_timeout=connect_timeout(load),
            quiet=load.quiet,
        )
        serve_cpu = cpu_seconds(serve.proc.pid) - serve_cpu0
        ast_cpu = cpu_seconds(pbx_pid) - ast_cpu0
        self1 = resource.getrusage(resource.RUSAGE_SELF)
        await asyncio.sleep(0.5)  # the last call_ended lines
        lines = serve.log_lines()
        await offered_times(sessions, legs)
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


async def baseline_members(ami: AMIClient, tag: str, n: int, *, add: bool) -> None:
    """The baseline queue's members: n simulated phones, like the info line's agents."""
    for i in range(n):
        interface = f"Local/bench-{tag}-a{i:03d}@test-agent"
        with contextlib.suppress(AMIError):
            if add:
                await ami.action(
                    "QueueAdd",
                    {"Queue": BASELINE_QUEUE, "Interface": interface, "MemberName": interface},
                )
            else:
                await ami.action("QueueRemove", {"Queue": BASELINE_QUEUE, "Interface": interface})


async def baseline_run(
    args: argparse.Namespace, callers: Callers, tag: str, pbx_pid: int, load: Load
) -> dict[str, Any]:
    ari = callers.ari
    if not load.quiet:
        log(f"baseline run: {load.callers} callers into bench-baseline, {load.agents} agents")
    result: dict[str, Any] = {"run": "baseline"}
    await baseline_members(callers.ami, tag, load.agents, add=True)
    try:
        await asyncio.sleep(0.5)
        ast_cpu0 = cpu_seconds(pbx_pid)
        self0 = resource.getrusage(resource.RUSAGE_SELF)
        callers.watch_far = not load.quiet
        legs, t0, t1 = await run_callers(
            callers,
            context="bench-baseline",
            n=load.callers,
            ramp=load.ramp,
            talk=load.talk,
            tag=tag,
            connect_timeout=connect_timeout(load),
            quiet=load.quiet,
        )
        ast_cpu = cpu_seconds(pbx_pid) - ast_cpu0
        self1 = resource.getrusage(resource.RUSAGE_SELF)
        done = sum(leg.completed for leg in legs)
        result |= caller_figures(legs)
        result |= key_to_connected(legs)
        result |= baseline_agent_figures(callers.members, legs)
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
        await baseline_members(callers.ami, tag, load.agents, add=False)
    return result


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or not b or math.isinf(a) or math.isinf(b):
        return None
    return a / b


def fmt_s(v: Any, scale: float = 1000, unit: str = "ms") -> str:
    if v is None:
        return "n/a"
    if isinstance(v, float) and math.isinf(v):
        return "never"
    return f"{v * scale:.1f} {unit}"


def report(
    args: argparse.Namespace, app: dict[str, Any] | None, base: dict[str, Any] | None
) -> None:
    fmt = fmt_s
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
            f"  first prompt heard      p50 {fmt(r['first_prompt_p50_s'])}  "
            f"p99 {fmt(r['first_prompt_p99_s'])}  max {fmt(r['first_prompt_max_s'])}  "
            f"within 1 s {r['heard_within_1s']}/{r['attempted']}"
            + (f"  (never heard: {r['never_heard']})" if r["never_heard"] else "")
        )
        out.append(
            f"  prompt started (PBX)    p50 {fmt(r['prompt_started_p50_s'])}  "
            f"p99 {fmt(r['prompt_started_p99_s'])}"
            + ("  (PlaybackStarted)" if r["run"] == "app" else "  (Background entered)")
        )
        out.append(
            f"  key 0 -> connected      p50 {fmt(r['key_to_connected_p50_s'])}  "
            f"p99 {fmt(r['key_to_connected_p99_s'])}  (includes queueing)"
        )
        out.append(
            f"  agent free -> connected p50 {fmt(r['agent_free_to_connected_p50_s'])}  "
            f"p99 {fmt(r['agent_free_to_connected_p99_s'])}  ({r['agent_free_pairs']} pairs "
            "whose caller was waiting, not ringing another agent; "
            + (
                "log agent_free -> agent_connected)"
                if r["run"] == "app"
                else "AMI AgentComplete -> AgentConnect)"
            )
        )
        if r["run"] == "app":
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
            "first_prompt_p50": ratio(app["first_prompt_p50_s"], base["first_prompt_p50_s"]),
            "first_prompt_p99": ratio(app["first_prompt_p99_s"], base["first_prompt_p99_s"]),
            "cpu_per_call": ratio(
                (app["serve_cpu_per_call_ms"] or 0) + (app["asterisk_cpu_per_call_ms"] or 0)
                if app["asterisk_cpu_per_call_ms"] is not None
                else None,
                base["asterisk_cpu_per_call_ms"],
            ),
            "serve_cpu_vs_asterisk_own": ratio(
                app["serve_cpu_per_call_ms"], app["asterisk_cpu_per_call_ms"]
            ),
            "asterisk_cpu_per_call": ratio(
                app["asterisk_cpu_per_call_ms"], base["asterisk_cpu_per_call_ms"]
            ),
        }
        f = {k: ("n/a" if v is None else f"{v:.2f}x") for k, v in ratios.items()}
        out.append("-- app / baseline --")
        out.append(
            f"  first prompt heard p50 {f['first_prompt_p50']}  p99 {f['first_prompt_p99']};  "
            f"CPU per call (serve+asterisk vs asterisk alone) {f['cpu_per_call']}  "
            f"(asterisk only {f['asterisk_cpu_per_call']}; serve vs its own Asterisk "
            f"{f['serve_cpu_vs_asterisk_own']})"
        )
    for r in (app, base):
        if r is not None and args.carries_check:
            out.append(f"  {r['run']}: carries N={args.callers}: {'yes' if carried(r) else 'NO'}")
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


# --------------------------------------------------------------------------- capacity


async def probe(
    args: argparse.Namespace, callers: Callers, side: str, rate: float, pbx_pid: int
) -> tuple[bool, dict[str, Any]]:
    """Put round(rate * duration) callers through at `rate` calls/s; carried when >= 99% of
    them heard the first prompt within 1 s."""
    n = max(20, round(rate * args.duration))
    agents = max(args.agents, math.ceil(rate * (args.talk + 1)))
    load = Load(callers=n, agents=agents, talk=args.talk, ramp=n / rate, mode=args.mode, quiet=True)
    tag = uuid.uuid4().hex[:6]
    run = app_run if side == "app" else baseline_run
    r = await run(args, callers, tag, pbx_pid, load)
    ok = carried(r)
    cpu = (
        f"serve {fmt_s(r.get('serve_cpu_per_call_ms'), 1)} + " if side == "app" else ""
    ) + f"asterisk {fmt_s(r.get('asterisk_cpu_per_call_ms'), 1)} per call"
    log(
        f"  {side:8s} {rate:6.1f}/s  {n} callers {agents} agents: heard within 1 s "
        f"{r['heard_within_1s']}/{n}, p99 {fmt_s(r['first_prompt_p99_s'])}, completed "
        f"{r['completed']}/{n}; {cpu}; bench {r['bench_cpu_s']:.1f}s -> "
        f"{'carried' if ok else 'NOT carried'}"
    )
    await settle(callers.ari)
    return ok, r


async def settle(ari: ARIClient, timeout: float = 30) -> None:  # noqa: ASYNC109
    """Until no bench channel is left, so one probe's tail does not load the next."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(ARIError):
            if not any("bench-" in ch.get("name", "") for ch in await ari.channels()):
                break
        await asyncio.sleep(0.5)
    await asyncio.sleep(1)


async def capacity_search(
    args: argparse.Namespace, callers: Callers, side: str, pbx_pid: int
) -> float:
    """The highest rate carried: double from --rate-start until one fails, then bisect
    (geometrically) until the bounds are within --resolution."""
    lo, hi = 0.0, None
    rate = args.rate_start
    while hi is None:
        ok, _ = await probe(args, callers, side, rate, pbx_pid)
        if ok:
            lo = rate
            if rate >= args.rate_max:
                return lo
            rate = min(args.rate_max, rate * 2)
        else:
            hi = rate
    if lo == 0.0:
        # Even the first rate failed: go down.
        rate = hi
        while lo == 0.0 and rate > 0.5:
            rate /= 2
            ok, _ = await probe(args, callers, side, rate, pbx_pid)
            if ok:
                lo = rate
            else:
                hi = rate
        if lo == 0.0:
            return 0.0
    while hi / lo > args.resolution:
        mid = math.sqrt(lo * hi)
        ok, _ = await probe(args, callers, side, mid, pbx_pid)
        if ok:
            lo = mid
        else:
            hi = mid
    return lo


async def capacity(args: argparse.Namespace, callers: Callers, pbx_pid: int) -> None:
    rows: list[tuple[float, float]] = []
    for rep in range(args.reps):
        order = ["app", "baseline"] if rep % 2 == 0 else ["baseline", "app"]
        found: dict[str, float] = {}
        for side in order:
            log(f"repetition {rep + 1}/{args.reps}: {side}")
            found[side] = await capacity_search(args, callers, side, pbx_pid)
            log(f"repetition {rep + 1}: {side} carries {found[side]:.1f} calls/s")
        rows.append((found["app"], found["baseline"]))
    ratios = [a / b for a, b in rows if b]
    out = [
        f"infoline_load --capacity: >= {CARRIED_SHARE:.0%} of all callers hear the first "
        f"prompt within {HEARD_WITHIN:g} s; {args.duration:g} s probes, talk {args.talk:g} s, "
        f"agents max({args.agents}, ceil(rate x (talk + 1))), mode {args.mode}, resolution "
        f"{args.resolution:g}"
    ]
    for i, (a, b) in enumerate(rows, 1):
        out.append(
            f"  repetition {i}: ours {a:6.1f} calls/s  baseline {b:6.1f} calls/s  "
            f"ratio {a / b if b else math.nan:.2f}x"
        )
    if ratios:
        out.append(
            f"  ratio ours/baseline: median {statistics.median(ratios):.2f}x  "
            f"min {min(ratios):.2f}x  max {max(ratios):.2f}x  over {len(ratios)} repetitions"
        )
    print("\n".join(out), flush=True)
    print(
        "JSON "
        + json.dumps(
            {
                "capacity": [{"app": a, "baseline": b} for a, b in rows],
                "ratios": ratios,
                "duration": args.duration,
                "talk": args.talk,
                "mode": args.mode,
            }
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
            f"another `centrala serve` is running in this network namespace (pids {others}); "
            "it would share the Stasis app and the PBX. Retry later, or --force."
        )
    ari = BenchARI(settings.ari_url, settings.ari_user, settings.ari_password, [APP])
    await ari.start()
    await ari.wait_connected(10)
    ami = AMIClient(settings.ami_host, settings.ami_port, settings.ami_user, settings.ami_secret)
    await ami.start()
    await ami.wait_connected(10)
    with contextlib.suppress(AMIError):
        # Only what we use: less work for Asterisk on our account.
        for event in ("BridgeEnter", "AgentCalled", "AgentConnect", "AgentComplete"):
            await ami.action("Filter", {"Operation": "Add", "Filter": f"Event: {event}"})
    callers = Callers(ari, ami)
    foreign = [c["name"] for c in await ari.channels()]
    if foreign:
        log(f"warning: {len(foreign)} channels already up in the PBX (someone else's calls?)")
    tag = uuid.uuid4().hex[:6]
    app = base = None
    load = Load(args.callers, args.agents, args.talk, args.ramp, args.mode)
    try:
        async with asyncio.timeout(args.timeout):
            if args.capacity:
                await capacity(args, callers, pbx_pid)
                return
            if not args.baseline_only:
                app = await app_run(args, callers, tag, pbx_pid, load)
            if not args.no_baseline:
                await asyncio.sleep(1)
                base = await baseline_run(args, callers, tag + "b", pbx_pid, load)
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
    parser.add_argument(
        "--timeout", type=float, default=None, help="global bound, seconds (600; --capacity 7200)"
    )
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--baseline-only", action="store_true")
    parser.add_argument("--force", action="store_true", help="run despite another serve")
    parser.add_argument(
        "--carries-check",
        action="store_true",
        help="print whether >= 99%% of all callers heard the first prompt within 1 s",
    )
    parser.add_argument("--capacity", action="store_true", help="search the calls/s carried")
    parser.add_argument("--reps", type=int, default=3, help="capacity: repetitions")
    parser.add_argument("--duration", type=float, default=10, help="capacity: seconds a probe")
    parser.add_argument("--rate-start", type=float, default=8, help="capacity: first calls/s")
    parser.add_argument("--rate-max", type=float, default=400, help="capacity: calls/s bound")
    parser.add_argument(
        "--resolution", type=float, default=1.1, help="capacity: stop at hi/lo <= this"
    )
    args = parser.parse_args()
    if args.timeout is None:
        args.timeout = 7200 if args.capacity else 600
    asyncio.run(main_async(args))


if __name__ == "__main__":
    main()
