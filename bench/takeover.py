"""Two `serve` instances for one Asterisk node: how long a standby takes to own the node and
adopt its calls when the owner is SIGKILLed, over several kills.

    python bench/takeover.py --talking 5 --queued 5 --ivr 5 --repeat 5 [--database-url URL]

Instances "a" and "b" share the database and the node "pbx1" (``CENTRALA_NODE``), with the
default lease (9 s) and renewal (2 s). Each round places callers talking to agents, waiting
in the queue and in the IVR through the owner, SIGKILLs the owner, and times the kill to the
standby's `/status` answering 200 (node owned, every call adopted); then hangs the callers
up and starts the killed instance again, now the standby. The next round kills the other.
Per round: the takeover time, calls adopted against those placed, callers dropped.
Needs root (it runs `centrala pbx up`). Do not run while the integration tests run.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import secrets
import signal
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from infoline_load import (
    APP,
    BenchARI,
    Serve,
    ensure_pbx,
    foreign_serves,
    free_port,
    log,
    setup_desk,
    teardown_desk,
)
from restart import Legs, _all_ended, _at_least, status, wait_for

from ari_app.ari import ARIError
from centrala.settings import Settings


def instance(workdir: Path, url: str, name: str, shared: dict[str, str]) -> Serve:
    """Instance ``name`` of node pbx1: its own data directory, ports and FastAGI port; the
    secrets every instance of a node shares (API token, session key, FastAGI secret)."""
    data = workdir / name
    data.mkdir(parents=True, exist_ok=True)
    for file in ("api-token", "web-secret"):
        path = data / file
        path.write_text(shared[file] + "\n")
        path.chmod(0o600)
    env = {
        "CENTRALA_NODE": "pbx1",
        "CENTRALA_INSTANCE_ID": name,
        "CENTRALA_AGI_SECRET": shared["agi-secret"],
        "CENTRALA_AGI_PORT": str(free_port()),
    }
    return Serve(data, url, env)


async def wait_standby(serve: Serve) -> None:
    async def standing_by() -> bool:
        assert serve.proc is not None and serve.proc.poll() is None, serve.log_path
        with contextlib.suppress(Exception):
            body = await status(serve)
            return bool(body.get("cluster", {}).get("role") == "standby")
        return False

    await wait_for(standing_by, "the standby to say so")


async def one_round(
    args: argparse.Namespace, owner: Serve, standby: Serve, legs: Legs, n: int
) -> dict[str, Any]:
    tag = f"t{n}"
    agents, (engine, _) = await setup_desk(owner, args.talking, tag, "per_call")
    await engine.dispose()

    async def on_call(serve: Serve) -> int:
        snap = await serve.api("GET", "/api/acd")
        return sum(1 for a in agents if snap["agents"].get(a, {}).get("status") == "on_call")

    talking = await legs.place(f"{tag}-talk", args.talking, "0")
    await wait_for(lambda: _at_least(lambda: on_call(owner), args.talking), "the talkers")
    queued = await legs.place(f"{tag}-queue", args.queued, "0")
    in_ivr = await legs.place(f"{tag}-ivr", args.ivr, "")
    placed = talking + queued + in_ivr

    async def waiting() -> bool:
        snap = await owner.api("GET", "/api/acd")
        return bool(
            (snap.get("queues", {}).get("new_clients") or {}).get("waiting", 0) >= len(queued)
        )

    await wait_for(waiting, "the queued callers to wait in the queue")
    took, body = await kill_owner(owner, standby)
    still_on_call = await on_call(standby)
    dropped = [c for c in placed if c in legs.ended]
    await hang_up_all(legs, [*queued, *in_ivr, *talking], "every caller's leg to end")
    await back_as_standby(owner, standby, agents)
    return {
        "killed": owner.extra_env["CENTRALA_INSTANCE_ID"],
        "took_s": took,
        "placed": len(placed),
        "adopted": body.get("calls_adopted"),
        "dropped": len(dropped),
        "agents_on_call": still_on_call,
        "talkers": len(talking),
    }


async def kill_owner(owner: Serve, standby: Serve) -> tuple[float, dict[str, Any]]:
    """SIGKILL the owner: the seconds until the standby's `/status` is ready (its nodes owned,
    every call adopted), and that status."""
    assert owner.proc is not None
    killed = time.monotonic()
    owner.proc.send_signal(signal.SIGKILL)
    await asyncio.to_thread(owner.proc.wait, 30)
    await standby.wait_ready(timeout=60)
    return time.monotonic() - killed, await status(standby)


async def hang_up_all(legs: Legs, callers: list[str], what: str) -> None:
    """Every one of ``callers`` hung up (in that order), and their legs ended."""
    for cid in callers:
        with contextlib.suppress(ARIError):
            await legs.ari.hangup(cid)
    await wait_for(lambda: _all_ended(legs, callers), what)


async def back_as_standby(owner: Serve, standby: Serve, agents: list[str]) -> None:
    """The round's agents logged out of the new owner; the killed instance started again, now
    the standby."""
    await teardown_desk(standby, agents)
    owner.start()
    await wait_standby(owner)


async def main_async(args: argparse.Namespace) -> None:
    settings = Settings()
    if foreign_serves():
        raise SystemExit("another `centrala serve` is running: stop it first")
    ensure_pbx(settings)
    workdir = Path(tempfile.mkdtemp(prefix="centrala-takeover-"))
    url = args.database_url or f"sqlite+aiosqlite:///{workdir / 'centrala.db'}"
    shared = {
        "api-token": secrets.token_urlsafe(32),
        "web-secret": secrets.token_urlsafe(32),
        "agi-secret": settings.effective_agi_secret(),  # the one `pbx up` rendered
    }
    a, b = instance(workdir, url, "a", shared), instance(workdir, url, "b", shared)
    a.start()
    await a.wait_ready()
    b.start()
    await wait_standby(b)
    ari = BenchARI(settings.ari_url, settings.ari_user, settings.ari_password, [APP])
    await ari.start()
    await ari.wait_connected(10)
    legs = Legs(ari)
    rounds = []
    owner, standby = a, b
    try:
        for n in range(args.repeat):
            figures = await one_round(args, owner, standby, legs, n)
            rounds.append(figures)
            log(f"kill {n + 1}: {figures}")
            owner, standby = standby, owner
    finally:
        await ari.stop()
        for serve in (a, b):
            serve.stop()
    print(
        f"takeover of node pbx1 by a standby `serve` after SIGKILL of its owner, with "
        f"{args.talking} talking, {args.queued} queued, {args.ivr} in the IVR "
        f"({args.repeat} kills, lease 9 s, renewal 2 s, {url.split(':')[0]})"
    )
    print_kills(rounds)


def print_kills(rounds: list[dict[str, Any]]) -> None:
    """Each kill's figures, then the takeover times' spread."""
    for i, r in enumerate(rounds, 1):
        print(
            f"  kill {i} ({r['killed']}): taken over in {r['took_s']:.1f} s; adopted "
            f"{r['adopted']}/{r['placed']}; dropped {r['dropped']}; agents on call "
            f"{r['agents_on_call']}/{r['talkers']}"
        )
    took = [r["took_s"] for r in rounds]
    print(
        f"takeover: min {min(took):.1f} s, median {statistics.median(took):.1f} s, "
        f"max {max(took):.1f} s over {len(took)} kills"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--talking", type=int, default=5)
    parser.add_argument("--queued", type=int, default=5)
    parser.add_argument("--ivr", type=int, default=5)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--database-url")
    asyncio.run(main_async(parser.parse_args()))


if __name__ == "__main__":
    main()
