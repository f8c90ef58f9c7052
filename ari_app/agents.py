"""Over 500 lines: one desk object whose parts (agents' commands, ringing, their legs'
events, restoring after a restart, a site's adoption) all change the same legs, ACD and
session writes, in order; split, each part would reach into the others' state.

Agents' side of the ACD, over ARI: log-in and out, pauses, nailed-up legs, ringing an
agent's phone for an offer, and the ACD's timers. The decisions are the pure ``ACD``'s; this
module carries them out and tells each caller's session what happened to its offer by posting
events on that caller's own ordered event stream (so caller-side logic never races itself).

ACD call ids are the caller's channel id.

An instance owning several nodes (``CENTRALA_SITE``) has one desk for all of them: an agent's
leg is rung from the caller's node (its phone is reached from there wherever it is
registered), and news of it goes to the caller's stream on that node's ARI.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog

from ari_app.ari import ARIClient, ARIError, ARINotFound, Event
from core.acd import ACD, ACDError, AgentMode, AgentStatus, Offer
from core.agent_report import state_of
from core.cluster import channel_node
from core.errors import AgentDeskError
from core.sip_nodes import agent_ring
from models.crm import CRM
from models.snapshot import SessionRow

log = structlog.get_logger(__name__)

# A start with several nodes waits this long at most, after the first node's calls are
# adopted, for the others' before the ACD offers anyone (AgentDesk.adopting).
ADOPTION_WAIT = 5.0

# Synthetic events we post on a caller's stream.
OFFER = "CentralaOffer"
AGENT_ANSWERED = "CentralaAgentAnswered"
AGENT_GONE = "CentralaAgentGone"


@dataclass
class AgentLeg:
    """An agent's phone leg: rung for one call (per_call) or up all shift (nailed)."""

    channel_id: str
    agent_id: str
    caller_channel: str | None  # None for a nailed leg
    answered: bool = False
    bridge_id: str | None = None  # nailed: the agent's own bridge
    node: str | None = None  # the node it is on (the caller's), None: this instance's own


def _clean_caller_id(name: str | None, number: str | None) -> str:
    # Caller ID travels to the agent's phone; it is attacker-controlled text.
    def keep(text: str | None, extra: str) -> str:
        return "".join(c for c in (text or "") if c.isalnum() or c in extra)[:40]

    n, num = keep(name, " .-'"), keep(number, "+")
    return f'"{n}" <{num}>' if n else f"<{num}>"


