"""Over 500 lines: `serve`'s whole wiring, start-up and shutdown in order in one file, which
is the point of it; each context is short.

`centrala serve`: one asyncio process running the ARI apps, the FastAGI server, the AMI
client and the web API. This module only wires the parts together; each part's lifetime is an
aiohttp cleanup context, so start-up and shutdown run in one place, in order."""

from __future__ import annotations

import asyncio
import contextlib
import pathlib
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog
from aiohttp import web
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agi.infoline import InfolineAGI
from agi.server import FastAGIServer
from agi.survey import SurveyAGI
from ari_app.agents import AgentDesk
from ari_app.ami import AMIClient
from ari_app.ari import APP_EVENTS, ARIClient, Event
from ari_app.campaigns import CampaignDialler
from ari_app.cdr import CdrFile, CdrReconciler, NodeCursor
from ari_app.dialler.engine import AgentDialler
from ari_app.infoline import InfolineApp
from ari_app.infoline.calls import NoFlowKnown
from ari_app.infoline.site import SiteCalls, join_site
from ari_app.outbound import OutboundApp
from ari_app.phones import PhonePusher
from ari_app.recording import CallRecorder
from ari_app.softphones import Softphones
from ari_app.trunks import TrunkGate
from centrala.inquiring import inquiry_setup
from centrala.meta_inbox import meta_routes
from centrala.settings import Settings, SiteNode, is_loopback
from core.acd import ACD
from core.agi_gate import SessionLimits
from core.inquiries.meta import MetaMessage
from core.letters import sender_lines
from core.outage import backoff
from core.surveys.validate import SurveyError, check_survey
from dialplan.validate import load_flow
from models.calllog import CallLog
from models.campaigns import CampaignStore
from models.crm import CRM
from models.db import create_engine, is_outage, session_factory, setup_lock, upgrade_async
from models.dialler import DiallerStore
from models.flows import active_flow, apply_flow
from models.journal import WriteJournal
from models.outbound import OutboundStore
from models.phones import PhoneStore
from models.recordings import RecordingStore
from models.snapshot import Snapshot
from models.surveys import active_survey, apply_survey
from usecases.cluster import NodeKeeper
from usecases.inquiries import receive_meta
from usecases.recordings import RecordingKeeper
from usecases.surveying import SurveyLog
from web import DeskConfig, desk_ctx, setup_desk
from web.admin_api import routes as admin_routes
from web.agent_report_api import routes as agent_report_routes
from web.api import routes as api_routes
from web.calllog_api import routes as calllog_routes
from web.campaign_api import routes as campaign_routes
from web.campaign_report_api import routes as campaign_report_routes
from web.contact import routes as contact_routes
from web.errors import api_guard, errors
from web.flow_api import routes as flow_routes
from web.http import WEB
from web.inquiries_api import INQUIRY_SETUP
from web.inquiries_api import routes as inquiry_routes
from web.letters_api import LetterConfig
from web.letters_api import routes as letters_routes
from web.metrics import CentralaMetrics, LiveSources, metrics_route
from web.notice_report_api import routes as notice_report_routes
from web.notices_api import NOTICE_SETUP
from web.notices_api import routes as notice_routes
from web.ports import AGENT_DIALLER, DESK, INFOLINE, OUTBOUND, PROMPT_UPLOAD, PROMPTS, SOFTPHONES
from web.queue_report_api import routes as queue_report_routes
from web.recordings import RECORDINGS, RecordingFiles
from web.server import CappedSite, body_deadline, handler_args
from web.status import StatusSources, status_route
from web.survey_api import Sessions
from web.survey_api import routes as report_routes
from web.survey_edit_api import routes as survey_edit_routes
from web.unsubscribe import routes as unsubscribe_routes
from web.viber_hooks import routes as viber_hook_routes

log = structlog.get_logger(__name__)

SETTINGS = web.AppKey("settings", Settings)
CALLLOG = web.AppKey("calllog", CallLog)
CRM_KEY = web.AppKey("crm", CRM)
ARI = web.AppKey("ari", ARIClient)
AMI = web.AppKey("ami", AMIClient)
AGI = web.AppKey("agi", FastAGIServer)
ACD_KEY = web.AppKey("acd", ACD)
SURVEYS = web.AppKey("surveys", SurveyLog)
CAMPAIGNS = web.AppKey("campaigns", CampaignStore)
DIALLER = web.AppKey("dialler", CampaignDialler)
INFOLINE_APP = web.AppKey("infoline_app", InfolineApp)  # the concrete app, for wiring
PBX_RECORDS = web.AppKey("pbx_records", CdrReconciler)
RECORDER = web.AppKey("recorder", CallRecorder)
LOOP_LAG = web.AppKey("loop_lag", list[float])
OUTBOX = web.AppKey("outbox", dict[tuple[str, str], int])  # the notices' backlog (/metrics)
METRICS = web.AppKey("metrics", CentralaMetrics)
SESSIONS: web.AppKey[Sessions] = web.AppKey("sessions")  # for reports: reads, no call state
# This instance serves its node (set at once when there is one instance; see cluster_ctx).
ACTIVE = web.AppKey("active", asyncio.Event)
NODE_KEEPER = web.AppKey("node_keeper", NodeKeeper)
# An instance owning several nodes (CENTRALA_SITE): every node's info line, the others' ARI.
SITE_CALLS = web.AppKey("site_calls", SiteCalls)
SITE_ARI = web.AppKey("site_ari", dict[str, ARIClient])
SITE_RECORDERS = web.AppKey("site_recorders", dict[str, CallRecorder])
_ALWAYS = asyncio.Event()
_ALWAYS.set()


def active_of(app: web.Application) -> asyncio.Event:
    """Whether this instance serves its node now; set for an app built without build_app
    (a test's, with some contexts of its own)."""
    return app.get(ACTIVE, _ALWAYS)


