"""`centrala serve`: one asyncio process running the ARI apps, the FastAGI server, the AMI
client and the web API. This module only wires the parts together; each part's lifetime is an
aiohttp cleanup context, so start-up and shutdown run in one place, in order."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import AsyncIterator

import structlog
from aiohttp import web
from sqlalchemy import text

from agi.infoline import InfolineAGI
from agi.server import FastAGIServer
from ari_app.ami import AMIClient
from ari_app.ari import ARIClient, ARIError, Event
from ari_app.infoline import InfolineApp
from centrala.settings import Settings
from models.calllog import CallLog
from models.db import create_engine, session_factory, upgrade_async

log = structlog.get_logger(__name__)

SETTINGS = web.AppKey("settings", Settings)
CALLLOG = web.AppKey("calllog", CallLog)
ARI = web.AppKey("ari", ARIClient)
AMI = web.AppKey("ami", AMIClient)
AGI = web.AppKey("agi", FastAGIServer)
INFOLINE = web.AppKey("infoline", InfolineApp)
LOOP_LAG = web.AppKey("loop_lag", list[float])


async def database_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    if settings.migrate_on_start:
        await upgrade_async(settings)
    engine = create_engine(settings.effective_database_url)
    app[CALLLOG] = CallLog(session_factory(engine), settings.default_region)
    yield
    await engine.dispose()


async def ari_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    ari = ARIClient(
        settings.ari_url, settings.ari_user, settings.ari_password, [settings.infoline_app]
    )
    infoline = InfolineApp(
        ari, app[CALLLOG], name=settings.infoline_app, greeting=settings.greeting_sound
    )

    async def on_event(event: Event) -> None:
        with structlog.contextvars.bound_contextvars():
            await infoline.on_event(event)

    ari.on_event(on_event)
    ari.on_connect(infoline.reconcile)
    app[ARI], app[INFOLINE] = ari, infoline
    await ari.start()
    yield
    await ari.stop()


async def agi_ctx(app: web.Application) -> AsyncIterator[None]:
    settings = app[SETTINGS]
    server = FastAGIServer(
        {"infoline": InfolineAGI(app[CALLLOG], settings.greeting_sound)},
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


def build_app(settings: Settings) -> web.Application:
    app = web.Application()
    app[SETTINGS] = settings
    app.cleanup_ctx.extend([loop_lag_ctx, database_ctx, ari_ctx, agi_ctx, ami_ctx])
    app.router.add_get("/status", status)
    return app


async def run(settings: Settings) -> None:
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
