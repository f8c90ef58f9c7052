"""A restart of `serve` drops no call: what is kept, and how a new process adopts it."""

from __future__ import annotations

import asyncio
import contextlib
import time
from datetime import datetime

import structlog

from ari_app.ari import ARIError, ARINotFound, ChannelTimers, Event
from ari_app.infoline.queueing import Queueing
from ari_app.infoline.session import (
    ADOPT,
    RESYNC,
    CallerSession,
)
from core.acd import ACDError, AgentMode, AgentProfile
from core.callphase import CallPhase, Phase
from core.cdrs import PbxCall
from core.cluster import NODE_GONE
from core.ivr import IVR, recorded_path
from core.livestate import LiveCall, decode_decision, encode_decision, parse_time
from core.phones import normalise
from models.calllog import LiveRow, now
from models.crm import caller_of

log = structlog.get_logger(__name__)

# Playback numbering for a call whose saved state is unreadable: no call plays this many.
UNKNOWN_SEQ = 1_000_000


class Adoption(Queueing):
    """Restart survival: each call's live state written after every event, and the calls
    a previous process left live adopted on the first connect."""

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
            path=recorded_path(s.ivr.path),
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
            started = await self.ari.asterisk_started()
            pbx_restarted = started != self._pbx_started and self._pbx_started is not None
            self._pbx_started = started
            # Calls that ended while we were away ended after we lost the link, and a PBX
            # restart ended them right then: no outage in their end or talk time.
            away_since = None if first else self.ari.disconnected_at
            if pbx_restarted:
                log.warning("pbx_restarted", started=started)
            if first:
                await self.desk.restore()
            # When each caller who left while we were away really left, as Asterisk wrote it.
            ended = await self._pbx_ended_calls()
            to_adopt: list[tuple[LiveRow, LiveCall | None]] = []
            # With the database away these come from the journal (models/livecalls.py).
            rows = await self.calllog.live_calls("ari", self.node)
            # The waiting callers first: a talker's agent freed before them would be offered
            # a caller who is gone too.
            for row in sorted(rows, key=self._talking_last):
                structlog.contextvars.bind_contextvars(
                    call_id=row.call_id, channel_id=row.channel_id
                )
                try:
                    await self.ari.get_channel(row.channel_id)
                except ARINotFound:
                    left = ended.get(row.channel_id)
                    at = left.ended_at if left is not None else away_since or now()
                    await self._gone_while_away(row, at, lost=pbx_restarted)
                    continue
                if row.channel_id not in self.calls:
                    to_adopt.append((row, LiveCall.from_json(row.state)))
            if not first:
                await self.desk.resync(self.node)
                for s in list(self.calls.values()):
                    self._post(s.channel_id, RESYNC)
            for row, state in sorted(to_adopt, key=_adoption_order):
                await self._adopt(row, state)
            await self._start_missed()
            if first or pbx_restarted:
                await self._clear_strays()
        except ARIError as exc:
            log.warning("reconcile_failed", error=str(exc))
        finally:
            structlog.contextvars.unbind_contextvars("call_id", "channel_id")
            self.ready = True
            if first:
                self.desk.adopted(self.node)

    async def _pbx_ended_calls(self) -> dict[str, PbxCall]:
        if self.pbx_records is None:
            return {}
        try:
            return await self.pbx_records.ended_calls()
        except OSError as exc:  # the CDR file unreadable: the times we have are next best
            log.warning("cdr_read_failed", error=str(exc)[:200])
            return {}

    async def _start_missed(self) -> None:
        """Callers in our Stasis app that nobody handles and no row knows: their StasisStart
        went to a process killed before it wrote the row, so no adoption finds them and they
        would ring in the app for good. Started now as if the event had come, on their own
        stream (one whose real StasisStart is on its way finds the call taken). Agents' legs
        are the desk's and ``_clear_strays``'s."""
        for channel in await self.ari.channels():
            channel_id = str(channel.get("id", ""))
            dialplan = channel.get("dialplan") or {}
            app, *args = str(dialplan.get("app_data", "")).split(",")
            if str(dialplan.get("app_name", "")).lower() != "stasis" or app != self.name:
                continue
            if args and args[0] in ("agent", "nailed"):
                continue
            if channel_id not in self.calls and not self.desk.owns(channel_id):
                self._post(channel_id, "StasisStart", channel=channel, args=args, missed=True)

    def _talking_last(self, row: LiveRow) -> bool:
        s = self.calls.get(row.channel_id)
        return s is not None and s.phase is Phase.CONNECTED

    def _post(self, channel_id: str, kind: str, **data: object) -> None:
        self.ari.dispatch(
            {"type": kind, "application": self.name, "channel": {"id": channel_id}, **data}
        )

    async def _resync(self, s: CallerSession) -> None:
        """A prompt that ended while we were away sent its PlaybackFinished to nobody: the
        caller would sit in silence. Notice it now and go on as if it had arrived."""
        for local in (s.ivr.playing if s.phase is Phase.IVR else None, s.announcing):
            if local is None:
                continue
            try:
                await self.ari.get_playback(f"{s.channel_id}-{local}")
            except ARINotFound:
                log.info("playback_ended_while_away", playback=local)
                await self._playback_finished(s, local)

    async def pbx_gone(self, at: datetime) -> int:
        """Asterisk is gone (nothing has listened on its ARI for long: its node died): the
        calls it carried are over. Each is closed as lost at ``at``, when the link was lost
        (answered if it had reached an agent); returns how many. A node that comes back
        finds them closed."""
        rows = await self.calllog.live_calls("ari", self.node)
        for row in rows:
            structlog.contextvars.bind_contextvars(call_id=row.call_id, channel_id=row.channel_id)
            try:
                await self._gone_while_away(row, at, lost=True, text=NODE_GONE)
            finally:
                structlog.contextvars.unbind_contextvars("call_id", "channel_id")
        return len(rows)

    async def _gone_while_away(
        self, row: LiveRow, at: datetime, *, lost: bool, text: str | None = None
    ) -> None:
        """The caller's channel is gone. ``lost``: Asterisk was restarted, so the call was cut
        by us, not abandoned by the caller (a talk that happened stays answered)."""
        text = text or ("lost in a restart of Asterisk" if lost else "gone while disconnected")
        s = self.calls.get(row.channel_id)
        if s is not None:
            if lost and s.connected_at is None:
                s.outcome = "lost"
            await self._caller_left(s, at)
            await self._close(s, at, None, text)
        else:
            # A call this process never held (it ended while `serve` was down): a talk that
            # happened stays answered (its end, hence its talk time, is not known here).
            outcome = "answered" if row.connected_at is not None else "lost"
            await self.calllog.close(
                row.call_id, at=at, cause=None, cause_text=text, outcome=outcome
            )
        log.warning("call_closed_on_reconcile", lost=lost)

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
            async with asyncio.timeout(15):
                await asyncio.shield(done)

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
            adopted=True,
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
            # Lost before its first state was written (or unreadable): from the top of the
            # flow, numbering playbacks far past any the old process can have used.
            await self.calllog.event(s.call_id, "adopted", phase=None, node=None)
            s.ivr.resume(s.ivr.language, [], UNKNOWN_SEQ)
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
            # Adopted in the phase it was in (not a move): in the dialplan's survey, only
            # the hang-up is to come.
            s.state = CallPhase(Phase.SURVEY)
        elif state.phase == "connected" and await self._resume_talk(s, state):
            return
        elif state.phase == "queued" and s.decision is not None:
            await self._resume_queue(s)
        elif state.phase in ("ivr", "connected", "queued"):
            if state.playing:
                # Its end would reach nobody: the node starts again instead.
                with contextlib.suppress(ARINotFound):
                    await self.ari.stop_playback(f"{s.channel_id}-{state.playing}")
            s.state.move(Phase.IVR)
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
        s.state.move(Phase.QUEUED)
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
            self._login_again(found[0], str(found[1]), mono)
        self.acd.adopt_call(s.channel_id, agent_id, mono)
        if s.decision is not None:
            # The queue's settings apply to the rest of the call (its wrap-up, transfers).
            s.queue_def = (await self.crm.queues()).get(s.decision.queue)
        s.state = CallPhase(Phase.CONNECTED)  # adopted in its phase, not a move
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

    def _login_again(self, profile: AgentProfile, endpoint: str, mono: float) -> None:
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


def _adoption_order(item: tuple[LiveRow, LiveCall | None]) -> tuple[int, str]:
    """Talking calls first (their agents are busy before anyone is offered a call), then the
    queue by arrival, then the rest."""
    _, state = item
    phase = state.phase if state else "ivr"
    rank = {"connected": 0, "queued": 1, "survey": 2}.get(phase, 3)
    return rank, (state.queued_at or "") if state else ""
