"""Call recording's decisions: whether a call is recorded where it is, the stretches an agent
paused it for, what a finished file holds (WAV header or GSM frames read from bytes), and when
a recording has outlived the retention period. Pure: the adapters (ari_app.recording, the
keeper in usecases.recordings) bring the times, the bytes and the settings.

A recording starts when the flow's notice ends (``Flow.recording.after``) and runs on the
caller's channel to the hang-up, so it follows them through the IVR, the queue, the agent's
bridge and transfers. A queue may turn it on (``record: true``) for a flow that does not
record, or off (``record: false``) for callers it takes.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path, PurePosixPath
from typing import Any, Literal

from core.errors import DomainError

FORMATS = ("wav", "gsm")
# What a second of each costs on disk: 8 kHz 16-bit PCM, and GSM 06.10 (33 bytes per 20 ms).
BYTES_PER_SECOND = {"wav": 16_000, "gsm": 1_650}
CONTENT_TYPES = {"wav": "audio/wav", "gsm": "audio/x-gsm"}
WAV_HEADER = 44
GSM_FRAME = 33  # bytes of one 20 ms GSM frame


class RecordingError(DomainError):
    error_id = "recording"
    status = 409

    def __init__(self, error_id: str, message: str, status: int = 409) -> None:
        super().__init__(message, error_id=error_id, status=status)


def queue_recording(recording: bool, queue_record: bool | None) -> Literal["start", "stop"] | None:
    """What entering a queue does to the call's recording: a queue that says ``record`` turns
    it on (or keeps it), one that says not to stops it; ``None`` follows the flow."""
    if queue_record is None or queue_record == recording:
        return None
    return "start" if queue_record else "stop"


@dataclass(frozen=True)
class Stretch:
    """A stretch the recording was paused for (``until`` None: paused now)."""

    since: datetime
    until: datetime | None = None
    by: str | None = None  # the agent who paused it

    def to_json(self) -> dict[str, Any]:
        return {
            "since": self.since.isoformat(),
            "until": self.until.isoformat() if self.until else None,
            "by": self.by,
        }

    @staticmethod
    def from_json(data: dict[str, Any]) -> Stretch:
        until = data.get("until")
        return Stretch(
            datetime.fromisoformat(str(data["since"])),
            datetime.fromisoformat(str(until)) if until else None,
            data.get("by"),
        )


def paused_now(stretches: list[Stretch]) -> bool:
    return bool(stretches) and stretches[-1].until is None


def pause(stretches: list[Stretch], at: datetime, by: str | None) -> list[Stretch]:
    """The recording paused at ``at`` (a card number is being read out)."""
    if paused_now(stretches):
        raise RecordingError("recording_paused_already", "the recording is paused already")
    return [*stretches, Stretch(at, None, by)]


def resume(stretches: list[Stretch], at: datetime) -> list[Stretch]:
    if not paused_now(stretches):
        raise RecordingError("recording_not_paused", "the recording is not paused")
    last = stretches[-1]
    return [*stretches[:-1], Stretch(last.since, max(at, last.since), last.by)]


def stretch_offsets(
    started_at: datetime, stretches: list[Stretch], seconds: float
) -> list[tuple[float, float]]:
    """The paused stretches as offsets into the file (seconds from its start), clipped to its
    length; one still open at the end (the caller hung up while paused) closes there."""
    out = []
    for s in stretches:
        since = min(max((s.since - started_at).total_seconds(), 0.0), seconds)
        until = seconds if s.until is None else (s.until - started_at).total_seconds()
        until = min(max(until, since), seconds)
        out.append((round(since, 3), round(until, 3)))
    return out


@dataclass(frozen=True)
class AudioFacts:
    seconds: float
    complete: bool  # the writer closed it (a WAV's header carries its final size)


def audio_facts(fmt: str, head: bytes, size: int) -> AudioFacts:
    """How long the audio file is, from its first bytes and its size. Asterisk writes a WAV's
    sizes into its header only when it closes the file, so a header saying 0 is a recording
    still being written (or one cut off by a crash) — also when no data follows yet: the
    writer holds the first seconds in its buffer, and a file closed with no audio at all
    cannot be told from that (the keeper takes it as it is after a grace period)."""
    if fmt == "gsm":
        return AudioFacts(round((size // GSM_FRAME) * 0.02, 3), complete=True)
    if len(head) < WAV_HEADER or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
        return AudioFacts(0.0, complete=False)
    channels, rate = struct.unpack("<HI", head[22:28])
    bits = struct.unpack("<H", head[34:36])[0]
    declared = struct.unpack("<I", head[40:44])[0]
    frame = max(channels * bits // 8, 1)
    data = max(size - WAV_HEADER, 0)
    complete = declared == data and declared > 0
    return AudioFacts(round(data / frame / max(rate, 1), 3), complete)


def retention_cutoff(now: datetime, days: int) -> datetime | None:
    """Recordings that ended before this are deleted; ``days`` 0 keeps them for good."""
    return now - timedelta(days=days) if days > 0 else None


def expired(ended_at: datetime | None, cutoff: datetime | None) -> bool:
    return cutoff is not None and ended_at is not None and ended_at < cutoff


def stored_file(name: str, node: str | None) -> str:
    """A recording's file as its row keeps it: its name, after its node's when it is on
    another node of the site than the instance's own (its files are in that node's
    directory)."""
    return name if node is None else f"{node}/{name}"


def file_path(stored: str, directory: Path, node_dirs: Mapping[str, Path]) -> Path:
    """Where `serve` reads a recording kept as ``stored`` (``stored_file``): the file's name
    in its node's directory, else in ``directory``. The name is ours (``file_name``), never
    a client's, and only its last part is used: no traversal."""
    node, _, name = stored.rpartition("/")
    return node_dirs.get(node, directory) / PurePosixPath(name).name


def file_name(call_id: str, seq: int, fmt: str) -> str:
    """A recording's file, relative to the recordings directory: the call's id (a uuid) and
    its number within the call (a queue may stop and another start it again)."""
    if fmt not in FORMATS:
        raise ValueError(f"recording format {fmt!r}: one of {', '.join(FORMATS)}")
    suffix = "" if seq <= 1 else f"-{seq}"
    return f"{call_id}{suffix}.{fmt}"
