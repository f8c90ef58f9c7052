"""One agent-campaign call: the client's leg from the originate to the hang-up, its answer put
through to an agent within the 2 seconds or given the identification message, the call's row
(direction outbound, the campaign, the client, the agent) and the attempt's outcome on the
contact. Each call's events arrive one at a time on its own ordered stream (the ARI client's),
so a call's steps never race each other."""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from typing import Any

import structlog

from ari_app.agents import OFFER, AgentDesk
from ari_app.ari import TIMER, ARIClient, ARIError, ARINotFound, ChannelTimers, Event
from core.acd import ACD, ACDError, AgentStatus, AgentTarget, CallRequest, Offer
from core.dialler import connect_deadline, identification_prompt
from core.pacing import (
    Abandoned,
    Answered,
    Connected,
    Ended,
    NoAnswer,
    Pacer,
    Unanswered,
)
from core.surveys.campaign import Outcome, is_machine, unanswered_outcome
from models.calllog import CallLog, now
from models.dialler import Claimed, DiallerStore, RunningAgentCampaign

log = structlog.get_logger(__name__)

HANDLER = "dialler"
AMD_CONTEXT = "centrala-amd-fast"  # extensions.conf: a verdict within the 2 seconds
CONNECT_TIMER = "connect"
IDENTIFICATION_PLAYBACK = "identification"
# Outbound calls wait behind inbound callers of equal standing: inbound comes first.
OUTBOUND_PRIORITY = -1
_CHANNEL = re.compile(r"^dialler-(\d+)-(\d+)-(\d+)$")
_NO_ANSWER = {
    Outcome.BUSY: NoAnswer.BUSY,
    Outcome.NO_ANSWER: NoAnswer.NO_ANSWER,
}


def channel_id_for(c: Claimed) -> str:
    return f"dialler-{c.campaign_id}-{c.contact_id}-{c.attempt}"


def parse_channel_id(channel_id: str) -> tuple[int, int, int] | None:
    m = _CHANNEL.match(channel_id)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


class Phase(StrEnum):
    RINGING = "ringing"
    DETECTING = "detecting"  # answered; AMD listens
    WAITING = "waiting"  # a person answered; an agent has until the deadline
    CONNECTED = "connected"
    MESSAGE = "message"  # abandoned: the identification message, then the hang-up
    ENDED = "ended"


@dataclass
class DialledCall:
    channel_id: str
    call_id: str  # the row
    campaign: RunningAgentCampaign
    claimed: Claimed
    timers: ChannelTimers
    reserved: str | None = None  # the agent held for it while it rings (progressive)
    phase: Phase = Phase.RINGING
    placed_at: float = field(default_factory=time.monotonic)
    answered_at: float | None = None  # monotonic: the 2 seconds run from here
    agent_id: str | None = None
    connected_at: datetime | None = None
    dial_status: str | None = None
    outcome: Outcome | None = None  # the attempt's, once applied

    @property
    def queue(self) -> str:
        return self.campaign.settings.queue


