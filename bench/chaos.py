"""Chaos under steady calls: callers arrive at a steady rate while a loop kills `centrala
serve`, destroys its ARI WebSocket and stops PostgreSQL, at random; afterwards every call
placed is checked against the `calls` table, and the longest silence a caller heard is told.

    ip netns exec chaos python bench/chaos.py [--duration 600] [--rate 0.5] [--agents 4]
        [--seed 1] [--pg-cluster 15/chaos] [--database-url URL] [--faults kill,ws,db]
        [--fault-gap 10 30] [--db-down 5 60] [--serve-pause 0.5 5] [--require-all-rows]

Callers are Local channels into the info line (`Local/0800100200@from-trunk`, as in
bench/infoline_load.py): the ;1 half sits in this script's Stasis app, the ;2 half runs the
info line. Each caller's life is drawn from --seed: 55% choose an operator (0) and talk to an
agent 3-10 s, 10% hear the information prompt (1) first, 15% choose an operator but hang up
after 3-25 s on hold if nobody answers, 20% walk the menu (1) and hang up in the IVR after
2-20 s; 35% press 9 for English, the others type their menu key ahead. A caller presses the
key 0.3-1.5 s after an input prompt (the language choice, the main menu, a callback offer)
ends, and again if the prompt comes back (a key lost while `serve` was down); half of them
press their menu key into the main menu, 1.5-6 s after it starts. Agents are per-call
(Local/...@test-agent answers at once), all in queue new_clients (callers are unknown
numbers); every queue open, the hold announcement every 20 s.

Faults, one at a time, each --fault-gap seconds after the last one was over (drawn from
--seed), each logged with its time:
  kill  SIGKILL `serve`; start it again on the same database after --serve-pause seconds
  ws    destroy serve's ARI WebSocket in the kernel (`ss -K`, like kill_ari_websocket in
        tests/integration/conftest.py); serve reconnects by itself
  db    stop the PostgreSQL cluster (`pg_ctlcluster V NAME stop -m fast`) for --db-down
        seconds, then start it

Silence, from the caller's side: this script's app is subscribed to every channel, so it sees
the ;2 half's PlaybackStarted/Finished (ARI), and AMI tells its music on hold
(MusicOnHoldStart/Stop), its bridges (BridgeEnter/Leave) and its dialplan applications
(Newexten: Playback, Background and AGI are the fallback paths when the Stasis app is away).
An answered caller hears nothing while no prompt plays, no music plays, they are in no bridge
and no such application runs; the caller's own turn (an input prompt ended, their key not yet
pressed) is not silence. Every gap is kept with its call, time and phase; the longest is told
with the faults around it.

At the end calls stop, the chaos stops (PostgreSQL started, `serve` up), the callers finish
their lives, `/status` must say ok with an empty journal, and the rows are read:
  placed          originates Asterisk accepted
  answered        callers whose ;1 half entered this app (Asterisk answered them)
  rows final      exactly one row, with ended_at and outcome set
  rows missing    placed calls with no row; those that met no `serve` at all (the far end fell
                  through Stasis and FastAGI to the dialplan's apology) are counted apart: their
                  rows come from Asterisk's CDR (the end waits for a pass past the last call);
                  --require-all-rows counts them as missing like any other
  rows open       a row without ended_at or outcome
  duplicates      more than one row for one call
  placed while serve was down   placed between a kill and /status ready again
Also: the far ends' paths (stasis, agi, apology), outcomes, rows whose outcome disagrees with
what the caller lived, calls Centrala ended (and how), channels and bridges left in Asterisk,
warnings and errors in serve's logs; then one line `JSON {...}` with every figure, and one
line per caller in calls.jsonl beside serve's logs.

Exit status 1 when a row is missing (other than those that met no `serve`, unless
--require-all-rows), open or duplicated, or when `serve` did not come back.

Requirements: root; a PostgreSQL cluster of the benchmark's own (it is stopped and started)
and a database in it that the benchmark empties at start (default: the sibling `<db>_chaos`
of CENTRALA_TEST_POSTGRES_URL, on the cluster CENTRALA_TEST_PG_CLUSTER); the local PBX with
the test contexts (it runs `centrala pbx up` with tests/asterisk, and leaves it running). No
other `centrala serve` may use that PBX. To run beside other work, give it a network namespace
and a PBX root of its own, the cluster started inside the namespace:
    ip netns add chaos && ip netns exec chaos ip link set lo up
    cp -a /var/cache/centrala/asterisk-sid /var/cache/centrala/asterisk-chaos
    export CENTRALA_PBX_ROOT=/var/cache/centrala/asterisk-chaos
    pg_createcluster 15 chaos && ip netns exec chaos pg_ctlcluster 15 chaos start
    (then a role `centrala` with CREATEDB, and CENTRALA_TEST_POSTGRES_URL on its port)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import yaml  # type: ignore[import-untyped,unused-ignore]
from sqlalchemy import select, text
from sqlalchemy.engine import make_url

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infoline_load import (
    FLOW_FILE,
    INFO_NUMBER,
    BenchARI,
    Serve,
    ensure_pbx,
    foreign_serves,
    log,
    setup_desk,
    teardown_desk,
)

from ari_app.ami import AMIClient, AMIError, Message
from ari_app.ari import ARIError, Event
from centrala.logs import configure_logging
from centrala.settings import Settings
from core.media import prompt_of

APP = "centrala-bench-chaos"
# Prompts that wait for the caller's key (the callback offer: "1" takes it on this number).
INPUT_PROMPTS = frozenset({"choose_language", "main_menu", "callback_offer"})
# Dialplan applications the caller hears: the apology (Playback) and FastAGI's greeting.
AUDIBLE_APPS = frozenset({"playback", "background", "agi"})
AMI_EVENTS = ("Newexten", "MusicOnHoldStart", "MusicOnHoldStop", "BridgeEnter", "BridgeLeave")
LIFE_CAP = 300.0  # no caller stays longer than this after the answer
ANSWER_WAIT = 40.0


# --------------------------------------------------------------------------- callers


@dataclass(frozen=True)
class Plan:
    kind: str  # talk | info_talk | queue_quit | ivr_quit
    english: bool
    talk: float  # seconds with the agent
    patience: float  # queue_quit: seconds on hold before hanging up
    quit_after: float  # ivr_quit: seconds after the answer
    barge: bool  # presses their menu key while the main menu still plays


def draw_plan(rng: random.Random) -> Plan:
    kind = rng.choices(["talk", "info_talk", "queue_quit", "ivr_quit"], [55, 10, 15, 20])[0]
    return Plan(
        kind=kind,
        english=rng.random() < 0.35,
        talk=rng.uniform(3, 10),
        patience=rng.uniform(3, 25),
        quit_after=rng.uniform(2, 20),
        barge=rng.random() < 0.5,
    )


@dataclass
class Gap:
    start: float
    end: float
    phase: str
    call: str = ""

    @property
    def seconds(self) -> float:
        return self.end - self.start


@dataclass
class Caller:
    n: int
    id: str
    number: str
    plan: Plan
    rng: random.Random
    placed: float
    originated: bool = False
    answered: float | None = None
    ended: float | None = None
    ended_by: str = ""  # caller (their plan) | far end | not answered | originate failed
    ended_in: str = ""  # the phase it ended in
    apps: list[str] = field(default_factory=list)  # the far end's dialplan applications
    playing: dict[str, float] = field(default_factory=dict)  # playback id -> started
    moh: bool = False
    bridged: bool = False
    app: str = ""
    turn: bool = False  # an input prompt ended and the caller is about to press
    quiet_since: float | None = None
    quiet_phase: str = ""
    gaps: list[Gap] = field(default_factory=list)
    last_key: float | None = None
    keys: str = ""
    english_heard: bool = False
    heard_info: bool = False
    was_queued: bool = False
    was_bridged: bool = False
    answered_ev: asyncio.Event = field(default_factory=asyncio.Event)
    queued_ev: asyncio.Event = field(default_factory=asyncio.Event)
    bridged_ev: asyncio.Event = field(default_factory=asyncio.Event)
    gone_ev: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def far(self) -> str:
        return f"{self.id};2"

    @property
    def phase(self) -> str:
        if self.answered is None:
            return "ringing"
        if self.bridged:
            return "talking"
        if self.was_bridged:
            return "after talk"
        if self.was_queued:
            return "queue"
        return "ivr"

    @property
    def path(self) -> str:
        """How the far end was served: the Stasis app, FastAGI (the app away, serve up), or
        the dialplan's apology (neither answered: no serve at all)."""
        apps = [a.lower() for a in self.apps]
        if "playback" in apps:
            return "apology"
        if "agi" in apps:
            return "agi"
        if "stasis" in apps:
            return "stasis"
        return "none"


