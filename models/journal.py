"""The write journal: what the call path had to write while the database was away.

An append-only file of JSON lines, each with a sequence number, fsynced before the call
goes on, so a crash during the outage loses nothing that was said to be written. Read back
in order to drain into the database when it returns; a torn last line (the process died
mid-write) is ignored, since its write was never acknowledged.
"""

from __future__ import annotations

import asyncio
import json
import os
from datetime import datetime
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)


def _encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return {"$dt": value.isoformat()}
    raise TypeError(f"not journalable: {type(value).__name__}")


def _decode(obj: dict[str, Any]) -> Any:
    if set(obj) == {"$dt"}:
        return datetime.fromisoformat(obj["$dt"])
    return obj


class WriteJournal:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._seq = 0
        self.pending = 0  # entries written and not yet drained
        self._cut_torn_tail()
        for entry in self._read():
            self._seq = max(self._seq, int(entry["seq"]))
            self.pending += 1

    def _cut_torn_tail(self) -> None:
        """A last line without its newline is a write the process died in (never
        acknowledged): cut it, so the next append starts on a line of its own. Once, at
        start, before the loop serves calls."""
        try:
            data = self.path.read_bytes()
        except FileNotFoundError:
            return
        if not data or data.endswith(b"\n"):
            return
        keep = data.rfind(b"\n") + 1
        log.warning("journal_torn_line_cut", path=str(self.path), bytes=len(data) - keep)
        fd = os.open(self.path, os.O_WRONLY)
        try:
            os.ftruncate(fd, keep)
            os.fsync(fd)
        finally:
            os.close(fd)

    def _read(self) -> list[dict[str, Any]]:
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            return []
        entries = []
        lines = text.split("\n")
        for n, line in enumerate(lines):
            if not line:
                continue
            try:
                entries.append(json.loads(line, object_hook=_decode))
            except json.JSONDecodeError:
                if n == len(lines) - 1:
                    log.warning("journal_torn_line_ignored", path=str(self.path))
                    continue
                raise  # a bad line in the middle is damage, not a crash mid-write
        return entries

    def _append(self, lines: str) -> None:
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        try:
            os.write(fd, lines.encode("utf-8"))
            os.fsync(fd)
        finally:
            os.close(fd)

    async def append(self, ops: list[dict[str, Any]]) -> None:
        """Write the ops durably, in order (returns once they are on disk)."""
        if not ops:
            return
        lines = []
        for op in ops:
            self._seq += 1
            lines.append(json.dumps({"seq": self._seq, **op}, default=_encode) + "\n")
        # Counted before the write so a concurrent reader never sees fewer than are on disk.
        self.pending += len(ops)
        await asyncio.to_thread(self._append, "".join(lines))

    async def entries(self) -> list[dict[str, Any]]:
        return await asyncio.to_thread(self._read)

    def read_now(self) -> list[dict[str, Any]]:
        """The entries, read on the spot (at start, before the loop serves anything)."""
        return self._read()

    async def clear(self, through: int, head: dict[str, Any] | None = None) -> None:
        """Forget the entries up to sequence ``through`` (drained), keep any later ones;
        ``head``: an entry to put before those kept (numbered ``through``, so it sorts
        first and goes with the next clear)."""

        def _clear() -> int:
            rest = [e for e in self._read() if int(e["seq"]) > through]
            if rest and head is not None:
                rest.insert(0, {"seq": through, **head})
            tmp = self.path.with_suffix(".tmp")
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
            try:
                body = "".join(json.dumps(e, default=_encode) + "\n" for e in rest)
                os.write(fd, body.encode("utf-8"))
                os.fsync(fd)
            finally:
                os.close(fd)
            os.replace(tmp, self.path)
            return len(rest)

        self.pending = await asyncio.to_thread(_clear)