# Migrated and prepared (set late when `serve` started without the database).
DB_READY = web.AppKey("db_ready", asyncio.Event)


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    engine = create_engine(settings.effective_database_url)
    sessions = session_factory(engine)
    app[SESSIONS] = sessions
    # While the database is away the call path's writes go to this journal (fsynced) and
    # drain into the database when it is back; what a previous process left drains first.
    journal = WriteJournal(settings.data_dir / "journal" / "calls.jsonl")
    calllog = app[CALLLOG] = CallLog(
        sessions, settings.default_region, journal=journal, node=settings.node
    )
    calllog.on_closed.append(app[METRICS].call_closed)
    calllog.on_written.append(app[METRICS].db_written)
    # What the call path last read (flow, queues, agents, surveys), for a start without
    # the database (models/snapshot.py).
    snapshot = Snapshot(settings.data_dir / "snapshot.json")
    app[CRM_KEY] = CRM(sessions, snapshot=snapshot, writer=calllog)
    app[CRM_KEY].node = settings.node
    app[CRM_KEY].site = tuple(sorted(settings.site))
    app[SURVEYS] = SurveyLog(sessions, calllog=calllog, crm=app[CRM_KEY])
    app[CAMPAIGNS] = CampaignStore(sessions, settings.node)
    ready = app[DB_READY] = asyncio.Event()
    waiting: asyncio.Task[None] | None = None
    try:
        await prepare_database(settings, sessions)
    except Exception as exc:
        if not is_outage(exc):
            raise
        # Started while the database is away (a host rebooted, PostgreSQL slower to come
        # up): answer from the snapshot, journal the writes, migrate and drain once it is
        # back. Said once; retried with backoff.
        log.error(
            "database_down_at_start",
            error=str(exc)[:200],
            snapshot=snapshot.has_flow,
            journal=journal.pending,
        )
        calllog.schema_ready.clear()
        calllog.start(database_down=True)
        waiting = asyncio.create_task(_wait_for_database(settings, sessions, calllog, ready))
    else:
        calllog.start()
        ready.set()
    yield
    if waiting is not None:
        waiting.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await waiting
    await calllog.aclose()
    await engine.dispose()


async def prepare_database(settings: Settings, sessions: async_sessionmaker[AsyncSession]) -> None:
    """Migrations, and what a fresh install needs (the shipped flow and surveys): by one
    instance at a time (several may start together on a fresh database)."""
    async with setup_lock(settings.effective_database_url):
        if settings.migrate_on_start:
            await upgrade_async(settings.effective_database_url)
        if await active_flow(sessions, "infoline") is None:
            # A fresh install speaks the shipped flow until an admin applies their own.
            flow = load_flow(settings.flow_file.read_text(), str(settings.flow_file))
            version = await apply_flow(sessions, flow, created_by="serve (fresh install)")
            log.info("flow_applied", flow=flow.name, version=version, file=str(settings.flow_file))
        await apply_missing_surveys(settings, sessions)


async def _wait_for_database(
    settings: Settings,
    sessions: async_sessionmaker[AsyncSession],
    calllog: CallLog,
    ready: asyncio.Event,
) -> None:
    attempt = 0
    while True:
        attempt += 1
        await asyncio.sleep(backoff(attempt))
        try:
            await prepare_database(settings, sessions)
        except Exception as exc:
            if not is_outage(exc):
                log.exception("database_prepare_failed")
            continue
        break
    log.warning("database_reachable", attempts=attempt)
    calllog.schema_ready.set()  # the journal drains into it now
    ready.set()


async def apply_missing_surveys(
    settings: Settings, sessions: async_sessionmaker[AsyncSession]
) -> None:
    """A fresh install knows the shipped surveys; an applied version is never replaced here.
    A broken file is logged, not fatal: the info line must answer regardless."""
    for path in settings.survey_files:
        try:
            survey = check_survey(path.read_text(encoding="utf-8"), str(path))
        except (OSError, UnicodeDecodeError, SurveyError) as exc:
            log.error("survey_file_invalid", file=str(path), error=str(exc))
            continue
        if await active_survey(sessions, survey.name) is None:
            stored = await apply_survey(sessions, survey, by="serve (fresh install)")
            log.info("survey_applied", survey=survey.name, version=stored.version, file=str(path))


