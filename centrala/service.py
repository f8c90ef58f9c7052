"""`centrala serve`: one asyncio process running the ARI apps, the FastAGI server, the AMI
client and the web API. This module only wires the parts together; each part's lifetime is an
aiohttp cleanup context, so start-up and shutdown run in one place, in order."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import signal
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import structlog
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from agi.infoline import InfolineAGI
from agi.server import FastAGIServer
from agi.survey import SurveyAGI
from ari_app.agents import AgentDesk, AgentDeskError
from ari_app.ami import AMIClient
from ari_app.ari import ARIClient, ARIError, Event
from ari_app.campaigns import CampaignDialler
from ari_app.infoline import CallControlError, InfolineApp
from centrala.settings import Settings
from core.acd import ACD
from core.surveys.validate import SurveyError, check_survey
from dialplan.validate import load_flow
from models.calllog import CallLog
from models.campaigns import CampaignError, CampaignStore
from models.crm import CRM
from models.db import create_engine, session_factory, upgrade_async
from models.flows import active_flow, apply_flow
from models.surveys import active_survey, apply_survey
from usecases.surveying import SurveyLog
from web import desk_ctx, setup_desk
from web.api import routes as api_routes
from web.campaign_api import routes as campaign_routes
from web.survey_api import Sessions
from web.survey_api import routes as report_routes

log = structlog.get_logger(__name__)

SETTINGS = web.AppKey("settings", Settings)
CALLLOG = web.AppKey("calllog", CallLog)
CRM_KEY = web.AppKey("crm", CRM)
ARI = web.AppKey("ari", ARIClient)
AMI = web.AppKey("ami", AMIClient)
AGI = web.AppKey("agi", FastAGIServer)
ACD_KEY = web.AppKey("acd", ACD)
DESK = web.AppKey("desk", AgentDesk)
INFOLINE = web.AppKey("infoline", InfolineApp)
SURVEYS = web.AppKey("surveys", SurveyLog)
CAMPAIGNS = web.AppKey("campaigns", CampaignStore)
DIALLER = web.AppKey("dialler", CampaignDialler)
LOOP_LAG = web.AppKey("loop_lag", list[float])
SESSIONS: web.AppKey[Sessions] = web.AppKey("sessions")  # for reports: reads, no call state


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.migrate_on_start:
        await upgrade_async(settings.effective_database_url)
    engine = create_engine(settings.effective_database_url)
    sessions = session_factory(engine)
    app[SESSIONS] = sessions
    app[CALLLOG] = CallLog(sessions, settings.default_region)
    app[CRM_KEY] = CRM(sessions, before_write=app[CALLLOG].flush)
    if await active_flow(sessions, "infoline") is None:
        # A fresh install speaks the shipped flow until an admin applies their own.
        flow = load_flow(settings.flow_file.read_text(), str(settings.flow_file))
        version = await apply_flow(sessions, flow, created_by="serve (fresh install)")
        log.info("flow_applied", flow=flow.name, version=version, file=str(settings.flow_file))
    app[SURVEYS] = SurveyLog(sessions, before_write=app[CALLLOG].flush)
    app[CAMPAIGNS] = CampaignStore(sessions)
    await apply_missing_surveys(settings, sessions)
    yield
    await app[CALLLOG].aclose()
    await engine.dispose()


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
            stored = await apply_survey(sessions, survey)
            log.info("survey_applied", survey=survey.name, version=stored.version, file=str(path))


async def ari_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    ari = ARIClient(
        settings.ari_url,
        settings.ari_user,
        settings.ari_password,
        [settings.infoline_app, settings.survey_app],
    )
    acd = ACD()
    desk = AgentDesk(ari, app[CRM_KEY], acd, settings.infoline_app)
    infoline = InfolineApp(
        ari,
        app[CALLLOG],
        app[CRM_KEY],
        desk,
        acd,
        name=settings.infoline_app,
        region=settings.default_region,
        survey=settings.postcall_survey,
    )

    dialler = CampaignDialler(
        ari,
        app[CALLLOG],
        app[SURVEYS],
        app[CAMPAIGNS],
        app=settings.survey_app,
        dial=settings.outbound_dial,
        caller_id=settings.outbound_caller_id,
        tick_seconds=settings.campaign_tick_seconds,
    )

    async def on_event(event: Event) -> None:
        with structlog.contextvars.bound_contextvars():
            if event.get("application") == settings.survey_app:
                await dialler.on_event(event)
            else:
                await infoline.on_event(event)

    ari.on_event(on_event)
    ari.on_connect(infoline.reconcile)
    ari.on_connect(dialler.reconcile)
    app[ARI], app[ACD_KEY], app[DESK], app[INFOLINE] = ari, acd, desk, infoline
    app[DIALLER] = dialler
    await ari.start()
    dialler.start()
    yield
    await dialler.stop()
    await desk.close()
    await ari.stop()


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
    )
    await server.start()
    app[AGI] = server
    yield
    await server.stop()


async def ami_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    ami = AMIClient(settings.ami_host, settings.ami_port, settings.ami_user, settings.ami_secret)
    await ami.start()
    app[AMI] = ami
    yield
    await ami.stop()


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


async def status(request: web.Request) -> web.Response:
    app = request.app
    ari, ami, agi = app[ARI], app[AMI], app[AGI]
    apps: list[str] = []
    if ari.connected:
        with contextlib.suppress(ARIError):
            apps = [a["name"] for a in await ari.request("GET", "/applications")]
    db_ok = True
    try:
        async with app[CALLLOG].sessions() as session:
            await session.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means "not OK" here
        db_ok = False
        log.warning("status_db_failed", error=str(exc))
    ok = ari.connected and app[SETTINGS].infoline_app in apps and ami.connected and db_ok
    body = {
        "ok": ok,
        "ari": {
            "connected": ari.connected,
            "connects": ari.connects,
            "ws_local_port": ari.ws_local_port,
            "apps": apps,
        },
        "ami": {"connected": ami.connected},
        "agi": {"port": agi.port, "active_sessions": agi.active_sessions},
        "db": {"ok": db_ok},
        "calls_in_progress": len(app[INFOLINE].calls),
        "loop_lag_ms": round(app[LOOP_LAG][0] * 1000, 1),
    }
    return web.json_response(body, status=200 if ok else 503)


@web.middleware
async def api_guard(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """Bearer token on /api; domain errors as JSON with a stable error_id; Asterisk down
    is 503, not 500."""
    if request.path.startswith("/api/") and request.path != "/api/openapi.json":
        expected = request.app[SETTINGS].effective_api_token()
        given = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(given.encode(), expected.encode()):
            return web.json_response(
                {"error_id": "unauthorized", "message": "missing or wrong API token"}, status=401
            )
    try:
        return await handler(request)
    except (AgentDeskError, CallControlError, CampaignError) as exc:
        return web.json_response({"error_id": exc.error_id, "message": str(exc)}, status=exc.status)
    except ARIError as exc:
        status = 503 if exc.error_id == "pbx_unavailable" else 502
        return web.json_response({"error_id": exc.error_id, "message": str(exc)}, status=status)


def build_app(settings: Settings) -> web.Application:
    app = web.Application(middlewares=[api_guard], client_max_size=64 * 1024)
    app[SETTINGS] = settings
    app.cleanup_ctx.extend([loop_lag_ctx, database_ctx, ari_ctx, agi_ctx, ami_ctx])
    app.cleanup_ctx.append(desk_ctx(SETTINGS, CRM_KEY, ACD_KEY, DESK, INFOLINE))
    app.router.add_get("/status", status)
    app.router.add_routes(api_routes(DESK, ACD_KEY, INFOLINE))
    app.router.add_routes(campaign_routes(CAMPAIGNS, settings.default_region))
    app.router.add_routes(report_routes(SESSIONS))
    setup_desk(app)
    return app


async def run(settings: Settings) -> None:
    settings.effective_api_token()  # made before the first request, readable by the CLI
    runner = web.AppRunner(build_app(settings), handle_signals=False, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.web_host, settings.web_port)
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
        await runner.cleanup()
