"""Asterisk's CDR file (cdr_custom, one line per record, ``core.cdrs`` says the format): the
records Asterisk appended since we last read it.

Where we got to (inode and offset) is kept in a small cursor file beside the journal, or,
with several instances, on the node's row (``NodeCursor``: the instance that takes the node
over goes on where its owner stopped), so a restart reads only what is new; a fresh install
starts at the file's end (the CRM holds the calls since Centrala was installed). What is
done with the records is idempotent, so a read repeated after a crash makes nothing twice.
A file replaced or truncated (rotated) is read from its start. Only whole records are taken:
one Asterisk is still writing is read next time.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import OrderedDict
from collections.abc import Collection
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Protocol

import structlog

from core.cdrs import (
    CdrFormatError,
    CdrRecord,
    PbxCall,
    callers_to_record,
    channels,
    parse_record,
    split_records,
)
from models import cluster as cluster_store
from models.calllog import CallLog

log = structlog.get_logger(__name__)

MAX_READ = 64 * 1024 * 1024  # a read takes at most this much (the rest next time)
RECENT = 20_000  # calls kept from recent reads (for the end times of adopted rows)


@dataclass(frozen=True)
class Cursor:
    inode: int
    offset: int


@dataclass(frozen=True)
class NewRecords:
    records: list[tuple[CdrRecord, Cursor]]  # each with the cursor just past its line
    cursor: Cursor  # past the last whole line read
    rejected: int  # lines that were not our records


class CursorStore(Protocol):
    async def load(self) -> Cursor | None: ...

    async def save(self, cursor: Cursor) -> None: ...


class FileCursor:
    """The cursor in a small file (one instance: beside its journal)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def _load(self) -> Cursor | None:
        try:
            data = json.loads(self.path.read_text())
            return Cursor(int(data["inode"]), int(data["offset"]))
        except (FileNotFoundError, ValueError, KeyError, TypeError):
            return None

    def _save(self, cursor: Cursor) -> None:
        tmp = self.path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, json.dumps({"inode": cursor.inode, "offset": cursor.offset}).encode())
            os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)

    async def load(self) -> Cursor | None:
        return await asyncio.to_thread(self._load)

    async def save(self, cursor: Cursor) -> None:
        await asyncio.to_thread(self._save, cursor)


class NodeCursor:
    """The cursor on the node's row (several instances): written only by the node's owner.
    Read from the row once (the owner before us got there); from then on only our saves move
    it, so it is kept in memory too (no read per pass, and none needed with the database
    away)."""

    def __init__(self, sessions: cluster_store.Sessions, node: str, instance: str) -> None:
        self.sessions, self.node, self.instance = sessions, node, instance
        self._known: Cursor | None = None

    async def load(self) -> Cursor | None:
        if self._known is None:
            found = await cluster_store.cdr_cursor(self.sessions, self.node)
            self._known = None if found is None else Cursor(*found)
        return self._known

    async def save(self, cursor: Cursor) -> None:
        self._known = cursor
        if not await cluster_store.save_cdr_cursor(
            self.sessions, self.node, self.instance, cursor.inode, cursor.offset
        ):
            raise RuntimeError(f"node {self.node} is no longer ours: its CDR is its owner's")


