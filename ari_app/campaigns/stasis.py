"""The dialler's Stasis app: its loop (reconcile first, then a tick a second) and ARI events
in, each dispatched on its call's ordered stream to the step it calls for."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog

from ari_app.ari import TIMER, Event
from ari_app.campaigns.adoption import Adoption
from ari_app.campaigns.session import MACHINE_PLAYBACK, SurveyDial, parse_channel_id
from ari_app.dispatch import event_channel, run_call_step
from core.surveys.dialphase import Phase
from models.db import is_outage

log = structlog.get_logger(__name__)


class CampaignDialler(Adoption):
    """The outbound survey dialler: places the campaigns' calls and follows each to its end."""

    # ---- the dialling loop ----------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="campaign-dialler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for s in list(self.calls.values()):
            s.timers.cancel_all()

    async def _loop(self) -> None:
        db_away = False  # said once per outage, not once a tick
        while True:
            started = time.monotonic()
            try:
                if self.calllog.degraded:
                    # The database is away, or the journal still drains into it: no new
                    # call is placed that could not be recorded (the contact claimed, its
                    # outcome applied); the calls under way go on.
                    if not db_away:
                        db_away = True
                        log.error("campaigns_paused_database_down", journal=True)
                else:
                    if self.ari.connected and not self._reconciled.is_set():
                        await self.reconcile()  # the one at connect failed: no dialling before
                    if self.ari.connected and self._reconciled.is_set():
                        await self.tick()
                    if db_away:
                        db_away = False
                        log.warning("campaigns_resumed_database_back")
            except Exception as exc:  # a database hiccup must not end the campaigns for good
                if not is_outage(exc):
                    log.exception("campaign_tick_failed")
                else:
                    self.calllog.database_failed(exc)
                    if not db_away:
                        db_away = True
                        log.error("campaigns_paused_database_down", error=str(exc)[:200])
            await asyncio.sleep(max(0.05, self.tick_seconds - (time.monotonic() - started)))

    # ---- events ---------------------------------------------------------------------------

    async def on_event(self, event: Event) -> None:
        if event.get("application") != self.app:
            return
        kind = str(event.get("type"))
        channel: dict[str, Any] = event.get("channel") or event.get("peer") or {}
        channel_id = event_channel(event)
        s = self.calls.get(channel_id)
        if s is None:
            if kind == "StasisStart" and parse_channel_id(channel_id):
                # A call of ours from before a restart, back in Stasis before reconcile ran:
                # this very event says where it is (just answered, or AMD's verdict).
                args = [str(a) for a in event.get("args") or []]
                async with self._reconciling:
                    s = await self._adopt(channel, entering=args[0] if args else None)
            if s is None:
                return
        await run_call_step(
            self.ari,
            self._handle(s, kind, event),
            call_id=s.call_id,
            channel_id=s.channel_id,
            event_type=kind,
            failure="survey_call_failed",
        )

    async def _handle(self, s: SurveyDial, kind: str, event: Event) -> None:
        if kind == "StasisStart":
            args = [str(a) for a in event.get("args") or []]
            if args and args[0] == "amd":
                await self._amd_verdict(s, args[1] if len(args) > 1 else "", args[2:])
            else:
                await self._answered(s)
        elif kind == "ChannelDtmfReceived":
            digit = str(event.get("digit", ""))
            if s.phase is Phase.SURVEY and len(digit) == 1 and digit in "0123456789*#":
                await self._run(s, s.call.on_dtmf(digit))
        elif kind in ("PlaybackFinished", "PlaybackFailed"):
            local = str(event.get("playback", {}).get("id", "")).removeprefix(f"{s.channel_id}-")
            if s.phase is Phase.MACHINE and local == MACHINE_PLAYBACK:
                await self.ari.hangup(s.channel_id)
            elif s.phase is Phase.SURVEY:
                await self._run(s, s.call.on_playback_finished(local))
        elif kind == TIMER:
            if s.phase is Phase.SURVEY:
                await self._run(s, s.call.on_timer(str(event.get("timer"))))
        elif kind in ("RecordingFinished", "RecordingFailed"):
            recording = event.get("recording") or {}
            seconds = 0.0
            if kind == "RecordingFinished":
                seconds = float(recording.get("talking_duration") or recording.get("duration") or 0)
            await self._run(s, s.call.on_recording_finished(str(recording.get("name")), seconds))
        elif kind == "Dial" and s.phase is Phase.RINGING:
            status = str(event.get("dialstatus") or "")
            if status:
                s.dial_status = status
        elif kind == "ChannelHangupRequest":
            if s.phase is Phase.SURVEY:
                await self._run(s, s.call.on_hangup())
        elif kind == "ChannelDestroyed":
            cause = event.get("cause")
            await self._destroyed(s, int(cause) if isinstance(cause, int) else None, event)
