"""The recordings' keeper (usecases/recordings.py) on a real database (SQLite and PostgreSQL)
and real files, for the faults the real-call tests cannot stage: a file Asterisk never closed
(it died), a file that is gone, a recording whose call has not ended, a retention of 0 days,
and a file that cannot be deleted."""

from __future__ import annotations

import hashlib
import struct
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from models.recordings import RecordingStore
from models.tables import Call, CallEvent, Direction, Recording
from tests.conftest import Database
from usecases.recordings import RecordingKeeper


def wav(data: bytes, *, closed: bool) -> bytes:
    size = len(data) if closed else 0  # Asterisk writes the sizes when it closes the file
    return (
        b"RIFF"
        + struct.pack("<I", 36 + size)
        + b"WAVEfmt "
        + struct.pack("<IHHIIHH", 16, 1, 1, 8000, 16000, 2, 16)
        + b"data"
        + struct.pack("<I", size)
        + data
    )


async def add_call(db: Database, call_id: str, ended_ago: timedelta | None) -> None:
    now = datetime.now(UTC)  # not at import: a whole suite may run before this test
    async with db.sessions() as session, session.begin():
        session.add(
            Call(
                id=call_id,
                channel_id=f"chan-{call_id}",
                direction=Direction.INBOUND,
                handler="ari",
                started_at=now - timedelta(minutes=10),
                ended_at=None if ended_ago is None else now - ended_ago,
            )
        )
        session.add(
            Recording(
                call_id=call_id,
                file=f"{call_id}.wav",
                format="wav",
                started_at=now - timedelta(minutes=10),
                paused=[
                    {"since": (now - timedelta(minutes=10, seconds=-1)).isoformat(), "until": None}
                ],
            )
        )


async def row_of(db: Database, call_id: str) -> Recording:
    async with db.sessions() as session:
        row = await session.scalar(select(Recording).where(Recording.call_id == call_id))
    assert row is not None
    return row


class Clock:
    """The keeper's clock, moved by the test."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def files(tmp_path: Path) -> Path:
    folder = tmp_path / "recordings"
    folder.mkdir()
    return folder


async def test_the_keeper_waits_for_asterisk_to_close_a_file_then_takes_one_it_never_will(
    database: Database, files: Path
) -> None:
    clock = Clock()
    keeper = RecordingKeeper(
        RecordingStore(database.sessions), files, retention_days=90, clock=clock
    )
    await add_call(database, "closing", timedelta(seconds=1))  # Asterisk is closing it
    await add_call(database, "crashed", timedelta(minutes=5))  # Asterisk died: never closed
    await add_call(database, "missing", timedelta(minutes=5))  # the file is gone
    await add_call(database, "talking", None)  # the call goes on
    audio = bytes(16000 * 2)
    (files / "closing.wav").write_bytes(wav(audio, closed=False))
    (files / "crashed.wav").write_bytes(wav(audio, closed=False))
    (files / "talking.wav").write_bytes(wav(b"", closed=False))

    assert await keeper.finish_ended() == 2
    assert (await row_of(database, "closing")).ended_at is None  # looked at again soon
    assert (await row_of(database, "talking")).ended_at is None
    crashed = await row_of(database, "crashed")
    assert crashed.seconds == 2.0  # from the file's size: its header never said
    assert crashed.sha256 == hashlib.sha256((files / "crashed.wav").read_bytes()).hexdigest()
    # Paused when the call ended: the stretch runs to the end of the file.
    assert (crashed.paused[0]["from_second"], crashed.paused[0]["to_second"]) == (1.0, 2.0)
    missing = await row_of(database, "missing")
    assert (missing.seconds, missing.size_bytes, missing.sha256) == (0.0, 0, None)

    (files / "closing.wav").write_bytes(wav(audio, closed=True))  # Asterisk closed it
    assert await keeper.finish_ended() == 0  # not looked at again before its time
    clock.now += keeper.FIRST_LOOK
    assert await keeper.finish_ended() == 1
    closed = await row_of(database, "closing")
    assert (closed.seconds, closed.size_bytes) == (2.0, 44 + len(audio))
    clock.now += 60
    assert await keeper.finish_ended() == 0  # nothing twice


async def test_a_call_that_ended_is_finished_from_its_kick_once_its_end_is_written(
    database: Database, files: Path
) -> None:
    """The recorder kicks the keeper with the call's id as the call ends, maybe before the
    call's end reaches the database: the keeper looks for it again, backing off, and reads
    only that call's rows — a recording of another call is left to the sweep."""
    clock = Clock()
    store = RecordingStore(database.sessions)
    keeper = RecordingKeeper(store, files, retention_days=90, clock=clock)
    await keeper.finish_ended()  # the start's scan: nothing yet
    await add_call(database, "ending", None)  # its end not written yet
    await add_call(database, "other", timedelta(seconds=1))
    for call_id in ("ending", "other"):
        (files / f"{call_id}.wav").write_bytes(wav(bytes(320), closed=True))

    keeper.kick("ending")
    assert await keeper.finish_ended() == 0  # looked for a moment later, not at once
    clock.now += keeper.FIRST_LOOK
    assert await keeper.finish_ended() == 0  # its end not written yet
    async with database.sessions() as session, session.begin():
        row = await session.get(Call, "ending")
        assert row is not None
        row.ended_at = datetime.now(UTC)
    assert await keeper.finish_ended() == 0  # not before its next look
    clock.now += keeper.FIRST_LOOK
    assert await keeper.finish_ended() == 1
    assert (await row_of(database, "ending")).seconds == 0.02  # 320 bytes at 16 kB/s
    assert (await row_of(database, "other")).ended_at is None  # nobody kicked for it
    keeper.kick()  # the sweep
    assert await keeper.finish_ended() == 1
    assert (await row_of(database, "other")).ended_at is not None


