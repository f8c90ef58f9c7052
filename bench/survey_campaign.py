"""Benchmark: completed surveys per minute of an outbound NPS campaign on the local Asterisk.

For each concurrency (default 30, 60, 100) a fresh `centrala serve` on a fresh SQLite file runs
a campaign of N contacts (default 1000) against simulated clients (tests/asterisk
[test-clients]): each answers, says hello (AMD hears a person), consents, scores 9 and agrees
to a call back, as a real respondent does, with the same pauses. `--mix realistic` makes 70%
such people, 10% answering machines, 10% busy lines and 10% nobody answering (5 s ring).

Printed per run: surveys completed, wall time from start to the last contact settled,
completed surveys per minute, the peak of calls at once, and the CPU of `centrala serve` and
of Asterisk per call placed (user+system over the run / calls).

    python bench/survey_campaign.py --contacts 1000 --concurrency 30 60 100

Needs the local PBX with the test contexts (it runs `centrala pbx up` with them) and owns it
while it runs: stop any other `centrala serve` first.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from core.surveys.campaign import CampaignRules, CampaignSettings  # noqa: E402
from infoline_load import Serve, cpu_seconds, ensure_pbx, foreign_serves, log  # noqa: E402
from sqlalchemy import func, select  # noqa: E402

from ari_app.ami import AMIClient  # noqa: E402
from centrala.settings import Settings  # noqa: E402
from dialplan.model import WEEKDAYS, Calendar  # noqa: E402
from models.campaigns import CampaignStore, NewContact  # noqa: E402
from models.db import create_engine, session_factory, upgrade_async  # noqa: E402
from models.surveys import active_survey  # noqa: E402
from models.tables import Call, CampaignContact  # noqa: E402

PERSON = "wwwwww1wwww9wwww1"  # consent, 9, yes: what a promoter presses, with their pauses


def behaviours(n: int, mix: str) -> list[str]:
    if mix == "human":
        return ["human"] * n
    pattern = ["human"] * 7 + ["machine", "busy", "noanswer"]
    return [pattern[i % 10] for i in range(n)]


async def simulate(ami: AMIClient, numbers: list[str], kinds: list[str]) -> None:
    for num, kind in zip(numbers, kinds, strict=True):
        await ami.action("DBPut", {"Family": "sim", "Key": num, "Val": kind})
        if kind == "human":
            await ami.action("DBPut", {"Family": "sim", "Key": f"{num}-keys", "Val": PERSON})


async def run_one(
    settings: Settings, ami: AMIClient, contacts: int, concurrency: int, mix: str, rate: float
) -> dict[str, float]:
    workdir = Path(tempfile.mkdtemp(prefix=f"survey-bench-{concurrency}-"))
    url = f"sqlite+aiosqlite:///{workdir / 'centrala.db'}"
    await upgrade_async(Settings(database_url=url))
    serve = Serve(
        workdir,
        url,
        {
            "CENTRALA_OUTBOUND_DIAL": "Local/{number}@test-clients",
            "CENTRALA_CAMPAIGN_TICK_SECONDS": "0.25",
        },
    )
    serve.start()
    await serve.wait_ready()
    assert serve.proc is not None
    engine = create_engine(url)
    sessions = session_factory(engine)
    stamp = int(time.time()) % 100000
    numbers = [f"+3876{stamp:05d}{i:04d}" for i in range(contacts)]
    await simulate(ami, numbers, behaviours(contacts, mix))
    stored = await active_survey(sessions, "nps")
    assert stored is not None
    whole = Calendar(timezone="UTC", weekly={d: ["00:00-24:00"] for d in WEEKDAYS})
    campaign_settings = CampaignSettings(
        rules=CampaignRules(window=whole, legal=whole),
        concurrency=concurrency,
        calls_per_second=rate,
        ring_seconds=5,
    )
    store = CampaignStore(sessions)
    campaign_id, _ = await store.create(
        f"bench-{concurrency}-{stamp}",
        stored.id,
        campaign_settings,
        [NewContact(n, timezone="UTC", language="en") for n in numbers],
    )
    serve_cpu0 = cpu_seconds(serve.proc.pid)
    pbx_pid = int(ensure_pbx(settings))
    pbx_cpu0 = cpu_seconds(pbx_pid)
    started = time.monotonic()
    await serve.api("POST", f"/api/campaigns/{campaign_id}/start")
    peak = 0
    while True:
        await asyncio.sleep(1)
        async with sessions() as session:
            open_ = await session.scalar(
                select(func.count())
                .select_from(CampaignContact)
                .where(
                    CampaignContact.campaign_id == campaign_id,
                    CampaignContact.status.in_(["dialling"]),
                )
            )
            settled = await session.scalar(
                select(func.count())
                .select_from(CampaignContact)
                .where(
                    CampaignContact.campaign_id == campaign_id,
                    CampaignContact.attempts >= 1,
                    CampaignContact.status != "dialling",
                )
            )
        peak = max(peak, int(open_ or 0))
        if settled == contacts:
            break
        if time.monotonic() - started > 3600:
            raise SystemExit("the campaign did not finish within an hour")
    wall = time.monotonic() - started
    serve_cpu = cpu_seconds(serve.proc.pid) - serve_cpu0
    pbx_cpu = cpu_seconds(pbx_pid) - pbx_cpu0
    async with sessions() as session:
        completed = int(
            await session.scalar(
                select(func.count()).select_from(Call).where(Call.survey_status == "completed")
            )
            or 0
        )
        calls = int(await session.scalar(select(func.count()).select_from(Call)) or 0)
    errors = [line for line in serve.log_lines() if line.get("level") in ("error", "critical")]
    serve.stop()
    await engine.dispose()
    return {
        "concurrency": concurrency,
        "contacts": contacts,
        "calls": calls,
        "completed": completed,
        "wall_s": wall,
        "per_minute": completed / wall * 60,
        "peak_calls": peak,
        "serve_cpu_ms_per_call": serve_cpu / calls * 1000,
        "asterisk_cpu_ms_per_call": pbx_cpu / calls * 1000,
        "errors": len(errors),
    }


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[30, 60, 100])
    parser.add_argument("--mix", choices=["human", "realistic"], default="human")
    parser.add_argument("--rate", type=float, default=20, help="calls per second at most")
    args = parser.parse_args()
    settings = Settings()
    if foreign_serves():
        raise SystemExit("another `centrala serve` is running on this PBX: stop it first")
    ensure_pbx(settings)
    ami = AMIClient(settings.ami_host, settings.ami_port, settings.ami_user, settings.ami_secret)
    await ami.start()
    await ami.wait_connected(10)
    log(f"{datetime.now(UTC):%Y-%m-%d %H:%M} {args.contacts} contacts, mix {args.mix}")
    print(
        f"{'conc':>5} {'calls':>6} {'completed':>9} {'wall s':>7} {'per min':>8} {'peak':>5} "
        f"{'serve ms/call':>13} {'asterisk ms/call':>16} {'errors':>6}"
    )
    for concurrency in args.concurrency:
        r = await run_one(settings, ami, args.contacts, concurrency, args.mix, args.rate)
        print(
            f"{r['concurrency']:>5} {r['calls']:>6} {r['completed']:>9} {r['wall_s']:>7.1f} "
            f"{r['per_minute']:>8.1f} {r['peak_calls']:>5} {r['serve_cpu_ms_per_call']:>13.1f} "
            f"{r['asterisk_cpu_ms_per_call']:>16.1f} {r['errors']:>6}",
            flush=True,
        )
    await ami.stop()


if __name__ == "__main__":
    asyncio.run(main())
