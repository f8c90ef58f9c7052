"""The recordings' keeper, run by `serve`: finishes the row of each recording whose call has
ended (length, size and sha256 of the closed file, the paused stretches as offsets) — those
of calls that ended while `serve` was away too — and deletes the files past the retention
period (the row stays, marked ``deleted_at``, the deletion on the call's trail)."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from core.recording import (
    AudioFacts,
    Stretch,
    audio_facts,
    file_path,
    retention_cutoff,
    stretch_offsets,
)
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
    sha256: str | None  # None: not read, the file still being written


def read_file_facts(path: Path, fmt: str, *, unfinished_too: bool = False) -> FileFacts | None:
    """Blocking (run in a thread): the file's audio facts and checksum, None when absent. The
    header and size tell whether Asterisk has closed the file; only a closed one is read
    whole for its checksum (or, ``unfinished_too``, one taken as it is)."""
    try:
        with path.open("rb") as f:
            head = f.read(64)
            size = os.fstat(f.fileno()).st_size
            audio = audio_facts(fmt, head, size)
            if not audio.complete and not unfinished_too:
                return FileFacts(audio, size, None)
            digest = hashlib.sha256(head)
            size = len(head)
            for chunk in iter(lambda: f.read(1 << 16), b""):
                digest.update(chunk)
                size += len(chunk)
    except FileNotFoundError:
        return None
    return FileFacts(audio_facts(fmt, head, size), size, digest.hexdigest())


@dataclass
class _Look:
    """When to look again at something not ready yet, and how long to wait after that."""

    due: float
    wait: float
    since: float = 0.0

    def later(self, now: float, longest: float) -> None:
        self.due = now + self.wait
        self.wait = min(self.wait * 2, longest)


class RecordingKeeper:
    """Finishes each recording soon after its call ends, from the call's own kick: only the
    rows of calls that ended are read, and a file Asterisk has not closed yet is looked at
    again after 0.5 s, 1 s, 2 s, … (8 s at most) — not every open recording every round,
    which under load cost `serve` more than the calls. A full scan of the open recordings
    runs at start (calls that ended while `serve` was away) and at each sweep."""

    FIRST_LOOK = 0.5
    LONGEST_WAIT = 8.0
    # A call whose rows are not in the database yet (its end still being written) is
    # looked for this long, then left to the sweep.
    CALL_PATIENCE = 30.0

    def __init__(
        self,
        store: RecordingStore,
        directory: Path,
        *,
        retention_days: int,
        close_grace: timedelta = CLOSE_GRACE,
        clock: Callable[[], float] = time.monotonic,
        node_dirs: Mapping[str, Path] | None = None,
    ) -> None:
        self.store = store
        self.directory = directory
        # The site's other nodes' recordings directories (CENTRALA_SITE), by node.
        self.node_dirs = dict(node_dirs or {})
        self.retention_days = retention_days
        self.close_grace = close_grace
        self.clock = clock
        self._kick = asyncio.Event()
        self._scan = True  # every open recording is looked at in the next round
        self._calls: dict[str, _Look] = {}  # ended calls whose rows are not read yet
        self._rows: dict[int, tuple[RecordingRow, datetime, _Look]] = {}  # files not closed

    def path(self, row: RecordingRow) -> Path:
        return file_path(row.file, self.directory, self.node_dirs)

    def kick(self, call_id: str | None = None) -> None:
        """The call ``call_id`` ended: finish its recordings soon. None: look at every open
        recording in the next round."""
        if call_id is None:
            self._scan = True
        else:
            # First looked for a moment later: Asterisk closes the file after the hang-up,
            # and the calls that end meanwhile are read in the same query.
            now = self.clock()
            self._calls.setdefault(
                call_id, _Look(now + self.FIRST_LOOK, self.FIRST_LOOK, since=now)
            )
        self._kick.set()

    def _next_due(self) -> float | None:
        dues = [look.due for look in self._calls.values()]
        dues += [look.due for _, _, look in self._rows.values()]
        return min(dues, default=None)

    async def run(self, interval: float) -> None:
        """Rounds on kicks and on what is due; a sweep (full scan, retention) each
        ``interval`` seconds."""
        next_sweep = self.clock() + interval
        failed = False
        while True:
            now = self.clock()
            due = self._next_due()
            timeout = min(next_sweep, due if due is not None else next_sweep) - now
            if failed:  # what failed is still due: not again at once (a new kick may wake it)
                timeout = max(timeout, self.LONGEST_WAIT)
                self._kick.clear()
            if timeout > 0 and not self._kick.is_set():
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._kick.wait()
            self._kick.clear()
            sweep = self.clock() >= next_sweep
            if sweep:
                next_sweep = self.clock() + interval
                self._scan = True
            failed = False
            try:
                await self.finish_ended()
                if sweep:
                    await self.delete_expired(datetime.now(UTC))
            except Exception as exc:
                failed = True
                if not is_outage(exc):
                    log.exception("recording_keeper_failed")
                else:  # the database is away: look again at the next sweep
                    log.warning("recording_keeper_database_away", error=str(exc)[:200])
                    self._scan = True

    async def finish_ended(self) -> int:
        """Finish the rows of recordings whose call ended and whose file Asterisk closed
        (among those due to be looked at); returns how many. One still being closed is
        looked at again later."""
        now = self.clock()
        if self._scan:
            self._scan = False
            self._take(await self.store.to_finish(), now)
        calls = [call_id for call_id, look in self._calls.items() if look.due <= now]
        if calls:
            found = await self.store.to_finish(call_ids=calls)
            self._take(found, now)
            have = {row.call_id for row, _ in found}
            for call_id in calls:
                look = self._calls[call_id]
                if call_id in have or now - look.since > self.CALL_PATIENCE:
                    del self._calls[call_id]
                else:
                    look.later(now, self.LONGEST_WAIT)
        finished = 0
        wall = datetime.now(UTC)
        for rec_id, (row, call_ended, look) in list(self._rows.items()):
            if look.due > now:
                continue
            late = wall - call_ended > self.close_grace
            facts = await asyncio.to_thread(
                read_file_facts, self.path(row), row.format, unfinished_too=late
            )
            if not late and (facts is None or not facts.audio.complete):
                look.later(now, self.LONGEST_WAIT)
                continue
            del self._rows[rec_id]
            if await self._finish(row, call_ended, facts):
                finished += 1
        return finished

    def _take(self, found: list[tuple[RecordingRow, datetime]], now: float) -> None:
        for row, call_ended in found:
            self._rows.setdefault(row.id, (row, call_ended, _Look(now, self.FIRST_LOOK)))

    async def _finish(
        self, row: RecordingRow, call_ended: datetime, facts: FileFacts | None
    ) -> bool:
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
            log.info(
                "recording_finished",
                call_id=row.call_id,
                file=row.file,
                seconds=seconds,
                size_bytes=facts.size if facts is not None else 0,
                complete=facts.audio.complete if facts is not None else False,
                missing=facts is None,
            )
        return done

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
