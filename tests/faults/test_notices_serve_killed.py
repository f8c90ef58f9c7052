"""`serve` killed mid-batch while it sends a day's birthday greetings by SMS (the tests' own
SMSC, tests/smsc.py), on SQLite and PostgreSQL, then started again: no client's greeting is
lost, every one that was not being handed to the SMSC at the kill goes exactly once, and only
those in flight then (at most one per worker) may go twice, after the lease. The SMSC is
made to hang (SIGSTOP) so the kill falls while sendings are in flight, as it would on a busy
gateway."""

from __future__ import annotations

from collections import Counter
from datetime import date, datetime
from pathlib import Path
from zoneinfo import ZoneInfo

from sqlalchemy import select

from models.tables import Client, ClientPhone, Notice
from tests.conftest import Database
from tests.integration.conftest import start_serve, without_asterisk
from tests.integration.test_notices_sms import smsc
from tests.smsc import SmscProcess
from tests.support import wait_until

__all__ = ["smsc"]  # the fixture
ZONE = ZoneInfo("Europe/Sarajevo")
CLIENTS = 40
WORKERS = 2


def number(i: int) -> str:
    return f"+3876612{i:04d}"


async def seed(db: Database, today: date) -> None:
    async with db.sessions() as session, session.begin():
        for i in range(CLIENTS):
            session.add(
                Client(
                    external_id=f"nk-{i}",
                    name=f"Client {i}",
                    language="en",
                    birthday=today.replace(year=1988),  # a leap year: any day of today's exists
                    phones=[ClientPhone(number=number(i))],
                )
            )


async def by_state(db: Database) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    async with db.sessions() as session:
        for address, state in await session.execute(select(Notice.address, Notice.state)):
            found.setdefault(str(state), []).append(str(address))
    return found


async def test_serve_killed_mid_batch_loses_nothing_and_sends_once_but_in_flight(
    database: Database, smsc: SmscProcess, tmp_path: Path
) -> None:
    await seed(database, datetime.now(ZONE).date())
    for name in ("first", "second"):
        (tmp_path / name).mkdir()
    env = {
        **smsc.env(),
        "CENTRALA_NOTICES_QUIET_FROM": "00:00",  # no quiet hours: the test may run at night
        "CENTRALA_NOTICES_QUIET_UNTIL": "00:00",
        "CENTRALA_NOTICES_CHECK_SECONDS": "0.2",
        "CENTRALA_NOTICES_WORKERS": str(WORKERS),
        "CENTRALA_NOTICES_LEASE_SECONDS": "3",  # the second serve takes the claims over soon
        "CENTRALA_SMS_TIMEOUT_SECONDS": "60",  # a hung SMSC: the sendings wait, in flight
        **without_asterisk(),
    }
    first = start_serve(database, tmp_path / "first", **env)
    try:

        def some_submitted() -> bool:
            assert first.proc.poll() is None, first.log_path.read_text()[-3000:]
            return len(smsc.submitted()) >= 10

        await wait_until(some_submitted, timeout=60, message="the first greetings submitted")
        smsc.pause()  # the gateway hangs: the sendings under way wait for its answer
        before = {p["destination"] for p in smsc.submitted()}

        async def in_flight() -> list[str] | None:
            found = (await by_state(database)).get("sending", [])
            return found if len(found) >= WORKERS else None

        await wait_until(in_flight, timeout=30, message="sendings in flight at the kill")
        first.proc.kill()  # SIGKILL: no goodbye, its claims stay
        first.proc.wait(30)
        # In flight, and claimed ahead of the senders (those never reached the SMSC).
        flying = set((await by_state(database)).get("sending", []))
    finally:
        if first.proc.poll() is None:
            first.proc.kill()
        smsc.resume()  # it reads what the dead connection had sent it, as a real one may

    second = start_serve(database, tmp_path / "second", **env)
    try:

        async def all_done() -> bool:
            assert second.proc.poll() is None, second.log_path.read_text()[-3000:]
            states = await by_state(database)
            return set(states) <= {"sent", "delivered"} and sum(map(len, states.values())) == (
                CLIENTS
            )

        await wait_until(all_done, timeout=120, message="every greeting sent after the restart")
    finally:
        second.stop()

    sent = Counter("+" + p["destination"] for p in smsc.submitted())
    assert set(sent) == {number(i) for i in range(CLIENTS)}  # none lost
    twice = {n for n, times in sent.items() if times > 1}
    # Only a sending under way at the kill may have reached the SMSC and gone again: those
    # submitted before the SMSC hung went once, whatever else happened.
    assert twice <= flying, (twice, flying)
    assert all(times <= 2 for times in sent.values()), sent
    assert not twice & {"+" + d for d in before if "+" + d not in flying}
