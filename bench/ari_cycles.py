"""ARI layer throughput: originate -> StasisStart -> hangup -> ChannelDestroyed cycles per
second through our ARI client, one at a time and N at a time, against the local Asterisk.

    .venv/bin/python bench/ari_cycles.py [--calls 300] [--concurrency 1 10]

Needs `centrala pbx up`. Prints one line per concurrency level.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
import uuid

from ari_app.ari import ARIClient, Event
from centrala.settings import Settings

APP = "centrala-bench"


async def run(calls: int, concurrency: int) -> None:
    s = Settings()
    ari = ARIClient(s.ari_url, s.ari_user, s.ari_password, [APP])
    done: dict[str, asyncio.Future[None]] = {}

    async def on_event(event: Event) -> None:
        channel = event.get("channel", {}).get("id", "")
        if event["type"] == "StasisStart":
            await ari.hangup(channel)
        elif event["type"] == "ChannelDestroyed" and channel in done:
            done[channel].set_result(None)

    ari.on_event(on_event)
    await ari.start()
    await ari.wait_connected(10)
    sem = asyncio.Semaphore(concurrency)
    latencies: list[float] = []

    async def one() -> None:
        async with sem:
            cid = uuid.uuid4().hex
            done[cid] = asyncio.get_running_loop().create_future()
            t0 = time.perf_counter()
            await ari.originate("Local/*43@from-agents", channel_id=cid, app=APP)
            await asyncio.wait_for(done[cid], 10)
            latencies.append(time.perf_counter() - t0)
            done.pop(cid, None)

    cpu0 = resource.getrusage(resource.RUSAGE_SELF)
    t0 = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(calls)))
    wall = time.perf_counter() - t0
    cpu1 = resource.getrusage(resource.RUSAGE_SELF)
    cpu = (cpu1.ru_utime - cpu0.ru_utime) + (cpu1.ru_stime - cpu0.ru_stime)
    latencies.sort()
    print(
        f"concurrency={concurrency:3d} calls={calls} cycles/s={calls / wall:7.1f} "
        f"p50={latencies[len(latencies) // 2] * 1000:6.1f}ms "
        f"p99={latencies[int(len(latencies) * 0.99) - 1] * 1000:6.1f}ms "
        f"client_cpu_per_cycle={cpu / calls * 1000:.2f}ms"
    )
    await ari.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 10])
    args = parser.parse_args()
    for level in args.concurrency:
        asyncio.run(run(args.calls, level))


if __name__ == "__main__":
    main()