async def ari_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    ari = ARIClient(
        settings.ari_url,
        settings.ari_user,
        settings.ari_password,
        [settings.infoline_app, settings.survey_app, settings.outbound_app, settings.dialler_app],
        events=APP_EVENTS,
    )
    acd = ACD()
    desk = AgentDesk(ari, app[CRM_KEY], acd, settings.infoline_app)
    desk.phones_anywhere = settings.phones_anywhere
    desk.standing_by = lambda: None if active_of(app).is_set() else _owner_url(app)
    # Several instances: where the node's CDR was read to is the node's, on its row, so the
    # instance that takes the node over goes on from there.
    cursor: NodeCursor | pathlib.Path = (
        settings.make_data_dir() / "cdr-cursor.json"
        if settings.node is None
        else NodeCursor(app[SESSIONS], settings.node, settings.effective_instance_id)
    )
    pbx_records = CdrReconciler(
        CdrFile(settings.effective_cdr_file, cursor),
        app[CALLLOG],
        settings.infoline_numbers,
        grace=timedelta(seconds=settings.cdr_grace_seconds),
    )
    app[PBX_RECORDS] = pbx_records
    infoline = _infoline_app(app, ari, desk, acd, pbx_records, recorder=app[RECORDER])
    infoline.queue_listeners.append(app[METRICS].queue_left)
    # One call-rate limit per trunk for everyone dialling out through it.
    gate = TrunkGate({t.name: t.calls_per_second for t in settings.trunks if t.calls_per_second})
    dialler = CampaignDialler(
        ari,
        app[CALLLOG],
        app[SURVEYS],
        app[CAMPAIGNS],
        app=settings.survey_app,
        dial=settings.effective_outbound_dial,
        caller_id=settings.effective_outbound_caller_id,
        tick_seconds=settings.campaign_tick_seconds,
    )
    dialler.gate, dialler.trunk = gate, settings.outbound_trunk
    outbound = _outbound_app(app, ari, acd, desk, gate)

    agent_dialler = AgentDialler(
        ari,
        app[CALLLOG],
        DiallerStore(app[SESSIONS], settings.node),
        acd,
        desk,
        gate,
        app=settings.dialler_app,
        dial=settings.effective_outbound_dial,
        trunk=settings.outbound_trunk,
        caller_id=settings.effective_outbound_caller_id,
        queue_caller_ids=dict(settings.queue_caller_ids),
        tick_seconds=settings.dialler_tick_seconds,
    )
    desk.routes["dialler-"] = settings.dialler_app
    agent_dialler.notify = infoline.notifier.notify

    async def on_event(event: Event) -> None:
        with structlog.contextvars.bound_contextvars():
            if event.get("application") == settings.survey_app:
                await dialler.on_event(event)
            elif event.get("application") == settings.dialler_app:
                await agent_dialler.on_event(event)
            elif event.get("application") == settings.outbound_app:
                await outbound.on_event(event)
            else:
                await infoline.on_event(event)

    phones = PhonePusher(
        ari,
        PhoneStore(app[SESSIONS]).all,
        realm=settings.sip_realm,
        codecs=settings.phone_codecs,
        media_encryption=settings.phone_media_encryption,
    )
    app[SOFTPHONES] = Softphones(
        ari, realm=settings.sip_realm, ws_url=settings.effective_softphone_ws_url
    )
    ari.on_event(on_event)
    ari.on_connect(phones.reconcile)
    ari.on_connect(infoline.reconcile)
    ari.on_connect(dialler.reconcile)
    ari.on_connect(outbound.reconcile)
    ari.on_connect(agent_dialler.reconcile)
    # The other nodes this instance owns with its own (CENTRALA_SITE): their callers in the
    # same ACD, for the same agents.
    others = [
        _site_node(app, name, node, desk, acd, infoline, gate)
        for name, node in sorted(settings.site.items())
    ]
    desk.nodes = {o.name: o.ari for o in others}
    aris = [ari, *(o.ari for o in others)]
    app[ARI], app[ACD_KEY], app[DESK] = ari, acd, desk
    app[INFOLINE] = app[INFOLINE_APP] = infoline
    if others:
        desk.adopting([None, *desk.nodes])
        app[CALLLOG].nodes = tuple(sorted({str(settings.node), *settings.site}))
        app[INFOLINE] = app[SITE_CALLS] = SiteCalls([infoline, *(o.infoline for o in others)])
        app[SITE_ARI] = dict(desk.nodes)
    app[DIALLER] = dialler
    app[OUTBOUND] = outbound
    app[AGENT_DIALLER] = agent_dialler
    deferred: asyncio.Task[None] | None = None
    try:
        # The flow and queues, read now (or from the snapshot when the database is away),
        # so a database that goes away right after still leaves the line answering.
        await infoline.warm()
    except NoFlowKnown as exc:
        # Nothing to run the IVR from: the Stasis app stays unregistered, so the dialplan
        # sends callers to the FastAGI info line (journaled) until the database is back.
        log.error(
            "cannot_serve_no_snapshot",
            reason=str(exc),
            callers="the dialplan's FastAGI fallback answers them",
            retrying=True,
        )
        deferred = asyncio.create_task(
            _start_node(app, infoline, aris, dialler, agent_dialler, database_back=True)
        )
    else:
        if active_of(app).is_set():
            agent_dialler.identification = await infoline.identification()
            for client in aris:
                await client.start()
            dialler.start()
            agent_dialler.start()
        else:
            # A standby: the node's Stasis apps start once this instance owns the node, and
            # then adopt its calls as a restarted `serve` would.
            deferred = asyncio.create_task(
                _start_node(app, infoline, aris, dialler, agent_dialler, database_back=False)
            )

    async def reconcile(records: CdrReconciler) -> None:
        await active_of(app).wait()  # the node's CDR is its owner's to read
        await records.run(settings.cdr_reconcile_seconds)

    reconciling = [
        asyncio.create_task(reconcile(records))
        for records in [pbx_records, *(o.pbx_records for o in others)]
    ]
    home_closers: list[tuple[str, Callable[[datetime], Awaitable[int]]]] = [
        ("calls_closed", infoline.pbx_gone),
        ("survey_attempts_ended", lambda _at: dialler.pbx_gone()),
        ("manual_calls_closed", outbound.pbx_gone),
        ("agent_campaign_calls_closed", agent_dialler.pbx_gone),
    ]
    watching = [
        asyncio.create_task(
            _watch_pbx_gone(active_of(app), ari, settings.ari_url, home_closers, settings),
            name="pbx_gone",
        ),
        *(
            asyncio.create_task(
                _watch_pbx_gone(
                    active_of(app),
                    o.ari,
                    o.ari_url,
                    [
                        ("calls_closed", o.infoline.pbx_gone),
                        ("manual_calls_closed", o.outbound.pbx_gone),
                    ],
                    settings,
                    node=o.name,
                ),
                name=f"pbx_gone_{o.name}",
            )
            for o in others
        ),
    ]
    pushers = [phones, *(o.phones for o in others)]

    async def sync_phones() -> None:
        for pusher in pushers:  # one node's failure is its own (logged), not the others'
            try:
                await pusher.sync()
            except Exception as exc:
                if not is_outage(exc):
                    log.exception("phones_sync_failed")

    async with _every(PHONES_SYNC_SECONDS, sync_phones, "phones_sync_failed", active_of(app)):
        yield
    for task in watching:
        await stopped(task)
    for task in reconciling:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    if deferred is not None:
        deferred.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await deferred
    await dialler.stop()
    await agent_dialler.stop()
    await desk.close()
    for client in aris:
        await client.stop()


async def _start_node(
    app: web.Application,
    infoline: InfolineApp,
    aris: list[ARIClient],
    dialler: CampaignDialler,
    agent_dialler: AgentDialler,
    *,
    database_back: bool,
) -> None:
    """The node's Stasis apps started once this instance owns its node (at once with one
    instance), and ``database_back``: once the database is back after a start that knew no
    flow. The flow and queues are read again first (an admin may have published meanwhile);
    then the apps adopt the node's calls as a restarted `serve` does."""
    await active_of(app).wait()
    if database_back:
        await app[DB_READY].wait()
        await infoline.warm()
        log.warning("infoline_registering_database_back")
    else:
        with contextlib.suppress(NoFlowKnown):  # known since the start at least
            await infoline.warm()
        log.warning("node_taken_starting", node=app[SETTINGS].node)
    agent_dialler.identification = await infoline.identification()
    for client in aris:
        await client.start()
    dialler.start()
    agent_dialler.start()


def _infoline_app(
    app: web.Application,
    ari: ARIClient,
    desk: AgentDesk,
    acd: ACD,
    records: CdrReconciler,
    recorder: CallRecorder | None = None,
) -> InfolineApp:
    """The info line on ``ari``'s node (``records``: that node's CDR)."""
    settings = app[SETTINGS]
    return InfolineApp(
        ari,
        app[CALLLOG],
        app[CRM_KEY],
        desk,
        acd,
        name=settings.infoline_app,
        region=settings.default_region,
        survey=settings.postcall_survey,
        pbx_records=records,
        recorder=recorder,
    )


