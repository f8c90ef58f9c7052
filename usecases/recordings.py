"""The recordings' keeper, run by `serve`: finishes the row of each recording whose call has
ended (length, size and sha256 of the closed file, the paused stretches as offsets) — those
of calls that ended while `serve` was away too — and deletes the files past the retention
period (the row stays, marked ``deleted_at``, the deletion on the call's trail)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from core.recording import AudioFacts, Stretch, audio_facts, retention_cutoff, stretch_offsets
from models.db import is_outage
from models.recordings import RecordingRow, RecordingStore

log = structlog.get_logger(__name__)

# Asterisk closes the file when the channel is gone, a moment after the hang-up; a file
# still unclosed this long after its call ended was cut off (Asterisk died): taken as it is.
CLOSE_GRACE = timedelta(seconds=30)


@dataclass(frozen=True)
class FileFacts:
    audio: AudioFacts
    size: int
    sha256: str


def read_file_facts(path: Path, fmt: str) -> FileFacts | None:
    """Blocking (run in a thread): the file's audio facts and checksum, None when absent."""
    try:
        with path.open("rb") as f:
            head = f.read(64)
            digest = hashlib.sha256(head)
            size = len(head)
            for chunk in iter(lambda: f.read(1 << 16), b""):
                digest.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        return None
    return FileFacts(audio_facts(fmt, head, size), size, digest.hexdigest())


class RecordingKeeper:
    def __init__(
        self,
        store: RecordingStore,
        directory: Path,
        *,
        retention_days: int,
        close_grace: timedelta = CLOSE_GRACE,
    ) -> None:
        self.store = store
        self.directory = directory
        self.retention_days = retention_days
        self.close_grace = close_grace
        self._kick = asyncio.Event()

    def path(self, row: RecordingRow) -> Path:
        # The file name is ours (core.recording.file_name), never a client's: no traversal.
        return self.directory / Path(row.file).name

    def kick(self) -> None:
        """A call with a recording ended: finish its row soon, not at the next round."""
        self._kick.set()

    async def run(self, interval: float) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._kick.wait(), interval)
            self._kick.clear()
            try:
                await self.finish_ended()
                await self.delete_expired(datetime.now(UTC))
            except Exception as exc:
                if not is_outage(exc):
                    log.exception("recording_keeper_failed")
                else:  # the database is away: the next round finishes what waits
                    log.warning("recording_keeper_database_away", error=str(exc)[:200])

    async def finish_ended(self) -> int:
        """Finish the rows of recordings whose call ended and whose file Asterisk closed;
        returns how many. One still being closed waits for the next round."""
        finished = 0
        now = datetime.now(UTC)
        waiting = False
        for row, call_ended in await self.store.to_finish():
            facts = await asyncio.to_thread(read_file_facts, self.path(row), row.format)
            late = now - call_ended > self.close_grace
            if facts is not None and not facts.audio.complete and not late:
                waiting = True
                continue
            if facts is None and not late:
                waiting = True
                continue
            stretches = [Stretch.from_json(s) for s in row.paused]
            seconds = facts.audio.seconds if facts is not None else 0.0
            offsets = stretch_offsets(row.started_at, stretches, seconds)
            paused = [
                {**s.to_json(), "from_second": a, "to_second": b}
                for s, (a, b) in zip(stretches, offsets, strict=True)
            ]
            done = await self.store.finish(
                row.id,
                ended_at=call_ended,
                seconds=seconds,
                size_bytes=facts.size if facts is not None else 0,
                sha256=facts.sha256 if facts is not None else None,
                paused=paused,
            )
            if done:
                finished += 1
                log.info(
                    "recording_finished",
                    call_id=row.call_id,
                    file=row.file,
                    seconds=seconds,
                    size_bytes=facts.size if facts is not None else 0,
                    complete=facts.audio.complete if facts is not None else False,
                    missing=facts is None,
                )
        if waiting:
            # Asterisk closes the file a moment after the hang-up: look again soon.
            asyncio.get_running_loop().call_later(0.5, self._kick.set)
        return finished

    async def delete_expired(self, now: datetime) -> int:
        """Delete the files of recordings past the retention period; returns how many."""
        cutoff = retention_cutoff(now, self.retention_days)
        if cutoff is None:
            return 0
        deleted = 0
        for row in await self.store.expired(cutoff):
            path = self.path(row)
            try:
                await asyncio.to_thread(path.unlink, missing_ok=True)
            except OSError as exc:
                log.error("recording_not_deleted", call_id=row.call_id, error=str(exc)[:200])
                continue
            await self.store.mark_deleted(row.id, now)
            deleted += 1
            log.info(
                "recording_deleted",
                call_id=row.call_id,
                file=row.file,
                ended_at=row.ended_at.isoformat() if row.ended_at else None,
                retention_days=self.retention_days,
            )
        return deleted
