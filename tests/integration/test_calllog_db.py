"""The call log on SQLite and PostgreSQL: one row per channel whatever the duplicates."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, select

from models.calllog import CallLog
from models.tables import Call, CallEvent, Client, ClientPhone, Direction
from tests.conftest import Database
from tests.support import wait_until

T0 = datetime(2026, 11, 23, 9, 0, tzinfo=UTC)


def _open(log: CallLog, channel: str, number: str | None = "061 222 333"):  # type: ignore[no-untyped-def]
    return log.open_call(
        channel_id=channel,
        linkedid=channel,
        direction=Direction.INBOUND,
        handler="ari",
        caller_number=number,
        caller_name="Test\x00Caller\n",
        called_number="0800100200",
        started_at=T0,
    )


async def test_duplicate_opens_of_one_channel_make_one_row(database: Database) -> None:
    log = CallLog(database.sessions, "BA")
    first, *others = await asyncio.gather(*[_open(log, "chan-1") for _ in range(5)])
    assert {o.id for o in others} == {first.id}
    async with database.sessions() as session:
        assert await session.scalar(select(func.count()).select_from(Call)) == 1
        name = await session.scalar(select(Call.caller_name))
    assert name == "TestCaller"


async def test_callers_arriving_together_are_opened_in_one_go_each_with_their_client(
    database: Database,
) -> None:
    """Calls opened at once are written together (one lookup, one transaction): each still
    gets its own row, its own client and one `opened` event; a channel opened twice in the
    same burst (a duplicated StasisStart) still has one row, and the others are not lost."""
    async with database.sessions() as session:
        known = Client(external_id="K9", name="Known", phones=[ClientPhone(number="+38761555001")])
        shared = [
            Client(
                external_id=f"S{n}", name=f"Shared {n}", phones=[ClientPhone(number="+38761555002")]
            )
            for n in range(2)
        ]
        session.add_all([known, *shared])
        await session.commit()
    log = CallLog(database.sessions, "BA")
    numbers = ["061 555 001", "061 555 002", "061 555 003", None] * 5
    opened = await asyncio.gather(
        *[_open(log, f"chan-burst-{n}", number) for n, number in enumerate(numbers)]
    )
    assert len({o.id for o in opened}) == len(numbers)
    for o, number in zip(opened, numbers, strict=True):
        expected = {"061 555 001": known.id, "061 555 002": shared[0].id}.get(number or "")
        assert (o.client_id, o.new) == (expected, True), (number, o)
    # A burst with a channel opened again: its row is used, the other call still opened.
    again, other = await asyncio.gather(
        _open(log, "chan-burst-0", numbers[0]), _open(log, "chan-burst-new", "061 555 001")
    )
    assert (again.id, again.new, again.client_id) == (opened[0].id, False, known.id)
    assert other.new and other.client_id == known.id
    async with database.sessions() as session:
        rows = await session.scalar(select(func.count()).select_from(Call))
        events = list(
            await session.scalars(select(CallEvent.data).where(CallEvent.kind == "opened"))
        )
    assert rows == len(numbers) + 1
    assert len(events) == len(numbers) + 1
    assert (
        sorted(e["client_ids"] for e in events if e["caller_e164"] == "+38761555002")
        == [[shared[0].id, shared[1].id]] * 5
    )


async def test_closing_twice_changes_nothing(database: Database) -> None:
    log = CallLog(database.sessions, "BA")
    opened = await _open(log, "chan-2")
    assert await log.close(
        opened.id,
        at=T0 + timedelta(seconds=5),
        cause=16,
        cause_text="Normal Clearing",
        outcome="completed",
    )
    assert not await log.close(
        opened.id, at=T0 + timedelta(seconds=9), cause=17, cause_text="Busy", outcome="lost"
    )
    async with database.sessions() as session:
        call = await session.get(Call, opened.id)
        closes = await session.scalar(
            select(func.count()).where(CallEvent.call_id == opened.id, CallEvent.kind == "closed")
        )
    assert call is not None
    assert (call.hangup_cause, call.outcome, call.ended_at) == (
        16,
        "completed",
        T0 + timedelta(seconds=5),
    )
    assert closes == 1
    assert await log.open_calls("ari") == []


async def test_caller_is_matched_through_any_of_the_clients_phones(database: Database) -> None:
    async with database.sessions() as session:
        client = Client(
            external_id="K1",
            name="Key Client",
            phones=[ClientPhone(number="+38733111222"), ClientPhone(number="+38761222333")],
        )
        session.add(client)
        await session.commit()
    log = CallLog(database.sessions, "BA")
    opened = await _open(log, "chan-3", "061/222-333")
    assert opened.client is not None
    assert (opened.client_id, opened.client.name) == (client.id, "Key Client")
    unknown = await _open(log, "chan-4", "anonymous")
    assert unknown.client_id is None and unknown.caller_e164 is None


async def test_event_logged_while_a_batch_is_being_written_is_written_without_another_event(
    database: Database,
) -> None:
    """Regression: an event that arrived while the write-behind task was writing the previous
    batch waited for the call's next event (the attended-transfer test's flake under load)."""
    log = CallLog(database.sessions, "BA", write_behind_seconds=0.01)
    opened = await _open(log, "chan-behind")
    writing, go_on = asyncio.Event(), asyncio.Event()
    real_sessions = log.sessions

    @contextlib.asynccontextmanager
    async def slow_first_write() -> AsyncIterator[Any]:
        async with real_sessions() as session:
            if not writing.is_set():
                writing.set()
                await go_on.wait()  # the batch is taken and still being written...
            yield session

    log.sessions = slow_first_write  # type: ignore[assignment]
    await log.event(opened.id, "first")
    await asyncio.wait_for(writing.wait(), 5)
    await log.event(opened.id, "second")  # ...when this one comes
    go_on.set()

    async def kinds() -> list[str]:
        async with database.sessions() as session:
            rows = await session.scalars(
                select(CallEvent.kind).where(CallEvent.call_id == opened.id).order_by(CallEvent.id)
            )
            return list(rows)

    await wait_until(lambda: _has(kinds, "second"), message="the second event written")
    assert (await kinds())[-2:] == ["first", "second"]
    await log.aclose()


async def _has(kinds: Any, kind: str) -> bool:
    return kind in await kinds()