def _outbound_app(
    app: web.Application, ari: ARIClient, acd: ACD, desk: AgentDesk, gate: TrunkGate
) -> OutboundApp:
    """Agents' manual calls on ``ari``'s node (the desk's through the instance's own)."""
    settings = app[SETTINGS]
    return OutboundApp(
        ari,
        app[CALLLOG],
        app[CRM_KEY],
        OutboundStore(app[SESSIONS]),
        acd,
        desk,
        gate,
        app=settings.outbound_app,
        dial=settings.effective_outbound_dial,
        trunk=settings.outbound_trunk,
        default_caller_id=settings.effective_outbound_caller_id,
        queue_caller_ids=dict(settings.queue_caller_ids),
        region=settings.default_region,
        window=settings.manual_call_window,
        max_wait=settings.trunk_max_wait_seconds,
    )


@dataclass
class SiteNodeApps:
    """Another node this instance owns with its own (``CENTRALA_SITE``): its ARI, its info
    line and the calls its agents' phones place (sharing the instance's ACD and desk), its
    CDR and its phones."""

    name: str
    ari_url: str
    ari: ARIClient
    infoline: InfolineApp
    outbound: OutboundApp
    pbx_records: CdrReconciler
    phones: PhonePusher


def _site_node(
    app: web.Application,
    name: str,
    node: SiteNode,
    desk: AgentDesk,
    acd: ACD,
    home: InfolineApp,
    gate: TrunkGate,
) -> SiteNodeApps:
    """On another node of the site run the info line and the calls dialled on agents' phones
    registered there; the survey campaigns, the manual calls placed from the desk and the
    agent dialler go out through this instance's own node."""
    settings = app[SETTINGS]
    ari = ARIClient(
        node.ari_url,
        settings.ari_user,
        settings.ari_password,
        [settings.infoline_app, settings.outbound_app],
        events=APP_EVENTS,
    )
    records = CdrReconciler(
        CdrFile(
            node.cdr_file,
            NodeCursor(app[SESSIONS], name, settings.effective_instance_id),
        ),
        app[CALLLOG],
        settings.infoline_numbers,
        grace=timedelta(seconds=settings.cdr_grace_seconds),
    )
    # Recorded through the node's own AMI, when its CENTRALA_SITE entry gives it.
    infoline = _infoline_app(app, ari, desk, acd, records, app.get(SITE_RECORDERS, {}).get(name))
    join_site(home, infoline, name)
    phones = PhonePusher(
        ari,
        PhoneStore(app[SESSIONS]).all,
        realm=settings.sip_realm,
        codecs=settings.phone_codecs,
        media_encryption=settings.phone_media_encryption,
    )
    outbound = _outbound_app(app, ari, acd, desk, gate)
    outbound.node = name

    async def on_event(event: Event) -> None:
        with structlog.contextvars.bound_contextvars():
            if event.get("application") == settings.outbound_app:
                await outbound.on_event(event)
            else:
                await infoline.on_event(event)

    ari.on_event(on_event)
    ari.on_connect(phones.reconcile)
    ari.on_connect(infoline.reconcile)
    ari.on_connect(outbound.reconcile)
    return SiteNodeApps(name, node.ari_url, ari, infoline, outbound, records, phones)


PBX_CHECK_SECONDS = 1.0
# How soon a phone made, reset or removed elsewhere (another instance, the CLI) reaches this
# node's Asterisk: one read of the phones each time.
PHONES_SYNC_SECONDS = 5.0


async def _watch_pbx_gone(
    active: asyncio.Event,
    ari: ARIClient,
    ari_url: str,
    closers: list[tuple[str, Callable[[datetime], Awaitable[int]]]],
    settings: Settings,
    *,
    node: str | None = None,
) -> None:
    """Closes the calls of an Asterisk that is gone: the link lost for
    ``CENTRALA_NODE_DEAD_SECONDS`` and nothing listening on its ARI port (a refused
    connection: the process or its machine is down, not a slow network). Once per loss.
    ``closers``: what each app closes (named for the log), given when the link was lost."""
    from datetime import UTC

    closed_for: datetime | None = None
    host, port = ari_address(ari_url)
    await active.wait()
    while True:
        await asyncio.sleep(PBX_CHECK_SECONDS)  # a look every second, not a synchronisation
        since = ari.disconnected_at
        if ari.connected or since is None or since == closed_for:
            continue
        if (datetime.now(UTC) - since).total_seconds() < settings.node_dead_seconds:
            continue
        if not await _refused(host, port):
            continue
        closed_for = since
        closed: dict[str, int] = {}
        try:
            for what, close in closers:
                closed[what] = await close(since)
        except Exception:
            log.exception("pbx_gone_failed")
            closed_for = None  # tried again at the next look
            continue
        log.error("pbx_gone", node=node or settings.node, since=since.isoformat(), **closed)


def ari_address(url: str) -> tuple[str, int]:
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    return parts.hostname or "127.0.0.1", parts.port or (443 if parts.scheme == "https" else 80)


async def _refused(host: str, port: int) -> bool:
    """Nothing listens at ``host:port`` (the connection refused); a timeout or a success is
    not that."""
    try:
        async with asyncio.timeout(3):
            _, writer = await asyncio.open_connection(host, port)
    except ConnectionRefusedError:
        return True
    except (OSError, TimeoutError):
        return False
    writer.close()
    return False


async def cluster_ctx(app: web.Application) -> AsyncIterator[None]:
    """Several instances (``CENTRALA_NODE`` set): this one serves its node only while it
    holds the node's lease (``usecases.cluster``); until then it is a standby. An owner that
    finds its node taken over stops (SIGTERM to itself: a stop hangs up no call)."""
    settings = app[SETTINGS]
    if settings.node is None:
        yield
        return
    import os
    import socket
    from datetime import UTC, datetime

    from models.cluster import InstanceSeen
    from usecases.cluster import NodeKeeper

    me = InstanceSeen(
        id=settings.effective_instance_id,
        host=socket.gethostname(),
        web_url=settings.effective_public_url,
        node=settings.node,
        started_at=datetime.now(UTC),
    )
    keeper = NodeKeeper(
        app[SESSIONS],
        me,
        lease_seconds=settings.node_lease_seconds,
        renew_seconds=settings.node_renew_seconds,
        on_lost=lambda: os.kill(os.getpid(), signal.SIGTERM),
        also=tuple(settings.site),
    )
    app[NODE_KEEPER] = keeper

    def to_wallboard(seen: dict[str, Any]) -> None:
        desk = app.get(WEB)
        if desk is not None:
            desk.notifier.cluster = seen

    keeper.on_view.append(to_wallboard)
    app[ACTIVE] = keeper.owned
    log.info("node_lease_watching", node=settings.node, instance=me.id)
    keeping = asyncio.create_task(keeper.run(), name="node_lease")
    try:
        yield
    finally:
        await stopped(keeping)
        await keeper.release()  # after the Stasis apps stopped: the next owner adopts


