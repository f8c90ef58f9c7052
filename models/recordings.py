"""The ``recordings`` rows: opened when a call's recording starts, its paused stretches kept
as they happen, finished with the file's length and checksum once the call has ended, and
marked deleted when the retention period takes the file.

The writes made on the call path (start, pause, resume) go through the call log's ordered
write path (``CallLog.register``), so they keep their order with the call's trail and are
journaled while the database is away; a replay writes nothing twice."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.recording import RecordingError, Stretch, pause, resume
from models.calllog import CallLog
from models.tables import Call, CallEvent, Recording

WRITE_KIND = "recording"


@dataclass(frozen=True)
class RecordingRow:
    id: int
    call_id: str
    file: str
    format: str
    started_at: datetime
    ended_at: datetime | None
    seconds: float | None
    size_bytes: int | None
    sha256: str | None
    paused: list[dict[str, Any]]
    deleted_at: datetime | None

    @staticmethod
    def of(row: Recording) -> RecordingRow:
        return RecordingRow(
            row.id,
            row.call_id,
            row.file,
            row.format,
            row.started_at,
            row.ended_at,
            row.seconds,
            row.size_bytes,
            row.sha256,
            list(row.paused or []),
            row.deleted_at,
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "call_id": self.call_id,
            "format": self.format,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "seconds": self.seconds,
            "size_bytes": self.size_bytes,
            "sha256": self.sha256,
            "paused": self.paused,
            "deleted_at": self.deleted_at.isoformat() if self.deleted_at else None,
        }


async def _latest_open(session: AsyncSession, call_id: str) -> Recording | None:
    return await session.scalar(
        select(Recording)
        .where(Recording.call_id == call_id, Recording.ended_at.is_(None))
        .order_by(Recording.id.desc())
        .limit(1)
    )


async def apply_recording_write(session: AsyncSession, op: dict[str, Any], replay: bool) -> Any:
    """One recording write from the call path (see the module's docstring)."""
    action, call_id, at = op["action"], op["call_id"], op["at"]
    if action == "start":
        present = await session.scalar(select(Recording.id).where(Recording.file == op["file"]))
        if present is None:
            session.add(
                Recording(
                    call_id=call_id, file=op["file"], format=op["format"], started_at=at, paused=[]
                )
            )
        return None
    row = await _latest_open(session, call_id)
    if row is None:
        return None
    stretches = [Stretch.from_json(s) for s in row.paused or []]
    try:
        if action == "pause":
            stretches = pause(stretches, at, op.get("by"))
        else:
            stretches = resume(stretches, at)
    except RecordingError:
        # Written already (a replay after a crash), or raced by another pause: nothing
        # twice, and never a failed batch for the other calls' writes in it.
        return None
    row.paused = [s.to_json() for s in stretches]
    return None


class RecordingStore:
    def __init__(
        self, sessions: async_sessionmaker[AsyncSession], calllog: CallLog | None = None
    ) -> None:
        self.sessions = sessions
        self.calllog = calllog
        if calllog is not None:
            calllog.register(WRITE_KIND, apply_recording_write)

    async def write(self, action: str, call_id: str, at: datetime, **data: Any) -> None:
        """A write of the call path, in order with the call's trail (journaled while the
        database is away)."""
        assert self.calllog is not None
        op = {"op": WRITE_KIND, "action": action, "call_id": call_id, "at": at, **data}
        await self.calllog.write([op])

    async def for_call(self, call_id: str) -> list[RecordingRow]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Recording).where(Recording.call_id == call_id).order_by(Recording.id)
            )
            return [RecordingRow.of(r) for r in rows]

    async def get(self, recording_id: int) -> RecordingRow | None:
        async with self.sessions() as session:
            row = await session.get(Recording, recording_id)
            return None if row is None else RecordingRow.of(row)

    async def open_stretches(self, call_id: str) -> tuple[int, list[Stretch]] | None:
        """The call's recording running now and its paused stretches (None: not recorded)."""
        async with self.sessions() as session:
            row = await _latest_open(session, call_id)
            if row is None:
                return None
            return row.id, [Stretch.from_json(s) for s in row.paused or []]

    async def handled_by(self, call_id: str) -> tuple[bool, set[str]]:
        """Whether the call exists, and the agents who had it: its agent at the end and each
        one it was connected to on the way (a transfer's first agent handled it too)."""
        async with self.sessions() as session:
            call = await session.get(Call, call_id)
            if call is None:
                return False, set()
            agents = {call.agent_id} if call.agent_id else set()
            for data in await session.scalars(
                select(CallEvent.data).where(
                    CallEvent.call_id == call_id, CallEvent.kind == "agent_connected"
                )
            ):
                if isinstance(data, dict) and data.get("agent_id"):
                    agents.add(str(data["agent_id"]))
            return True, agents

    async def to_finish(
        self, limit: int = 500, *, call_ids: list[str] | None = None
    ) -> list[tuple[RecordingRow, datetime]]:
        """Recordings still open whose call has ended (here, or while `serve` was away),
        with when the call ended; ``call_ids``: of those calls only."""
        stmt = (
            select(Recording, Call.ended_at)
            .join(Call, Call.id == Recording.call_id)
            .where(Recording.ended_at.is_(None), Call.ended_at.is_not(None))
        )
        if call_ids is not None:
            stmt = stmt.where(Recording.call_id.in_(call_ids))
        async with self.sessions() as session:
            rows = await session.execute(stmt.order_by(Recording.id).limit(limit))
            return [(RecordingRow.of(r), ended) for r, ended in rows if ended]

    async def finish(
        self,
        recording_id: int,
        *,
        ended_at: datetime,
        seconds: float,
        size_bytes: int,
        sha256: str | None,
        paused: list[dict[str, Any]],
    ) -> bool:
        async with self.sessions() as session:
            result = await session.execute(
                update(Recording)
                .where(Recording.id == recording_id, Recording.ended_at.is_(None))
                .values(
                    ended_at=ended_at,
                    seconds=seconds,
                    size_bytes=size_bytes,
                    sha256=sha256,
                    paused=paused,
                )
            )
            await session.commit()
            return bool(getattr(result, "rowcount", 0))

    async def expired(self, cutoff: datetime, limit: int = 500) -> list[RecordingRow]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Recording)
                .where(Recording.ended_at < cutoff, Recording.deleted_at.is_(None))
                .order_by(Recording.ended_at)
                .limit(limit)
            )
            return [RecordingRow.of(r) for r in rows]

    async def mark_deleted(self, recording_id: int, at: datetime) -> None:
        async with self.sessions() as session:
            row = await session.get(Recording, recording_id)
            if row is None or row.deleted_at is not None:
                return
            row.deleted_at = at
            session.add(
                CallEvent(
                    call_id=row.call_id,
                    at=at,
                    kind="recording_deleted",
                    data={"recording_id": row.id, "reason": "retention"},
                )
            )
            await session.commit()
