"""The free info line's Stasis application: one ``CallerSession`` per caller, walked through
the active flow's IVR (``ivr.py``), routed by its rules (``routing.py``), queued in the ACD
(``acd.py``) and bridged to an agent (``agents.py``), with every step in the call log.

Everything that touches a caller's session runs on that caller's own ordered event stream:
ARI events, and the synthetic ones we post there (timers, offers, the agent's leg answering or
going). So a session is never changed by two things at once, and nothing here blocks another
caller.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any

import structlog
from sqlalchemy import select

from ari_app.agents import AGENT_ANSWERED, AGENT_GONE, OFFER, AgentDesk
from ari_app.ari import TIMER, ARIClient, ARIError, ARINotFound, ChannelTimers, Event
from ari_app.media import carry_out
from core.acd import ACD, ACDError, AgentMode, AgentProfile, CallRequest, Offer
from core.errors import CallControlError
from core.ivr import (
    IVR,
    AgreeSurvey,
    HangupCall,
    IVRAction,
    RequestCallback,
    RouteTo,
    SetLanguage,
)
from core.livestate import LiveCall, decode_decision, encode_decision, parse_time
from core.media import prompt_media
from core.phones import normalise
from core.prompter import MediaAction
from core.routing import (
    Caller,
    NoRoute,
    RouteDecision,
    decide,
    on_max_wait,
    overflow_decision,
    parse_transfer_target,
    queue_calendar,
    queue_is_open,
    transfer_decision,
)
from dialplan.hours import next_open
from dialplan.model import Flow, QueueDef
from models.calllog import CallLog, LiveRow, now
from models.crm import CRM, caller_of
from models.flows import flow_version
from models.tables import Direction, FlowVersion

log = structlog.get_logger(__name__)

CONTROL = "CentralaControl"  # an agent's call control (transfer), from the API
ADOPT = "CentralaAdopt"  # adopt a call found live after a restart, on the caller's own stream
HOLD_PROMPT = "queue_hold"
CONSULT_PRIORITY = 1000
# The dialplan context of the post-call survey (extensions.conf); it reads these variables.
SURVEY_CONTEXT = "centrala-postcall-survey"
SURVEY_VARIABLE = "CENTRALA_SURVEY"
CALL_ID_VARIABLE = "CENTRALA_CALL_ID"


@dataclass
class Consult:
    """An attended transfer under way: the agent talks to ``agent_id`` while the caller
    holds."""

    target: str
    agent_id: str
    acd_id: str
    leg: str | None = None
    answered: bool = False


@dataclass(frozen=True)
class DeskNotice:
    """News for the agent desktop: a call was offered to an agent (their phone rings, or the
    caller is bridged into their nailed leg), connected, or left them. ``at`` is wall-clock
    time, so a browser's render time can be measured against it."""

    kind: str  # "offered" | "connected" | "ended" | "missed"
    call_id: str
    agent_id: str
    at: float


class Phase(StrEnum):
    IVR = "ivr"
    QUEUED = "queued"
    CONNECTED = "connected"
    SURVEY = "survey"  # sent to the post-call survey (dialplan): only the hang-up is to come
    ENDED = "ended"


@dataclass
class CallerSession:
    channel_id: str
    call_id: str
    caller: Caller
    caller_number: str | None
    caller_e164: str | None
    flow: Flow
    flow_version: int
    ivr: IVR
    timers: ChannelTimers
    phase: Phase = Phase.IVR
    subscribed: bool = False
    decision: RouteDecision | None = None
    queue_def: QueueDef | None = None
    visited: list[str] = field(default_factory=list)
    arrived_mono: float | None = None
    queued_at: datetime | None = None
    queue_entered_at: datetime | None = None  # the current queue's max wait counts from here
    agent_id: str | None = None
    agent_leg: str | None = None
    bridge_id: str | None = None
    own_bridge: bool = False
    connected_at: datetime | None = None
    outcome: str | None = None  # set by what happened; None = decided at hang-up
    moh: bool = False
    announcing: str | None = None
    closing: bool = False
    consult: Consult | None = None
    on_hold: bool = False  # out of the agent's bridge, hearing music
    last_agent_id: str | None = None  # who had the caller last (for the log)
    hung_up_by_us: bool = False  # the flow ended the call (a hangup node)
    survey: str | None = None  # the survey the caller agreed to take after the call
    left_agent_at: datetime | None = None  # sent to the survey: the talk ended here
    saved: dict[str, Any] | None = None  # the live state last written (restart survival)

    def final_outcome(self) -> str:
        if self.connected_at is not None:
            return "answered"
        if self.outcome:
            return self.outcome
        if self.phase is Phase.QUEUED:
            return "abandoned_in_queue"
        return "completed" if self.hung_up_by_us else "abandoned_in_ivr"


def ari_time(value: str | None) -> datetime:
    """ARI timestamps look like 2026-11-23T16:40:00.123+0000."""
    if value:
        with contextlib.suppress(ValueError):
            return datetime.strptime(value, "%Y-%m-%dT%H:%M:%S.%f%z").astimezone(UTC)
    return now()


