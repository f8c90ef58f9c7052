"""The ground floor of the info line's app: the parts and the steps every concern uses."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import Callable
from datetime import datetime

import structlog

from ari_app.agents import AgentDesk
from ari_app.ari import ARIClient, ARIError, ARINotFound
from ari_app.cdr import CdrReconciler
from ari_app.infoline.notifier import DeskNotifier, QueueLeft
from ari_app.infoline.session import CallerSession
from ari_app.recording import CallRecorder
from core.acd import ACD
from core.ivr import IVRAction, recorded_path
from core.media import prompt_media
from core.phones import normalise
from core.recording import queue_recording
from core.routing import RouteDecision
from dialplan.model import Flow, QueueDef
from models.calllog import CallLog
from models.crm import CRM
from models.db import is_outage
from models.flows import flow_version

IDENTIFICATION_PROMPT = "dialler_identification"

log = structlog.get_logger(__name__)


class NoFlowKnown(Exception):
    """The database is away and no flow was ever read (no snapshot): the info line cannot
    answer; the dialplan's FastAGI fallback does until the database is back."""

    def __init__(self, flow_name: str) -> None:
        super().__init__(
            f"the database is unreachable and no snapshot of flow {flow_name!r} was ever"
            " written here (a first start?): the info line cannot run its IVR"
        )


