"""Routing and the queue: from the IVR's route to an agent talking to the caller."""

from __future__ import annotations

import contextlib
import time
from datetime import datetime

import structlog

from ari_app.ari import ARINotFound, Event
from ari_app.infoline.session import (
    HOLD_PROMPT,
    CallerSession,
)
from ari_app.infoline.transfers import Transfers
from core.acd import ACDError, AgentStatus, Offer
from core.callphase import Phase
from core.infoline import CallbackOffer, after_hours_offer, callback_offer, callback_task
from core.ivr import RequestCallback
from core.media import prompt_media
from core.routing import (
    NoRoute,
    RouteDecision,
    decide,
    on_max_wait,
    overflow_decision,
    queue_is_open,
)
from dialplan.model import QueueDef
from models.calllog import now

log = structlog.get_logger(__name__)


class Queueing(Transfers):
    """Routing, the queue (music, announcements, max wait, overflow, callbacks), offers
    to agents, connecting the agent, and the caller leaving."""

    async def _route(self, s: CallerSession, intent: str) -> None:
        queues = await self.crm.queues()
        try:
            decision = decide(s.flow, queues, s.caller, intent)
        except NoRoute:
            log.error("no_route", intent=intent)
            await self.ari.hangup(s.channel_id)
            return
        s.intent = intent
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
        await self.calllog.update(
            s.call_id,
            queue=decision.queue,
            ivr_path=s.ivr.path,
            **({"queued_at": s.queued_at} if first_time else {}),
        )
        if not is_open:
            s.outcome = "after_hours"
            await self.calllog.event(s.call_id, "after_hours", queue=decision.queue)
            await self._to_callback(s, after_hours_offer(s.flow))
            return
        s.state.move(Phase.QUEUED)
        assert s.arrived_mono is not None
        await self._record_in_queue(s, s.queue_def)
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
        s.state.move(Phase.IVR)

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
        await self._to_callback(s, callback_offer(s.flow))

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

    async def _to_callback(self, s: CallerSession, offer: CallbackOffer) -> None:
        if offer.node is None:
            await self.ari.hangup(s.channel_id)
            return
        s.state.move(Phase.IVR)
        await self._run(s, s.ivr.goto(offer.node, preamble=list(offer.preamble)))

    async def _callback(self, s: CallerSession, request: RequestCallback) -> None:
        task = callback_task(
            request,
            flow=s.flow,
            queues=await self.crm.queues(),
            caller=s.caller,
            caller_e164=s.caller_e164,
            caller_number=s.caller_number,
            region=self.region,
            outcome=s.outcome,
            at=now(),
        )
        if s.outcome is None:
            s.outcome = "callback_requested"
        await self.calllog.callback(
            call_id=s.call_id,
            client_id=s.caller.client_id,
            number=task.number,
            reason=task.reason,
            queue=task.queue,
            assigned_agent_id=task.assigned_agent_id,
            due_at=task.due_at,
        )
        log.info("callback_requested", number=task.number, due_at=task.due_at.isoformat())

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
        s.state.move(Phase.CONNECTED)
        s.on_hold = False
        s.bridge_id, s.own_bridge = bridge_id, own
        s.connected_at = now()
        self._notify("connected", s, agent_id)
        self._queue_left(s, answered=True)
        waited = (s.connected_at - s.queued_at).total_seconds() if s.queued_at else 0.0
        await self.calllog.update(
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

    def _answered_by(self, s: CallerSession, agent_id: str) -> bool:
        try:
            agent = self.acd.agent(agent_id)
        except ACDError:
            return False
        return agent.current_call == s.channel_id and agent.status is AgentStatus.ON_CALL

    async def _caller_left(self, s: CallerSession, at: datetime) -> None:
        """The caller hung up (or was hung up): free whatever they held, once."""
        if s.closing:
            return
        s.closing = True
        previous = s.phase
        s.state.move(Phase.ENDED)
        s.timers.cancel_all()
        if previous is Phase.QUEUED:
            self._notify("missed", s, s.agent_id)
            self._queue_left(s, answered=False)
            cancelled = self.acd.cancel(s.channel_id, time.monotonic())
            await self.desk.release_leg(s.agent_leg)
            self.desk.publish(list(cancelled.offers))
            if s.agent_id is not None and self._answered_by(s, s.agent_id):
                # The agent answered but the caller was gone before the bridge: their call
                # ends here, or they would stay on it for good.
                self.desk.call_ended(s.agent_id, 0)
        elif previous is Phase.CONNECTED:
            await self._consult_end(s, hang_up_leg=True)
            await self._release_agent(s)