async def agi_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    survey = SurveyAGI(
        app[SURVEYS],
        app[CALLLOG],
        follow_up_queue=settings.survey_follow_up_queue,
        region=settings.default_region,
        default_survey=settings.postcall_survey,
    )
    server = FastAGIServer(
        {"infoline": InfolineAGI(app[CALLLOG], settings.greeting_sound), "survey": survey},
        settings.agi_host,
        settings.agi_port,
        secret=settings.effective_agi_secret(),
        limits=SessionLimits(
            total=settings.agi_max_sessions,
            per_peer=settings.agi_max_sessions_per_peer,
            reserved_for_pbx=min(settings.agi_reserved_for_pbx, settings.agi_max_sessions - 1),
            pbx_addresses=frozenset(settings.agi_pbx_addresses),
        ),
        header_timeout=settings.agi_header_timeout,
        command_timeout=settings.agi_command_timeout,
    )
    # The post-call survey as read now, kept for an outage (and a start during one).
    with contextlib.suppress(Exception):
        await app[SURVEYS].active(settings.postcall_survey)
    await server.start()
    app[AGI] = server
    yield
    await server.stop()


async def ami_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    # serve only sends actions (and shows the link in /status): no events, so neither Asterisk
    # nor we format and parse every event of every call (a few percent of serve's CPU a call).
    ami = AMIClient(
        settings.ami_host, settings.ami_port, settings.ami_user, settings.ami_secret, events="off"
    )
    await ami.start()
    app[AMI] = ami
    yield
    await ami.stop()


async def recording_ctx(app: web.Application) -> AsyncIterator[None]:
    """Call recording: the recorder the info line drives (MixMonitor over AMI), and the keeper
    that finishes recordings' rows and deletes the files past the retention period."""
    settings = app[SETTINGS]
    store = RecordingStore(app[SESSIONS], app[CALLLOG])
    directory = settings.effective_recording_dir
    # The site's other nodes (CENTRALA_SITE) record through their own AMI, into their own
    # directories.
    recorded = {
        name: node
        for name, node in settings.site.items()
        if node.ami_port is not None and node.recording_dir is not None
    }
    node_dirs = {name: node.recording_dir for name, node in recorded.items()}
    keeper = RecordingKeeper(
        store,
        directory,
        retention_days=settings.recording_retention_days,
        node_dirs={n: d for n, d in node_dirs.items() if d is not None},
    )

    def recorder_on(ami: AMIClient, node: str | None) -> CallRecorder:
        made = CallRecorder(
            ami,
            store,
            app[CALLLOG],
            pbx_dir=settings.recording_pbx_dir,
            fmt=settings.recording_format,
            node=node,
        )
        made.on_finished.append(keeper.kick)
        return made

    app[RECORDER] = recorder_on(app[AMI], None)
    amis = {
        name: AMIClient(
            node.ami_host,
            int(node.ami_port or 0),
            settings.ami_user,
            settings.ami_secret,
            events="off",
        )
        for name, node in recorded.items()
    }
    app[SITE_RECORDERS] = {name: recorder_on(ami, name) for name, ami in amis.items()}
    for name in sorted(set(settings.site) - set(recorded)):
        log.warning(
            "site_node_not_recorded", node=name, hint="CENTRALA_SITE: ami_port and recording_dir"
        )
    for ami in amis.values():
        await ami.start()
    app[RECORDINGS] = RecordingFiles(store, directory, keeper.node_dirs)
    # Recordings of calls that ended while `serve` was away are finished in the first round.
    keeping = asyncio.create_task(keeper.run(settings.recording_sweep_seconds))
    keeper.kick()
    yield
    await stopped(keeping)
    for ami in amis.values():
        await ami.stop()


# A cancelled task's own clean-up (a last write, a goodbye to a server) takes well under this.
CANCEL_AGAIN_SECONDS = 5.0
# How long a stop lets a loop's run under way finish before cancelling it.
JOB_STOP_SECONDS = 10.0


async def stopped(task: asyncio.Task[Any]) -> None:
    """``task`` cancelled and awaited; cancelled again if it still runs CANCEL_AGAIN_SECONDS
    on. A library's ``asyncio.wait_for`` (Python 3.11) swallows a cancel that lands as its
    awaitable finishes, and a loop that missed its one cancel would hold a stopping `serve`
    for ever; a task finishing its clean-up is not interrupted before then."""
    while not task.done():
        task.cancel()
        await asyncio.wait({task}, timeout=CANCEL_AGAIN_SECONDS)
        if not task.done():
            log.warning("task_ignored_cancel", task=task.get_name())
    with contextlib.suppress(asyncio.CancelledError):
        task.result()


@contextlib.asynccontextmanager
async def _every(
    seconds: float,
    job: Callable[[], Awaitable[None]],
    failed: str,
    active: asyncio.Event,
    stopping: asyncio.Event | None = None,
) -> AsyncIterator[None]:
    """``job`` run once ``active`` (this instance owns its node, or there are no nodes),
    and then every ``seconds`` (0: never) while the context lasts; a failure other than a
    database outage is logged as ``failed`` and the next run comes. At the end a run under
    way is given JOB_STOP_SECONDS to finish (``stopping`` is set: a long job stops taking
    new work) before it is cancelled: a database write cancelled half-way can leave SQLite's
    connections waiting on each other (seen as a `serve` that never stopped)."""
    stopping = stopping or asyncio.Event()
    running = asyncio.Event()

    async def run() -> None:
        await active.wait()
        while not stopping.is_set():
            running.set()
            try:
                await job()
            except Exception as exc:
                if not is_outage(exc):
                    log.exception(failed)
            finally:
                running.clear()
            if not stopping.is_set():
                await asyncio.sleep(seconds)

    task = asyncio.create_task(run(), name=failed.removesuffix("_failed")) if seconds > 0 else None
    try:
        yield
    finally:
        stopping.set()
        if task is not None:
            if running.is_set():
                await asyncio.wait({task}, timeout=JOB_STOP_SECONDS)
            await stopped(task)