class CallBase:
    """What every concern of a call shares: the app's parts, the desk notices, music on
    hold, the flow of a call, freeing its agent, and closing its record."""

    # Carried out by later rooms of this class (queueing.py, stasis.py).
    async def _enqueue(
        self, s: CallerSession, decision: RouteDecision, queues: dict[str, QueueDef]
    ) -> None:
        raise NotImplementedError

    async def _run(self, s: CallerSession, actions: list[IVRAction]) -> None:
        raise NotImplementedError

    async def _playback_finished(self, s: CallerSession, local: str) -> None:
        raise NotImplementedError

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
        pbx_records: CdrReconciler | None = None,
        recorder: CallRecorder | None = None,
    ) -> None:
        self.ari = ari
        # Records callers' channels (MixMonitor over AMI); None: calls are not recorded.
        self.recorder = recorder
        # Asterisk's CDR: when callers who left while we were away left, and the calls we
        # never saw (ari_app/cdr.py).
        self.pbx_records = pbx_records
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
        self._flow_lock = asyncio.Lock()
        self._last_version: int | None = None  # the active flow as last read
        self.notifier = DeskNotifier()
        self.desk_listeners = self.notifier.listeners  # the desktop subscribes here
        # Told when a caller's wait in a queue ends (answered or abandoned): web/metrics.py.
        self.queue_listeners: list[Callable[[QueueLeft], None]] = []
        # False until the first reconcile has adopted what a previous process left live.
        self.ready = False
        self._pbx_started: str | None = None  # Asterisk's startup time at the last connect
        self.adopted = 0
        # Another node this instance owns with its own (CENTRALA_SITE); None: its own.
        self.node: str | None = None

    def _notify(self, kind: str, s: CallerSession, agent_id: str | None) -> None:
        facts = None
        if kind in ("offered", "connected") and s.decision is not None:
            path = recorded_path(s.ivr.path)  # as the row will have it
            facts = {"queue": s.decision.queue, "ivr_path": path, "intent": s.intent}
        self.notifier.notify(kind, s.call_id, agent_id, facts)

    def _queue_left(self, s: CallerSession, *, answered: bool) -> None:
        if s.decision is None or s.arrived_mono is None:
            return
        left = QueueLeft(
            s.decision.queue,
            max(0.0, time.monotonic() - s.arrived_mono),
            answered,
            None if s.queue_def is None else float(s.queue_def.max_wait_seconds),
            None if s.queue_def is None else float(s.queue_def.service_level_seconds),
        )
        for listener in self.queue_listeners:
            try:
                listener(left)
            except Exception:  # a metric's problem must never disturb the call
                log.exception("queue_listener_failed")

    async def _moh(self, s: CallerSession, *, on: bool) -> None:
        if on == s.moh:
            return
        s.moh = on
        with contextlib.suppress(ARINotFound):
            if on:
                await self.ari.start_moh(s.channel_id)
            else:
                await self.ari.stop_moh(s.channel_id)

    async def warm(self) -> None:
        """Read what the call path needs (the active flow, the queues) once at start, so a
        database that goes away right after still leaves the line answering."""
        await self._active_flow()
        await self.crm.queues()
        try:
            await self.crm.warm_agents()
        except Exception as exc:  # away: the snapshot's agents, as last read
            if not is_outage(exc):
                raise

    async def identification(self) -> dict[str, str]:
        """The agent dialler's message to a live answer no agent took (who called, the free
        number): the flow's ``dialler_identification`` prompt, per language ("" default)."""
        _version, flow = await self._active_flow()
        if IDENTIFICATION_PROMPT not in flow.prompts:
            return {}
        media = {lang: prompt_media(flow, IDENTIFICATION_PROMPT, lang) for lang in flow.languages}
        media[""] = media.get(flow.default_language, next(iter(media.values()), ""))
        return media

    async def _active_flow(self) -> tuple[int, Flow]:
        try:
            version = await self.crm.active_flow_version(self.flow_name)
        except Exception as exc:
            if not is_outage(exc):
                raise
            # The database is away: the version last seen answers the call (an admin's
            # apply during the outage takes effect when it is back); a process started
            # during the outage has it from the snapshot file (models.snapshot).
            if self._last_version is None:
                kept = self.crm.snapshot.flow(self.flow_name)
                if kept is None:
                    raise NoFlowKnown(self.flow_name) from exc
                self._flows[kept[0]] = kept[1]
                self._last_version = kept[0]
                log.warning("flow_from_snapshot", flow_version=kept[0])
            return self._last_version, self._flows[self._last_version]
        if version is None:
            raise RuntimeError(f"no active flow {self.flow_name!r}: `centrala dialplan apply`")
        if version in self._flows and version == self._last_version:
            return version, self._flows[version]
        # A new version: read, checked and kept once, not by every call arriving meanwhile
        # (50 callers at once after an apply each parsed the flow: first prompt p99 1 s).
        async with self._flow_lock:
            if version not in self._flows:
                flow = await flow_version(self.crm.sessions, self.flow_name, version)
                assert flow is not None
                self._flows[version] = flow
            if version != self._last_version:
                self.crm.snapshot.set_flow(self.flow_name, version, self._flows[version])
                await self.crm.snapshot.save()
                self._last_version = version
        return version, self._flows[version]

    async def _flow_for_caller(self, number: str | None) -> tuple[int, Flow]:
        """The version a new call runs: a draft's trial version when the caller's number is
        on its test list (models.flow_drafts), else the active one. With the database away,
        the active one (as last read)."""
        e164 = normalise(number, self.region)
        if e164 is not None:
            try:
                version = await self.crm.flow_version_for(self.flow_name, e164)
                active = await self.crm.active_flow_version(self.flow_name)
            except Exception as exc:
                if not is_outage(exc):
                    raise
            else:
                if version is not None and version != active:
                    log.info("flow_trial", flow_version=version)
                    return await self._flow_of(version)
        return await self._active_flow()

    async def _flow_of(self, version: int | None) -> tuple[int, Flow]:
        if version is not None and version not in self._flows:
            kept = self.crm.snapshot.flow(self.flow_name)
            try:
                flow = await flow_version(self.crm.sessions, self.flow_name, version)
            except Exception as exc:
                if not is_outage(exc):
                    raise
                # The database is away: the version the snapshot holds, if it is this one
                # (else the active one goes on with the call).
                flow = kept[1] if kept is not None and kept[0] == version else None
            if flow is not None:
                self._flows[version] = flow
        if version is not None and version in self._flows:
            return version, self._flows[version]
        return await self._active_flow()

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

    async def _record_in_queue(self, s: CallerSession, queue: QueueDef | None) -> None:
        """The queue's own recording setting, on entering it (core.recording)."""
        if self.recorder is None or queue is None:
            return
        recording = s.call_id in self.recorder.running
        change = queue_recording(recording, queue.record)
        if change == "start":
            await self.recorder.start(s.call_id, s.channel_id, adopted=s.adopted)
        elif change == "stop":
            await self.recorder.stop(s.call_id, s.channel_id)

    async def _close(self, s: CallerSession, at: datetime, cause: object, text: object) -> None:
        self.calls.pop(s.channel_id, None)
        self.by_call.pop(s.call_id, None)
        if self.recorder is not None:
            self.recorder.ended(s.call_id)
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