async def test_retention_deletes_old_files_keeps_rows_and_zero_days_keeps_all(
    database: Database, files: Path
) -> None:
    store = RecordingStore(database.sessions)
    for call_id, days in (("old", 100), ("recent", 10)):
        await add_call(database, call_id, timedelta(days=days))
        (files / f"{call_id}.wav").write_bytes(wav(bytes(320), closed=True))
    forever = RecordingKeeper(store, files, retention_days=0)
    await forever.finish_ended()
    assert await forever.delete_expired(datetime.now(UTC)) == 0
    keeper = RecordingKeeper(store, files, retention_days=90)
    assert await keeper.delete_expired(datetime.now(UTC)) == 1
    assert not (files / "old.wav").exists() and (files / "recent.wav").exists()
    old = await row_of(database, "old")
    assert old.deleted_at is not None and old.sha256 is not None
    assert (await row_of(database, "recent")).deleted_at is None
    assert await keeper.delete_expired(datetime.now(UTC)) == 0  # nothing twice
    async with database.sessions() as session:
        kinds = list(
            await session.scalars(select(CallEvent.kind).where(CallEvent.call_id == "old"))
        )
    assert kinds == ["recording_deleted"]


async def test_a_file_that_cannot_be_deleted_keeps_its_row_live(
    database: Database, files: Path
) -> None:
    await add_call(database, "stuck", timedelta(days=100))
    (files / "stuck.wav").mkdir()  # unlink() fails on a directory: an error, not a crash
    keeper = RecordingKeeper(RecordingStore(database.sessions), files, retention_days=90)
    async with database.sessions() as session, session.begin():
        row = await session.scalar(select(Recording).where(Recording.call_id == "stuck"))
        assert row is not None
        row.ended_at = datetime.now(UTC) - timedelta(days=100)
    assert await keeper.delete_expired(datetime.now(UTC)) == 0
    assert (await row_of(database, "stuck")).deleted_at is None