async def procedures_ctx(app: web.Application) -> AsyncIterator[None]:
    """Procedural call tasks generated from the CRM on a schedule (a payment to check, a
    document about to expire, ...): the first run soon after start."""
    from models.calllog import now
    from models.procedures import generate_procedures

    async def generate() -> None:
        result = await generate_procedures(app[SESSIONS], now())
        log.info("procedures_generated", summary=result.summary())

    async with _every(
        app[SETTINGS].procedures_generate_seconds,
        generate,
        "procedures_generate_failed",
        active_of(app),
    ):
        yield


async def callbacks_ctx(app: web.Application) -> AsyncIterator[None]:
    """Due callback tasks copied into their queue's standing callbacks campaign (made when a
    queue first has one) on a schedule, for the agent dialler to work: the first run at
    start."""
    from models.callback_tasks import feed_callbacks
    from models.calllog import now

    async def feed() -> None:
        result = await feed_callbacks(app[SESSIONS], now())
        if result.fed or result.left:
            log.info("callbacks_fed", summary=result.summary())

    async with _every(
        app[SETTINGS].callbacks_feed_seconds, feed, "callbacks_feed_failed", active_of(app)
    ):
        yield


async def scheduled_publish_ctx(app: web.Application) -> AsyncIterator[None]:
    """Flow versions scheduled for a time (new hours from Monday 08:00) published when it
    comes, or refused when another version went live since they were scheduled."""
    from models.calllog import now
    from models.flows import publish_due

    async def publish() -> None:
        for outcome in await publish_due(app[SESSIONS], now()):
            log.info(
                "scheduled_version_published" if outcome.published else "scheduled_version_refused",
                flow=outcome.name,
                flow_version=outcome.version,
            )

    async with _every(
        app[SETTINGS].scheduled_publish_seconds, publish, "scheduled_publish_failed", active_of(app)
    ):
        yield


async def report_mail_ctx(app: web.Application) -> AsyncIterator[None]:
    """The reports e-mailed each morning (yesterday's, at CENTRALA_REPORTS_MAIL_AT), and the
    failed sendings tried again; nothing without recipients."""
    from centrala.mailing import morning_mail, smtp_send
    from models.calllog import now
    from usecases.morning_reports import mail_due

    settings = app[SETTINGS]
    mail = morning_mail(settings)
    if not mail.recipients:
        yield
        return
    sending = smtp_send(settings)

    async def check() -> None:
        await mail_due(app[SESSIONS], mail, sending, now())

    async with _every(
        settings.reports_mail_check_seconds, check, "report_mail_failed", active_of(app)
    ):
        yield


async def notices_ctx(app: web.Application) -> AsyncIterator[None]:
    """Notices to clients: the SMS gateway bound (when one is set), the day's birthday
    greetings and expiring-document notices queued once a day (again after a restart: each
    has its key), the SMS of the Viber messages that failed or had no report in time
    queued, and the due messages sent."""
    from datetime import UTC, datetime
    from zoneinfo import ZoneInfo

    from centrala.noticing import notice_setup, sms_gateway
    from models.notices import backlog
    from sms.smpp import SmscLoginRefused
    from usecases.notices import birthdays, deliver, document_expiries, fallbacks

    settings = app[SETTINGS]
    gateway = sms_gateway(settings, app[SESSIONS]) if settings.sms_smpp_host else None
    if gateway is not None:
        try:
            await gateway.start()  # an SMSC that is down is bound later, by itself
        except SmscLoginRefused as exc:
            log.error("sms_login_refused", error=str(exc))
            gateway = None
    setup = notice_setup(settings, gateway)
    app[NOTICE_SETUP] = setup  # the API's previews and the Viber webhook's fallbacks
    if settings.viber_base_url and not settings.viber_callback_token:
        log.warning(
            "viber_without_reports",
            hint="no CENTRALA_VIBER_CALLBACK_TOKEN: Infobip has no webhook to report to, so "
            "every Viber message also gets its SMS once its validity is over",
        )
    zone = ZoneInfo(setup.policy.default_zone)
    queued_for: list[object] = [None]
    stopping = asyncio.Event()  # a stop: the sending under way takes no new messages
    app[OUTBOX] = {}

    async def check() -> None:
        today = datetime.now(zone).date()
        if queued_for[0] != today:
            if settings.notices_birthdays:
                await birthdays(app[SESSIONS], setup, today, datetime.now(UTC))
            if settings.notices_documents:
                days = settings.notices_document_days
                await document_expiries(app[SESSIONS], setup, today, datetime.now(UTC), days)
            queued_for[0] = today
        fell_back = await fallbacks(app[SESSIONS], setup, datetime.now(UTC))
        if fell_back.queued or fell_back.skipped:
            log.info("viber_fallbacks", sms=fell_back.queued, skipped=dict(fell_back.skipped))
        done = await deliver(app[SESSIONS], setup, lambda: datetime.now(UTC), stop=stopping)
        if done.sent or done.retried or done.failed:
            log.info("notices_delivered", sent=done.sent, retried=done.retried, failed=done.failed)
        app[OUTBOX].clear()
        app[OUTBOX].update(await backlog(app[SESSIONS]))

    seconds = settings.notices_check_seconds if setup.senders else 0
    try:
        async with _every(seconds, check, "notices_failed", active_of(app), stopping):
            yield
    finally:
        if gateway is not None:
            await gateway.stop()


BOARD_SECONDS = 10.0  # how often the wallboard's written inquiries are read again


