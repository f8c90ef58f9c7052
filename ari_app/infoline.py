"""The free info line's Stasis application (first version: answer, greet, hang up, log).

Two parts, as everywhere in Centrala: ``InfolineCall`` is the pure state machine (events in,
actions out, no I/O), ``InfolineApp`` the thin adapter that feeds it ARI events, carries out its
actions through ARI and writes the call log.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import structlog

from ari_app.ari import ARIClient, ARIError, ARINotFound, Event
from models.calllog import CallLog, now
from models.tables import Direction

log = structlog.get_logger(__name__)


class CallState(StrEnum):
    NEW = "new"
    GREETING = "greeting"
    HANGING_UP = "hanging_up"
    ENDED = "ended"


@dataclass(frozen=True)
class Answer:
    pass


@dataclass(frozen=True)
class Play:
    media: str
    playback_id: str


@dataclass(frozen=True)
class Hangup:
    reason: str = "normal"


Action = Answer | Play | Hangup


@dataclass
class InfolineCall:
    """One caller on the info line. Each ``on_*`` returns the actions to carry out."""

    channel_id: str
    greeting: str
    state: CallState = CallState.NEW
    caller_hung_up: bool = False
    hangup_requested: bool = False

    @property
    def greeting_id(self) -> str:
        return f"{self.channel_id}-greeting"

    def on_start(self) -> list[Action]:
        if self.state is not CallState.NEW:
            return []  # a duplicated StasisStart changes nothing
        self.state = CallState.GREETING
        return [Answer(), Play(self.greeting, self.greeting_id)]

    def on_playback_finished(self, playback_id: str) -> list[Action]:
        if self.state is CallState.GREETING and playback_id == self.greeting_id:
            self.state = CallState.HANGING_UP
            return [Hangup()]
        return []

    def on_hangup_request(self) -> bool:
        """Returns whether this is news: Asterisk sends one request for the soft hang-up and
        another when the channel really goes."""
        if self.hangup_requested:
            return False
        self.hangup_requested = True
        if self.state is not CallState.HANGING_UP:
            self.caller_hung_up = True
        return True

    def on_destroyed(self) -> list[Action]:
        self.state = CallState.ENDED
        return []

    @property
    def outcome(self) -> str:
        if self.caller_hung_up:
            return "abandoned_in_ivr"
        return "completed" if self.state in (CallState.HANGING_UP, CallState.ENDED) else "lost"


def ari_time(value: str | None) -> datetime:
    """ARI timestamps look like 2026-11-23T16:40:00.123+0000."""
    if value:
        with contextlib.suppress(ValueError):
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(UTC)
    return now()


@dataclass
class _Tracked:
    call: InfolineCall
    call_id: str
    # Subscribed to the channel itself: ChannelDestroyed (with the cause) will follow StasisEnd.
    subscribed: bool = False


class InfolineApp:
    def __init__(self, ari: ARIClient, calllog: CallLog, *, name: str, greeting: str) -> None:
        self.ari = ari
        self.calllog = calllog
        self.name = name
        self.greeting = greeting
        self.calls: dict[str, _Tracked] = {}

    async def on_event(self, event: Event) -> None:
        if event.get("application") != self.name:
            return
        kind = event.get("type")
        channel: dict[str, Any] = event.get("channel") or {}
        if kind == "StasisStart":
            await self._start(event, channel)
            return
        if kind in ("PlaybackFinished", "PlaybackFailed"):
            target = str(event.get("playback", {}).get("target_uri", ""))
            channel_id = target.removeprefix("channel:")
        else:
            channel_id = str(channel.get("id", ""))
        tracked = self.calls.get(channel_id)
        if tracked is None:
            return
        structlog.contextvars.bind_contextvars(call_id=tracked.call_id, channel_id=channel_id)
        at = ari_time(event.get("timestamp"))
        if kind in ("PlaybackFinished", "PlaybackFailed"):
            playback_id = str(event.get("playback", {}).get("id", ""))
            await self.calllog.event(tracked.call_id, "greeting_finished", at, state=kind)
            await self._carry_out(tracked, tracked.call.on_playback_finished(playback_id))
        elif kind == "ChannelHangupRequest":
            if tracked.call.on_hangup_request():
                await self.calllog.event(
                    tracked.call_id, "hangup_request", at, soft=bool(event.get("soft"))
                )
        elif kind == "StasisEnd":
            await self.calllog.event(tracked.call_id, "stasis_end", at)
            if not tracked.subscribed:
                await self._close(tracked, at, None, None)
        elif kind == "ChannelDestroyed":
            await self._carry_out(tracked, tracked.call.on_destroyed())
            await self._close(tracked, at, event.get("cause"), event.get("cause_txt"))

    async def _start(self, event: Event, channel: dict[str, Any]) -> None:
        channel_id = str(channel.get("id", ""))
        if not channel_id:
            return
        args = event.get("args") or []
        caller = channel.get("caller") or {}
        dialplan = channel.get("dialplan") or {}
        opened = await self.calllog.open_call(
            channel_id=channel_id,
            linkedid=str(args[0]) if args else None,
            direction=Direction.INBOUND,
            handler="ari",
            caller_number=caller.get("number"),
            caller_name=caller.get("name"),
            called_number=dialplan.get("exten"),
            started_at=ari_time(channel.get("creationtime")),
        )
        structlog.contextvars.bind_contextvars(call_id=opened.id, channel_id=channel_id)
        log.info(
            "call_started",
            caller=opened.caller_e164,
            client_id=opened.client_id,
            called=dialplan.get("exten"),
        )
        tracked = self.calls.get(channel_id)
        if tracked is None:
            tracked = self.calls[channel_id] = _Tracked(
                InfolineCall(channel_id, self.greeting), opened.id
            )
        if not tracked.subscribed:
            try:
                await self.ari.subscribe(self.name, f"channel:{channel_id}")
                tracked.subscribed = True
            except ARIError as exc:  # gone already: StasisEnd closes the record
                log.info("subscribe_failed", error=str(exc))
        await self._carry_out(tracked, tracked.call.on_start())

    async def _carry_out(self, tracked: _Tracked, actions: list[Action]) -> None:
        channel_id = tracked.call.channel_id
        for action in actions:
            try:
                if isinstance(action, Answer):
                    await self.ari.answer(channel_id)
                    await self.calllog.answered(tracked.call_id, now())
                elif isinstance(action, Play):
                    await self.ari.play(channel_id, action.media, action.playback_id)
                    await self.calllog.event(tracked.call_id, "greeting_started", now())
                elif isinstance(action, Hangup):
                    await self.ari.hangup(channel_id, action.reason)
            except ARINotFound:
                # The caller hung up under us; ChannelDestroyed will close the record.
                log.info("channel_gone", action=type(action).__name__)
                return
            except ARIError as exc:
                log.error("ari_action_failed", action=type(action).__name__, error=str(exc))
                with contextlib.suppress(ARIError):
                    await self.ari.hangup(channel_id)
                return

    async def _close(
        self, tracked: _Tracked, at: datetime, cause: object, cause_text: object
    ) -> None:
        self.calls.pop(tracked.call.channel_id, None)
        closed = await self.calllog.close(
            tracked.call_id,
            at=at,
            cause=int(cause) if isinstance(cause, int | str) and str(cause).isdigit() else None,
            cause_text=str(cause_text) if cause_text is not None else None,
            outcome=tracked.call.outcome,
        )
        if closed:
            log.info("call_ended", outcome=tracked.call.outcome, cause=cause)

    async def reconcile(self) -> None:
        """After a (re)connect: events were lost while we were away. Close the calls whose
        channel is gone, and move on the ones still here."""
        for call_id, channel_id in await self.calllog.open_calls("ari"):
            structlog.contextvars.bind_contextvars(call_id=call_id, channel_id=channel_id)
            try:
                channel = await self.ari.get_channel(channel_id)
            except ARINotFound:
                tracked = self.calls.pop(channel_id, None)
                outcome = tracked.call.outcome if tracked else "lost"
                await self.calllog.close(
                    call_id,
                    at=now(),
                    cause=None,
                    cause_text="gone while disconnected",
                    outcome=outcome,
                )
                log.warning("call_closed_on_reconcile", outcome=outcome)
                continue
            except ARIError as exc:
                log.warning("reconcile_failed", error=str(exc))
                return
            tracked = self.calls.get(channel_id)
            if tracked is None:
                # Started before this process did: adopt it with a fresh state machine.
                tracked = self.calls[channel_id] = _Tracked(
                    InfolineCall(channel_id, self.greeting), call_id
                )
                log.info("call_adopted", state=channel.get("state"))
                await self._carry_out(tracked, tracked.call.on_start())
            elif tracked.call.state is CallState.GREETING:
                # The greeting may have finished while we could not hear it.
                try:
                    await self.ari.request("GET", f"/playbacks/{tracked.call.greeting_id}")
                except ARINotFound:
                    await self._carry_out(
                        tracked, tracked.call.on_playback_finished(tracked.call.greeting_id)
                    )