def media_name(uri: str) -> tuple[str, str]:
    """('main_menu', 'en') from sound:centrala/en/main_menu."""
    parts = uri.split(":", 1)[-1].split("/")
    return prompt_of(parts[-1]), (parts[-2] if len(parts) >= 2 else "")


class Tracker:
    """What each caller hears, from Asterisk's events as they arrive (in each stream's
    order, stamped on receipt), and the keys they press in answer to the prompts."""

    def __init__(self, t0: float) -> None:
        self.t0 = t0
        self.callers: dict[str, Caller] = {}
        self.ari: BenchARI | None = None
        self.tasks: set[asyncio.Task[None]] = set()

    def now(self) -> float:
        return time.monotonic() - self.t0

    def lookup(self, channel_id: str) -> tuple[Caller | None, bool]:
        far = channel_id.endswith(";2")
        return self.callers.get(channel_id.split(";")[0]), far

    def on_ari(self, event: Event) -> None:
        kind = str(event.get("type"))
        t = self.now()
        if "playback" in event:
            playback = event["playback"]
            target = str(playback.get("target_uri", "")).removeprefix("channel:")
            c, far = self.lookup(target)
            if c is None or not far:
                return
            pid = str(playback.get("id", ""))
            name, lang = media_name(str(playback.get("media_uri", "")))
            if kind == "PlaybackStarted":
                c.playing[pid] = t
                c.english_heard |= lang == "en" and name != "choose_language"
                c.heard_info |= name == "information_products"
                if name == "main_menu" and c.plan.barge:
                    self.spawn(self.press(c, name, c.rng.uniform(1.5, 6), during=pid))
            elif kind in ("PlaybackFinished", "PlaybackFailed"):
                started = c.playing.pop(pid, None)
                if name in INPUT_PROMPTS:
                    self.respond(c, name, started, t)
            self.update(c, t)
            return
        channel = event.get("channel") or {}
        c, far = self.lookup(str(channel.get("id", "")))
        if c is None:
            return
        if kind == "StasisStart" and not far and c.answered is None:
            c.answered = t
            c.answered_ev.set()
            self.update(c, t)
        elif kind == "ChannelDestroyed":
            self.end(c, t, "far end")

    def on_ami(self, msg: Message) -> None:
        c, far = self.lookup(msg.get("Uniqueid", ""))
        if c is None or not far:
            return
        t = self.now()
        name = msg.get("Event", "")
        if name == "Newexten":
            app = msg.get("Application", "")
            if not c.apps or c.apps[-1] != app:
                c.apps.append(app)
            c.app = app.lower()
        elif name == "MusicOnHoldStart":
            c.moh = c.was_queued = True
            c.queued_ev.set()
        elif name == "MusicOnHoldStop":
            c.moh = False
        elif name == "BridgeEnter":
            c.bridged = c.was_bridged = True
            c.bridged_ev.set()
        elif name == "BridgeLeave":
            c.bridged = False
        self.update(c, t)

    def update(self, c: Caller, t: float) -> None:
        if c.answered is None or c.ended is not None:
            return
        audible = bool(c.playing) or c.moh or c.bridged or c.app in AUDIBLE_APPS or c.turn
        if audible and c.quiet_since is not None:
            c.gaps.append(Gap(c.quiet_since, t, c.quiet_phase, c.id))
            c.quiet_since = None
        elif not audible and c.quiet_since is None:
            c.quiet_since, c.quiet_phase = t, c.phase

    def end(self, c: Caller, t: float, by: str) -> None:
        if c.ended is not None:
            return
        if c.quiet_since is not None:
            c.gaps.append(Gap(c.quiet_since, t, c.quiet_phase, c.id))
            c.quiet_since = None
        c.ended, c.ended_by, c.ended_in = t, by, c.phase
        c.gone_ev.set()

    # ---- the caller's keys

    def respond(self, c: Caller, prompt: str, started: float | None, t: float) -> None:
        """An input prompt ended: press the caller's key, unless their key ended it."""
        if c.ended is not None or c.answered is None or c.was_queued:
            return
        if c.last_key is not None and (
            (started is not None and c.last_key >= started)
            or (started is None and t - c.last_key < 2)
        ):
            return
        c.turn = True
        self.spawn(self.press(c, prompt, c.rng.uniform(0.3, 1.5)))

    def spawn(self, coro: Any) -> None:
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    @staticmethod
    def key_for(c: Caller, prompt: str) -> str:
        if prompt == "callback_offer":
            return "1"
        if prompt == "choose_language" and c.plan.english and not c.english_heard:
            return "9"
        if c.plan.kind == "ivr_quit" or (c.plan.kind == "info_talk" and not c.heard_info):
            return "1"
        return "0"

    async def press(self, c: Caller, prompt: str, after: float, during: str = "") -> None:
        """The caller's key for ``prompt`` in ``after`` seconds; ``during``: only while that
        playback still plays (a key pressed into the prompt; once it ended, its end asks)."""
        await asyncio.sleep(after)
        if c.ended is not None or (during and during not in c.playing):
            return
        key = self.key_for(c, prompt)
        c.turn = False
        c.last_key = self.now()
        c.keys += key
        self.update(c, c.last_key)
        assert self.ari is not None
        with contextlib.suppress(ARIError):
            await self.ari.send_dtmf(c.id, key)