async def inquiries_ctx(app: web.Application) -> AsyncIterator[None]:
    """Written inquiries: the inquiries mailboxes read (``CENTRALA_IMAP_*``), and every
    ``CENTRALA_INQUIRIES_CHECK_SECONDS`` (0: never, e.g. on all but one instance) the waiting
    ones given to the free agents of their queues (their desks told), the escalations told
    to their agents (desk and e-mail), and the agents' answers sent by the channel each
    inquiry came in."""
    from datetime import UTC, datetime

    from centrala.inquiring import answer_senders, escalation_teller, read_mailbox
    from usecases.inquiries import (
        board,
        current_rules,
        queue_calendars,
        route,
        send_answers,
        tell_escalations,
    )

    settings = app[SETTINGS]
    senders = answer_senders(settings)
    setup = app[INQUIRY_SETUP]
    tell = escalation_teller(settings, lambda: app.get(WEB))

    boarded = [-BOARD_SECONDS]

    async def check() -> None:
        acd, desk = app.get(ACD_KEY), app.get(WEB)
        if desk is not None and time.monotonic() - boarded[0] >= BOARD_SECONDS:
            # The wallboard's backlog and SLA: every inquiry not closed is read, so not on
            # every check.
            boarded[0] = time.monotonic()
            # The queues' opening hours as the live flow has them (a publish changes them).
            setup.calendars.clear()
            setup.calendars.update(await queue_calendars(app[SESSIONS]))
            _, setup.rules = await current_rules(app[SESSIONS])  # an admin's save
            desk.notifier.inquiries = await board(app[SESSIONS], setup, datetime.now(UTC))
        if acd is not None:  # the waiting inquiries to the free agents, their desks told
            for inquiry_id, agent_id in await route(app[SESSIONS], acd.agents(), datetime.now(UTC)):
                if desk is not None:
                    await desk.notifier.to_agent(agent_id, {"type": "inquiry", "id": inquiry_id})
        await tell_escalations(app[SESSIONS], tell, datetime.now(UTC))
        done = await send_answers(app[SESSIONS], senders, lambda: datetime.now(UTC))
        if done.sent or done.retried or done.failed:
            log.info(
                "inquiry_answers_sent", sent=done.sent, retried=done.retried, failed=done.failed
            )

    # Each inquiries mailbox read by a task of its own (IDLE: mail comes in at once).
    stop = asyncio.Event()
    readers = [
        asyncio.create_task(read_mailbox(app[SESSIONS], setup, box, address, stop))
        for box, address in settings.imap_mailboxes()
    ]
    try:
        async with _every(
            settings.inquiries_check_seconds, check, "inquiries_failed", active_of(app)
        ):
            yield
    finally:
        stop.set()
        for reader in readers:
            reader.cancel()
        await asyncio.gather(*readers, return_exceptions=True)


async def loop_lag_ctx(app: web.Application) -> AsyncIterator[None]:
    """Measures how late the event loop wakes up: a blocked loop delays every call."""
    lags: list[float] = [0.0]
    app[LOOP_LAG] = lags

    async def probe() -> None:
        while True:
            start = time.perf_counter()
            await asyncio.sleep(0.5)
            lags[0] = max(0.0, time.perf_counter() - start - 0.5)

    task = asyncio.create_task(probe())
    yield
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task


def status_sources(app: web.Application) -> StatusSources:
    site_calls = app.get(SITE_CALLS)
    return StatusSources(
        ari=app[ARI],
        ami=app[AMI],
        agi=app[AGI],
        sessions=app[SESSIONS],
        calls=site_calls.calls if site_calls is not None else app[INFOLINE_APP].calls,
        loop_lag=app[LOOP_LAG],
        infoline_app=app[SETTINGS].infoline_app,
        adoption=site_calls or app[INFOLINE_APP],
        journal=app[CALLLOG],
        pbx_records=app[PBX_RECORDS],
        cluster=app.get(NODE_KEEPER),
        site=app.get(SITE_ARI),
    )


def live_sources(app: web.Application) -> LiveSources:
    """What /metrics reads at a scrape: each part once its context has started."""
    links: dict[str, Callable[[], bool]] = {}
    if ARI in app:
        links["ari"] = lambda: app[ARI].connected
    if AMI in app:
        links["ami"] = lambda: app[AMI].connected
    if AGI in app:
        links["agi"] = lambda: app[AGI].listening
    return LiveSources(
        acd=app.get(ACD_KEY),
        dialler=app.get(AGENT_DIALLER),
        links=links,
        loop_lag=app.get(LOOP_LAG),
        outbox=app.get(OUTBOX),
        node=_node_owned(app.get(NODE_KEEPER)),
    )


def _owner_url(app: web.Application) -> str:
    """The web address of the instance that owns this one's node, as the last look read it."""
    keeper = app.get(NODE_KEEPER)
    seen = keeper.current() if keeper is not None else {}
    owner = next(
        (n["owner"] for n in seen.get("nodes") or [] if n["name"] == seen.get("node")), None
    )
    url = next((i["web_url"] for i in seen.get("instances") or [] if i["id"] == owner), None)
    return str(url or "not known yet")


def _node_owned(keeper: NodeKeeper | None) -> tuple[str, Callable[[], bool]] | None:
    return None if keeper is None else (keeper.node, keeper.owned.is_set)


MAX_BODY_BYTES = 4_100_000


def recording_installer(settings: Settings) -> Callable[[bytes, str, str], Awaitable[str]]:
    """What an uploaded prompt recording goes through: sox in a thread (checked, converted,
    installed into Asterisk's sounds directory); a bad file is the uploader's error (422)."""
    from centrala.prompts import BadRecording, PromptError, install_recording
    from usecases.flow_editing import FlowEditError

    async def install(data: bytes, prompt: str, lang: str) -> str:
        try:
            return await asyncio.to_thread(
                install_recording,
                data,
                prompt,
                lang,
                settings.data_dir / "sounds",
                settings.effective_prompts_dir,
            )
        except BadRecording as exc:
            raise FlowEditError("bad_audio", f"the recording: {exc}", status=422) from exc
        except (PromptError, OSError) as exc:
            raise FlowEditError(
                "prompts_failed", f"the recording could not be installed: {exc}", status=502
            ) from exc

    return install


def prompt_installer(settings: Settings) -> Callable[[Any], Awaitable[None]]:
    """What publishing a flow calls to make its prompts heard: espeak-ng and sox in a thread
    (they take seconds, the event loop carries calls), into Asterisk's sounds directory."""
    from centrala.prompts import PromptError, install_prompts
    from usecases.flow_editing import FlowEditError

    async def install(flow: Any) -> None:
        try:
            installed = await asyncio.to_thread(
                install_prompts, flow, settings.data_dir / "sounds", settings.effective_prompts_dir
            )
        except (PromptError, OSError) as exc:
            raise FlowEditError(
                "prompts_failed",
                f"the prompts could not be made, nothing was published: {exc}",
                status=502,
            ) from exc
        if installed:
            log.info("prompts_installed", flow=flow.name, files=len(installed))

    return install


# The pages a standby sends to the owner: the desk and the wallboard would show this
# instance's ACD, which serves nobody while it stands by.
STANDBY_REDIRECTS = ("/desk", "/wallboard")


