"""Over 500 lines: one dialler's loop, preview and restart adoption share its calls, pacers and
live figures; split by concern it would pass that state between modules.

The agent dialler's loop: each running agent campaign, about twice a second, asks its pacer
how many calls to place (inbound first: nothing while inbound callers wait for its agents),
claims that many contacts and originates their calls; a progressive call holds its agent
while it rings. Preview hands one contact at a time to an agent, who calls or skips it. On
a restart, calls still on the PBX are adopted and attempts whose call is gone are closed."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import structlog

from ari_app.agents import AgentDesk
from ari_app.ari import ARIClient, ARIConflict, ARIError, ChannelTimers, Event
from ari_app.campaigns.session import DIALLABLE, number_zones
from ari_app.dialler.callbacks import offer_own_callbacks, release_left
from ari_app.dialler.calls import (
    HANDLER,
    DialledCall,
    DiallerCalls,
    Phase,
    channel_id_for,
    parse_channel_id,
)
from ari_app.dispatch import event_channel, run_call_step
from ari_app.trunks import TrunkGate
from core.acd import ACD, ACDError, AgentMode, AgentStatus
from core.callbacks import callbacks_first
from core.cluster import NODE_GONE
from core.dialler import CampaignKind, DiallerMode, PreviewError, in_schedule, outbound_allowed
from core.outbound import OutboundRefused
from core.pacing import AgentActivity, AgentState, Pacer, PacingSettings, Placed, Tally
from core.surveys.campaign import Outcome
from models.calllog import CallLog, now
from models.db import is_outage
from models.dialler import Claimed, DiallerStore, RunningAgentCampaign
from models.outbound import OutboundStore
from models.tables import Direction

log = structlog.get_logger(__name__)

_ACTIVITY = {
    AgentStatus.LOGGED_OUT: AgentActivity.LOGGED_OUT,
    AgentStatus.AVAILABLE: AgentActivity.READY,
    AgentStatus.OFFERED: AgentActivity.TALKING,
    AgentStatus.ON_CALL: AgentActivity.TALKING,
    AgentStatus.WRAP_UP: AgentActivity.WRAP_UP,
    AgentStatus.PAUSED: AgentActivity.AWAY,
}


def _percent(part: float, whole: float) -> float | None:
    return round(100 * part / whole, 1) if whole else None


@dataclass
class LiveCampaign:
    """A running campaign's running totals in this process (the wallboard's), counted at
    each tick: agents' logged-in and talking seconds, and each agent's wait between calls."""

    name: str
    since: float
    agents: int = 0
    available: int = 0  # of those agents, free for a call at the last tick
    present: float = 0.0  # agent-seconds logged in with a nailed-up phone
    talk: float = 0.0  # agent-seconds on this campaign's calls
    pacing: str = ""
    reason: str = ""
    waits: deque[float] = field(default_factory=lambda: deque(maxlen=200))
    _last: float | None = None
    _free_since: dict[str, float] = field(default_factory=dict)

    def count(self, now: float, agents: list[str], talking: set[str]) -> None:
        if self._last is not None:
            step = now - self._last
            self.present += step * len(agents)
            self.talk += step * len([a for a in agents if a in talking])
        self._last = now
        self.agents = len(agents)
        for agent in agents:
            if agent in talking:
                since = self._free_since.pop(agent, None)
                if since is not None:
                    self.waits.append(now - since)
            else:
                self._free_since.setdefault(agent, now)
        for agent in set(self._free_since) - set(agents):
            del self._free_since[agent]


@dataclass(frozen=True)
class PreviewContact:
    campaign: RunningAgentCampaign
    claimed: Claimed

    def json(self) -> dict[str, Any]:
        c = self.claimed
        return {
            "campaign": self.campaign.name,
            "kind": self.campaign.kind.value,
            "contact_id": c.contact_id,
            "number": c.number,
            "client_id": c.client_id,
            "name": c.name,
            "purpose": c.purpose,
            "script": c.script,
            "attempt": c.attempt,
        }


class AgentDialler(DiallerCalls):
    def __init__(
        self,
        ari: ARIClient,
        calllog: CallLog,
        store: DiallerStore,
        acd: ACD,
        desk: AgentDesk,
        gate: TrunkGate | None,
        *,
        app: str,
        dial: str,
        trunk: str | None,
        caller_id: str,
        queue_caller_ids: dict[str, str],
        tick_seconds: float = 0.5,
    ) -> None:
        super().__init__(ari, calllog, store, acd, desk, app=app)
        self.gate, self.dial, self.trunk = gate, dial, trunk
        self.caller_id, self.queue_caller_ids = caller_id, queue_caller_ids
        self.tick_seconds = tick_seconds
        self.previews: dict[str, PreviewContact] = {}  # agent id -> the contact on their desk
        self.clients = OutboundStore(store.sessions)
        self._agent_seen: dict[tuple[int, str], AgentActivity] = {}
        self._shown: dict[int, LiveCampaign] = {}  # what the supervisor's wallboard shows
        self._task: asyncio.Task[None] | None = None
        self._reconciled = asyncio.Event()

    # ---- the loop -----------------------------------------------------------------------------

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="agent-dialler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _loop(self) -> None:
        db_away = False
        while True:
            started = time.monotonic()
            try:
                await self._reconciled.wait()
                # No Asterisk, no call: a contact claimed now would only fail (an attempt
                # spent on nobody's fault).
                if self.ari.connected:
                    await self.tick()
                db_away = False
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                if not is_outage(exc):
                    log.exception("dialler_tick_failed")
                elif not db_away:
                    db_away = True
                    self.calllog.database_failed(exc)
                    log.error("dialler_paused_database_down", error=str(exc)[:200])
            await asyncio.sleep(max(0.05, self.tick_seconds - (time.monotonic() - started)))

    async def tick(self) -> None:
        running = callbacks_first(await self.store.running())
        for campaign_id in set(self.pacers) - {c.id for c in running}:
            del self.pacers[campaign_id]
        for campaign_id in set(self._shown) - {c.id for c in running}:
            del self._shown[campaign_id]
        for campaign in running:
            await self._tick_campaign(campaign)

    async def _tick_campaign(self, campaign: RunningAgentCampaign) -> None:
        settings = campaign.settings
        at = now()
        pacer = await self._pacer_for(campaign)
        mono = time.monotonic()
        agents = [
            a
            for a in self.acd.agents()
            if settings.queue in a.profile.queues
            and a.mode is AgentMode.NAILED
            and self.desk.nailed_bridge(a.id) is not None
        ]
        # Inbound first: an agent whose queues have more inbound callers waiting than the
        # campaign allows is the inbound queues' (away, for the pacer) until they are served.
        waiting = {
            q: sum(1 for c in self.acd.waiting(q) if parse_channel_id(c.call_id) is None)
            for q in {q for a in agents for q in a.profile.queues}
        }
        inbound_first = {
            a.id
            for a in agents
            if not outbound_allowed(sum(waiting[q] for q in a.profile.queues), settings)
        }
        for a in agents:
            activity = _ACTIVITY[a.status]
            if a.id in inbound_first and activity in (AgentActivity.READY, AgentActivity.WRAP_UP):
                activity = AgentActivity.AWAY  # free soon, but for the inbound callers
            if self._agent_seen.get((campaign.id, a.id)) != activity:
                self._agent_seen[(campaign.id, a.id)] = activity
                pacer.observe(AgentState(mono, a.id, activity))
        live = self._shown.setdefault(campaign.id, LiveCampaign(campaign.name, mono))
        live.count(mono, [a.id for a in agents], self._talking(campaign.id))
        live.available = sum(1 for a in agents if a.status is AgentStatus.AVAILABLE)
        if not in_schedule(settings, at) or settings.mode is DiallerMode.PREVIEW:
            live.pacing = settings.mode.value
            live.reason = "agents dial" if in_schedule(settings, at) else "outside its schedule"
            return
        ready = [
            a.id
            for a in agents
            if a.status is AgentStatus.AVAILABLE
            and a.id not in self.previews
            and a.id not in inbound_first
        ]
        if campaign.kind is CampaignKind.CALLBACKS:  # an agent's own come to their desk first
            present = {a.id for a in agents if a.status is not AgentStatus.LOGGED_OUT}
            await release_left(self.store, campaign, self.previews, present)
            ready = await offer_own_callbacks(self.store, campaign, ready, self._hold)
        # Progressive: each call holds its own agent while it rings, so nobody answered waits.
        progressive = settings.mode is DiallerMode.PROGRESSIVE
        if progressive:
            wanted = len(ready)
            live.pacing, live.reason = "progressive", f"{len(ready)} agents free"
        else:
            pace = pacer.pace(mono)
            wanted = pace.calls
            live.pacing, live.reason = pace.mode.value, pace.reason
        if wanted <= 0:
            return
        claimed = await self.store.claim(campaign, at, wanted, zones=number_zones)
        if not claimed:
            if not self._in_flight(campaign.id) and await self.store.campaigns.finish_if_done(
                campaign.id
            ):
                log.info("campaign_finished", campaign=campaign.name)
            return
        for c in claimed:
            reserve = ready.pop(0) if settings.mode is DiallerMode.PROGRESSIVE and ready else None
            await self._place(campaign, c, reserve)

    def _talking(self, campaign_id: int) -> set[str]:
        return {
            d.agent_id
            for d in self.calls.values()
            if d.campaign.id == campaign_id and d.phase is Phase.CONNECTED and d.agent_id
        }

    def figures(self) -> list[dict[str, Any]]:
        """Each running agent campaign as the supervisor's wallboard shows it, live: lines in
        flight per agent, the pacing mode in use (a predictive one may have fallen back) and
        why, abandonment over the last hour and 24 hours, agents' occupancy (talk ÷ logged-in
        time since this `serve` started) and their mean wait between calls."""
        mono = time.monotonic()
        out = []
        for campaign_id, live in sorted(self._shown.items()):
            calls = [d for d in self.calls.values() if d.campaign.id == campaign_id]
            lines = sum(1 for d in calls if d.phase is not Phase.CONNECTED)
            pacer = self.pacers.get(campaign_id)
            rates = pacer.rates(mono) if pacer is not None else None
            out.append(
                {
                    "id": campaign_id,
                    "name": live.name,
                    "pacing": live.pacing,
                    "reason": live.reason,
                    "agents": live.agents,
                    "lines": lines,
                    "connected": len(calls) - lines,
                    "lines_per_agent": round(lines / live.agents, 2) if live.agents else None,
                    "available": live.available,
                    "abandoned_last_hour_percent": _percent(rates.abandoned_short, rates.live_short)
                    if rates
                    else None,
                    "abandoned_24_hours_percent": _percent(rates.abandoned_24h, rates.live_24h)
                    if rates
                    else None,
                    "occupancy_percent": _percent(live.talk, live.present),
                    "mean_wait_seconds": round(sum(live.waits) / len(live.waits), 1)
                    if live.waits
                    else None,
                }
            )
        return out

    def _in_flight(self, campaign_id: int) -> int:
        return sum(1 for d in self.calls.values() if d.campaign.id == campaign_id)

    async def _pacer_for(self, campaign: RunningAgentCampaign) -> Pacer:
        pacer = self.pacers.get(campaign.id)
        s = campaign.settings
        # The pacer's aim and the rate from which it takes least risk scale with the
        # campaign's own cap (at the default 3%: 2.1% and 2.55%, the defaults the simulation
        # measured).
        wanted = PacingSettings(
            mode=s.mode,
            abandon_cap=s.abandon_cap,
            target=s.abandon_cap * 0.7,
            fallback_rate=s.abandon_cap * 0.85,
            ring_timeout=float(s.ring_seconds),
        )
        if pacer is not None and pacer.settings == wanted:
            return pacer
        # The law's 24 hours, from the database: a restart does not reset the rate.
        wall, mono = now(), time.monotonic()
        answers = await self.store.live_answers(campaign.id, wall - timedelta(hours=24))
        history = [
            Tally(mono - (wall - at).total_seconds(), 1, int(abandoned))
            for at, abandoned in answers
        ]
        pacer = self.pacers[campaign.id] = Pacer(wanted, history)
        for key in [k for k in self._agent_seen if k[0] == campaign.id]:
            del self._agent_seen[key]
        return pacer

    # ---- placing ------------------------------------------------------------------------------

    async def _place(
        self, campaign: RunningAgentCampaign, c: Claimed, reserve: str | None
    ) -> DialledCall | None:
        channel_id = channel_id_for(c)
        with structlog.contextvars.bound_contextvars(channel_id=channel_id, call_id=None):
            settings = campaign.settings
            presented = (
                settings.caller_id or self.queue_caller_ids.get(settings.queue) or self.caller_id
            )
            opened = await self.calllog.open_call(
                channel_id=channel_id,
                linkedid=None,
                direction=Direction.OUTBOUND,
                handler=HANDLER,
                caller_number=presented,
                caller_name=None,
                called_number=c.number,
                started_at=now(),
                # A listed lead may be a client already: found by the number called (the
                # call log would look up the caller's, which is ours).
                client_id=c.client_id or await self.clients.client_of(c.number),
                campaign_id=campaign.id,
            )
            structlog.contextvars.bind_contextvars(call_id=opened.id)
            await self.store.set_call(c.contact_id, opened.id)
            await self.calllog.update(opened.id, queue=settings.queue)
            d = DialledCall(
                channel_id,
                opened.id,
                campaign,
                c,
                ChannelTimers(self.ari, self.app, channel_id),
            )
            if reserve is not None:
                try:
                    self.acd.adopt_call(channel_id, reserve, time.monotonic())
                    d.reserved = reserve
                except ACDError:
                    pass  # taken meanwhile: the answer goes to whoever is free
            self.calls[channel_id] = d
            self._save(d)
            await self.calllog.event(
                opened.id,
                "dialling",
                campaign=campaign.name,
                mode=settings.mode.value,
                attempt=c.attempt,
                reserved=d.reserved,
                presented=presented,
            )
            if not DIALLABLE.match(c.number):
                await self._fail(d, Outcome.INVALID_NUMBER, "not a diallable number")
                return d
            if self.gate is not None:
                try:
                    await self.gate.admit(self.trunk, max(self.tick_seconds, 1.0) * 5)
                except OutboundRefused as exc:
                    await self._fail(d, Outcome.FAILED, str(exc))
                    return d
            pacer = self.pacers.get(campaign.id)
            if pacer is not None:
                pacer.observe(Placed(time.monotonic(), channel_id))
            d.placed_at = time.monotonic()
            try:
                await self.ari.originate(
                    self.dial.format(number=c.number),
                    channel_id=channel_id,
                    app=self.app,
                    app_args="client",
                    caller_id=presented,
                    dial_timeout=settings.ring_seconds,
                    variables={"AMD_APP": self.app} if settings.amd else None,
                )
            except ARIConflict:
                log.warning("originate_duplicate")
            except ARIError as exc:
                log.warning("dialler_originate_failed", error=str(exc))
                await self._destroyed(d, None, f"originate failed: {exc}")
            return d

    async def _fail(self, d: DialledCall, outcome: Outcome, why: str) -> None:
        await self._finish(d, outcome)
        await self._destroyed(d, None, why)

    # ---- preview --------------------------------------------------------------------------------

    async def preview_next(self, agent_id: str) -> PreviewContact | None:
        """The next contact of a preview campaign of the agent's queues, held for them (no one
        else gets it) until they call or skip it."""
        held = self.previews.get(agent_id)
        if held is not None:
            return held
        try:
            agent = self.acd.agent(agent_id)
        except ACDError as exc:
            raise PreviewError("not_logged_in", f"agent {agent_id!r} is not logged in") from exc
        for campaign in callbacks_first(await self.store.running()):
            s = campaign.settings
            # A callbacks campaign: the agent's own only, whichever queue it came from.
            own = campaign.kind is CampaignKind.CALLBACKS
            if not own and (
                s.mode is not DiallerMode.PREVIEW or s.queue not in agent.profile.queues
            ):
                continue
            if not in_schedule(s, now()):
                continue
            claimed = await self.store.claim(
                campaign, now(), 1, zones=number_zones, agent_id=agent_id
            )
            if claimed:
                held = self.previews[agent_id] = PreviewContact(campaign, claimed[0])
                return held
        return None

    async def preview_call(self, agent_id: str, contact_id: int) -> DialledCall:
        held = self.previews.get(agent_id)
        if held is None or held.claimed.contact_id != contact_id:
            raise PreviewError("not_previewing", f"contact {contact_id} is not on your desk")
        if self.desk.nailed_bridge(agent_id) is None:
            raise PreviewError("no_phone", "your phone is not connected (log in with it up)")
        del self.previews[agent_id]
        d = await self._place(held.campaign, held.claimed, agent_id)
        if d is None or d.reserved != agent_id:
            raise PreviewError("agent_busy", "you are on another call")
        return d

    async def preview_skip(self, agent_id: str, contact_id: int, reason: str) -> None:
        held = self.previews.get(agent_id)
        if held is None or held.claimed.contact_id != contact_id:
            raise PreviewError("not_previewing", f"contact {contact_id} is not on your desk")
        del self.previews[agent_id]
        await self.store.skip(held.campaign.id, held.claimed, reason, now())

    def _hold(self, agent_id: str, campaign: RunningAgentCampaign, claimed: Claimed) -> None:
        self.previews[agent_id] = PreviewContact(campaign, claimed)

    # ---- events -------------------------------------------------------------------------------

    async def on_event(self, event: Event) -> None:
        if event.get("application") != self.app:
            return
        kind = str(event.get("type"))
        channel_id = event_channel(event)
        d = self.calls.get(channel_id)
        if d is None:
            if kind == "StasisStart" and parse_channel_id(channel_id) is not None:
                # Ours, from before a restart, before reconcile ran: reconcile decides.
                await self._reconciled.wait()
                d = self.calls.get(channel_id)
            if d is None:
                return
        await run_call_step(
            self.ari,
            self.handle(d, kind, event),
            call_id=d.call_id,
            channel_id=d.channel_id,
            event_type=kind,
            failure="dialler_call_failed",
        )

    # ---- surviving a restart ----------------------------------------------------------------

    async def pbx_gone(self, at: datetime) -> int:
        """Asterisk is gone (its node died): every attempt under way on it is over, ended at
        ``at``, when the link was lost: a talk that happened stays connected (its agent
        freed), a person no agent took is abandoned, a call still ringing ends unanswered,
        each retried by the campaign's rules, from any node. Returns how many."""
        held = list(self.calls.values())
        for d in held:
            with structlog.contextvars.bound_contextvars(
                channel_id=d.channel_id, call_id=d.call_id
            ):
                await self._destroyed(d, None, NODE_GONE, ended_at=at)
        # Any this process never held (placed by an instance before it): every channel is
        # gone, as a reconnect's reconcile finds them.
        await self.reconcile()
        return len(held)

    async def reconcile(self) -> None:
        """After a (re)connect: every attempt under way is found again on the PBX. A call
        talking to an agent is adopted (the agent stays on it); one still ringing is followed
        again (its agent held again, if free); a person who answered and was waiting for an
        agent has waited past the 2 seconds: the identification message, abandoned; a call
        gone meanwhile is closed, its attempt failed (retried by the rules)."""
        try:
            for campaign, claimed, call_id, state in await self.store.under_way():
                if call_id is None:  # claimed, never placed
                    await self.store.finish(campaign, claimed, Outcome.FAILED, now(), None)
                    continue
                channel_id = channel_id_for(claimed)
                if channel_id not in self.calls:
                    await self._adopt(campaign, claimed, call_id, state)
        finally:
            self._reconciled.set()

    async def _adopt(
        self,
        campaign: RunningAgentCampaign,
        claimed: Claimed,
        call_id: str,
        state: dict[str, Any] | None,
    ) -> None:
        channel_id = channel_id_for(claimed)
        d = DialledCall(
            channel_id, call_id, campaign, claimed, ChannelTimers(self.ari, self.app, channel_id)
        )
        saved = dict((state or {}).get("dialler") or {})
        phase = saved.get("phase", Phase.RINGING.value)
        agent_id = saved.get("agent_id") or saved.get("reserved")
        self.calls[channel_id] = d
        alive = await self._alive(channel_id)
        if phase != Phase.CONNECTED.value:
            # serve died between putting the caller through and writing that down (the live
            # state is written behind): the call row, or the agent's bridge on the PBX, says
            # they talk, and a caller talking to an agent is never taken for one waiting.
            row = (state or {}).get("row") or {}
            talking_to = row.get("agent_id") or (alive and await self._bridged_agent(channel_id))
            if talking_to:
                phase, agent_id = Phase.CONNECTED.value, str(talking_to)
                saved["connected_at"] = saved.get("connected_at") or row.get("connected_at")
                if not row.get("agent_id"):  # only the PBX knew: the row learns it now
                    saved["connected_at"] = saved["connected_at"] or now().isoformat()
                    await self.calllog.update(
                        call_id,
                        agent_id=agent_id,
                        connected_at=datetime.fromisoformat(saved["connected_at"]),
                    )
        with structlog.contextvars.bound_contextvars(channel_id=channel_id, call_id=call_id):
            if phase == Phase.CONNECTED.value and agent_id:
                d.phase, d.agent_id, d.outcome = Phase.CONNECTED, agent_id, Outcome.CONNECTED
                connected = saved.get("connected_at")
                d.connected_at = datetime.fromisoformat(connected) if connected else now()
                with contextlib.suppress(ACDError):
                    self.acd.adopt_call(channel_id, agent_id, time.monotonic())
                # Applied once: a repeat changes nothing, and it may not have been (see above).
                await self.store.finish(
                    campaign, claimed, Outcome.CONNECTED, now(), call_id, agent_id=agent_id
                )
                if not alive:  # the talk ended while serve was away: it happened all the same
                    await self._destroyed(d, None, "ended while serve was away")
                    return
            elif not alive:
                await self._fail(d, Outcome.FAILED, "gone while serve was away")
                return
            elif phase == Phase.RINGING.value:
                if agent_id:
                    with contextlib.suppress(ACDError):
                        self.acd.adopt_call(channel_id, agent_id, time.monotonic())
                        d.reserved = agent_id
            else:
                # Answered and waiting for an agent while nobody was there to put them
                # through: past the 2 seconds, so abandoned, with the message.
                d.phase = Phase.WAITING
                d.answered_at = time.monotonic()
                await self._abandon(d)
            await self.calllog.event(call_id, "adopted", phase=d.phase.value)
            log.info("dialler_call_adopted", phase=d.phase.value, agent_id=d.agent_id)

    async def _bridged_agent(self, channel_id: str) -> str | None:
        """The agent whose nailed-up bridge holds the channel on the PBX, if any."""
        try:
            bridges = await self.ari.request("GET", "/bridges")
        except ARIError:
            return None
        holding = {b.get("id") for b in bridges or [] if channel_id in (b.get("channels") or [])}
        for agent in self.acd.agents():
            if self.desk.nailed_bridge(agent.id) in holding:
                return agent.id
        return None

    async def _alive(self, channel_id: str) -> bool:
        try:
            await self.ari.request("GET", f"/channels/{channel_id}")
        except ARIError:
            return False
        return True

    def live(self) -> list[dict[str, Any]]:
        return [
            {
                "call_id": d.call_id,
                "campaign": d.campaign.name,
                "number": d.claimed.number,
                "phase": d.phase.value,
                "agent_id": d.agent_id or d.reserved,
            }
            for d in self.calls.values()
        ]