class DiallerCalls:
    def __init__(
        self,
        ari: ARIClient,
        calllog: CallLog,
        store: DiallerStore,
        acd: ACD,
        desk: AgentDesk,
        *,
        app: str,
    ) -> None:
        self.ari, self.calllog, self.store = ari, calllog, store
        self.acd, self.desk, self.app = acd, desk, app
        self.calls: dict[str, DialledCall] = {}  # by the client leg's channel id
        self.pacers: dict[int, Pacer] = {}
        self.identification: dict[str, str] = {}  # language ("" default) -> media
        # The desk's news (the info line's notifier, shared: one desk per agent).
        self.notify: Callable[..., None] = lambda *args, **kwargs: None

    def _pacer(self, campaign_id: int) -> Pacer | None:
        return self.pacers.get(campaign_id)

    def _observe(self, d: DialledCall, obs: Any) -> None:
        pacer = self._pacer(d.campaign.id)
        if pacer is not None:
            pacer.observe(obs)

    # ---- events -------------------------------------------------------------------------------

    async def handle(self, d: DialledCall, kind: str, event: Event) -> None:
        if kind == "StasisStart":
            args = [str(a) for a in event.get("args") or []]
            if args[:1] == ["amd"]:
                await self._amd_verdict(d, args[1] if len(args) > 1 else "", args[2:])
            else:
                await self._answered(d)
        elif kind == OFFER:
            await self._offered(d, event["offer"])
        elif kind == TIMER and event.get("timer") == CONNECT_TIMER:
            if d.phase is Phase.WAITING:
                await self._abandon(d)
        elif kind in ("PlaybackFinished", "PlaybackFailed"):
            local = str(event.get("playback", {}).get("id", "")).removeprefix(f"{d.channel_id}-")
            if d.phase is Phase.MESSAGE and local == IDENTIFICATION_PLAYBACK:
                await self._hangup(d.channel_id)
        elif kind == "Dial" and d.phase is Phase.RINGING:
            status = str(event.get("dialstatus") or "")
            if status:
                d.dial_status = status
        elif kind == "ChannelDestroyed":
            cause = event.get("cause")
            await self._destroyed(
                d, cause if isinstance(cause, int) else None, str(event.get("cause_txt") or "")
            )

    async def _answered(self, d: DialledCall) -> None:
        if d.phase is not Phase.RINGING:
            return
        d.answered_at = time.monotonic()
        await self.calllog.answered(d.call_id, now())
        if d.campaign.settings.amd:
            # The 2 seconds run from the answer: the verdict's time is part of them (checked
            # when it comes back; meanwhile the call is in the dialplan, out of our hands).
            d.phase = Phase.DETECTING
            await self.ari.continue_in_dialplan(d.channel_id, AMD_CONTEXT, "s", 1)
            return
        await self._live(d)

    async def _amd_verdict(self, d: DialledCall, status: str, cause: list[str]) -> None:
        if d.phase is not Phase.DETECTING:
            return
        await self.calllog.event(d.call_id, "amd", status=status, cause=",".join(cause))
        if is_machine(status):
            d.timers.cancel(CONNECT_TIMER)
            d.phase = Phase.ENDED
            self._observe(d, Answered(time.monotonic(), d.channel_id, live=False))
            await self._finish(d, Outcome.MACHINE)
            self._release_reserved(d)
            await self._hangup(d.channel_id)
            return
        await self._live(d)

    async def _live(self, d: DialledCall) -> None:
        """A person answered: to the reserved agent, else to the first free agent the ACD
        gives within the 2 seconds."""
        assert d.answered_at is not None
        at = time.monotonic()
        self._observe(d, Answered(at, d.channel_id, live=True))
        await self.calllog.event(d.call_id, "live_answer")
        d.phase = Phase.WAITING
        self._save(d)
        if at >= connect_deadline(d.answered_at, d.campaign.settings):
            await self._abandon(d)  # AMD took the 2 seconds: never put through late
            return
        if d.reserved is not None:
            agent_id, d.reserved = d.reserved, None
            bridge = self.desk.nailed_bridge(agent_id)
            if bridge is not None:
                await self._connect(d, agent_id, bridge)
                return
            self._free_agent(agent_id)  # their phone is gone: try the others
        targets = tuple(
            AgentTarget(a.id)
            for a in self.acd.agents()
            if d.queue in a.profile.queues and self.desk.nailed_bridge(a.id) is not None
        )
        if not targets:
            await self._abandon(d)
            return
        request = CallRequest(
            d.channel_id,
            d.queue,
            arrived_at=at,
            targets=targets,
            priority=OUTBOUND_PRIORITY,
        )
        remaining = connect_deadline(d.answered_at, d.campaign.settings) - time.monotonic()
        d.timers.start(CONNECT_TIMER, max(0.0, remaining))
        try:
            offer = self.acd.request(request, at)
        except ACDError as exc:
            log.warning("dialler_request_refused", error=str(exc))
            await self._abandon(d)
            return
        self.desk.publish([])  # the ACD's timers may have moved
        if offer is not None:
            await self._offered(d, offer)

    async def _offered(self, d: DialledCall, offer: Offer) -> None:
        if d.phase is not Phase.WAITING:
            self.desk.publish(
                self.acd.declined(
                    offer.call_id, offer.agent_id, time.monotonic(), pause_agent=False
                )
            )
            return
        bridge = self.desk.nailed_bridge(offer.agent_id)
        if bridge is None:
            self.desk.publish(self.acd.declined(offer.call_id, offer.agent_id, time.monotonic()))
            return
        self.acd.answered(d.channel_id, offer.agent_id, time.monotonic())
        await self._connect(d, offer.agent_id, bridge)

    async def _connect(self, d: DialledCall, agent_id: str, bridge: str) -> None:
        d.timers.cancel(CONNECT_TIMER)
        await self.ari.add_to_bridge(bridge, d.channel_id)
        d.phase = Phase.CONNECTED
        d.agent_id = agent_id
        d.connected_at = now()
        at = time.monotonic()
        waited = at - (d.answered_at or at)
        self._observe(d, Connected(at, d.channel_id, agent_id))
        await self.calllog.update(
            d.call_id, agent_id=agent_id, connected_at=d.connected_at, wait_seconds=waited
        )
        await self.calllog.event(
            d.call_id, "agent_connected", agent_id=agent_id, waited=round(waited, 3)
        )
        await self._finish(d, Outcome.CONNECTED)
        self._save(d)
        self.notify("connected", d.call_id, agent_id, self._facts(d))
        log.info("dialler_connected", agent_id=agent_id, waited=round(waited, 3))

    def _facts(self, d: DialledCall) -> dict[str, Any]:
        """What the agent's screen-pop shows of the campaign, before any of it is written."""
        s = d.campaign.settings
        return {
            "queue": s.queue,
            "campaign": {
                "name": d.campaign.name,
                "kind": d.campaign.kind.value,
                "mode": s.mode.value,
                "purpose": d.claimed.purpose,
                "script": d.claimed.script,
            },
        }

    async def _abandon(self, d: DialledCall) -> None:
        """No agent within the 2 seconds: who called and the free number, then the hang-up;
        the attempt is abandoned (callback task, 72 hours on the do-not-call list)."""
        if d.phase not in (Phase.WAITING, Phase.DETECTING):
            return
        d.timers.cancel(CONNECT_TIMER)
        with contextlib.suppress(ACDError):
            self.desk.publish(list(self.acd.cancel(d.channel_id, time.monotonic()).offers))
        self._release_reserved(d)
        d.phase = Phase.MESSAGE
        self._observe(d, Abandoned(time.monotonic(), d.channel_id))
        media = identification_prompt(d.campaign.settings, d.claimed.language, self.identification)
        waited = time.monotonic() - (d.answered_at or time.monotonic())
        await self.calllog.event(d.call_id, "abandoned", waited=round(waited, 3), message=media)
        await self._finish(d, Outcome.ABANDONED)
        log.warning("dialler_abandoned", waited=round(waited, 3))
        if media is None:
            await self._hangup(d.channel_id)
            return
        try:
            await self.ari.play(d.channel_id, media, f"{d.channel_id}-{IDENTIFICATION_PLAYBACK}")
        except ARINotFound:
            return
        except ARIError:
            await self._hangup(d.channel_id)

    async def _destroyed(
        self, d: DialledCall, cause: int | None, text: str, *, ended_at: datetime | None = None
    ) -> None:
        """The call is over (``ended_at``: when, if not now)."""
        if d.phase is Phase.ENDED and d.outcome is None:
            return
        previous = d.phase
        d.phase = Phase.ENDED
        d.timers.cancel_all()
        at = time.monotonic()
        talk: float | None = None
        if previous is Phase.RINGING:
            outcome = unanswered_outcome(cause, d.dial_status)
            self._observe(d, Unanswered(at, d.channel_id, _NO_ANSWER.get(outcome, NoAnswer.FAILED)))
            await self._finish(d, outcome)
            self._release_reserved(d)
        elif previous in (Phase.WAITING, Phase.DETECTING):
            # The person hung up before any agent took them: still abandoned (by us).
            with contextlib.suppress(ACDError):
                self.desk.publish(list(self.acd.cancel(d.channel_id, at).offers))
            self._release_reserved(d)
            self._observe(d, Abandoned(at, d.channel_id))
            await self.calllog.event(d.call_id, "abandoned", waited=None, message=None)
            await self._finish(d, Outcome.ABANDONED)
        elif previous is Phase.CONNECTED and d.agent_id is not None:
            self._observe(d, Ended(at, d.channel_id))
            if d.connected_at is not None:
                talk = max(0.0, ((ended_at or now()) - d.connected_at).total_seconds())
            self.desk.call_ended(d.agent_id, d.campaign.settings.wrap_up_seconds)
            self.notify("ended", d.call_id, d.agent_id)
        ended = ended_at or now()
        await self.calllog.close(
            d.call_id,
            at=ended,
            cause=cause,
            cause_text=text or None,
            outcome=(d.outcome or Outcome.FAILED).value,
            talk_seconds=talk,
        )
        self.calls.pop(d.channel_id, None)
        log.info("dialler_call_ended", outcome=d.outcome, talk_seconds=talk)

    async def _finish(self, d: DialledCall, outcome: Outcome) -> None:
        if d.outcome is not None:
            return
        d.outcome = outcome
        await self.store.finish(
            d.campaign, d.claimed, outcome, now(), d.call_id, agent_id=d.agent_id
        )

    # ---- agents -------------------------------------------------------------------------------

    def _release_reserved(self, d: DialledCall) -> None:
        if d.reserved is not None:
            agent_id, d.reserved = d.reserved, None
            self._free_agent(agent_id)

    def _free_agent(self, agent_id: str) -> None:
        try:
            agent = self.acd.agent(agent_id)
        except ACDError:
            return
        if agent.status is AgentStatus.ON_CALL:
            self.desk.call_ended(agent_id, 0)

    async def _hangup(self, channel_id: str) -> None:
        with contextlib.suppress(ARIError):
            await self.ari.hangup(channel_id)

    # ---- surviving a restart ----------------------------------------------------------------

    def _save(self, d: DialledCall) -> None:
        """Where the call is, on its row: what a restarted ``serve`` adopts it from."""
        self.calllog.set_state(
            d.call_id,
            {
                "dialler": {
                    "channel_id": d.channel_id,
                    "phase": d.phase.value,
                    "agent_id": d.agent_id,
                    "reserved": d.reserved,
                    "connected_at": d.connected_at.isoformat() if d.connected_at else None,
                }
            },
        )
