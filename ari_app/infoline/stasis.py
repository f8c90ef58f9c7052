"""ARI events in: the info line's Stasis app dispatches each event of a caller to the
step it calls for; a call starts here, and the IVR's actions are carried out here."""

from __future__ import annotations

import asyncio
import contextlib
import time
from typing import Any

import structlog

from ari_app.agents import AGENT_ANSWERED, AGENT_GONE, OFFER
from ari_app.ari import TIMER, ARIError, ChannelTimers, Event
from ari_app.dispatch import event_channel, run_call_step
from ari_app.infoline.adoption import Adoption
from ari_app.infoline.session import (
    ADOPT,
    CONTROL,
    RESYNC,
    CallerSession,
    ari_time,
)
from ari_app.media import carry_out
from core.acd import Offer
from core.callphase import Phase
from core.errors import CallControlError
from core.infoline import callback_offer, is_dtmf, leaves_queue_for_callback
from core.ivr import (
    IVR,
    AgreeSurvey,
    HangupCall,
    IVRAction,
    RequestCallback,
    RouteTo,
    SetLanguage,
    StartRecording,
)
from core.prompter import MediaAction
from core.routing import transfer_decision
from models.calllog import now
from models.crm import caller_of
from models.tables import Direction

log = structlog.get_logger(__name__)