class ChaosARI(BenchARI):
    """Our ARI client; every event goes through the tracker the moment it arrives, in the
    WebSocket's order (the per-channel workers would reorder the two halves of a call)."""

    tracker: Tracker

    def dispatch(self, event: Event) -> None:
        self.tracker.on_ari(event)
        super().dispatch(event)


async def wait_any(events: list[asyncio.Event], timeout: float) -> bool:  # noqa: ASYNC109
    """True as soon as one of ``events`` is set (at once if one is), False at ``timeout``."""
    if any(e.is_set() for e in events):
        return True
    if timeout <= 0:
        return False
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        done, _ = await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for w in waiters:
            w.cancel()
    return bool(done)


async def hang_up(tracker: Tracker, c: Caller) -> None:
    tracker.end(c, tracker.now(), "caller")
    assert tracker.ari is not None
    with contextlib.suppress(ARIError):
        await tracker.ari.hangup(c.id)


async def life(tracker: Tracker, c: Caller) -> None:
    """One caller: placed, answered, then what their plan says."""
    ari = tracker.ari
    assert ari is not None
    try:
        await ari.originate(
            f"Local/{INFO_NUMBER}@from-trunk",
            channel_id=c.id,
            app=APP,
            caller_id=f'"Chaos caller" <{c.number}>',
            dial_timeout=30,
        )
    except ARIError as exc:
        c.ended_by = f"originate failed ({exc.status})"
        c.ended = tracker.now()
        return
    c.originated = True
    if not await wait_any([c.answered_ev, c.gone_ev], ANSWER_WAIT) or c.answered is None:
        if c.ended is None:
            await hang_up(tracker, c)
        c.ended_by = "not answered"
        return
    plan = c.plan
    if plan.kind == "ivr_quit":
        if not await wait_any([c.gone_ev], plan.quit_after):
            await hang_up(tracker, c)
        return
    cap = LIFE_CAP
    if plan.kind == "queue_quit":
        start = tracker.now()
        await wait_any([c.queued_ev, c.bridged_ev, c.gone_ev], cap)
        cap = plan.patience if not c.bridged_ev.is_set() else 0
        cap = min(cap, LIFE_CAP - (tracker.now() - start))
    if await wait_any([c.bridged_ev, c.gone_ev], max(0.0, cap)) and c.bridged_ev.is_set():
        await wait_any([c.gone_ev], plan.talk)
    if c.ended is None:
        await hang_up(tracker, c)


# --------------------------------------------------------------------------- faults


@dataclass
class Fault:
    kind: str  # kill | ws | db
    start: float
    end: float | None = None  # its effect over: serve ready, reconnected, database started
    detail: dict[str, Any] = field(default_factory=dict)

    def window(self) -> tuple[float, float]:
        return self.start, self.end if self.end is not None else self.start

    def line(self) -> str:
        what = {
            "kill": "serve SIGKILLed",
            "ws": "ARI WebSocket destroyed",
            "db": "database stopped",
        }
        end = f"-{self.end:7.1f}" if self.end is not None else " " * 8
        extra = ", ".join(f"{k} {_fmt(v)}" for k, v in self.detail.items())
        return f"+{self.start:7.1f}{end} s  {what[self.kind]}" + (f" ({extra})" if extra else "")


def _fmt(v: Any) -> str:
    return f"{v:.2f} s" if isinstance(v, float) else str(v)


