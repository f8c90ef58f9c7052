"""``GET /status``: is every part up (ARI and its Stasis apps, AMI, FastAGI, the database,
the event loop's lag). The parts are injected as small Protocols."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Mapping, Sized
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import structlog
from aiohttp import web
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.errors import UpstreamError

log = structlog.get_logger(__name__)


class ARIStatus(Protocol):
    @property
    def connected(self) -> bool: ...
    @property
    def connects(self) -> int: ...
    @property
    def ws_local_port(self) -> int | None: ...
    async def request(self, method: str, path: str) -> Any: ...


class AMIStatus(Protocol):
    @property
    def connected(self) -> bool: ...


class AGIStatus(Protocol):
    @property
    def port(self) -> int: ...
    @property
    def active_sessions(self) -> int: ...


class Adoption(Protocol):
    @property
    def ready(self) -> bool: ...
    @property
    def adopted(self) -> int: ...


class Journal(Protocol):
    @property
    def degraded(self) -> bool: ...
    @property
    def journal_pending(self) -> int: ...


class PbxRecords(Protocol):
    @property
    def file_found(self) -> bool | None: ...
    @property
    def recorded(self) -> int: ...
    @property
    def taken_until(self) -> datetime | None: ...


class Cluster(Protocol):
    """This instance's part among several (``usecases.cluster.NodeKeeper``)."""

    @property
    def role(self) -> str: ...
    def current(self) -> dict[str, Any]: ...


@dataclass
class StatusSources:
    ari: ARIStatus
    ami: AMIStatus
    agi: AGIStatus
    sessions: async_sessionmaker[AsyncSession]
    calls: Sized  # the info line's calls in progress
    loop_lag: list[float]  # seconds, [0] kept current by the loop probe
    infoline_app: str  # the Stasis app that must be registered
    adoption: Adoption  # what a previous process left live is adopted
    journal: Journal | None = None  # the call log's write journal (database outages)
    pbx_records: PbxRecords | None = None  # calls reconciled from Asterisk's CDR
    cluster: Cluster | None = None  # several instances: who owns which node
    # The other nodes this instance owns with its own (CENTRALA_SITE), by name.
    site: Mapping[str, ARIStatus] | None = None


def status_route(sources: Callable[[web.Application], StatusSources]) -> web.RouteDef:
    async def status(request: web.Request) -> web.Response:
        src = sources(request.app)
        ari, ami, agi = src.ari, src.ami, src.agi
        apps: list[str] = []
        if ari.connected:
            with contextlib.suppress(UpstreamError):
                apps = [a["name"] for a in await ari.request("GET", "/applications")]
        db_ok = True
        try:
            async with src.sessions() as session:
                await session.execute(text("SELECT 1"))
        except Exception as exc:  # any driver error means "not OK" here
            db_ok = False
            log.debug("status_db_failed", error=str(exc))  # the call log says it once
        journal = src.journal
        site = src.site or {}
        others_ok = (
            ari.connected and src.infoline_app in apps and ami.connected and src.adoption.ready
        )
        # "ok" is every part up. With only the database away and the journal taking the
        # writes, calls are still answered: degraded, answered 200, not dead (503).
        ok = (
            others_ok
            and all(node.connected for node in site.values())
            and db_ok
            and not (journal is not None and journal.degraded)
        )
        serving = others_ok and (db_ok or journal is not None)
        db: dict[str, Any] = {"ok": db_ok}
        if journal is not None:
            db["degraded"] = not db_ok or journal.degraded
            db["journal"] = journal.journal_pending
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
            "db": db,
            "calls_in_progress": len(src.calls),
            "calls_adopted": src.adoption.adopted,
            "adopted_ready": src.adoption.ready,
            "loop_lag_ms": round(src.loop_lag[0] * 1000, 1),
        }
        if site:
            # The site's other nodes: a node away leaves this one serving (200, ok false).
            body["site"] = {
                name: {"connected": node.connected, "connects": node.connects}
                for name, node in sorted(site.items())
            }
        if src.pbx_records is not None:
            until = src.pbx_records.taken_until
            body["cdr"] = {
                "file_found": src.pbx_records.file_found,
                "calls_recorded": src.pbx_records.recorded,
                "taken_until": None if until is None else until.isoformat(),
            }
        if src.cluster is not None:
            body["cluster"] = src.cluster.current()  # as the lease's last look read them
            if src.cluster.role != "owner":
                # A standby serves nothing yet: a load balancer sends the desks elsewhere.
                body["standby"] = "another instance owns this node; taken over if it dies"
        if serving and not ok:
            body["degraded"] = (
                "database away: calls answered, writes journaled"
                if not db_ok or (journal is not None and journal.degraded)
                else "a node of the site is away: its calls are not served"
            )
        return web.json_response(body, status=200 if serving else 503)

    return web.get("/status", status)
