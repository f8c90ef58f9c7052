"""Recording calls in Asterisk: MixMonitor on the caller's channel, through AMI.

MixMonitor hangs an audiohook on the one channel and mixes what it reads (the caller) with
what it writes (prompts, music, the agent, whoever the caller is bridged with), so one
recording holds both sides and follows the caller through the IVR, the queue, the agent's
bridge and every transfer; it lives in Asterisk, so a restart of `serve` does not stop it.
wazo-calld records the same way (AMI ``MixMonitor``; pause is ``MixMonitorMute``, which
writes silence for the muted stretch, so the file keeps the call's timeline). The file
closes when the channel hangs up; the keeper (usecases.recordings) then finishes its row.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import PurePosixPath

import structlog

from ari_app.ami import AMIClient, AMIError
from core.recording import (
    RecordingError,
    Stretch,
    file_name,
    pause,
    paused_now,
    resume,
    stored_file,
)
from models.calllog import CallLog, now
from models.db import is_outage
from models.recordings import RecordingStore

log = structlog.get_logger(__name__)


@dataclass
class Running:
    """A recording this process knows to be running (or read back after a restart)."""

    file: str
    started_at: datetime
    stretches: list[Stretch] = field(default_factory=list)


class CallRecorder:
    """Starts, pauses, resumes and stops the recording of a caller's channel. ``pbx_dir``:
    the recordings directory as Asterisk sees it (inside its chroot or container)."""

    def __init__(
        self,
        ami: AMIClient,
        store: RecordingStore,
        calllog: CallLog,
        *,
        pbx_dir: str,
        fmt: str = "wav",
        node: str | None = None,
    ) -> None:
        self.ami = ami
        # Another node of the site (CENTRALA_SITE), whose AMI this is; None: our own node.
        self.node = node
        self.store = store
        self.calllog = calllog
        self.pbx_dir = PurePosixPath(pbx_dir)
        self.fmt = fmt
        self.running: dict[str, Running] = {}  # call id -> its recording now
        self._seq: dict[str, int] = {}
        self.on_finished: list[Callable[[str], None]] = []  # the keeper's kick

    async def _current(self, call_id: str) -> Running | None:
        running = self.running.get(call_id)
        if running is not None:
            return running
        # Started by a process since restarted: the row says it runs, and how it stands.
        found = await self.store.open_stretches(call_id)
        if found is None:
            return None
        rows = await self.store.for_call(call_id)
        latest = rows[-1]
        running = self.running[call_id] = Running(latest.file, latest.started_at, found[1])
        self._seq[call_id] = len(rows)
        return running

    async def start(self, call_id: str, channel_id: str, *, adopted: bool = False) -> bool:
        """Record the caller's channel from now on; nothing when it is recorded already.
        ``adopted``: a call a previous process had, whose recording only its row may know.
        False: it could not be started (AMI away): the call goes on unrecorded, on its trail."""
        if call_id in self.running:
            return True
        seq = self._seq.get(call_id, 0) + 1
        name = file_name(call_id, seq, self.fmt)
        if adopted:
            try:
                if await self._current(call_id) is not None:
                    return True
                seq = len(await self.store.for_call(call_id)) + 1
                name = file_name(call_id, seq, self.fmt)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                # The database is away: record all the same, never over a file that may be.
                log.warning("recording_rows_unreadable", error=str(exc)[:200])
                name = file_name(f"{call_id}-{secrets.token_hex(4)}", 1, self.fmt)
        try:
            await self.ami.action(
                "MixMonitor",
                # A channel's uniqueid (ARI's id) names it to AMI as well as its name does.
                {"Channel": channel_id, "File": str(self.pbx_dir / name), "Options": ""},
            )
            name = stored_file(name, self.node)
        except AMIError as exc:
            log.error("recording_not_started", error=str(exc)[:200])
            await self.calllog.event(call_id, "recording_failed", error=str(exc)[:200])
            return False
        at = now()
        self._seq[call_id] = seq
        self.running[call_id] = Running(name, at)
        await self.store.write("start", call_id, at, file=name, format=self.fmt)
        await self.calllog.event(call_id, "recording_started", file=name, at=at)
        log.info("recording_started", file=name)
        return True

    async def stop(self, call_id: str, channel_id: str) -> None:
        """Stop it before the hang-up (a queue that is not recorded)."""
        if await self._current(call_id) is None:
            return
        try:
            await self.ami.action("StopMixMonitor", {"Channel": channel_id})
        except AMIError as exc:
            log.error("recording_not_stopped", error=str(exc)[:200])
            return
        self.running.pop(call_id, None)
        await self.calllog.event(call_id, "recording_stopped", at=now())

    async def pause(self, call_id: str, channel_id: str, by: str | None) -> None:
        await self._mute(call_id, channel_id, by, on=True)

    async def resume(self, call_id: str, channel_id: str, by: str | None) -> None:
        await self._mute(call_id, channel_id, by, on=False)

    async def _mute(self, call_id: str, channel_id: str, by: str | None, *, on: bool) -> None:
        try:
            running = await self._current(call_id)
        except Exception as exc:
            if not is_outage(exc):
                raise
            # Adopted, and only its row knows the recording: the pause must not go unrecorded.
            raise RecordingError(
                "recording_unavailable", "the database is unreachable; try again", 503
            ) from exc
        if running is None:
            raise RecordingError("not_recorded", "this call is not being recorded", 409)
        at = now()
        # Checked before Asterisk is asked: a second pause is refused, not stacked.
        stretches = pause(running.stretches, at, by) if on else resume(running.stretches, at)
        try:
            await self.ami.action(
                "MixMonitorMute",
                {"Channel": channel_id, "Direction": "both", "State": "1" if on else "0"},
            )
        except AMIError as exc:
            log.error("recording_mute_failed", paused=on, error=str(exc)[:200])
            raise RecordingError(
                "recording_unavailable", "Asterisk's manager interface is not reachable", 503
            ) from exc
        running.stretches = stretches
        await self.store.write("pause" if on else "resume", call_id, at, by=by)
        kind = "recording_paused" if on else "recording_resumed"
        await self.calllog.event(call_id, kind, agent_id=by, at=at)
        log.info(kind, agent_id=by)

    def paused(self, call_id: str) -> bool:
        running = self.running.get(call_id)
        return running is not None and paused_now(running.stretches)

    def ended(self, call_id: str) -> None:
        """The call hung up: Asterisk closes the file; the keeper finishes the row."""
        self.running.pop(call_id, None)
        self._seq.pop(call_id, None)
        for notify in self.on_finished:
            notify(call_id)