class Cluster:
    """The PostgreSQL cluster (`15/chaos`) the database lives on."""

    def __init__(self, name: str, url: str) -> None:
        self.version, self.name = name.split("/")
        parsed = make_url(url)
        self.host, self.port = parsed.host or "127.0.0.1", parsed.port or 5432
        self.stopped = False

    def check(self) -> None:
        out = subprocess.run(
            ["pg_lsclusters", "-h"], capture_output=True, text=True, check=True
        ).stdout
        ports = {f"{f[0]}/{f[1]}": int(f[2]) for f in (line.split() for line in out.splitlines())}
        port = ports.get(f"{self.version}/{self.name}")
        if port is None:
            raise SystemExit(f"no PostgreSQL cluster {self.version}/{self.name}: {out}")
        if port != self.port:
            raise SystemExit(
                f"cluster {self.version}/{self.name} listens on {port}, the database URL names "
                f"port {self.port}: stopping it would not take the database away"
            )

    def ctl(self, action: str) -> str:
        args = ["pg_ctlcluster", self.version, self.name, action]
        args += ["-m", "fast"] if action == "stop" else []
        done = subprocess.run(args, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0 and not (action == "start" and "already running" in done.stderr):
            raise RuntimeError(f"{' '.join(args)}: {done.stderr.strip()}")
        self.stopped = action == "stop"
        return done.stderr

    def ready(self) -> bool:
        done = subprocess.run(
            ["pg_isready", "-q", "-h", self.host, "-p", str(self.port)], check=False, timeout=10
        )
        return done.returncode == 0


class Chaos:
    def __init__(
        self,
        args: argparse.Namespace,
        serve: Serve,
        cluster: Cluster,
        settings: Settings,
        tracker: Tracker,
    ) -> None:
        self.args = args
        self.serve = serve
        self.cluster = cluster
        self.settings = settings
        self.tracker = tracker
        self.rng = random.Random(f"{args.seed}-faults")
        self.faults: list[Fault] = []
        self.broken: str | None = None  # serve did not come back
        self.watchers: set[asyncio.Task[None]] = set()
        self.incarnation = 0

    async def run(self) -> None:
        kinds = self.args.faults
        while True:
            await asyncio.sleep(self.rng.uniform(*self.args.fault_gap))
            if self.tracker.now() >= self.args.duration:
                return
            kind = self.rng.choice(kinds)
            fault = Fault(kind, self.tracker.now())
            self.faults.append(fault)
            log(f"fault {len(self.faults)}: {kind} at +{fault.start:.1f} s")
            try:
                await {"kill": self.kill, "ws": self.ws, "db": self.db}[kind](fault)
            except Exception as exc:  # said, and the run goes on to its report
                fault.detail["error"] = f"{type(exc).__name__}: {exc}"
                log(f"fault {kind} failed: {exc}")
            log(fault.line() if kind != "db" else f"{fault.line()} (draining)")
            if self.broken:
                log(f"stopping the chaos: {self.broken}")
                return

    async def kill(self, fault: Fault) -> None:
        proc = self.serve.proc
        assert proc is not None
        fault.detail["pid"] = proc.pid
        proc.send_signal(signal.SIGKILL)
        await asyncio.to_thread(proc.wait, 30)
        pause = self.rng.uniform(*self.args.serve_pause)
        fault.detail["pause"] = pause
        await asyncio.sleep(pause)
        self.restart_serve()
        started = self.tracker.now()
        if await serve_ready(self.serve, 120):
            fault.detail["start->ready"] = self.tracker.now() - started
        else:
            self.broken = f"serve not ready 120 s after a restart (log {self.serve.log_path})"
        fault.end = self.tracker.now()

    def restart_serve(self) -> None:
        self.incarnation += 1
        path = self.serve.log_path
        if path.exists():
            path.rename(path.with_name(f"serve.{self.incarnation}.log"))
        self.serve.start()

    async def ws(self, fault: Fault) -> None:
        _, body = await status(self.serve)
        port, connects = body["ari"]["ws_local_port"], body["ari"]["connects"]
        if port is None:
            fault.detail["skipped"] = "no WebSocket"
            fault.end = fault.start
            return
        ari = urlsplit(self.settings.ari_url)
        killed = await asyncio.to_thread(
            subprocess.run,
            ["ss", "-K", "-t", "src", f"127.0.0.1:{port}", "dst", f"{ari.hostname}:{ari.port}"],
            capture_output=True,
            text=True,
            check=True,
        )
        if f":{port}" not in killed.stdout:
            fault.detail["skipped"] = "socket not found"
        if await serve_ready(self.serve, 60, min_connects=connects + 1):
            fault.detail["reconnected"] = self.tracker.now() - fault.start
        else:
            self.broken = "serve's ARI did not reconnect within 60 s"
        fault.end = self.tracker.now()

    async def db(self, fault: Fault) -> None:
        down_for = self.rng.uniform(*self.args.db_down)
        await asyncio.to_thread(self.cluster.ctl, "stop")
        if await asyncio.to_thread(self.cluster.ready):
            fault.detail["warning"] = "still accepting connections after stop"
        stopped = self.tracker.now()
        await asyncio.sleep(down_for)
        starting = self.tracker.now()
        await asyncio.to_thread(self.cluster.ctl, "start")
        deadline = time.monotonic() + 60
        while not await asyncio.to_thread(self.cluster.ready):
            if time.monotonic() > deadline:
                raise RuntimeError("PostgreSQL not accepting connections 60 s after start")
            await asyncio.sleep(0.2)
        fault.end = self.tracker.now()
        fault.detail["down"] = fault.end - stopped
        self.watchers.add(asyncio.create_task(self.drained(fault, starting)))

    async def drained(self, fault: Fault, starting: float) -> None:
        """From `pg_ctlcluster start` (it returns once the server accepts connections, and
        serve may drain meanwhile) to /status ok with the journal empty; the next fault may
        come meanwhile (a kill while the journal drains)."""
        if await serve_drained(self.serve, 90):
            fault.detail["start->drained"] = self.tracker.now() - starting
        else:
            fault.detail["start->drained"] = "not within 90 s"

    async def restore(self) -> None:
        """Everything up again: the database started, `serve` running and ready (and the
        drains measured)."""
        if self.watchers:
            await asyncio.wait(self.watchers)
        if self.cluster.stopped or not await asyncio.to_thread(self.cluster.ready):
            await asyncio.to_thread(self.cluster.ctl, "start")
        assert self.serve.proc is not None
        if self.serve.proc.poll() is not None:
            self.restart_serve()
        if not await serve_ready(self.serve, 120):
            self.broken = self.broken or "serve not ready at the end"


async def status(serve: Serve) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as http,
        http.get(serve.url + "/status", timeout=aiohttp.ClientTimeout(total=5)) as resp,
    ):
        return resp.status, dict(await resp.json())