class CdrFile:
    def __init__(self, path: Path, cursor: CursorStore | Path) -> None:
        self.path = path
        self.cursor = FileCursor(cursor) if isinstance(cursor, Path) else cursor
        self._missing_said = False

    def _read(self, was: Cursor | None) -> tuple[NewRecords | None, Cursor | None]:
        """The records past ``was``; and the cursor to save first, if there was none."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            # The file Asterisk makes later is read whole.
            return None, Cursor(0, 0) if was is None else None
        started: Cursor | None = None
        try:
            st = os.fstat(fd)
            if was is None:
                # A fresh install (no cursor yet) starts from now: the CRM holds the calls
                # since Centrala was installed, not the PBX's whole history.
                log.info("cdr_cursor_started", path=str(self.path), offset=st.st_size)
                was = started = Cursor(st.st_ino, st.st_size)
            offset = was.offset if was.inode == st.st_ino else 0
            if offset > st.st_size:  # truncated in place
                offset = 0
            os.lseek(fd, offset, os.SEEK_SET)
            data = os.read(fd, min(MAX_READ, st.st_size - offset))
        finally:
            os.close(fd)
        records: list[tuple[CdrRecord, Cursor]] = []
        rejected = 0
        at = offset
        for text, end in split_records(data):
            at = offset + end
            if not text.strip():
                continue
            try:
                records.append((parse_record(text), Cursor(st.st_ino, at)))
            except CdrFormatError as exc:
                rejected += 1
                if rejected == 1:
                    log.warning("cdr_record_rejected", error=str(exc), record=text[:200])
        return NewRecords(records, Cursor(st.st_ino, at), rejected), started

    async def read_new(self) -> NewRecords | None:
        """The records since the cursor, or None when Asterisk has written no file (CDR
        disabled, or Asterisk elsewhere without the file shared): said once."""
        found, started = await asyncio.to_thread(self._read, await self.cursor.load())
        if started is not None:
            await self.cursor.save(started)
        if found is None:
            if not self._missing_said:
                self._missing_said = True
                log.warning("cdr_file_missing", path=str(self.path))
        else:
            self._missing_said = False
        return found

    async def done(self, cursor: Cursor) -> None:
        """The records up to ``cursor`` are taken care of: not read again."""
        await self.cursor.save(cursor)


class CdrReconciler:
    """Every call Asterisk saw on the info line gets a row: the records of calls that have
    none (Centrala was away) become closed rows, through the call log's ordered writes.

    A record is taken only ``grace`` after its call ended: a caller who hung up at once may
    have their StasisStart still on its way to the app that will open their row."""

    def __init__(
        self,
        cdr: CdrFile,
        calllog: CallLog,
        numbers: Collection[str],
        *,
        grace: timedelta = timedelta(seconds=15),
    ) -> None:
        self.cdr = cdr
        self.calllog = calllog
        self.numbers = frozenset(numbers)
        self.grace = grace
        self._lock = asyncio.Lock()
        # The calls of recent reads, by channel (taken or not): a live row's caller may
        # have left in a record the periodic pass already took.
        self._recent: OrderedDict[str, PbxCall] = OrderedDict()
        self.recorded = 0  # rows made from records since start (journaled ones not counted)
        self.file_found: bool | None = None  # None: not looked yet
        self.taken_until: datetime | None = None  # every call that ended before is taken

    async def _read(self) -> NewRecords | None:
        found = await self.cdr.read_new()
        self.file_found = found is not None
        if found is not None:
            for channel_id, call in channels(r for r, _ in found.records).items():
                self._recent[channel_id] = call
                self._recent.move_to_end(channel_id)
            while len(self._recent) > RECENT:
                self._recent.popitem(last=False)
        return found

    async def ended_calls(self) -> dict[str, PbxCall]:
        """The calls Asterisk recorded lately, by channel: when each ended, for a live row
        whose caller left while we were away."""
        async with self._lock:
            await self._read()
            return dict(self._recent)

    async def record_unseen(self, now: datetime | None = None) -> int:
        """Take the records old enough; returns how many rows were made."""
        async with self._lock:
            found = await self._read()
            if found is None:
                return 0
            until = (now or datetime.now(UTC)) - self.grace
            taken: list[CdrRecord] = []
            cursor: Cursor | None = None
            for record, after in found.records:
                if record.end > until:
                    break
                taken.append(record)
                cursor = after
            complete = len(taken) == len(found.records)
            if complete:
                cursor = found.cursor  # past rejected or blank lines too
            if cursor is None:
                return 0
            calls = callers_to_record(channels(taken).values(), self.numbers)
            made = await self.calllog.record_unseen(calls)
            await self.cdr.done(cursor)
            self.recorded += made or 0
            if complete:
                self.taken_until = until
            return made or 0

    async def run(self, every: float) -> None:
        """Take what is old enough now and every ``every`` seconds (the callers who heard
        the apology while we were starting end after our first look)."""
        while True:
            try:
                await self.record_unseen()
            except Exception as exc:  # a bad pass must not end the loop
                log.warning("cdr_reconcile_failed", error=str(exc)[:200])
            await asyncio.sleep(every)