class InfolineApp:
    def __init__(
        self,
        ari: ARIClient,
        calllog: CallLog,
        crm: CRM,
        desk: AgentDesk,
        acd: ACD,
        *,
        name: str,
        flow_name: str = "infoline",
        region: str = "BA",
        survey: str = "nps",
    ) -> None:
        self.ari = ari
        self.calllog = calllog
        self.crm = crm
        self.desk = desk
        self.acd = acd
        self.name = name
        self.flow_name = flow_name
        self.region = region
        self.survey = survey  # the post-call survey of the transfer target "survey"
        self.calls: dict[str, CallerSession] = {}
        self.by_call: dict[str, str] = {}  # call id -> caller channel id
        self._flows: dict[int, Flow] = {}
        self.desk_listeners: list[Callable[[DeskNotice], None]] = []
        # False until the first reconcile has adopted what a previous process left live.
        self.ready = False
        self.adopted = 0

    def _notify(self, kind: str, s: CallerSession, agent_id: str | None) -> None:
        if agent_id is None:
            return
        notice = DeskNotice(kind, s.call_id, agent_id, time.time())
        for listener in self.desk_listeners:
            try:
                listener(notice)
            except Exception:  # a desktop problem must never disturb the call
                log.exception("desk_listener_failed")

    # ---- events ---------------------------------------------------------------------------

    async def on_event(self, event: Event) -> None:
        if event.get("application") != self.name:
            return
        kind = str(event.get("type"))
        channel: dict[str, Any] = event.get("channel") or {}
        channel_id = str(channel.get("id", ""))
        if kind in ("PlaybackFinished", "PlaybackFailed"):
            target = str(event.get("playback", {}).get("target_uri", ""))
            channel_id = target.removeprefix("channel:")
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
        structlog.contextvars.bind_contextvars(
            call_id=session.call_id, channel_id=session.channel_id
        )
        try:
            await self._handle(session, kind, event)
            self._save(session)
        except ARINotFound:
            log.info("channel_gone", event_type=kind)
        except Exception:
            log.exception("call_handling_failed", event_type=kind)
            # Never leave a caller in silence: hang up cleanly, the record closes.
            with contextlib.suppress(ARIError):
                await self.ari.hangup(session.channel_id)

    async def _handle(self, s: CallerSession, kind: str, event: Event) -> None:
        at = ari_time(event.get("timestamp"))
        if kind in ("PlaybackFinished", "PlaybackFailed"):
            playback_id = str(event.get("playback", {}).get("id", ""))
            local = playback_id.removeprefix(f"{s.channel_id}-")
            if local == s.announcing:
                s.announcing = None
                if s.phase is Phase.QUEUED:
                    await self._moh(s, on=True)
                    s.timers.start(
                        "announce", s.queue_def.announce_every_seconds if s.queue_def else 30
                    )
                return
            await self._run(s, s.ivr.on_playback_finished(local))
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

    # ---- start ----------------------------------------------------------------------------

    async def _active_flow(self) -> tuple[int, Flow]:
        async with self.crm.sessions() as session:
            version = await session.scalar(
                select(FlowVersion.version).where(
                    FlowVersion.name == self.flow_name, FlowVersion.active
                )
            )
        if version is None:
            raise RuntimeError(f"no active flow {self.flow_name!r}: `centrala dialplan apply`")
        if version not in self._flows:
            flow = await flow_version(self.crm.sessions, self.flow_name, version)
            assert flow is not None
            self._flows[version] = flow
        return version, self._flows[version]

    async def _start(self, event: Event, channel: dict[str, Any]) -> None:
        channel_id = str(channel.get("id", ""))
        if not channel_id or channel_id in self.calls:
            return  # a duplicated StasisStart changes nothing
        args = event.get("args") or []
        caller = channel.get("caller") or {}
        version, flow = await self._active_flow()
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
        )
        structlog.contextvars.bind_contextvars(call_id=opened.id, channel_id=channel_id)
        if not opened.new:
            return  # the record exists (closed or adopted): do not run the IVR twice
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
        try:
            await self.ari.subscribe(self.name, f"channel:{channel_id}")
            s.subscribed = True
        except ARIError as exc:
            log.info("subscribe_failed", error=str(exc))
        await self.ari.answer(channel_id)
        await self.calllog.answered(s.call_id, now())
        await self._run(s, s.ivr.start())
        self._save(s)

    # ---- the IVR's actions ----------------------------------------------------------------

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
            elif isinstance(action, HangupCall):
                s.hung_up_by_us = True
                await self.ari.hangup(s.channel_id)

    async def _dtmf(self, s: CallerSession, digit: str) -> None:
        if len(digit) != 1 or digit not in "0123456789*#ABCD":
            return
        if s.phase is Phase.IVR:
            await self._run(s, s.ivr.on_dtmf(digit))
        elif s.phase is Phase.QUEUED and digit == s.flow.queue_key_for_callback:
            # The caller would rather be called back than wait.
            await self._leave_queue(s)
            s.outcome = "callback_requested"
            await self.calllog.event(s.call_id, "left_queue_for_callback")
            await self._to_callback(s, preamble=[])

    async def _on_timer(self, s: CallerSession, timer_id: str) -> None:
        if timer_id == "max_wait":
            await self._max_wait(s)
        elif timer_id == "announce":
            await self._announce(s)
        else:
            await self._run(s, s.ivr.on_timer(timer_id))

    # ---- routing and the queue ------------------------------------------------------------

    async def _route(self, s: CallerSession, intent: str) -> None:
        queues = await self.crm.queues()
        try:
            decision = decide(s.flow, queues, s.caller, intent)
        except NoRoute:
            log.error("no_route", intent=intent)
            await self.ari.hangup(s.channel_id)
            return
        await self.calllog.event(
            s.call_id,
            "routed",
            intent=intent,
            rule=decision.rule,
            queue=decision.queue,
            priority=decision.priority,
            targets=[
                getattr(t, "agent_id", None) or f"queue:{getattr(t, 'queue_id', '')}"
                for t in decision.targets
            ],
        )
        await self._enqueue(s, decision, queues)

    async def _enqueue(
        self, s: CallerSession, decision: RouteDecision, queues: dict[str, QueueDef]
    ) -> None:
        s.decision = decision
        s.queue_def = queues.get(decision.queue)
        s.visited.append(decision.queue)
        is_open = queue_is_open(s.flow.calendars, s.queue_def, now())
        first_time = is_open and s.arrived_mono is None
        if first_time:
            s.arrived_mono, s.queued_at = time.monotonic(), now()
        if is_open:
            s.queue_entered_at = now()
        await self.crm.update_call(
            s.call_id,
            queue=decision.queue,
            ivr_path=s.ivr.path,
            **({"queued_at": s.queued_at} if first_time else {}),
        )
        if not is_open:
            s.outcome = "after_hours"
            await self.calllog.event(s.call_id, "after_hours", queue=decision.queue)
            preamble = [s.flow.after_hours_prompt] if s.flow.after_hours_prompt else []
            await self._to_callback(s, preamble=preamble)
            return
        s.phase = Phase.QUEUED
        assert s.arrived_mono is not None
        await self.desk.refresh_profiles()
        offer = self.acd.request(decision.request(s.channel_id, s.arrived_mono), time.monotonic())
        await self.calllog.event(
            s.call_id, "queued", queue=decision.queue, position=self.acd.position(s.channel_id)
        )
        await self._moh(s, on=True)
        if s.queue_def is not None:
            s.timers.start("max_wait", s.queue_def.max_wait_seconds)
            if s.queue_def.announce_every_seconds:
                s.timers.start("announce", s.queue_def.announce_every_seconds)
        if offer is not None:
            await self._offer(s, offer)
        self.desk.publish([])

    async def _leave_queue(self, s: CallerSession) -> None:
        cancelled = self.acd.cancel(s.channel_id, time.monotonic())
        if s.agent_leg:
            await self.desk.release_leg(s.agent_leg)
            s.agent_leg = None
        self.desk.publish(list(cancelled.offers))
        for timer in ("max_wait", "announce"):
            s.timers.cancel(timer)
        await self._moh(s, on=False)
        s.phase = Phase.IVR

    async def _max_wait(self, s: CallerSession) -> None:
        if s.phase is not Phase.QUEUED or s.decision is None:
            return
        step = on_max_wait(s.queue_def, tuple(s.visited))
        await self._leave_queue(s)
        await self.calllog.event(
            s.call_id, "overflowed", queue=s.decision.queue, to=step.queue or "callback"
        )
        if step.kind == "queue" and step.queue:
            await self._enqueue(
                s, overflow_decision(s.decision, step.queue), await self.crm.queues()
            )
            return
        s.outcome = "overflowed"
        await self._to_callback(s, preamble=[])

    async def _announce(self, s: CallerSession) -> None:
        if s.phase is not Phase.QUEUED or s.announcing:
            return
        media = []
        if HOLD_PROMPT in s.flow.prompts:
            media.append(prompt_media(s.flow, HOLD_PROMPT, s.ivr.language))
        position = self.acd.position(s.channel_id)
        if s.ivr.language == "en" and position:
            # Asterisk's own English queue prompts say the position.
            media += (
                ["sound:queue-youarenext"]
                if position == 1
                else ["sound:queue-thereare", f"number:{position}", "sound:queue-callswaiting"]
            )
        if not media:
            return
        await self._moh(s, on=False)
        s.announcing = f"announce{int(time.monotonic() * 1000)}"
        await self.ari.play(s.channel_id, media, f"{s.channel_id}-{s.announcing}")
        await self.calllog.event(s.call_id, "announced", position=position)

    async def _to_callback(self, s: CallerSession, preamble: list[str]) -> None:
        node = s.flow.after_hours_callback
        if node is None:
            await self.ari.hangup(s.channel_id)
            return
        s.phase = Phase.IVR
        await self._run(s, s.ivr.goto(node, preamble=preamble))

    async def _callback(self, s: CallerSession, request: RequestCallback) -> None:
        number = normalise(request.number, self.region) if request.number else None
        number = number or s.caller_e164 or (s.caller_number or "")
        queues = await self.crm.queues()
        calendar = queue_calendar(s.flow.calendars, queues.get(request.queue))
        due = next_open(calendar, now()) or now()
        if s.outcome is None:
            s.outcome = "callback_requested"
        await self.crm.create_callback(
            call_id=s.call_id,
            client_id=s.caller.client_id,
            number=number,
            reason=s.outcome,
            queue=request.queue,
            assigned_agent_id=s.caller.assigned_manager,
            due_at=due,
        )
        log.info("callback_requested", number=number, due_at=due.isoformat())

    # ---- offers and the agent -------------------------------------------------------------

    async def _offer(self, s: CallerSession, offer: Offer) -> None:
        if s.phase is not Phase.QUEUED:
            self.desk.publish(
                self.acd.declined(
                    offer.call_id, offer.agent_id, time.monotonic(), pause_agent=False
                )
            )
            return
        s.agent_id = offer.agent_id
        await self.calllog.event(
            s.call_id, "offered", agent_id=offer.agent_id, tier=offer.tier, mode=str(offer.mode)
        )
        self._notify("offered", s, offer.agent_id)
        bridge = self.desk.nailed_bridge(offer.agent_id)
        if bridge is not None:
            self.acd.answered(s.channel_id, offer.agent_id, time.monotonic())
            await self._connect(s, offer.agent_id, bridge, own=False)
            return
        ring = s.queue_def.ring_timeout_seconds if s.queue_def else 15
        leg = await self.desk.ring(offer, s.caller.name, s.caller_number, ring)
        if leg is None:
            self.desk.publish(self.acd.declined(s.channel_id, offer.agent_id, time.monotonic()))
            return
        s.agent_leg = leg

    async def _agent_answered(self, s: CallerSession, leg: str, agent_id: str) -> None:
        if s.consult is not None and s.consult.leg == leg:
            await self._consult_answered(s, s.consult)
            return
        if s.phase is not Phase.QUEUED or s.agent_leg != leg:
            await self.desk.release_leg(leg)
            return
        self.acd.answered(s.channel_id, agent_id, time.monotonic())
        bridge_id = f"call-{s.call_id}"
        await self.ari.create_bridge(bridge_id)
        await self.ari.add_to_bridge(bridge_id, leg)
        await self._connect(s, agent_id, bridge_id, own=True)

    async def _connect(self, s: CallerSession, agent_id: str, bridge_id: str, *, own: bool) -> None:
        for timer in ("max_wait", "announce"):
            s.timers.cancel(timer)
        if s.announcing:
            with contextlib.suppress(ARINotFound):
                await self.ari.stop_playback(f"{s.channel_id}-{s.announcing}")
            s.announcing = None
        await self._moh(s, on=False)
        await self.ari.add_to_bridge(bridge_id, s.channel_id)
        s.phase = Phase.CONNECTED
        s.on_hold = False
        s.bridge_id, s.own_bridge = bridge_id, own
        s.connected_at = now()
        self._notify("connected", s, agent_id)
        waited = (s.connected_at - s.queued_at).total_seconds() if s.queued_at else 0.0
        await self.crm.update_call(
            s.call_id, agent_id=agent_id, connected_at=s.connected_at, wait_seconds=waited
        )
        await self.calllog.event(
            s.call_id,
            "agent_connected",
            agent_id=agent_id,
            bridge=bridge_id,
            waited=round(waited, 3),
        )
        log.info("agent_connected", agent_id=agent_id, waited=round(waited, 3))

    async def _agent_gone(self, s: CallerSession, event: Event) -> None:
        leg, agent_id = str(event["leg"]), str(event["agent_id"])
        if s.consult is not None and s.consult.leg == leg:
            # The consulted agent did not answer, or left: back to the first agent.
            await self.calllog.event(
                s.call_id, "consult_failed", agent_id=agent_id, cause=event.get("cause")
            )
            await self._consult_end(s, hang_up_leg=False)
            return
        if s.phase is Phase.CONNECTED and s.agent_id == agent_id and s.agent_leg in (leg, None):
            # The agent ended the call: the caller who agreed to a survey goes to it.
            await self.calllog.event(s.call_id, "agent_hung_up")
            if s.survey is not None and s.consult is None:
                await self._to_survey(s, s.survey, via="agreed")
            else:
                await self.ari.hangup(s.channel_id)
            return
        if s.phase is Phase.QUEUED and s.agent_leg == leg and not event.get("answered"):
            s.agent_leg = None
            s.agent_id = None
            await self.calllog.event(
                s.call_id, "agent_no_answer", agent_id=agent_id, cause=event.get("cause")
            )
            self.desk.publish(self.acd.declined(s.channel_id, agent_id, time.monotonic()))

    # ---- call controls: transfers ---------------------------------------------------------

    async def control(self, call_id: str, op: str, target: str | None = None) -> None:
        """An agent's call control on a live call: ``transfer`` (blind) to ``target``,
        ``consult`` (attended: talk to the target first), then ``complete`` or ``cancel``;
        ``hold``, ``resume``; ``hangup`` (the agent ends the call). Runs on the caller's own
        stream; raises CallControlError when it cannot be done."""
        if op in ("transfer", "consult"):
            try:
                kind, _ = parse_transfer_target(target or "")
            except ValueError as exc:
                raise CallControlError("bad_target", str(exc), 422) from exc
            if kind == "survey" and op == "consult":
                raise CallControlError("bad_target", "send a caller to a survey blind", 422)
        elif op not in ("complete", "cancel", "hold", "resume", "hangup"):
            raise CallControlError("bad_operation", f"unknown call control {op!r}", 422)
        channel_id = self.by_call.get(call_id)
        if channel_id is None:
            raise CallControlError("unknown_call", f"no live call {call_id!r}", 404)
        reply: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ari.dispatch(
            {
                "type": CONTROL,
                "application": self.name,
                "channel": {"id": channel_id},
                "op": op,
                "target": target,
                "reply": reply,
            }
        )
        await asyncio.wait_for(reply, 15)

    async def _control(self, s: CallerSession, event: Event) -> None:
        reply: asyncio.Future[None] = event["reply"]
        try:
            op, target = event["op"], event.get("target")
            if op == "hangup":
                await self._agent_ends_call(s)
            elif s.phase is not Phase.CONNECTED or s.agent_id is None:
                raise CallControlError("not_connected", "the caller is not with an agent")
            elif op == "transfer":
                await self._blind_transfer(s, str(target))
            elif op == "consult":
                await self._consult_start(s, str(target))
            elif op == "complete":
                await self._consult_complete(s)
            elif op == "hold":
                await self._hold(s)
            elif op == "resume":
                await self._resume(s)
            else:
                if s.consult is None:
                    raise CallControlError("no_consult", "no attended transfer under way")
                await self.calllog.event(s.call_id, "consult_cancelled")
                await self._consult_end(s, hang_up_leg=True)
        except BaseException as exc:
            if not reply.done():
                reply.set_exception(exc)
            if not isinstance(exc, CallControlError):
                raise
        else:
            if not reply.done():
                reply.set_result(None)

    async def _take_caller_out(self, s: CallerSession) -> None:
        """Out of the agent's bridge, onto music (hold, transfers); once."""
        if not s.on_hold and s.bridge_id:
            await self.ari.remove_from_bridge(s.bridge_id, s.channel_id)
        s.on_hold = True
        await self._moh(s, on=True)

    async def _hold(self, s: CallerSession) -> None:
        if s.consult is not None:
            raise CallControlError("consult_under_way", "the caller is on hold already")
        if not s.on_hold:
            await self._take_caller_out(s)
            await self.calllog.event(s.call_id, "held", agent_id=s.agent_id)

    async def _resume(self, s: CallerSession) -> None:
        if s.consult is not None:
            raise CallControlError("consult_under_way", "complete or cancel the consultation")
        if s.on_hold and s.bridge_id:
            await self._moh(s, on=False)
            await self.ari.add_to_bridge(s.bridge_id, s.channel_id)
            s.on_hold = False
            await self.calllog.event(s.call_id, "resumed", agent_id=s.agent_id)

    async def _release_agent(self, s: CallerSession) -> None:
        """The agent is done with this caller (the call moves on or ends)."""
        if s.agent_id is None:
            return
        s.last_agent_id = s.agent_id
        self._notify("ended", s, s.agent_id)
        await self.desk.release_leg(s.agent_leg)
        wrap = s.queue_def.wrap_up_seconds if s.queue_def else 10
        self.desk.call_ended(s.agent_id, wrap)
        if s.own_bridge and s.bridge_id:
            with contextlib.suppress(ARIError):
                await self.ari.destroy_bridge(s.bridge_id)
        s.agent_id = s.agent_leg = s.bridge_id = None
        s.own_bridge = False

    async def _blind_transfer(self, s: CallerSession, target: str) -> None:
        if s.consult is not None:
            raise CallControlError("consult_under_way", "complete or cancel the consultation")
        kind, survey = parse_transfer_target(target)
        if kind == "survey":
            await self._to_survey(s, survey or self.survey, via="transfer")
            return
        from_agent = s.agent_id
        await self._take_caller_out(s)
        await self._release_agent(s)
        await self.calllog.event(
            s.call_id, "transferred", mode="blind", from_agent=from_agent, to=target
        )
        log.info("transferred", mode="blind", from_agent=from_agent, to=target)
        s.phase = Phase.IVR
        await self._enqueue(s, transfer_decision(s.decision, target), await self.crm.queues())

    async def _consult_start(self, s: CallerSession, target: str) -> None:
        if s.consult is not None:
            raise CallControlError("consult_under_way", "a consultation is already under way")
        decision = transfer_decision(s.decision, target)
        acd_id = f"consult:{s.call_id}"
        offer = self.acd.request(
            CallRequest(
                acd_id,
                decision.queue,
                arrived_at=time.monotonic(),
                targets=decision.targets,
                priority=CONSULT_PRIORITY,
            ),
            time.monotonic(),
        )
        if offer is None:
            self.acd.cancel(acd_id, time.monotonic())
            raise CallControlError("nobody_free", f"nobody free to consult at {target}")
        if self.desk.nailed_bridge(offer.agent_id) is not None:
            self.desk.publish(
                self.acd.declined(acd_id, offer.agent_id, time.monotonic(), pause_agent=False)
            )
            self.acd.cancel(acd_id, time.monotonic())
            raise CallControlError(
                "consult_nailed", "attended transfer to a nailed-up agent: use blind transfer"
            )
        # The caller holds (music) while the agents talk.
        await self._take_caller_out(s)
        s.consult = Consult(target, offer.agent_id, acd_id)
        leg = await self.desk.ring(
            offer,
            s.caller.name,
            s.caller_number,
            s.queue_def.ring_timeout_seconds if s.queue_def else 15,
            caller_channel=s.channel_id,
        )
        if leg is None:
            await self._consult_end(s, hang_up_leg=False)
            raise CallControlError("consult_failed", f"cannot ring {offer.agent_id}", 502)
        s.consult.leg = leg
        self._notify("offered", s, offer.agent_id)
        await self.calllog.event(s.call_id, "consult_started", agent_id=offer.agent_id, to=target)

    async def _consult_answered(self, s: CallerSession, consult: Consult) -> None:
        assert consult.leg is not None and s.bridge_id is not None
        self.acd.answered(consult.acd_id, consult.agent_id, time.monotonic())
        consult.answered = True
        await self.ari.add_to_bridge(s.bridge_id, consult.leg)
        await self.calllog.event(s.call_id, "consult_connected", agent_id=consult.agent_id)

    async def _consult_complete(self, s: CallerSession) -> None:
        consult = s.consult
        if consult is None or not consult.answered or consult.leg is None:
            raise CallControlError("consult_not_answered", "the other agent has not answered")
        from_agent = s.agent_id
        # A fresh bridge for the caller and the new agent; the first agent is released
        # (a nailed-up first agent stays in their own bridge).
        bridge_id = f"call-{s.call_id}-{int(time.monotonic() * 1000)}"
        await self.ari.create_bridge(bridge_id)
        await self.ari.add_to_bridge(bridge_id, consult.leg)
        await self._release_agent(s)
        await self._moh(s, on=False)
        await self.ari.add_to_bridge(bridge_id, s.channel_id)
        s.on_hold = False
        s.agent_id, s.agent_leg, s.bridge_id, s.own_bridge = (
            consult.agent_id,
            consult.leg,
            bridge_id,
            True,
        )
        s.consult = None
        self._notify("connected", s, consult.agent_id)
        await self.crm.update_call(s.call_id, agent_id=consult.agent_id)
        await self.calllog.event(
            s.call_id, "transferred", mode="attended", from_agent=from_agent, to=consult.agent_id
        )
        log.info("transferred", mode="attended", from_agent=from_agent, to=consult.agent_id)

    async def _consult_end(self, s: CallerSession, *, hang_up_leg: bool) -> None:
        """Give up the consultation: the consulted agent is freed, the caller goes back."""
        consult, s.consult = s.consult, None
        if consult is None:
            return
        now_mono = time.monotonic()
        if consult.answered:
            self.desk.call_ended(consult.agent_id, 0)
        else:
            self.desk.publish(list(self.acd.cancel(consult.acd_id, now_mono).offers))
        if hang_up_leg and consult.leg:
            await self.desk.release_leg(consult.leg)
        if s.phase is Phase.CONNECTED and s.bridge_id:
            await self._moh(s, on=False)
            await self.ari.add_to_bridge(s.bridge_id, s.channel_id)
            s.on_hold = False

    async def _agent_ends_call(self, s: CallerSession) -> None:
        """The agent's hang-up button: a caller who agreed to the survey goes to it."""
        if s.phase is Phase.CONNECTED and s.survey is not None and s.consult is None:
            await self.calllog.event(s.call_id, "agent_hung_up")
            await self._to_survey(s, s.survey, via="agreed")
        else:
            await self.ari.hangup(s.channel_id)

    # ---- the post-call survey -------------------------------------------------------------

    async def _to_survey(self, s: CallerSession, survey: str, *, via: str) -> None:
        """The caller leaves the agent for the post-call survey: the dialplan's
        SURVEY_CONTEXT runs it over FastAGI (agi/survey.py) on this very channel, so the
        answers land on this call's row. The agent is freed as after any transfer."""
        from_agent = s.agent_id
        if s.bridge_id and not s.on_hold:
            # The bridge may be gone with the agent; `continue` takes the caller out anyway.
            with contextlib.suppress(ARIError):
                await self.ari.remove_from_bridge(s.bridge_id, s.channel_id)
        await self._moh(s, on=False)
        await self._release_agent(s)
        s.phase, s.left_agent_at = Phase.SURVEY, now()
        for variable, value in ((SURVEY_VARIABLE, survey), (CALL_ID_VARIABLE, s.call_id)):
            await self.ari.set_variable(s.channel_id, variable, value)
        await self.ari.continue_in_dialplan(s.channel_id, SURVEY_CONTEXT, "s")
        await self.calllog.event(
            s.call_id, "sent_to_survey", survey=survey, via=via, from_agent=from_agent
        )
        log.info("sent_to_survey", survey=survey, via=via, from_agent=from_agent)

    # ---- the end --------------------------------------------------------------------------

    async def _caller_left(self, s: CallerSession, at: datetime) -> None:
        """The caller hung up (or was hung up): free whatever they held, once."""
        if s.closing:
            return
        s.closing = True
        previous = s.phase
        s.phase = Phase.ENDED
        s.timers.cancel_all()
        if previous is Phase.QUEUED:
            self._notify("missed", s, s.agent_id)
            cancelled = self.acd.cancel(s.channel_id, time.monotonic())
            await self.desk.release_leg(s.agent_leg)
            self.desk.publish(list(cancelled.offers))
            s.phase = Phase.QUEUED  # for the outcome: abandoned in the queue
        elif previous is Phase.CONNECTED:
            await self._consult_end(s, hang_up_leg=True)
            await self._release_agent(s)

    async def _close(self, s: CallerSession, at: datetime, cause: object, text: object) -> None:
        self.calls.pop(s.channel_id, None)
        self.by_call.pop(s.call_id, None)
        outcome = s.final_outcome()
        talk_end = s.left_agent_at or at  # the survey after the talk is no talk time
        talk = (talk_end - s.connected_at).total_seconds() if s.connected_at else None
        closed = await self.calllog.close(
            s.call_id,
            at=at,
            cause=int(cause) if isinstance(cause, int | str) and str(cause).isdigit() else None,
            cause_text=str(text) if text is not None else None,
            outcome=outcome,
            ivr_path=s.ivr.path,
            talk_seconds=talk,
        )
        if closed:
            log.info(
                "call_ended", outcome=outcome, cause=cause, agent_id=s.agent_id or s.last_agent_id
            )

    # ---- media and timers -----------------------------------------------------------------

    async def _moh(self, s: CallerSession, *, on: bool) -> None:
        if on == s.moh:
            return
        s.moh = on
        with contextlib.suppress(ARINotFound):
            if on:
                await self.ari.start_moh(s.channel_id)
            else:
                await self.ari.stop_moh(s.channel_id)

    # ---- restart survival: the live state, and adopting calls --------------------------

    def _save(self, s: CallerSession) -> None:
        """Keep where the caller is on their row (written behind), for a restarted process."""
        if s.phase is Phase.ENDED or self.calls.get(s.channel_id) is not s:
            return
        state = self._snapshot(s).to_json()
        if state != s.saved:
            s.saved = state
            self.calllog.set_state(s.call_id, state)

    @staticmethod
    def _snapshot(s: CallerSession) -> LiveCall:
        talking = s.phase is Phase.CONNECTED
        return LiveCall(
            phase=s.phase.value,  # type: ignore[arg-type]  # ENDED is never saved
            node=s.ivr.node,
            language=s.ivr.language,
            path=list(s.ivr.path),
            playing=s.ivr.playing,
            seq=s.ivr.seq,
            decision=encode_decision(s.decision),
            visited=list(s.visited),
            queued_at=LiveCall.time(s.queued_at),
            queue_entered_at=LiveCall.time(s.queue_entered_at),
            agent_id=s.agent_id if talking else None,
            agent_leg=s.agent_leg if talking else None,
            bridge_id=s.bridge_id if talking else None,
            own_bridge=s.own_bridge if talking else False,
            connected_at=LiveCall.time(s.connected_at),
            on_hold=s.on_hold if talking else False,
            survey=s.survey,
            outcome=s.outcome,
            hung_up_by_us=s.hung_up_by_us,
            last_agent_id=s.last_agent_id,
            left_agent_at=LiveCall.time(s.left_agent_at),
        )

    async def reconcile(self) -> None:
        """Asterisk sent nothing while we were away: close the records of calls that ended
        meanwhile, and adopt the callers still here that this process does not know (it was
        restarted): agents first, then the talking calls, the queue in its order, the IVR."""
        first = not self.ready
        try:
            if first:
                await self.desk.restore()
            to_adopt: list[tuple[LiveRow, LiveCall | None]] = []
            for row in await self.calllog.live_calls("ari"):
                structlog.contextvars.bind_contextvars(
                    call_id=row.call_id, channel_id=row.channel_id
                )
                try:
                    await self.ari.get_channel(row.channel_id)
                except ARINotFound:
                    await self._gone_while_away(row)
                    continue
                if row.channel_id not in self.calls:
                    to_adopt.append((row, LiveCall.from_json(row.state)))
            for row, state in sorted(to_adopt, key=_adoption_order):
                await self._adopt(row, state)
            if first:
                await self._clear_strays()
        except ARIError as exc:
            log.warning("reconcile_failed", error=str(exc))
        finally:
            structlog.contextvars.unbind_contextvars("call_id", "channel_id")
            self.ready = True

    async def _gone_while_away(self, row: LiveRow) -> None:
        s = self.calls.get(row.channel_id)
        if s is not None:
            await self._caller_left(s, now())
            await self._close(s, now(), None, "gone while disconnected")
        else:
            await self.calllog.close(
                row.call_id,
                at=now(),
                cause=None,
                cause_text="gone while disconnected",
                outcome="lost",
            )
        log.warning("call_closed_on_reconcile")

    async def _adopt(self, row: LiveRow, state: LiveCall | None) -> None:
        """Adopt one call on the caller's own ordered stream (so none of its events can
        overtake the adoption); returns once it is adopted."""
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.ari.dispatch(
            {
                "type": ADOPT,
                "application": self.name,
                "channel": {"id": row.channel_id},
                "row": row,
                "state": state,
                "done": done,
            }
        )
        with contextlib.suppress(Exception):  # logged where it happened
            await asyncio.wait_for(asyncio.shield(done), 15)

    async def _adopt_event(self, event: Event) -> None:
        row: LiveRow = event["row"]
        state: LiveCall | None = event["state"]
        done: asyncio.Future[None] = event["done"]
        structlog.contextvars.bind_contextvars(call_id=row.call_id, channel_id=row.channel_id)
        s: CallerSession | None = None
        try:
            if row.channel_id not in self.calls:
                s = await self._adopted_session(row)
                await self._resume_call(s, state)
                self.adopted += 1
                log.info("call_adopted", phase=state.phase if state else None)
                self._save(s)
        except ARINotFound:
            log.info("channel_gone", event_type=ADOPT)
        except Exception:
            log.exception("call_adoption_failed")
            # Never leave a caller in silence: hang up cleanly, the record closes.
            with contextlib.suppress(ARIError):
                await self.ari.hangup(row.channel_id)
        finally:
            if not done.done():
                done.set_result(None)

    async def _adopted_session(self, row: LiveRow) -> CallerSession:
        version, flow = await self._flow_of(row.flow_version)
        client = await self.calllog.client(row.client_id)
        profile = caller_of(client)
        s = CallerSession(
            channel_id=row.channel_id,
            call_id=row.call_id,
            caller=profile,
            caller_number=row.caller_number,
            caller_e164=normalise(row.caller_number, self.region),
            flow=flow,
            flow_version=version,
            ivr=IVR(flow, profile),
            timers=ChannelTimers(self.ari, self.name, row.channel_id),
        )
        self.calls[row.channel_id] = s
        self.by_call[row.call_id] = row.channel_id
        try:
            # Events of a caller who left Stasis (the survey) reach us through this.
            await self.ari.subscribe(self.name, f"channel:{row.channel_id}")
            s.subscribed = True
        except ARIError as exc:
            log.info("subscribe_failed", error=str(exc))
        return s

    async def _resume_call(self, s: CallerSession, state: LiveCall | None) -> None:
        if state is None:
            # Lost before its first state was written: from the top of the flow.
            await self._run(s, s.ivr.start())
            return
        # The old process's numbering goes on well past what it may have used unsaved.
        s.ivr.resume(state.language, state.path, state.seq + 1000)
        s.decision = decode_decision(state.decision)
        s.visited = list(state.visited)
        s.queued_at = parse_time(state.queued_at)
        s.queue_entered_at = parse_time(state.queue_entered_at)
        s.survey, s.outcome = state.survey, state.outcome
        s.hung_up_by_us, s.last_agent_id = state.hung_up_by_us, state.last_agent_id
        s.left_agent_at = parse_time(state.left_agent_at)
        s.connected_at = parse_time(state.connected_at)
        await self.calllog.event(s.call_id, "adopted", phase=state.phase, node=state.node)
        if state.phase == "survey":
            s.phase = Phase.SURVEY  # in the dialplan's survey: only the hang-up is to come
        elif state.phase == "connected" and await self._resume_talk(s, state):
            return
        elif state.phase == "queued" and s.decision is not None:
            await self._resume_queue(s)
        elif state.phase in ("ivr", "connected", "queued"):
            if state.playing:
                # Its end would reach nobody: the node starts again instead.
                with contextlib.suppress(ARINotFound):
                    await self.ari.stop_playback(f"{s.channel_id}-{state.playing}")
            s.phase = Phase.IVR
            node = state.node if state.node in s.flow.nodes else s.flow.start
            await self._run(s, s.ivr.goto(node))

    async def _resume_queue(self, s: CallerSession) -> None:
        """Back in the queue in the place the caller had: the ACD orders by arrival."""
        assert s.decision is not None
        queues = await self.crm.queues()
        s.queue_def = queues.get(s.decision.queue)
        at = now()
        s.queued_at = s.queued_at or at
        entered = s.queue_entered_at or s.queued_at
        s.arrived_mono = time.monotonic() - (at - s.queued_at).total_seconds()
        s.phase = Phase.QUEUED
        await self._moh(s, on=True)  # again: an announcement may have been playing
        if s.queue_def is not None:
            waited = (at - entered).total_seconds()
            s.timers.start("max_wait", max(0.5, s.queue_def.max_wait_seconds - waited))
            if s.queue_def.announce_every_seconds:
                s.timers.start("announce", s.queue_def.announce_every_seconds)
        offer = self.acd.request(s.decision.request(s.channel_id, s.arrived_mono), time.monotonic())
        if offer is not None:
            await self._offer(s, offer)
        self.desk.publish([])

    async def _resume_talk(self, s: CallerSession, state: LiveCall) -> bool:
        """The caller stays bridged with their agent. False: there is no agent to go back to
        (the caller is then taken back into the flow)."""
        agent_id, bridge_id = state.agent_id, state.bridge_id
        if agent_id is None or bridge_id is None:
            return False
        try:
            bridge = await self.ari.get_bridge(bridge_id)
        except ARINotFound:
            bridge = None
        members = set((bridge or {}).get("channels", []))
        if state.own_bridge:
            agent_here = state.agent_leg is not None and state.agent_leg in members
        else:
            agent_here = self.desk.nailed_bridge(agent_id) == bridge_id
        mono = time.monotonic()
        try:
            self.acd.agent(agent_id)
        except ACDError:
            found = await self.crm.agent(agent_id)
            if found is None or not found[1]:
                return False
            # Their session was not kept: logged in again so the call is theirs to end.
            self.publish_login(found[0], str(found[1]), mono)
        self.acd.adopt_call(s.channel_id, agent_id, mono)
        s.phase = Phase.CONNECTED
        s.agent_id, s.bridge_id, s.own_bridge = agent_id, bridge_id, state.own_bridge
        s.on_hold = s.moh = state.on_hold
        if state.own_bridge and state.agent_leg:
            s.agent_leg = state.agent_leg
            if agent_here:
                self.desk.adopt_leg(state.agent_leg, agent_id, s.channel_id)
        if s.connected_at is None:
            s.connected_at = now()
        if not agent_here:
            # The agent hung up while we were away: what their hang-up would have done.
            await self.calllog.event(s.call_id, "agent_hung_up")
            if s.survey is not None:
                await self._to_survey(s, s.survey, via="agreed")
            else:
                await self.ari.hangup(s.channel_id)
        return True

    def publish_login(self, profile: AgentProfile, endpoint: str, mono: float) -> None:
        self.desk.publish(self.acd.login(profile, endpoint, AgentMode.PER_CALL, mono))

    async def _clear_strays(self) -> None:
        """Agents' legs and bridges nobody holds any more (a previous process made them)."""
        held_bridges = {s.bridge_id for s in self.calls.values() if s.bridge_id}
        held_bridges |= {leg.bridge_id for leg in self.desk.nailed.values() if leg.bridge_id}
        for channel in await self.ari.channels():
            channel_id = str(channel.get("id", ""))
            # A Local channel's other half is "<id>;2": it goes with its first half.
            leg_id = channel_id.split(";")[0]
            if leg_id.startswith(("agent-", "nailed-")) and not self.desk.owns(leg_id):
                log.info("stray_agent_leg_hung_up", channel_id=leg_id)
                with contextlib.suppress(ARIError):
                    await self.ari.hangup(leg_id)
        for bridge in await self.ari.bridges():
            bridge_id = str(bridge.get("id", ""))
            if bridge_id.startswith(("call-", "agent-")) and bridge_id not in held_bridges:
                log.info("stray_bridge_destroyed", bridge_id=bridge_id)
                with contextlib.suppress(ARIError):
                    await self.ari.destroy_bridge(bridge_id)

    async def _flow_of(self, version: int | None) -> tuple[int, Flow]:
        if version is not None and version not in self._flows:
            flow = await flow_version(self.crm.sessions, self.flow_name, version)
            if flow is not None:
                self._flows[version] = flow
        if version is not None and version in self._flows:
            return version, self._flows[version]
        return await self._active_flow()


def _adoption_order(item: tuple[LiveRow, LiveCall | None]) -> tuple[int, str]:
    """Talking calls first (their agents are busy before anyone is offered a call), then the
    queue by arrival, then the rest."""
    _, state = item
    phase = state.phase if state else "ivr"
    rank = {"connected": 0, "queued": 1, "survey": 2}.get(phase, 3)
    return rank, (state.queued_at or "") if state else ""