class InfolineApp(Adoption):
    """The info line's Stasis app: ARI events in, each on its caller's ordered stream."""

    async def on_event(self, event: Event) -> None:
        if event.get("application") != self.name:
            return
        kind = str(event.get("type"))
        channel: dict[str, Any] = event.get("channel") or {}
        channel_id = event_channel(event)
        if self.desk.owns(channel_id):
            await self.desk.on_event(event)
            return
        if kind == "StasisStart":
            args = event.get("args") or []
            if args and args[0] in ("agent", "nailed"):
                # An agent leg whose bookkeeping is gone (rung by a process that has since
                # been restarted): nobody waits for it.
                log.info("stray_agent_leg_hung_up", channel_id=channel_id)
                with contextlib.suppress(ARIError):
                    await self.ari.hangup(channel_id)
                return
            await self._start(event, channel)
            return
        if kind == ADOPT:
            await self._adopt_event(event)
            return
        session = self.calls.get(channel_id)
        if session is None:
            if kind in (OFFER,):
                # The caller left before the offer reached them; free the agent.
                offer: Offer = event["offer"]
                self.desk.publish(
                    self.acd.declined(
                        offer.call_id, offer.agent_id, time.monotonic(), pause_agent=False
                    )
                )
            elif kind == AGENT_ANSWERED:
                await self.desk.release_leg(str(event.get("leg")))
            elif kind == CONTROL and not event["reply"].done():
                event["reply"].set_exception(
                    CallControlError("unknown_call", "the call has ended", 404)
                )
            return
        handled = await run_call_step(
            self.ari,
            self._handle(session, kind, event),
            call_id=session.call_id,
            channel_id=session.channel_id,
            event_type=kind,
        )
        if handled:
            self._save(session)

    async def _handle(self, s: CallerSession, kind: str, event: Event) -> None:
        at = ari_time(event.get("timestamp"))
        if kind in ("PlaybackFinished", "PlaybackFailed"):
            playback_id = str(event.get("playback", {}).get("id", ""))
            await self._playback_finished(s, playback_id.removeprefix(f"{s.channel_id}-"))
        elif kind == RESYNC:
            await self._resync(s)
        elif kind == "ChannelDtmfReceived":
            await self._dtmf(s, str(event.get("digit", "")))
        elif kind == TIMER:
            await self._on_timer(s, str(event.get("timer")))
        elif kind == OFFER:
            await self._offer(s, event["offer"])
        elif kind == AGENT_ANSWERED:
            await self._agent_answered(s, str(event["leg"]), str(event["agent_id"]))
        elif kind == AGENT_GONE:
            await self._agent_gone(s, event)
        elif kind == CONTROL:
            await self._control(s, event)
        elif kind == "ChannelHangupRequest":
            await self._caller_left(s, at)
        elif kind == "StasisEnd":
            await self._caller_left(s, at)
            if not s.subscribed:
                await self._close(s, at, None, None)
        elif kind == "ChannelDestroyed":
            await self._caller_left(s, at)
            await self._close(s, at, event.get("cause"), event.get("cause_txt"))

    async def _start(self, event: Event, channel: dict[str, Any]) -> None:
        channel_id = str(channel.get("id", ""))
        if not channel_id or channel_id in self.calls:
            return  # a duplicated StasisStart changes nothing
        args = event.get("args") or []
        caller = channel.get("caller") or {}
        version, flow = await self._flow_for_caller(caller.get("number"))
        opened = await self.calllog.open_call(
            channel_id=channel_id,
            linkedid=str(args[0]) if args else None,
            direction=Direction.INBOUND,
            handler="ari",
            caller_number=caller.get("number"),
            caller_name=caller.get("name"),
            called_number=(channel.get("dialplan") or {}).get("exten"),
            started_at=ari_time(channel.get("creationtime")),
            flow_version=version,
            # Found in the app on connect (adoption.py): with the database away, its row
            # may exist unread; the journal's drain puts its writes there.
            adopted=bool(event.get("missed")),
            node=self.node,
        )
        structlog.contextvars.bind_contextvars(call_id=opened.id, channel_id=channel_id)
        if not opened.new:
            return  # the record exists (closed or adopted): do not run the IVR twice
        if event.get("missed"):
            log.warning("stasis_start_missed")  # found in the app on connect (adoption.py)
        profile = caller_of(opened.client)
        self.by_call[opened.id] = channel_id
        s = self.calls[channel_id] = CallerSession(
            channel_id=channel_id,
            call_id=opened.id,
            caller=profile,
            caller_number=caller.get("number"),
            caller_e164=opened.caller_e164,
            flow=flow,
            flow_version=version,
            ivr=IVR(flow, profile),
            timers=ChannelTimers(self.ari, self.name, channel_id),
        )
        log.info(
            "call_started",
            caller=opened.caller_e164,
            client_id=opened.client_id,
            flow_version=version,
        )
        # The subscription (events after the channel leaves the app) and the answer in
        # parallel: one round trip less before the caller hears the first prompt.
        subscribed, answered = await asyncio.gather(
            self.ari.subscribe(self.name, f"channel:{channel_id}"),
            self.ari.answer(channel_id),
            return_exceptions=True,
        )
        if isinstance(subscribed, ARIError):
            log.info("subscribe_failed", error=str(subscribed))
        elif isinstance(subscribed, BaseException):
            raise subscribed
        else:
            s.subscribed = True
        if isinstance(answered, BaseException):
            raise answered
        await self.calllog.answered(s.call_id, now())
        entry = str(args[1]) if len(args) > 1 else ""
        if entry.startswith("queue:"):
            # The number dialled is the queue's own: no greeting, no menu.
            try:
                decision = transfer_decision(None, entry)
            except ValueError:
                log.error("bad_entry_point", entry=entry[:80])
            else:
                await self.calllog.event(s.call_id, "entered_queue_number", queue=decision.queue)
                await self._enqueue(s, decision, await self.crm.queues())
                self._save(s)
                return
        await self._run(s, s.ivr.start())
        self._save(s)

    async def _playback_finished(self, s: CallerSession, local: str) -> None:
        if local == s.announcing:
            s.announcing = None
            if s.phase is Phase.QUEUED:
                await self._moh(s, on=True)
                s.timers.start(
                    "announce", s.queue_def.announce_every_seconds if s.queue_def else 30
                )
            return
        if s.closing:
            # The caller hung up and Asterisk cut the prompt short (it tells us after the
            # hang-up): the IVR goes no further, or the path would name a node never reached.
            return
        await self._run(s, s.ivr.on_playback_finished(local))

    async def _run(self, s: CallerSession, actions: list[IVRAction]) -> None:
        for action in actions:
            if s.phase is Phase.ENDED:
                return
            if isinstance(action, MediaAction):
                await carry_out(self.ari, s.channel_id, s.timers, s.flow, action)
            elif isinstance(action, SetLanguage):
                await self.calllog.event(s.call_id, "language", language=action.language)
            elif isinstance(action, RouteTo):
                await self._route(s, action.intent)
            elif isinstance(action, RequestCallback):
                await self._callback(s, action)
            elif isinstance(action, AgreeSurvey):
                s.survey = action.survey
                await self.calllog.event(s.call_id, "survey_agreed", survey=action.survey)
            elif isinstance(action, StartRecording):
                if self.recorder is not None:
                    await self.recorder.start(s.call_id, s.channel_id, adopted=s.adopted)
            elif isinstance(action, HangupCall):
                s.hung_up_by_us = True
                await self.ari.hangup(s.channel_id)

    async def _dtmf(self, s: CallerSession, digit: str) -> None:
        if not is_dtmf(digit):
            return
        if s.phase is Phase.IVR:
            await self._run(s, s.ivr.on_dtmf(digit))
        elif s.phase is Phase.QUEUED and leaves_queue_for_callback(s.flow, digit):
            # The caller would rather be called back than wait.
            await self._leave_queue(s)
            s.outcome = "callback_requested"
            await self.calllog.event(s.call_id, "left_queue_for_callback")
            await self._to_callback(s, callback_offer(s.flow))

    async def _on_timer(self, s: CallerSession, timer_id: str) -> None:
        if timer_id == "max_wait":
            await self._max_wait(s)
        elif timer_id == "announce":
            await self._announce(s)
        else:
            await self._run(s, s.ivr.on_timer(timer_id))
