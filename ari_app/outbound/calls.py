"""One manual call: two legs (the agent's phone, the client through the trunk) that one lock
keeps in step, a bridge once both are up, and one call row (direction outbound, the agent,
the client found by the number, talk time, outcome) closed when either leg ends."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import structlog

from ari_app.agents import AgentDesk
from ari_app.ari import ARIClient, ARIConflict, ARIError, ARINotFound, Event
from ari_app.dispatch import event_channel, run_call_step
from ari_app.trunks import TrunkGate
from core.acd import ACD, ACDError, AgentStatus
from core.outbound import (
    REFUSAL_CAUSE,
    Origin,
    OutboundRefused,
    agent_of_channel,
    check_call,
    leg_ids,
    outcome,
    parse_leg,
    presented_number,
)
from dialplan.model import Calendar
from models.calllog import CallLog, now
from models.crm import CRM
from models.outbound import OutboundStore
from models.tables import Direction

log = structlog.get_logger(__name__)

HANDLER = "outbound"
# ARI's hang-up reasons for the Q.850 causes a client's line gives.
_HANGUP_REASON = {17: "busy", 18: "no_answer", 19: "no_answer", 1: "unallocated", 21: "rejected"}
AGENT_RING_SECONDS = 30
CLIENT_RING_SECONDS = 45


@dataclass
class ManualCall:
    key: str
    call_id: str  # the row
    agent_id: str
    number: str
    presented: str
    queue: str | None
    origin: Origin
    agent_channel: str
    client_channel: str
    callback_id: int | None = None
    agent_up: bool = False
    client_dialled: bool = False
    bridge_id: str | None = None
    connected_at: datetime | None = None
    dial_status: str | None = None
    closed: bool = False
    in_acd: bool = False
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


class OutboundCalls:
    def __init__(
        self,
        ari: ARIClient,
        calllog: CallLog,
        crm: CRM,
        store: OutboundStore,
        acd: ACD,
        desk: AgentDesk,
        gate: TrunkGate,
        *,
        app: str,
        dial: str,
        trunk: str | None,
        default_caller_id: str,
        queue_caller_ids: dict[str, str],
        region: str,
        window: Calendar | None,
        max_wait: float,
    ) -> None:
        self.ari, self.calllog, self.crm, self.store = ari, calllog, crm, store
        self.acd, self.desk, self.gate = acd, desk, gate
        self.app, self.dial, self.trunk = app, dial, trunk
        self.default_caller_id = default_caller_id
        self.queue_caller_ids = queue_caller_ids
        self.region, self.window, self.max_wait = region, window, max_wait
        self.calls: dict[str, ManualCall] = {}  # by key
        self.by_channel: dict[str, str] = {}  # either leg's channel id -> key
        # Another node this instance owns with its own (CENTRALA_SITE): the calls its agents'
        # phones place there; None: this instance's own node.
        self.node: str | None = None

    # ---- placing ----------------------------------------------------------------------------

    def _status(self, agent_id: str) -> AgentStatus | None:
        try:
            return self.acd.agent(agent_id).status
        except ACDError:
            return None

    async def _prepare(
        self,
        agent_id: str,
        raw_number: str,
        *,
        origin: Origin,
        queue: str | None,
        agent_channel: str | None,
    ) -> ManualCall:
        """Decide (raises ``OutboundRefused``) and open the row; the call is then ours."""
        found = await self.crm.agent(agent_id)
        if found is None:
            raise OutboundRefused("not_logged_in", f"no active agent {agent_id!r}")
        profile, _endpoint = found
        if origin == "desk":
            self.gate.check(self.trunk, self.max_wait)
        permit = check_call(
            raw_number,
            region=self.region,
            agent_status=self._status(agent_id),
            origin=origin,
            do_not_call=await self.store.do_not_call(),
            window=self.window,
            now=now(),
        )
        presented, queue = presented_number(
            queue=queue,
            agent_queues=sorted(profile.queues, key=lambda q: (profile.queues[q], q)),
            queue_numbers=self.queue_caller_ids,
            default=self.default_caller_id,
        )
        key = uuid.uuid4().hex
        agent_leg, client_leg = leg_ids(key)
        call = ManualCall(
            key,
            "",
            agent_id,
            permit.number,
            presented,
            queue,
            origin,
            agent_channel or agent_leg,
            client_leg,
        )
        if self._status(agent_id) not in (None, AgentStatus.LOGGED_OUT):
            try:  # busy for the ACD: no info-line caller is offered to them meanwhile
                self.acd.adopt_call(key, agent_id, time.monotonic())
                call.in_acd = True
            except ACDError as exc:
                raise OutboundRefused("agent_busy", str(exc)) from exc
        try:
            opened = await self.calllog.open_call(
                channel_id=call.agent_channel,
                linkedid=None,
                direction=Direction.OUTBOUND,
                handler=HANDLER,
                caller_number=presented,
                caller_name=None,
                called_number=permit.number,
                started_at=now(),
                client_id=await self.store.client_of(permit.number),
                node=self.node,
            )
            call.call_id = opened.id
            await self.calllog.update(opened.id, agent_id=agent_id, queue=queue)
            await self.calllog.event(opened.id, "dialling", origin=origin, presented=presented)
        except BaseException:
            self._release_agent(call)
            raise
        self.calls[key] = call
        self.by_channel[call.agent_channel] = key
        self.by_channel[call.client_channel] = key
        self._save(call)
        structlog.contextvars.bind_contextvars(call_id=call.call_id)
        log.info("manual_call", origin=origin, agent_id=agent_id, number=permit.number)
        return call

    async def refused_row(
        self,
        agent_id: str | None,
        raw_number: str,
        origin: Origin,
        refusal: OutboundRefused,
        channel_id: str,
    ) -> str:
        """A refused call is logged too: its row says who tried what, and why not."""
        at = now()
        opened = await self.calllog.open_call(
            channel_id=channel_id,
            linkedid=None,
            direction=Direction.OUTBOUND,
            handler=HANDLER,
            caller_number=None,
            caller_name=None,
            called_number=raw_number[:64],
            started_at=at,
            node=self.node,
        )
        await self.calllog.update(opened.id, agent_id=agent_id)
        await self.calllog.event(
            opened.id, "refused", origin=origin, reason=refusal.reason, message=str(refusal)
        )
        await self.calllog.close(opened.id, at=at, cause=None, cause_text=None, outcome="refused")
        log.warning(
            "manual_call_refused", agent_id=agent_id, reason=refusal.reason, call_id=opened.id
        )
        return opened.id

    async def call_from_desk(
        self,
        agent_id: str,
        *,
        number: str | None = None,
        client_id: int | None = None,
        callback_id: int | None = None,
        queue: str | None = None,
    ) -> ManualCall:
        """Ring the agent's phone; once they answer, the client is dialled and bridged."""
        if callback_id is not None:
            task = await self.store.callback(callback_id)
            if task is None:
                raise OutboundRefused("bad_number", f"no callback task {callback_id}")
            number, client_id, queue = task.number, task.client_id, queue or task.queue
        elif number is None and client_id is not None:
            number = await self.store.client_number(client_id)
            if number is None:
                raise OutboundRefused("bad_number", f"client {client_id} has no phone on record")
        if number is None:
            raise OutboundRefused("bad_number", "give a number, a client_id or a callback_id")
        try:
            call = await self._prepare(
                agent_id, number, origin="desk", queue=queue, agent_channel=None
            )
        except OutboundRefused as refusal:
            await self.refused_row(
                agent_id, number, "desk", refusal, f"outbound-refused-{uuid.uuid4().hex}"
            )
            raise
        call.callback_id = callback_id
        endpoint = self.acd.agent(agent_id).endpoint
        try:
            await self.ari.originate(
                self.desk.dial_string(endpoint),
                channel_id=call.agent_channel,
                app=self.app,
                app_args=f"agent,{call.key}",
                caller_id=f'"Call {call.number}" <{call.number}>',
                dial_timeout=AGENT_RING_SECONDS,
            )
        except ARIError as exc:
            await self._close(call, cause=None, text=f"originate failed: {exc}", result="failed")
            raise
        return call

    async def _dial_client(self, call: ManualCall) -> None:
        try:
            waited = await self.gate.admit(self.trunk, self.max_wait)
        except OutboundRefused as refusal:
            await self.calllog.event(
                call.call_id, "refused", reason=refusal.reason, message=str(refusal)
            )
            await self._close(call, cause=None, text=str(refusal), result="refused")
            await self._hangup(call.agent_channel, REFUSAL_CAUSE.get(refusal.reason, "rejected"))
            return
        if waited:
            await self.calllog.event(call.call_id, "trunk_rate_wait", seconds=round(waited, 3))
        call.client_dialled = True
        self._save(call)
        try:
            await self.ari.originate(
                self.dial.format(number=call.number),
                channel_id=call.client_channel,
                app=self.app,
                app_args=f"client,{call.key}",
                caller_id=call.presented,
                dial_timeout=CLIENT_RING_SECONDS,
            )
        except ARIConflict:
            log.warning("originate_duplicate")
        except ARIError as exc:
            log.warning("client_originate_failed", error=str(exc))
            await self._close(call, cause=None, text=f"originate failed: {exc}", result="failed")
            await self._hangup(call.agent_channel, "congestion")

    # ---- events -------------------------------------------------------------------------------

    async def on_event(self, event: Event) -> None:
        if event.get("application") != self.app:
            return
        kind = str(event.get("type"))
        channel_id = event_channel(event)
        key = self.by_channel.get(channel_id)
        if key is None:
            if kind == "StasisStart":
                args = [str(a) for a in event.get("args") or []]
                if args[:1] == ["phone"]:
                    await run_call_step(
                        self.ari,
                        self._from_phone(event, args[1] if len(args) > 1 else ""),
                        call_id="",
                        channel_id=channel_id,
                        event_type=kind,
                        failure="manual_call_failed",
                    )
                elif parse_leg(channel_id) is not None:
                    # A leg of a call this process does not know (a restart): not adopted.
                    with contextlib.suppress(ARIError):
                        await self.ari.hangup(channel_id)
            return
        call = self.calls.get(key)
        if call is None:
            return
        await run_call_step(
            self.ari,
            self._handle(call, channel_id, kind, event),
            call_id=call.call_id,
            channel_id=channel_id,
            event_type=kind,
            failure="manual_call_failed",
        )

    async def _from_phone(self, event: Event, dialled: str) -> None:
        channel = event.get("channel") or {}
        channel_id = str(channel.get("id", ""))
        agent_id = agent_of_channel(str(channel.get("name", "")))
        try:
            if agent_id is None:
                raise OutboundRefused("not_logged_in", "not an agent's phone")
            call = await self._prepare(
                agent_id, dialled, origin="phone", queue=None, agent_channel=channel_id
            )
        except OutboundRefused as refusal:
            await self.refused_row(agent_id, dialled, "phone", refusal, channel_id)
            await self._hangup(channel_id, REFUSAL_CAUSE.get(refusal.reason, "rejected"))
            return
        # After StasisEnd (a bridge's hang-up ends it) Asterisk sends a channel's events only
        # to an app subscribed to it: its ChannelDestroyed closes the call.
        await self.ari.subscribe(self.app, f"channel:{channel_id}")
        async with call.lock:
            call.agent_up = True
            with contextlib.suppress(ARIError):
                await self.ari.request("POST", f"/channels/{channel_id}/ring")
            await self._dial_client(call)

    async def _handle(self, call: ManualCall, channel_id: str, kind: str, event: Event) -> None:
        async with call.lock:
            if call.closed and kind != "ChannelDestroyed":
                return
            side = "agent" if channel_id == call.agent_channel else "client"
            if kind == "StasisStart" and side == "agent" and not call.agent_up:
                call.agent_up = True  # the agent answered their phone
                self._save(call)
                await self.calllog.event(call.call_id, "agent_answered")
                await self._dial_client(call)
            elif kind == "StasisStart" and side == "client":
                await self._connect(call)
            elif kind == "Dial" and side == "client":
                status = str(event.get("dialstatus") or "")
                if status:
                    call.dial_status = status
            elif kind == "ChannelDestroyed":
                cause = event.get("cause")
                await self._leg_gone(
                    call,
                    side,
                    cause if isinstance(cause, int) else None,
                    str(event.get("cause_txt") or ""),
                )

    async def _connect(self, call: ManualCall) -> None:
        at = now()
        if call.origin == "phone":
            await self.ari.answer(call.agent_channel)
        bridge = f"outbound-{call.key}"
        await self.ari.create_bridge(bridge)
        call.bridge_id = bridge
        await self.ari.add_to_bridge(bridge, call.agent_channel)
        await self.ari.add_to_bridge(bridge, call.client_channel)
        call.connected_at = at
        self._save(call)
        await self.calllog.answered(call.call_id, at)
        await self.calllog.update(call.call_id, connected_at=at)
        log.info("manual_call_connected")

    async def _leg_gone(self, call: ManualCall, side: str, cause: int | None, text: str) -> None:
        other = call.client_channel if side == "agent" else call.agent_channel
        if not call.closed:
            if call.connected_at is not None:
                result = "answered"
            elif side == "agent" and not call.agent_up:
                result = "agent_no_answer"
            elif side == "agent":
                result = "abandoned"  # the agent hung up before the client answered
            else:
                result = outcome(connected=False, cause=cause, dial_status=call.dial_status)
            await self._close(call, cause=cause, text=text, result=result)
        if side == "client" or call.client_dialled:
            # An unanswered client's reason reaches the agent's phone (busy, no answer).
            reason = "normal" if call.connected_at else _HANGUP_REASON.get(cause or 0, "normal")
            await self._hangup(other, reason if side == "client" else "normal")
        self.by_channel.pop(call.agent_channel if side == "agent" else call.client_channel, None)
        if call.agent_channel not in self.by_channel and call.client_channel not in self.by_channel:
            self.calls.pop(call.key, None)
        elif not call.client_dialled and side == "agent":
            self.by_channel.pop(call.client_channel, None)
            self.calls.pop(call.key, None)

    async def _close(
        self,
        call: ManualCall,
        *,
        cause: int | None,
        text: str | None,
        result: str,
        at: datetime | None = None,
    ) -> None:
        if call.closed:
            return
        call.closed = True
        at = at or now()
        talk = (at - call.connected_at).total_seconds() if call.connected_at else None
        if call.bridge_id is not None:
            with contextlib.suppress(ARIError):
                await self.ari.destroy_bridge(call.bridge_id)
        await self.calllog.close(
            call.call_id,
            at=at,
            cause=cause,
            cause_text=text or None,
            outcome=result,
            talk_seconds=talk,
        )
        if call.callback_id is not None:
            await self.store.callback_dialled(
                call.callback_id, call.call_id, reached=result == "answered", at=at
            )
        self._release_agent(call)
        log.info("manual_call_ended", outcome=result, talk_seconds=talk)

    def _release_agent(self, call: ManualCall) -> None:
        if call.in_acd:
            call.in_acd = False
            self.desk.call_ended(call.agent_id, 0)

    async def _hangup(self, channel_id: str, reason: str) -> None:
        with contextlib.suppress(ARINotFound):
            await self.ari.hangup(channel_id, reason=reason)

    # ---- surviving a restart ------------------------------------------------------------------

    def _save(self, call: ManualCall) -> None:
        """Where the call is, on its row (``calls.live_state``): what a restarted ``serve``
        adopts it from."""
        self.calllog.set_state(
            call.call_id,
            {
                "manual": {
                    "key": call.key,
                    "agent_id": call.agent_id,
                    "number": call.number,
                    "presented": call.presented,
                    "queue": call.queue,
                    "origin": call.origin,
                    "agent_channel": call.agent_channel,
                    "client_channel": call.client_channel,
                    "callback_id": call.callback_id,
                    "agent_up": call.agent_up,
                    "client_dialled": call.client_dialled,
                    "bridge_id": call.bridge_id,
                    "connected_at": call.connected_at.isoformat() if call.connected_at else None,
                }
            },
        )

    def live(self) -> list[dict[str, Any]]:
        return [
            {
                "call_id": c.call_id,
                "agent_id": c.agent_id,
                "number": c.number,
                "connected": c.connected_at is not None,
            }
            for c in self.calls.values()
        ]
