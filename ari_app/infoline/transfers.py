"""The agent's call controls on a live info-line call (API and desk)."""

from __future__ import annotations

import asyncio
import contextlib
import time

import structlog

from ari_app.ari import ARIError, Event
from ari_app.infoline.calls import CallBase
from ari_app.infoline.session import (
    CALL_ID_VARIABLE,
    CONSULT_PRIORITY,
    CONTROL,
    SURVEY_CONTEXT,
    SURVEY_VARIABLE,
    CallerSession,
    Consult,
)
from core.acd import CallRequest
from core.callphase import Phase
from core.errors import CallControlError, DomainError
from core.routing import (
    parse_transfer_target,
    transfer_decision,
)
from models.calllog import now

log = structlog.get_logger(__name__)

# The recording's pause while the client reads out card data; the target is the agent.
RECORDING_OPS = ("pause_recording", "resume_recording")


class Transfers(CallBase):
    """The agent's call controls: hold and resume, blind and attended transfers, ending
    the call, and the hand-off to the post-call survey."""

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
        elif op not in ("complete", "cancel", "hold", "resume", "hangup", *RECORDING_OPS):
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
        async with asyncio.timeout(15):
            await reply

    async def _control(self, s: CallerSession, event: Event) -> None:
        reply: asyncio.Future[None] = event["reply"]
        try:
            op, target = event["op"], event.get("target")
            if op == "hangup":
                await self._agent_ends_call(s)
            elif s.phase is not Phase.CONNECTED or s.agent_id is None:
                raise CallControlError("not_connected", "the caller is not with an agent")
            elif op in RECORDING_OPS:
                await self._pause_recording(s, on=op == "pause_recording", by=target)
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
            # The agent's request is answered once its changes are stored: the desk reads the
            # row back (the call's writes are otherwise written behind).
            await self.calllog.flush()
        except BaseException as exc:
            if not reply.done():
                reply.set_exception(exc)
            if not isinstance(exc, DomainError):
                raise
        else:
            if not reply.done():
                reply.set_result(None)

    async def _pause_recording(self, s: CallerSession, *, on: bool, by: str | None) -> None:
        """The agent pauses the recording while the client reads out card data, and resumes
        it; both on the call's trail and in the recording's row (ari_app.recording)."""
        if self.recorder is None:
            raise CallControlError("not_recorded", "calls are not recorded here", 409)
        if on:
            await self.recorder.pause(s.call_id, s.channel_id, by)
        else:
            await self.recorder.resume(s.call_id, s.channel_id, by)

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
        s.state.move(Phase.IVR)
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
        await self.calllog.update(s.call_id, agent_id=consult.agent_id)
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
        s.state.move(Phase.SURVEY)
        s.left_agent_at = now()
        for variable, value in ((SURVEY_VARIABLE, survey), (CALL_ID_VARIABLE, s.call_id)):
            await self.ari.set_variable(s.channel_id, variable, value)
        await self.ari.continue_in_dialplan(s.channel_id, SURVEY_CONTEXT, "s")
        await self.calllog.event(
            s.call_id, "sent_to_survey", survey=survey, via=via, from_agent=from_agent
        )
        log.info("sent_to_survey", survey=survey, via=via, from_agent=from_agent)