async def serve_ready(serve: Serve, timeout: float, min_connects: int = 1) -> bool:  # noqa: ASYNC109
    """/status answers 200 (a database away is degraded, still 200) with ARI connected."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        assert serve.proc is not None
        if serve.proc.poll() is not None:
            return False
        with contextlib.suppress(TimeoutError, aiohttp.ClientError, ValueError, KeyError):
            code, body = await status(serve)
            if code == 200 and body["ari"]["connected"] and body["ari"]["connects"] >= min_connects:
                return True
        await asyncio.sleep(0.1)
    return False


async def serve_drained(serve: Serve, timeout: float) -> bool:  # noqa: ASYNC109
    """/status ok: every part up and the journal empty."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError, aiohttp.ClientError, ValueError, KeyError):
            code, body = await status(serve)
            if code == 200 and body["ok"] and body["db"].get("journal", 0) == 0:
                return True
        await asyncio.sleep(0.2)
    return False


async def cdr_taken(serve: Serve, ended: datetime, timeout: float) -> bool:  # noqa: ASYNC109
    """/status says a CDR pass has taken every call that ended before ``ended``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(TimeoutError, aiohttp.ClientError, ValueError, KeyError):
            _, body = await status(serve)
            until = body["cdr"]["taken_until"]
            if until is not None and datetime.fromisoformat(until) > ended:
                return True
        await asyncio.sleep(0.5)
    return False


# --------------------------------------------------------------------------- the run


def chaos_flow() -> Any:
    """The shipped flow, every queue open, no overflow or wrap-up within the run; the hold
    announcement every 20 s (it stops and starts the music: more moments to go silent)."""
    from dialplan.model import Flow

    data = yaml.safe_load(FLOW_FILE.read_text())
    for queue in data["queues"].values():
        queue["calendar"] = "always"
        queue["announce_every_seconds"] = 20
        queue["wrap_up_seconds"] = 0
        queue["max_wait_seconds"] = 600
    return Flow.model_validate(data)


def default_database_url() -> str:
    base = os.environ.get(
        "CENTRALA_TEST_POSTGRES_URL",
        "postgresql+asyncpg://centrala:centrala@127.0.0.1:5432/centrala_test",
    )
    parsed = make_url(base)
    return parsed.set(database=f"{parsed.database}_chaos").render_as_string(hide_password=False)


async def fresh_database(url: str) -> None:
    """Create the database if missing, empty it (the benchmark's own), migrate it and apply
    the flow: `serve` reads the queues at start, and serves them as last read while the
    database is away (applied after its start and read by no call yet, the shipped office
    hours would still hold)."""
    from models.db import create_engine, session_factory, upgrade_async
    from models.flows import apply_flow
    from tests.conftest import ensure_postgres_database

    await ensure_postgres_database(url)
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await conn.execute(text("CREATE SCHEMA public"))
        await upgrade_async(url)
        await apply_flow(session_factory(engine), chaos_flow(), created_by="bench/chaos.py")
    finally:
        await engine.dispose()


async def read_rows(url: str, tag: str) -> list[dict[str, Any]]:
    from models.db import create_engine, session_factory
    from models.tables import Call

    engine = create_engine(url)
    try:
        async with session_factory(engine)() as session:
            rows = await session.execute(
                select(
                    Call.channel_id,
                    Call.linkedid,
                    Call.handler,
                    Call.answered_at,
                    Call.ended_at,
                    Call.outcome,
                    Call.agent_id,
                ).where(
                    Call.channel_id.like(f"chaos-{tag}-%") | Call.linkedid.like(f"chaos-{tag}-%")
                )
            )
            return [dict(r._mapping) for r in rows]
    finally:
        await engine.dispose()


async def settle_rows(url: str, tag: str, timeout: float) -> list[dict[str, Any]]:  # noqa: ASYNC109
    """The rows once none is open (a close is written behind), or as they are at ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        rows = await read_rows(url, tag)
        if all(r["ended_at"] is not None for r in rows) or time.monotonic() > deadline:
            return rows
        await asyncio.sleep(0.5)


def serve_log_problems(workdir: Path) -> dict[str, Counter[str]]:
    found: dict[str, Counter[str]] = {"error": Counter(), "warning": Counter()}
    for path in sorted(workdir.glob("serve*.log")):
        for line in path.read_text(errors="replace").splitlines():
            try:
                item = json.loads(line)
            except ValueError:
                if line.strip():
                    found["error"]["<non-json line>"] += 1
                continue
            level = str(item.get("level", "")) if isinstance(item, dict) else ""
            if level in ("error", "critical", "exception"):
                found["error"][str(item.get("event"))] += 1
            elif level == "warning":
                found["warning"][str(item.get("event"))] += 1
    return found


def expected_outcome(c: Caller, serve_down: list[tuple[float, float]]) -> str | None:
    """What the row should say, from what the caller lived (their own hang-up only). One who
    hung up while no `serve` ran, before reaching an agent, is `lost` (README: the next
    process cannot tell who ended the call)."""
    if c.ended_by != "caller" or c.path != "stasis" or c.ended is None:
        return None
    if c.was_bridged:
        return "answered"
    if any(a <= c.ended <= b for a, b in serve_down):
        return "lost"
    return "abandoned_in_queue" if c.was_queued else "abandoned_in_ivr"


def figures(
    args: argparse.Namespace,
    callers: list[Caller],
    rows: list[dict[str, Any]],
    chaos: Chaos,
    leftovers: tuple[list[str], list[str]],
    problems: dict[str, Counter[str]],
) -> dict[str, Any]:
    placed = [c for c in callers if c.originated]
    by_call: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        key = str(r["channel_id"]).split(";")[0]
        if key not in {c.id for c in callers}:
            key = str(r["linkedid"] or key).split(";")[0]
        by_call.setdefault(key, []).append(r)
    down = [f.window() for f in chaos.faults if f.kind == "kill"]
    serve_down = {c.id for c in placed if any(a <= c.placed <= b for a, b in down)}
    missing = [c for c in placed if c.id not in by_call]
    no_serve = [c for c in missing if c.path == "apology"]
    unexpected = [c for c in missing if c.path != "apology"]
    dupes = {k: v for k, v in by_call.items() if len(v) > 1}
    singles = [v[0] for k, v in by_call.items() if len(v) == 1]
    final = [r for r in singles if r["ended_at"] is not None and r["outcome"] is not None]
    open_rows = [r for r in rows if r["ended_at"] is None or not r["outcome"]]
    row_of = {k: v[0] for k, v in by_call.items()}
    mismatches: Counter[str] = Counter()
    mismatch_calls = []
    for c in placed:
        want = expected_outcome(c, down)
        got = row_of.get(c.id, {}).get("outcome")
        if want is not None and got is not None and got != want:
            mismatches[f"{want} -> {got}"] += 1
            mismatch_calls.append(c.id)
    cut = [c for c in placed if c.ended_by == "far end" and c.path == "stasis"]
    outcome_of = {k: v[0]["outcome"] for k, v in by_call.items()}
    gaps = sorted((g for c in callers for g in c.gaps), key=lambda g: -g.seconds)
    longest = gaps[0] if gaps else None

    def around(g: Gap) -> list[str]:
        return [
            f"{f.kind}@+{f.start:.1f}"
            for f in chaos.faults
            if f.window()[0] - 1 <= g.end and g.start <= f.window()[1] + 1
        ]

    kinds = Counter(f.kind for f in chaos.faults)
    by_fault: dict[str, float] = {}
    for g in gaps:
        near = around(g)
        kind = near[0].split("@")[0] if near else "none"
        by_fault[kind] = round(max(by_fault.get(kind, 0.0), g.seconds), 2)
    return {
        "duration_s": args.duration,
        "rate_per_s": args.rate,
        "agents": args.agents,
        "seed": args.seed,
        "placed": len(placed),
        "originate_failed": sum(1 for c in callers if not c.originated),
        "answered": sum(1 for c in placed if c.answered is not None),
        "not_answered": [c.id for c in placed if c.answered is None],
        "rows_final": len(final),
        "rows_missing": len(missing),
        "rows_missing_no_serve": len(no_serve),
        "rows_missing_unexpected": [c.id for c in unexpected],
        "rows_open": [str(r["channel_id"]) for r in open_rows],
        "duplicates": {k: len(v) for k, v in dupes.items()},
        "placed_while_serve_down": len(serve_down),
        "placed_while_serve_down_missing": sum(1 for c in missing if c.id in serve_down),
        "paths": dict(Counter(c.path for c in placed)),
        "handlers": dict(Counter(str(r["handler"]) for r in rows)),
        "outcomes": dict(Counter(str(r["outcome"]) for r in rows)),
        "outcome_mismatches": dict(mismatches),
        "outcome_mismatch_calls": mismatch_calls[:20],
        "ended_by_centrala": {c.id: f"{c.ended_in}, {outcome_of.get(c.id)}" for c in cut},
        "lives": dict(Counter(c.plan.kind for c in placed)),
        "ended_by": dict(Counter(c.ended_by for c in placed)),
        "talked": sum(1 for c in placed if c.was_bridged),
        "longest_silence_s": round(longest.seconds, 2) if longest else 0.0,
        "longest_silence_call": longest.call if longest else None,
        "longest_silence_at_s": round(longest.start, 1) if longest else None,
        "longest_silence_phase": longest.phase if longest else None,
        "longest_silence_faults": around(longest) if longest else [],
        "silences_top": [
            {
                "s": round(g.seconds, 2),
                "call": g.call,
                "at": round(g.start, 1),
                "phase": g.phase,
                "faults": around(g),
            }
            for g in gaps[:10]
        ],
        "longest_silence_by_fault": by_fault,
        "gaps_over_2s": sum(1 for g in gaps if g.seconds > 2),
        "gaps_over_5s": sum(1 for g in gaps if g.seconds > 5),
        "faults": {k: kinds.get(k, 0) for k in ("kill", "ws", "db")},
        "fault_timeline": [f.line() for f in chaos.faults],
        "db_down_total_s": round(
            sum(float(f.detail.get("down", 0.0)) for f in chaos.faults if f.kind == "db"), 1
        ),
        "serve_start_to_ready_max_s": max(
            (float(f.detail["start->ready"]) for f in chaos.faults if "start->ready" in f.detail),
            default=None,
        ),
        "serve_broken": chaos.broken,
        "leftover_channels": leftovers[0],
        "leftover_bridges": leftovers[1],
        "serve_log_errors": dict(problems["error"]),
        "serve_log_warnings": dict(problems["warning"]),
    }


def report(f: dict[str, Any], args: argparse.Namespace, url: str) -> int:
    db = make_url(url)
    print(
        f"chaos: {f['duration_s']:.0f} s at {f['rate_per_s']} calls/s, {f['agents']} agents, "
        f"seed {f['seed']}, PostgreSQL {args.pg_cluster} ({db.host}:{db.port}/{db.database})"
    )
    print(
        f"  faults            serve killed {f['faults']['kill']}, ARI WebSocket destroyed "
        f"{f['faults']['ws']}, database stopped {f['faults']['db']} "
        f"({f['db_down_total_s']} s in all)"
    )
    for line in f["fault_timeline"]:
        print(f"    {line}")
    print(
        f"  calls placed      {f['placed']} (originate refused {f['originate_failed']}); "
        f"answered {f['answered']}; talked to an agent {f['talked']}"
    )
    print(f"  lives             {f['lives']}; ended by {f['ended_by']}")
    print(f"  far-end paths     {f['paths']}  (apology: met no serve)")
    print(f"  placed while serve was down  {f['placed_while_serve_down']}")
    print(
        f"  rows              final {f['rows_final']}, missing {f['rows_missing']} (met no serve "
        f"{f['rows_missing_no_serve']}, other {len(f['rows_missing_unexpected'])}), "
        f"open {len(f['rows_open'])}, duplicates {len(f['duplicates'])}"
    )
    print(f"  outcomes          {f['outcomes']}; handlers {f['handlers']}")
    if f["outcome_mismatches"]:
        print(
            f"  outcome vs life   {f['outcome_mismatches']} e.g. {f['outcome_mismatch_calls'][:3]}"
        )
    if f["ended_by_centrala"]:
        print(f"  ended by Centrala {f['ended_by_centrala']}")
    print(
        f"  longest silence   {f['longest_silence_s']:.2f} s: call {f['longest_silence_call']} at "
        f"+{f['longest_silence_at_s']} s in the {f['longest_silence_phase']} "
        f"(faults around it: {', '.join(f['longest_silence_faults']) or 'none'})"
    )
    print(
        f"  silences          over 2 s: {f['gaps_over_2s']}, over 5 s: {f['gaps_over_5s']}; "
        f"longest by the fault around it {f['longest_silence_by_fault']}"
    )
    for g in f["silences_top"][:5]:
        print(f"    {g['s']:6.2f} s  {g['call']}  +{g['at']} s  {g['phase']}  {g['faults']}")
    if f["leftover_channels"] or f["leftover_bridges"]:
        print(f"  left in Asterisk  {f['leftover_channels']} {f['leftover_bridges']}")
    print(f"  serve log         errors {f['serve_log_errors']}")
    print(f"                    warnings {f['serve_log_warnings']}")
    if f["rows_missing_no_serve"]:
        print(
            "  note: calls that met no serve (it was dead: the dialplan fell through Stasis and "
            "FastAGI to its apology) have no row until calls are reconciled from Asterisk's CDR"
        )
    failed = bool(
        f["rows_missing_unexpected"]
        or f["rows_open"]
        or f["duplicates"]
        or f["serve_broken"]
        or (args.require_all_rows and f["rows_missing"])
    )
    f["check"] = "failed" if failed else "passed"
    print(f"  check             {f['check']}")
    print("JSON " + json.dumps(f, default=str), flush=True)
    return 1 if failed else 0


def dump_calls(path: Path, callers: list[Caller], rows: list[dict[str, Any]]) -> None:
    """One line per caller (their plan, what they lived and heard, their rows): to look into
    a figure."""
    by_call: dict[str, list[dict[str, Any]]] = {}
    for r in rows:
        by_call.setdefault(str(r["channel_id"]).split(";")[0], []).append(r)
    with path.open("w") as out:
        for c in callers:
            item = {
                "id": c.id,
                "plan": c.plan.__dict__,
                "placed": round(c.placed, 2),
                "answered": c.answered and round(c.answered, 2),
                "ended": c.ended and round(c.ended, 2),
                "ended_by": c.ended_by,
                "ended_in": c.ended_in,
                "path": c.path,
                "apps": c.apps,
                "keys": c.keys,
                "queued": c.was_queued,
                "talked": c.was_bridged,
                "gaps": [(round(g.start, 2), round(g.seconds, 2), g.phase) for g in c.gaps],
                "rows": by_call.get(c.id, []),
            }
            out.write(json.dumps(item, default=str) + "\n")


async def place_calls(
    args: argparse.Namespace, tracker: Tracker, tag: str, lives: list[asyncio.Task[None]]
) -> list[Caller]:
    rng = random.Random(f"{args.seed}-callers")
    callers: list[Caller] = []
    n = 0
    while tracker.now() < args.duration:
        c = Caller(
            n=n,
            id=f"chaos-{tag}-{n:05d}",
            number=f"+3876198{n:05d}",
            plan=draw_plan(rng),
            rng=random.Random(f"{args.seed}-caller-{n}"),
            placed=tracker.now(),
        )
        tracker.callers[c.id] = c
        callers.append(c)
        lives.append(asyncio.create_task(life(tracker, c)))
        n += 1
        await asyncio.sleep(max(0.0, n / args.rate - tracker.now()))
    return callers


async def progress(tracker: Tracker, chaos: Chaos) -> None:
    while True:
        await asyncio.sleep(30)
        cs = list(tracker.callers.values())
        live = sum(1 for c in cs if c.answered is not None and c.ended is None)
        log(
            f"+{tracker.now():.0f} s: placed {len(cs)}, answered "
            f"{sum(1 for c in cs if c.answered is not None)}, live {live}, "
            f"faults {len(chaos.faults)}"
        )


async def leftovers(ari: BenchARI) -> tuple[list[str], list[str]]:
    """Channels and bridges still in Asterisk once every caller is gone (a few seconds for
    the agents' legs to go)."""
    deadline = time.monotonic() + 15
    while True:
        channels = [str(c.get("name")) for c in await ari.channels()]
        bridges = [str(b.get("id")) for b in await ari.bridges()]
        if (not channels and not bridges) or time.monotonic() > deadline:
            return channels, bridges
        await asyncio.sleep(0.5)


async def main_async(args: argparse.Namespace) -> int:
    configure_logging("console", "WARNING")
    settings = Settings()
    if foreign_serves():
        raise SystemExit("another `centrala serve` is running here: stop it first")
    # `pbx up` and serve have data directories of their own: one FastAGI secret for both.
    os.environ.setdefault("CENTRALA_AGI_SECRET", f"chaos-{uuid.uuid4().hex}")
    url = args.database_url
    cluster = Cluster(args.pg_cluster, url)
    cluster.check()
    if not cluster.ready():
        cluster.ctl("start")
    log("pbx up (with tests/asterisk contexts)")
    ensure_pbx(settings)
    await fresh_database(url)
    tag = uuid.uuid4().hex[:6]
    workdir = Path(tempfile.mkdtemp(prefix=f"centrala-chaos-{tag}-"))
    serve = Serve(workdir, url)
    log(f"serve log in {workdir}; database {make_url(url).database}; tag {tag}")
    serve.start()
    await serve.wait_ready()
    agents, (engine, _) = await setup_desk(serve, args.agents, tag, "per_call", chaos_flow())
    await engine.dispose()

    tracker = Tracker(time.monotonic())
    ari = ChaosARI(settings.ari_url, settings.ari_user, settings.ari_password, [APP])
    ari.tracker = tracker
    tracker.ari = ari
    await ari.start()
    await ari.wait_connected(10)
    # Every channel's events (the callers' far ends from their first moment, no race).
    await ari.subscribe(APP, "channel:")
    ami = AMIClient(settings.ami_host, settings.ami_port, settings.ami_user, settings.ami_secret)
    for name in AMI_EVENTS:
        ami.on_event(name, tracker.on_ami)
    await ami.start()
    await ami.wait_connected(10)
    with contextlib.suppress(AMIError):
        for name in AMI_EVENTS:
            await ami.action("Filter", {"Operation": "Add", "Filter": f"Event: {name}"})

    chaos = Chaos(args, serve, cluster, settings, tracker)
    lives: list[asyncio.Task[None]] = []
    watcher = asyncio.create_task(progress(tracker, chaos))
    chaos_task = asyncio.create_task(chaos.run())
    code = 1
    try:
        log(f"calls at {args.rate}/s for {args.duration:.0f} s; faults {','.join(args.faults)}")
        callers = await place_calls(args, tracker, tag, lives)
        log(f"+{tracker.now():.0f} s: calls stopped ({len(callers)}); waiting for the chaos")
        await chaos_task
        await chaos.restore()
        log(f"+{tracker.now():.0f} s: everything up; waiting for the callers to finish")
        await asyncio.gather(*lives)
        if not await serve_drained(serve, 120):
            _, body = await status(serve)
            log(f"/status not ok 120 s after the last call: {body}")
            chaos.broken = chaos.broken or f"/status not ok at the end: {body}"
        # Calls that met no serve get their rows from Asterisk's CDR: wait for a pass that
        # has taken every call ended by now (its grace and interval are serve's settings).
        if not await cdr_taken(serve, datetime.now(UTC), 90):
            log("no CDR pass past the last call within 90 s")
        rows = await settle_rows(url, tag, 30)
        left = await leftovers(ari)
        f = figures(args, callers, rows, chaos, left, serve_log_problems(workdir))
        dump_calls(workdir / "calls.jsonl", callers, rows)
        f["serve_logs"] = str(workdir)
        code = report(f, args, url)
    finally:
        watcher.cancel()
        chaos_task.cancel()
        for task in chaos.watchers:
            task.cancel()
        for task in lives:
            task.cancel()
        with contextlib.suppress(Exception):
            if cluster.stopped:
                cluster.ctl("start")
        with contextlib.suppress(ARIError):
            for ch in await ari.channels():
                with contextlib.suppress(ARIError):
                    await ari.hangup(ch["id"])
        if serve.proc is not None and serve.proc.poll() is None and serve.headers:
            await teardown_desk(serve, agents)
        serve.stop()
        await ari.stop()
        await ami.stop()
    return code


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--duration", type=float, default=600, help="seconds of calls")
    parser.add_argument("--rate", type=float, default=0.5, help="calls per second")
    parser.add_argument("--agents", type=int, default=4)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--pg-cluster",
        default=os.environ.get("CENTRALA_TEST_PG_CLUSTER", "15/main"),
        help="VERSION/NAME of the cluster to stop and start (CENTRALA_TEST_PG_CLUSTER)",
    )
    parser.add_argument(
        "--database-url",
        default=default_database_url(),
        help="the benchmark's own database, emptied at start "
        "(default: CENTRALA_TEST_POSTGRES_URL's sibling <db>_chaos)",
    )
    parser.add_argument(
        "--faults",
        type=lambda s: [k for k in s.split(",") if k],
        default=["kill", "ws", "db"],
        help="kinds to inject, comma-separated: kill, ws, db",
    )
    for name, default, what in (
        ("--fault-gap", [10.0, 30.0], "seconds from one fault's end to the next fault"),
        ("--db-down", [5.0, 60.0], "seconds the database stays stopped"),
        ("--serve-pause", [0.5, 5.0], "seconds from the kill to the new serve's start"),
    ):
        parser.add_argument(
            name, type=float, nargs=2, default=default, metavar=("MIN", "MAX"), help=what
        )
    parser.add_argument(
        "--require-all-rows",
        action="store_true",
        help="fail on calls that met no serve too (once calls are reconciled from the CDR)",
    )
    args = parser.parse_args()
    if not args.database_url.startswith("postgresql"):
        parser.error("the database fault needs PostgreSQL: --database-url postgresql+asyncpg://…")
    bad = set(args.faults) - {"kill", "ws", "db"}
    if bad:
        parser.error(f"unknown fault kinds: {sorted(bad)}")
    sys.exit(asyncio.run(main_async(args)))


if __name__ == "__main__":
    main()
