"""A restart of `centrala serve` under calls: how long until the new process has adopted
every live call, and whether any call was dropped.

    python bench/restart.py --talking 20 --queued 20 --ivr 20 [--signal kill|term]
        [--repeat 3] [--database-url URL]

Callers (Local channels into the info line, as in bench/infoline_load.py) are put in three
places: talking to per-call agents, waiting in the queue (no agent free), and in the IVR (just
answered). Then `serve` is killed (SIGKILL, a crash) or stopped (SIGTERM, a deploy) and
started again on the same database. Figures per round:
  stopped -> ready     the signal to `/status` answering 200 (which waits for the adoption)
  adoption             serve's log: the first `call_adopted` to the last
  adopted              `/status` calls_adopted, against the calls placed
  dropped              callers' legs that ended before the benchmark hung them up
  agents on call       agents the restarted ACD has on a call, against the talkers
Needs root (it runs `centrala pbx up` with the test contexts). Leaves the PBX running; do not
run while the integration tests run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import signal
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infoline_load import (
    APP,
    INFO_NUMBER,
    BenchARI,
    Serve,
    ensure_pbx,
    foreign_serves,
    log,
    log_ts,
    setup_desk,
    teardown_desk,
)

from ari_app.ari import ARIError, Event
from centrala.settings import Settings


class Legs:
    """The callers' legs in our app, and which of them ended."""

    def __init__(self, ari: BenchARI) -> None:
        self.ari = ari
        self.started: dict[str, asyncio.Event] = {}
        self.ended: set[str] = set()
        ari.on_event(self.on_event)

    async def on_event(self, event: Event) -> None:
        cid = str((event.get("channel") or {}).get("id", ""))
        if event.get("type") == "StasisStart" and cid in self.started:
            self.started[cid].set()
        elif event.get("type") == "ChannelDestroyed":
            self.ended.add(cid)

    async def place(self, tag: str, n: int, keys: str) -> list[str]:
        ids = []
        for i in range(n):
            cid = f"restart-{tag}-{i:03d}-{uuid.uuid4().hex[:6]}"
            self.started[cid] = asyncio.Event()
            await self.ari.originate(
                f"Local/{INFO_NUMBER}@from-trunk",
                channel_id=cid,
                app=APP,
                caller_id=f'"Restart bench" <+3876190{i:04d}>',
                dial_timeout=60,
            )
            await asyncio.wait_for(self.started[cid].wait(), 30)
            if keys:
                await self.ari.send_dtmf(cid, keys)
            ids.append(cid)
        return ids


async def wait_for(check: Any, what: str, timeout: float = 60) -> Any:  # noqa: ASYNC109
    deadline = time.monotonic() + timeout
    while True:
        value = await check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def status(serve: Serve) -> dict[str, Any]:
    async with aiohttp.ClientSession() as http, http.get(serve.url + "/status") as resp:
        return dict(await resp.json())


async def one_round(args: argparse.Namespace, serve: Serve, legs: Legs, n: int) -> dict[str, Any]:
    tag = f"r{n}"
    agents, (engine, _) = await setup_desk(serve, args.talking, tag, "per_call")
    await engine.dispose()

    async def on_call() -> int:
        snap = await serve.api("GET", "/api/acd")
        return sum(1 for a in agents if snap["agents"].get(a, {}).get("status") == "on_call")

    talking = await legs.place(f"{tag}-talk", args.talking, "0")
    await wait_for(lambda: _at_least(on_call, args.talking), "the talkers to be connected")
    queued = await legs.place(f"{tag}-queue", args.queued, "0")
    in_ivr = await legs.place(f"{tag}-ivr", args.ivr, "")
    placed = talking + queued + in_ivr

    async def waiting() -> bool:
        snap = await serve.api("GET", "/api/acd")
        queue = snap.get("queues", {}).get("new_clients") or {}
        return bool(queue.get("waiting", 0) >= args.queued)

    await wait_for(waiting, "the queued callers to wait in the queue")

    assert serve.proc is not None
    sig = signal.SIGKILL if args.signal == "kill" else signal.SIGTERM
    stopped = time.monotonic()
    serve.proc.send_signal(sig)
    await asyncio.to_thread(serve.proc.wait, 30)
    serve.start()
    await serve.wait_ready(timeout=120)
    ready = time.monotonic() - stopped
    body = await status(serve)
    adopted_at = [
        log_ts(line["timestamp"])
        for line in serve.log_lines()  # the new process's log (start() begins a new file)
        if line.get("event") == "call_adopted"
    ]
    agents_on_call = await on_call()
    dropped = [c for c in placed if c in legs.ended]

    # The waiting callers first: a freed agent would otherwise be rung for the next one.
    for cid in [*queued, *in_ivr, *talking]:
        with contextlib.suppress(ARIError):
            await legs.ari.hangup(cid)
    await wait_for(lambda: _all_ended(legs, placed), "every caller's leg to end")
    await teardown_desk(serve, agents)
    return {
        "placed": len(placed),
        "ready_s": ready,
        "adoption_s": (max(adopted_at) - min(adopted_at)) if adopted_at else None,
        "adopted": body.get("calls_adopted"),
        "dropped": len(dropped),
        "agents_on_call": agents_on_call,
        "talkers": len(talking),
    }


async def _at_least(count: Any, n: int) -> bool:
    return bool(await count() >= n)


async def _all_ended(legs: Legs, ids: list[str]) -> bool:
    return all(c in legs.ended for c in ids)


async def main_async(args: argparse.Namespace) -> None:
    settings = Settings()
    if foreign_serves():
        raise SystemExit("another `centrala serve` is running: stop it first")
    ensure_pbx(settings)
    workdir = Path(tempfile.mkdtemp(prefix="centrala-restart-"))
    url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'centrala.db'}"
    serve = Serve(workdir, url)
    serve.start()
    await serve.wait_ready()
    ari = BenchARI(settings.ari_url, settings.ari_user, settings.ari_password, [APP])
    await ari.start()
    await ari.wait_connected(10)
    legs = Legs(ari)
    rounds = []
    try:
        for n in range(args.repeat):
            figures = await one_round(args, serve, legs, n)
            rounds.append(figures)
            log(f"round {n + 1}: {figures}")
    finally:
        await ari.stop()
        serve.stop()
    print(
        f"restart of serve by SIG{args.signal.upper()} with {args.talking} talking, "
        f"{args.queued} queued, {args.ivr} in the IVR ({args.repeat} rounds, {url.split(':')[0]})"
    )
    for i, r in enumerate(rounds, 1):
        adoption = f"{r['adoption_s'] * 1000:.0f} ms" if r["adoption_s"] is not None else "-"
        print(
            f"  round {i}: stopped -> ready {r['ready_s']:.2f} s; adoption {adoption}; "
            f"adopted {r['adopted']}/{r['placed']}; dropped {r['dropped']}; "
            f"agents on call {r['agents_on_call']}/{r['talkers']}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--talking", type=int, default=20)
    parser.add_argument("--queued", type=int, default=20)
    parser.add_argument("--ivr", type=int, default=20)
    parser.add_argument("--signal", choices=["kill", "term"], default="kill")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--database-url")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