class AgentDesk:
    def __init__(self, ari: ARIClient, crm: CRM, acd: ACD, app: str) -> None:
        self.ari = ari
        self.crm = crm
        self.acd = acd
        self.app = app
        self.legs: dict[str, AgentLeg] = {}
        self.routes: dict[str, str] = {}  # caller channel id prefix -> the app it belongs to
        self.nailed: dict[str, AgentLeg] = {}  # agent id -> leg
        self._pending_nailed: dict[str, tuple[Any, str]] = {}  # agent id -> (profile, endpoint)
        self._tick: asyncio.TimerHandle | None = None
        self._logout_after_call: set[str] = set()
        # Agents' sessions are written in the order they change (pause, ready, logout...).
        self._last_write: asyncio.Task[None] | None = None
        self._pending_writes: set[asyncio.Task[None]] = set()
        # What the state log last got for each agent: (state, reason, at).
        self._logged: dict[str, tuple[str, str | None, datetime]] = {}
        # Several nodes: an agent's desk phone may be registered on another node than ours.
        self.phones_anywhere = False
        # The other nodes this instance owns (CENTRALA_SITE): name -> their ARI, and their
        # info lines' callers by channel id (``node_of``).
        self.nodes: dict[str, ARIClient] = {}
        self.node_calls: dict[str, Mapping[str, object]] = {}
        self._restoring: asyncio.Task[None] | None = None
        # Nodes whose calls a start has yet to adopt (None: ours); the ACD offers nothing
        # meanwhile (``adopting``).
        self._adopting: set[str | None] = set()
        self._adoption_wait: asyncio.TimerHandle | None = None
        # A standby instance: where the agents' desk is (the owner's web address); None
        # while this instance serves its nodes.
        self.standing_by: Callable[[], str | None] = lambda: None

    def node_of(self, channel_id: str) -> str | None:
        """The other node a caller's channel is on (None: ours): the one whose info line
        holds the caller, else the one its id names (Asterisk's own ids start with the node's
        name; a channel we originated with our own id does not)."""
        for node, calls in self.node_calls.items():
            if channel_id in calls:
                return node
        return channel_node(channel_id, self.nodes)

    def ari_of(self, node: str | None) -> ARIClient:
        return self.ari if node is None else self.nodes[node]

    def _leg_ari(self, channel_id: str) -> ARIClient:
        leg = self.legs.get(channel_id)
        return self.ari_of(None if leg is None else leg.node)

    def dial_string(self, endpoint: str) -> str:
        """What rings the agent's phone on file, from this node (core.sip.agent_ring)."""
        return agent_ring(endpoint, anywhere=self.phones_anywhere)

    # ---- the ACD's decisions, published ---------------------------------------------------

    def publish(self, offers: list[Offer]) -> None:
        self.log_states()
        for offer in offers:
            self._post(offer.call_id, OFFER, offer=offer)
        self._schedule_tick()

    def log_states(self) -> None:
        """Each agent whose state as the agents report counts them (``state_of``) changed
        since the last call, into the state log, dated when the ACD changed it. One place for
        every path that moves an agent (log-in, pause, a wrap-up ended by the timer, the phone
        gone...); written in order with the agent's session writes."""
        mono, wall = time.monotonic(), datetime.now(UTC)
        for agent in self.acd.agents():
            state, reason = state_of(agent.status, agent.pause_reason)
            last = self._logged.get(agent.id)
            if last is not None and last[:2] == (state, reason):
                continue
            at = wall - timedelta(seconds=max(0.0, mono - agent.status_since))
            if last is not None and last[0] == state:
                at = wall  # only the pause's reason changed: the status kept its start
            if last is not None:
                at = max(at, last[2])
            self._logged[agent.id] = (state, reason, at)
            self._write_soon(self.crm.agent_state(agent.id, state, reason, at))

    def _post(self, caller_channel: str, kind: str, **data: Any) -> None:
        # A call of another app (the agent dialler's) gets its news in that app.
        app = next(
            (app for prefix, app in self.routes.items() if caller_channel.startswith(prefix)),
            self.app,
        )
        self.ari_of(self.node_of(caller_channel)).dispatch(
            {"type": kind, "application": app, "channel": {"id": caller_channel}, **data}
        )

    def _schedule_tick(self) -> None:
        deadline = self.acd.next_deadline()
        if self._tick is not None:
            self._tick.cancel()
            self._tick = None
        if deadline is None:
            return
        delay = max(0.0, deadline - time.monotonic())
        self._tick = asyncio.get_running_loop().call_later(delay, self._on_tick)

    def _on_tick(self) -> None:
        self._tick = None
        self.publish(self.acd.tick(time.monotonic()))

    async def refresh_profiles(self) -> None:
        """Skills and queue memberships as they are in the database now."""
        held = {a.profile.id: a.profile for a in self.acd.agents()}
        logged_in = [a.profile.id for a in self.acd.agents() if a.status != AgentStatus.LOGGED_OUT]
        offers: list[Offer] = []
        for profile in await self.crm.profiles(logged_in):
            # Only a changed profile: the ACD matches again on each update (at every call).
            if held.get(profile.id) != profile:
                offers += self.acd.update_profile(profile, time.monotonic())
        self.publish(offers)

    # ---- agents' own actions (API / CLI) --------------------------------------------------

    def _not_standing_by(self) -> None:
        """An agent's command on a standby would change an ACD that serves no caller (the
        owner's is the one): refused, with where to go."""
        owner = self.standing_by()
        if owner is not None:
            raise AgentDeskError(
                "standby",
                f"this instance stands by; the agents' desk is the owner's: {owner}",
                503,
            )

    async def login(self, agent_id: str, endpoint: str | None, mode: AgentMode) -> None:
        self._not_standing_by()
        found = await self.crm.agent(agent_id)
        if found is None:
            raise AgentDeskError("unknown_agent", f"no active agent {agent_id!r}", 404)
        profile, default_endpoint = found
        endpoint = endpoint or default_endpoint
        if not endpoint:
            raise AgentDeskError("no_endpoint", f"agent {agent_id!r} has no phone", 422)
        # One ACD per node's instance: an agent in two would be offered two callers at once.
        elsewhere = await self.crm.logged_in_elsewhere(agent_id)
        if elsewhere is not None:
            raise AgentDeskError(
                "logged_in_elsewhere",
                f"agent {agent_id!r} is logged in on node {elsewhere}: log out there first",
                409,
            )
        if mode is AgentMode.NAILED and self.nodes:
            raise AgentDeskError(
                "nailed_one_node",
                "a nailed-up phone is bridged on one Asterisk node, and this instance's callers"
                " are on several: log in per call",
                409,
            )
        if mode is AgentMode.NAILED:
            if agent_id in self.nailed:
                return
            self._pending_nailed[agent_id] = (profile, endpoint)
            channel_id = f"nailed-{agent_id}-{uuid.uuid4().hex[:8]}"
            self.nailed[agent_id] = AgentLeg(channel_id, agent_id, None)
            try:
                await self.ari.originate(
                    self.dial_string(endpoint),
                    channel_id=channel_id,
                    app=self.app,
                    app_args=f"nailed,{agent_id}",
                    dial_timeout=30,
                )
            except ARIError as exc:
                self.nailed.pop(agent_id, None)
                raise AgentDeskError("phone_failed", f"cannot call {endpoint}: {exc}", 502) from exc
            return  # logged in once their phone answers (StasisStart)
        self.publish(self.acd.login(profile, endpoint, mode, time.monotonic()))
        await self._write(self.crm.save_agent_session(agent_id, endpoint=endpoint, mode=mode))
        log.info("agent_logged_in", agent_id=agent_id, endpoint=endpoint, mode=mode)

    async def logout(self, agent_id: str) -> None:
        self._not_standing_by()
        try:
            self.acd.logout(agent_id, time.monotonic())
        except ACDError as exc:
            raise AgentDeskError.from_acd(exc) from exc
        self.log_states()
        await self._write(self.crm.drop_agent_session(agent_id))
        leg = self.nailed.pop(agent_id, None)
        if leg is not None:
            await self._hangup(leg.channel_id)
            if leg.bridge_id:
                with contextlib.suppress(ARIError):
                    await self.ari.destroy_bridge(leg.bridge_id)
        log.info("agent_logged_out", agent_id=agent_id)

    def pause(self, agent_id: str, reason: str) -> None:
        self._not_standing_by()
        try:
            self.acd.pause(agent_id, reason, time.monotonic())
        except ACDError as exc:
            raise AgentDeskError.from_acd(exc) from exc
        self._write_soon(self.crm.pause_agent_session(agent_id, reason))
        self.log_states()

    def ready(self, agent_id: str) -> None:
        self._not_standing_by()
        now = time.monotonic()
        try:
            agent = self.acd.agent(agent_id)
            if agent.status == AgentStatus.WRAP_UP:
                offers = self.acd.finish_wrap_up(agent_id, now)
            else:
                offers = self.acd.unpause(agent_id, now)
        except ACDError as exc:
            raise AgentDeskError.from_acd(exc) from exc
        self._write_soon(self.crm.pause_agent_session(agent_id, None))
        self.publish(offers)

    # ---- offers: ring the agent, or bridge into their nailed leg --------------------------

    async def ring(
        self,
        offer: Offer,
        caller_name: str | None,
        caller_number: str | None,
        ring_timeout: int,
        caller_channel: str | None = None,
    ) -> str | None:
        """Ring the agent's phone for the caller; returns the leg's channel id, or None when
        it could not even be dialled (the offer is then declined). News of the leg goes to
        ``caller_channel``'s stream (default: the offer's call, which is the caller's
        channel)."""
        channel_id = f"agent-{uuid.uuid4().hex[:12]}"
        caller_channel = caller_channel or offer.call_id
        node = self.node_of(caller_channel)  # the agent's leg is rung from the caller's node
        leg = self.legs[channel_id] = AgentLeg(
            channel_id, offer.agent_id, caller_channel, node=node
        )
        try:
            await self.ari_of(node).originate(
                self.dial_string(offer.endpoint),
                channel_id=channel_id,
                app=self.app,
                app_args=f"agent,{offer.agent_id},{leg.caller_channel}",
                caller_id=_clean_caller_id(caller_name, caller_number),
                dial_timeout=ring_timeout,
            )
        except ARIError as exc:
            log.warning("agent_dial_failed", agent_id=offer.agent_id, error=str(exc))
            self.legs.pop(leg.channel_id, None)
            return None
        return channel_id

    def nailed_bridge(self, agent_id: str) -> str | None:
        leg = self.nailed.get(agent_id)
        return leg.bridge_id if leg and leg.answered else None

    async def release_leg(self, channel_id: str | None) -> None:
        """Hang up a per-call agent leg (the caller left, or the call ended)."""
        if channel_id and channel_id in self.legs:
            await self._hangup(channel_id)

    async def _hangup(self, channel_id: str) -> None:
        with contextlib.suppress(ARIError):
            await self._leg_ari(channel_id).hangup(channel_id)

    # ---- agent legs' events ---------------------------------------------------------------

    def owns(self, channel_id: str) -> bool:
        return channel_id in self.legs or any(
            leg.channel_id == channel_id for leg in self.nailed.values()
        )

    async def on_event(self, event: Event) -> None:
        kind = event.get("type")
        channel_id = str((event.get("channel") or {}).get("id", ""))
        leg = self.legs.get(channel_id) or next(
            (leg for leg in self.nailed.values() if leg.channel_id == channel_id), None
        )
        if leg is None:
            return
        structlog.contextvars.bind_contextvars(agent_id=leg.agent_id, channel_id=channel_id)
        if kind == "StasisStart":
            leg.answered = True
            if leg.caller_channel is None:
                await self._nailed_up(leg)
            else:
                self._post(
                    leg.caller_channel, AGENT_ANSWERED, leg=channel_id, agent_id=leg.agent_id
                )
        elif kind == "ChannelDestroyed":
            await self._leg_gone(leg, event.get("cause"))

    async def _nailed_up(self, leg: AgentLeg) -> None:
        bridge_id = f"agent-{leg.agent_id}-{uuid.uuid4().hex[:6]}"
        try:
            await self.ari.create_bridge(bridge_id)
            await self.ari.add_to_bridge(bridge_id, leg.channel_id)
        except ARIError as exc:
            log.error("nailed_bridge_failed", error=str(exc))
            await self._hangup(leg.channel_id)
            return
        leg.bridge_id = bridge_id
        profile, endpoint = self._pending_nailed.pop(leg.agent_id)
        offers = self.acd.login(profile, endpoint, AgentMode.NAILED, time.monotonic())
        await self._write(
            self.crm.save_agent_session(
                leg.agent_id,
                endpoint=endpoint,
                mode=AgentMode.NAILED,
                nailed_channel=leg.channel_id,
                nailed_bridge=bridge_id,
            )
        )
        log.info("agent_logged_in", mode="nailed", endpoint=endpoint, bridge=bridge_id)
        self.publish(offers)

    async def _leg_gone(self, leg: AgentLeg, cause: object) -> None:
        now = time.monotonic()
        if leg.caller_channel is not None:
            self.legs.pop(leg.channel_id, None)
            self._post(
                leg.caller_channel,
                AGENT_GONE,
                leg=leg.channel_id,
                agent_id=leg.agent_id,
                answered=leg.answered,
                cause=cause,
            )
            return
        # A nailed leg ended: the agent is no longer reachable.
        self.nailed.pop(leg.agent_id, None)
        self._write_soon(self.crm.drop_agent_session(leg.agent_id))
        self._pending_nailed.pop(leg.agent_id, None)
        if leg.bridge_id:
            with contextlib.suppress(ARIError):
                await self.ari.destroy_bridge(leg.bridge_id)
        with contextlib.suppress(ACDError, KeyError):
            agent = self.acd.agent(leg.agent_id)
            if agent.current_call:
                # The caller's session ends the call (call_ended), then the agent goes.
                self._logout_after_call.add(leg.agent_id)
                self._post(
                    agent.current_call,
                    AGENT_GONE,
                    leg=leg.channel_id,
                    agent_id=leg.agent_id,
                    answered=True,
                    cause=cause,
                )
            elif agent.status != AgentStatus.LOGGED_OUT:
                self.acd.logout(leg.agent_id, now)
                self.log_states()
        log.info("agent_nailed_leg_gone", cause=cause)

    def call_ended(self, agent_id: str, wrap_up_seconds: float) -> None:
        now = time.monotonic()
        try:
            if agent_id in self._logout_after_call:
                # Their phone is gone: end the call in a long wrap-up (so no offer can reach
                # them in between) and log them out.
                self._logout_after_call.discard(agent_id)
                offers = self.acd.ended(agent_id, now, 3600)
                self.acd.logout(agent_id, now)
            else:
                offers = self.acd.ended(agent_id, now, wrap_up_seconds)
            log.info("agent_free", agent_id=agent_id, wrap_up=wrap_up_seconds)
        except ACDError as exc:
            log.warning("acd_end_failed", agent_id=agent_id, error=str(exc))
            return
        self.publish(offers)

    async def close(self) -> None:
        """Stop (a deploy or a crash): agents' legs and sessions are left as they are, for the
        next process to re-attach (``restore``); nothing is hung up."""
        if self._tick is not None:
            self._tick.cancel()
        if self._pending_writes:
            await asyncio.gather(*self._pending_writes, return_exceptions=True)

    # ---- sessions that survive a restart --------------------------------------------------

    def _chain(self, write: Awaitable[None]) -> asyncio.Task[None]:
        """Run ``write`` after every session write asked for before it, whether that one was
        awaited or not: an agent's pause, log-out and log-in reach the table (or the
        journal) in the order they happened."""
        previous = self._last_write

        async def run() -> None:
            if previous is not None:
                with contextlib.suppress(Exception):  # said where it failed
                    await asyncio.shield(previous)
            await write

        task = asyncio.get_running_loop().create_task(run())
        self._last_write = task
        self._pending_writes.add(task)
        task.add_done_callback(self._pending_writes.discard)
        return task

    async def _write(self, write: Awaitable[None]) -> None:
        await self._chain(write)

    def _write_soon(self, write: Awaitable[None]) -> None:
        """A session write from a synchronous caller: still in order with the others."""

        async def run() -> None:
            try:
                await write
            except Exception:  # the ACD holds the truth; the next change writes it again
                log.exception("agent_session_write_failed")

        self._chain(run())

    async def restore(self) -> None:
        """After a restart: the agents logged in before are logged in again (paused ones stay
        paused); a nailed-up agent gets their leg back if it is still up in their bridge, else
        their session ends. Calls are adopted after this (``InfolineApp.reconcile``). Once,
        however many nodes' apps ask (each waits for it); again after a failure."""
        if self._restoring is None or (
            self._restoring.done() and self._restoring.exception() is not None
        ):
            self._restoring = asyncio.get_running_loop().create_task(self._restore_all())
        await asyncio.shield(self._restoring)

    def adopting(self, nodes: list[str | None]) -> None:
        """A start with several nodes: no offer until each node's app has adopted its calls
        (``adopted``), or ADOPTION_WAIT after the first did (a node whose Asterisk is away
        holds no one up for longer): a talk adopted on one node must find its agent on that
        call, not ringing for a waiting caller of a node adopted before it."""
        self._adopting = set(nodes)
        self.acd.hold()

    def adopted(self, node: str | None) -> None:
        if not self._adopting:
            return
        self._adopting.discard(node)
        if not self._adopting:
            self._end_adoption()
        elif self._adoption_wait is None:
            self._adoption_wait = asyncio.get_running_loop().call_later(
                ADOPTION_WAIT, self._end_adoption
            )

    def _end_adoption(self) -> None:
        if self._adoption_wait is not None:
            self._adoption_wait.cancel()
            self._adoption_wait = None
        if self._adopting:
            log.warning("adoption_not_waited_for", nodes=sorted(map(str, self._adopting)))
        self._adopting.clear()
        self.publish(self.acd.release(time.monotonic()))

    async def _restore_all(self) -> None:
        for row in await self.crm.agent_sessions():
            with structlog.contextvars.bound_contextvars(agent_id=row.agent_id):
                await self._restore_one(row)
        # Those logged in again: their state as of now, which continues the one logged
        # before the restart (the report counts no gap and nothing twice).
        self.log_states()

    async def _restore_one(self, row: SessionRow) -> None:
        found = await self.crm.agent(row.agent_id)
        try:
            mode = AgentMode(row.mode)
        except ValueError:
            found = None
        if found is None:
            await self._ended_in_restart(row.agent_id)
            return
        profile, _ = found
        if mode is AgentMode.NAILED:
            channel, bridge = row.nailed_channel, row.nailed_bridge
            if not channel or not bridge or not await self._in_bridge(channel, bridge):
                log.info("agent_nailed_leg_lost_in_restart")
                await self._ended_in_restart(row.agent_id)
                if bridge:
                    with contextlib.suppress(ARIError):
                        await self.ari.destroy_bridge(bridge)
                return
            self.nailed[row.agent_id] = AgentLeg(
                channel, row.agent_id, None, answered=True, bridge_id=bridge
            )
        now = time.monotonic()
        self.acd.login(profile, row.endpoint, mode, now)
        if row.pause_reason:
            self.acd.pause(row.agent_id, row.pause_reason, now)
        log.info("agent_restored", mode=mode, paused=row.pause_reason)

    async def _ended_in_restart(self, agent_id: str) -> None:
        """A session the restart cannot take up: it ends, and in the state log too (logged in
        until now: when it ended in between is not known)."""
        await self._write(self.crm.drop_agent_session(agent_id))
        at = datetime.now(UTC)
        self._logged[agent_id] = ("logged_out", None, at)
        await self._write(self.crm.agent_state(agent_id, "logged_out", None, at))

    async def _in_bridge(self, channel_id: str, bridge_id: str) -> bool:
        try:
            bridge = await self.ari.get_bridge(bridge_id)
        except ARINotFound:
            return False
        return channel_id in (bridge or {}).get("channels", [])

    async def resync(self, node: str | None = None) -> None:
        """After a reconnect to ``node`` (None: ours): what agents' legs there did while we
        were away (Asterisk sent no events then). A leg gone is gone now; a leg that answered
        is answered now."""
        for leg in [*self.legs.values(), *self.nailed.values()]:
            if leg.node != node:
                continue
            with structlog.contextvars.bound_contextvars(
                agent_id=leg.agent_id, channel_id=leg.channel_id
            ):
                try:
                    channel = await self.ari_of(node).get_channel(leg.channel_id)
                except ARINotFound:
                    log.info("agent_leg_gone_while_away")
                    await self._leg_gone(leg, None)
                    continue
                if leg.answered or channel.get("state") != "Up":
                    continue
                log.info("agent_leg_answered_while_away")
                leg.answered = True
                if leg.caller_channel is None:
                    await self._nailed_up(leg)
                else:
                    self._post(
                        leg.caller_channel,
                        AGENT_ANSWERED,
                        leg=leg.channel_id,
                        agent_id=leg.agent_id,
                    )

    def adopt_leg(self, channel_id: str, agent_id: str, caller_channel: str) -> None:
        """A per-call agent leg talking to an adopted caller."""
        self.legs[channel_id] = AgentLeg(
            channel_id, agent_id, caller_channel, answered=True, node=self.node_of(caller_channel)
        )
