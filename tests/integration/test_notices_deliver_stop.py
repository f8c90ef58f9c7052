"""`serve` stopping while it sends notices (usecases.notices.deliver cancelled), on SQLite
and PostgreSQL: with every sender waiting on a provider that does not answer and the
claims queued ahead of them, the sending stops at once, and the messages stay claimed for
the next `serve` (after the lease) rather than lost. It once hung for ever: the claimer's
end-of-work signal waited on a full queue nobody read any more."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, time, timedelta

import pytest
from sqlalchemy import select

from core.notices import Channel, NoticeKind, Policy
from models.notices import Claimed
from models.tables import Client, ClientPhone, Notice
from tests.conftest import Database
from tests.support import wait_until
from usecases.notices import NoticeSetup, deliver, queue


async def test_a_stop_mid_batch_ends_the_sending_at_once(database: Database) -> None:
    async with database.sessions() as session, session.begin():
        clients = [
            Client(external_id=f"stop-{n}", name=f"Klijent {n}",
                   phones=[ClientPhone(number=f"+3876155{n:04d}")])
            for n in range(12)
        ]  # fmt: skip
        session.add_all(clients)
    async with database.sessions() as session:
        ids = list(await session.scalars(select(Client.id).order_by(Client.id)))
    reached = asyncio.Event()

    async def provider_away(message: Claimed) -> str:
        reached.set()
        await asyncio.Event().wait()  # never answers
        raise AssertionError("unreachable")

    never_quiet = Policy(quiet_from=time(0), quiet_until=time(0), cap=100)
    setup = NoticeSetup(never_quiet, {Channel.SMS: provider_away}, workers=2)
    now = datetime.now(UTC)
    queued = await queue(
        database.sessions, setup, NoticeKind.ANNOUNCEMENT, ids, now, occasion="stop",
        message="Zdravo",
    )  # fmt: skip
    assert queued.added == 12
    sending = asyncio.create_task(deliver(database.sessions, setup, lambda: datetime.now(UTC)))
    await asyncio.wait_for(reached.wait(), 30)

    async def queue_full() -> bool:  # the claimer ahead of the two stuck senders
        async with database.sessions() as session:
            claimed = list(
                await session.scalars(select(Notice.id).where(Notice.state == "sending"))
            )
        # Two in the senders' hands, four waiting for them, and the claimer's next two,
        # which it cannot queue: it waits on the full queue, out of any transaction (at six
        # it may be inside its next claim, and a claim cancelled mid-write can leave
        # SQLite's write lock to the connection it dies with).
        return len(claimed) == 8

    await wait_until(queue_full, timeout=30, interval=0.02, message="the claims queued ahead")
    sending.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(sending, 10)  # stopped, not hanging
    async with database.sessions() as session:
        states = list(await session.scalars(select(Notice.state)))
    assert (states.count("sending"), states.count("queued")) == (8, 4)
    # The next `serve` takes the claims over after the lease: nothing lost.
    later = now + timedelta(minutes=10)
    sent: list[int] = []

    async def provider_back(message: Claimed) -> str:
        sent.append(message.id)
        return f"p-{message.id}"

    again = NoticeSetup(never_quiet, {Channel.SMS: provider_back}, workers=2)
    done = await deliver(database.sessions, again, lambda: later)
    assert done.sent == 12 and len(set(sent)) == 12