@web.middleware
async def standby_pages(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """On a standby, the agents' desk and the wallboard pages answer with a redirect to the
    owner's (as the last look at the leases read its address), when it is known."""
    app = request.app
    if (
        request.method == "GET"
        and request.path in STANDBY_REDIRECTS
        and NODE_KEEPER in app
        and not active_of(app).is_set()
    ):
        owner = _owner_url(app)
        if owner.startswith(("http://", "https://")):
            raise web.HTTPTemporaryRedirect(owner + request.path_qs)
    return await handler(request)


def build_app(settings: Settings) -> web.Application:
    app = web.Application(
        middlewares=[
            errors,
            api_guard(settings.effective_api_token, settings.web_trusted_proxy),
            body_deadline(settings.web_body_timeout),
            standby_pages,
        ],
        # The largest body is a prompt's recording (centrala.prompts.MAX_RECORDING_BYTES,
        # 4 MB) or a whole flow put as a draft (1 MB); body_deadline bounds how long any body
        # may take to arrive.
        client_max_size=MAX_BODY_BYTES,
    )
    app[SETTINGS] = settings
    app[ACTIVE] = asyncio.Event()  # one instance: active at once; several: the node's owner
    if settings.node is None:
        app[ACTIVE].set()
    app[METRICS] = CentralaMetrics(lambda: live_sources(app))
    if settings.metrics_access == "open" and not is_loopback(settings.web_host):
        log.warning(
            "metrics_open_beyond_loopback",
            web_host=settings.web_host,
            hint="GET /metrics answers anyone who reaches this port: keep it on a private "
            "network, or set CENTRALA_METRICS_ACCESS=token",
        )
    app[PROMPTS] = prompt_installer(settings)
    app[PROMPT_UPLOAD] = recording_installer(settings)
    # AMI before the Stasis apps: the info line records calls through it from the first one.
    app.cleanup_ctx.extend(
        [
            loop_lag_ctx,
            database_ctx,
            cluster_ctx,
            ami_ctx,
            recording_ctx,
            ari_ctx,
            agi_ctx,
            procedures_ctx,
            callbacks_ctx,
            scheduled_publish_ctx,
            report_mail_ctx,
            notices_ctx,
            inquiries_ctx,
        ]
    )
    desk_config = DeskConfig(
        web_secret=settings.effective_web_secret(),
        session_seconds=settings.session_hours * 3600,
        region=settings.default_region,
        disposition_required=settings.disposition_required,
        secure_cookies=settings.web_secure_cookies,
        trusted_proxy=settings.web_trusted_proxy,
    )
    app.cleanup_ctx.append(desk_ctx(desk_config, CRM_KEY, ACD_KEY, DESK, INFOLINE, OUTBOUND))
    app.router.add_routes([status_route(status_sources)])
    app.router.add_routes(
        metrics_route(lambda a: a[METRICS], settings.metrics_access, settings.effective_api_token)
    )
    app.router.add_routes(api_routes(DESK, ACD_KEY, INFOLINE, OUTBOUND, AGENT_DIALLER))
    app.router.add_routes(campaign_routes(CAMPAIGNS, settings.default_region))
    app.router.add_routes(report_routes(SESSIONS))
    app.router.add_routes(calllog_routes(SESSIONS))
    app.router.add_routes(flow_routes(SESSIONS, settings.default_region, INFOLINE))
    app.router.add_routes(admin_routes(SESSIONS, DESK))
    app.router.add_routes(survey_edit_routes(SESSIONS))
    app.router.add_routes(queue_report_routes(SESSIONS))
    app.router.add_routes(campaign_report_routes(SESSIONS))
    app.router.add_routes(agent_report_routes(SESSIONS))
    app.router.add_routes(unsubscribe_routes(SESSIONS, settings.effective_web_secret()))
    app.router.add_routes(notice_routes(SESSIONS))
    app.router.add_routes(notice_report_routes(SESSIONS))
    app.router.add_routes(
        letters_routes(
            SESSIONS,
            LetterConfig(sender_lines(settings.letters_sender), settings.notice_policy),
        )
    )
    if settings.viber_callback_token:
        app.router.add_routes(viber_hook_routes(SESSIONS, settings.viber_callback_token))
    app[INQUIRY_SETUP] = inquiry_setup(settings)
    app.router.add_routes(inquiry_routes(SESSIONS))
    app.router.add_routes(contact_routes(SESSIONS, INQUIRY_SETUP, settings.effective_web_secret()))

    async def from_meta(messages: Sequence[MetaMessage]) -> None:
        await receive_meta(app[SESSIONS], app[INQUIRY_SETUP], messages)

    # None unless the webhook is configured.
    app.router.add_routes(meta_routes(settings, on_messages=from_meta))
    setup_desk(app)
    return app


async def run(settings: Settings) -> None:
    settings.effective_api_token()  # made before the first request, readable by the CLI
    runner = web.AppRunner(
        build_app(settings),
        handle_signals=False,
        access_log=None,
        **handler_args(settings.web_header_timeout),
    )
    await runner.setup()
    site = CappedSite(
        runner,
        settings.web_host,
        settings.web_port,
        max_connections=settings.web_max_connections,
    )
    await site.start()
    log.info("serving", web=f"http://{settings.web_host}:{settings.web_port}")
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        slow = loop.call_later(STOP_REPORT_SECONDS, _report_running_tasks)
        try:
            await runner.cleanup()
        finally:
            slow.cancel()


STOP_REPORT_SECONDS = 15.0


def _report_running_tasks() -> None:
    """A stop that takes long says what it still waits on: each task's name and where it
    is, for the operator (and the test) to see why."""
    for task in asyncio.all_tasks():
        log.warning("stop_slow", task=task.get_name(), at=_awaiting(task.get_coro())[-10:])


def _awaiting(coro: object) -> list[str]:
    """The chain of coroutines ``coro`` awaits, outermost first (a task's own stack shows
    only its outermost frame while it waits)."""
    where: list[str] = []
    while coro is not None and len(where) < 100:
        frame = getattr(coro, "cr_frame", None) or getattr(coro, "ag_frame", None)
        if frame is not None:
            where.append(f"{frame.f_code.co_filename}:{frame.f_lineno} {frame.f_code.co_name}")
        awaited = getattr(coro, "cr_await", None) or getattr(coro, "ag_await", None)
        if awaited is None and frame is not None:
            # An async context manager's exit awaits its generator's athrow, which does not
            # say whose: the generator is the manager's (a cleanup context of ours).
            awaited = getattr(frame.f_locals.get("self"), "gen", None)
        coro = awaited
    return where
