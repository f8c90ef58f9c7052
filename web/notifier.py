"""Pushes to the browsers: each agent's open desktops (screen-pops, call ended, own state)
and the supervisors' wallboards. One WebSocket set per agent; a slow or dead socket is
dropped, never waited for."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import time
from collections import deque
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import structlog
from aiohttp import web

from core.acd import ACD, AgentStatus
from core.desk.forms import DISPOSITION_PAUSE, day_figures, wallboard
from core.desk.screenpop import build_screenpop
from core.errors import AgentDeskError
from models.db import is_outage
from web.ports import AgentCommands, DeskNotice
from web.store import DeskStore

log = structlog.get_logger(__name__)

SEND_TIMEOUT = 2.0


class Notifier:
    def __init__(
        self, store: DeskStore, acd: ACD, desk: AgentCommands, *, disposition_required: bool
    ) -> None:
        self.store = store
        self.acd = acd
        self.desk = desk
        self.disposition_required = disposition_required
        self.desks: dict[str, set[web.WebSocketResponse]] = {}
        self.wallboards: set[web.WebSocketResponse] = set()
        self.pending: dict[str, str] = {}  # agent id -> call id awaiting its disposition
        self.live: dict[str, str] = {}  # agent id -> call id they are offered or on
        # The agent campaigns' live figures (the dialler's), when `serve` runs one.
        self.campaigns: Callable[[], list[dict[str, Any]]] | None = None
        # The written inquiries' backlog and SLA, as `serve`'s inquiries loop last read it.
        self.inquiries: dict[str, Any] | None = None
        # Several instances: the nodes, their owners and the instances, as last read.
        self.cluster: dict[str, Any] | None = None
        # Agent campaigns' calls the desk heard of: their disposition is a campaign's.
        self.campaign_calls: deque[str] = deque(maxlen=10_000)
        self._tasks: set[asyncio.Task[None]] = set()
        self._last: dict[str, asyncio.Task[None]] = {}  # agent id -> their latest news
        self._ticker: asyncio.Task[None] | None = None
        self._figures: Any = None  # the day's figures as last read
        self._figures_failing = False

    # ---- sockets --------------------------------------------------------------------------

    def add_desk(self, agent_id: str, ws: web.WebSocketResponse) -> None:
        self.desks.setdefault(agent_id, set()).add(ws)

    def remove_desk(self, agent_id: str, ws: web.WebSocketResponse) -> None:
        sockets = self.desks.get(agent_id)
        if sockets is not None:
            sockets.discard(ws)
            if not sockets:
                self.desks.pop(agent_id, None)

    async def _send(self, ws: web.WebSocketResponse, message: dict[str, Any]) -> bool:
        if ws.closed:
            return False
        try:
            async with asyncio.timeout(SEND_TIMEOUT):
                await ws.send_json(message)
            return True
        except (ConnectionError, TimeoutError, RuntimeError):
            with contextlib.suppress(Exception):
                await ws.close()
            return False

    async def to_agent(self, agent_id: str, message: dict[str, Any]) -> None:
        for ws in list(self.desks.get(agent_id, ())):
            if not await self._send(ws, message):
                self.remove_desk(agent_id, ws)

    # ---- news from the info line ----------------------------------------------------------

    def on_notice(self, notice: DeskNotice) -> None:
        if notice.facts and notice.facts.get("campaign") and notice.kind == "connected":
            self.campaign_calls.append(notice.call_id)
        # An agent's news is handled in the order it came: each reads the call's rows first,
        # and an "offered" pop that finished after "connected" left the desk showing an
        # incoming call the agent was already on.
        previous = self._last.get(notice.agent_id)
        task = asyncio.create_task(self._handle_after(previous, notice))
        self._last[notice.agent_id] = task
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        task.add_done_callback(functools.partial(self._forget, notice.agent_id))

    def _forget(self, agent_id: str, task: asyncio.Task[None]) -> None:
        if self._last.get(agent_id) is task:
            del self._last[agent_id]

    async def _handle_after(self, previous: asyncio.Task[None] | None, notice: DeskNotice) -> None:
        if previous is not None:
            await asyncio.wait([previous])  # its failure is its own (logged there)
        await self._handle(notice)

    async def _handle(self, notice: DeskNotice) -> None:
        try:
            if notice.kind in ("offered", "connected"):
                self.live[notice.agent_id] = notice.call_id
                if (
                    notice.kind == "connected"
                    and self.disposition_required
                    and notice.agent_id in self.desks
                ):
                    # Only agents working with a desktop open can enter a disposition.
                    # Takes effect after the call and its wrap-up: the ACD then leaves the
                    # agent paused until the disposition is in (see save_disposition).
                    with contextlib.suppress(AgentDeskError):
                        self.desk.pause(notice.agent_id, DISPOSITION_PAUSE)
                    self.pending[notice.agent_id] = notice.call_id
                await self.push_pop(notice)
                await self.to_agent(notice.agent_id, self.agent_state(notice.agent_id))
            elif notice.kind in ("ended", "missed"):
                if self.live.get(notice.agent_id) == notice.call_id:
                    self.live.pop(notice.agent_id, None)
                await self.to_agent(
                    notice.agent_id,
                    {
                        "type": "call_ended",
                        "call_id": notice.call_id,
                        "missed": notice.kind == "missed",
                        "disposition_required": self.pending.get(notice.agent_id) == notice.call_id,
                    },
                )
        except Exception:
            log.exception("desk_notice_failed", kind=notice.kind, call_id=notice.call_id)

    async def push_pop(self, notice: DeskNotice) -> None:
        if notice.agent_id not in self.desks:
            return
        rows = await self.store.pop_rows(notice.call_id, notice.facts)
        if rows is None:
            return
        pop = build_screenpop(rows, notice.kind, datetime.now(UTC).date())
        await self.to_agent(
            notice.agent_id,
            {"type": "screenpop", "event_at": notice.at, "sent_at": time.time(), "pop": pop},
        )

    # ---- states and the wallboard, once a second ------------------------------------------

    def agent_state(self, agent_id: str) -> dict[str, Any]:
        snap = self.acd.agent_snapshot(agent_id, time.monotonic())
        status = snap["status"] if snap else str(AgentStatus.LOGGED_OUT)
        return {
            "type": "state",
            "status": status,
            "seconds": round(snap["seconds_in_status"]) if snap else 0,
            "reason": snap["pause_reason"] if snap else None,
            "pending_disposition": self.pending.get(agent_id),
            "pending_campaign": self.pending.get(agent_id) in self.campaign_calls,
            "live_call": self.live.get(agent_id),
        }

    async def wallboard(self) -> dict[str, Any]:
        midnight = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)
        try:
            self._figures = day_figures(await self.store.day(midnight))
            self._figures_failing = False
        except Exception as exc:
            # The database is away: the day's figures as last read, the agents live.
            if not is_outage(exc) or self._figures is None:
                raise
            if not self._figures_failing:
                self._figures_failing = True
                log.warning("wallboard_figures_as_last_read")
        figures = self._figures
        snapshot = dict(self.acd.snapshot(time.monotonic()))
        campaigns = self.campaigns() if self.campaigns is not None else []
        return {
            "type": "wallboard",
            **wallboard(snapshot, figures),
            "campaigns": campaigns,
            "inquiries": self.inquiries,
            "cluster": self.cluster,
        }

    async def tick(self) -> None:
        for agent_id in list(self.desks):
            await self.to_agent(agent_id, self.agent_state(agent_id))
        if self.wallboards:
            board = await self.wallboard()
            for ws in list(self.wallboards):
                if not await self._send(ws, board):
                    self.wallboards.discard(ws)

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(1.0)
            try:
                await self.tick()
            except Exception:
                log.exception("desk_tick_failed")

    def start(self) -> None:
        self._ticker = asyncio.create_task(self._run())

    async def stop(self) -> None:
        tasks = [*self._tasks, *([self._ticker] if self._ticker else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        await self.close_sockets()

    async def close_sockets(self) -> None:
        for ws in [*self.wallboards, *(w for s in self.desks.values() for w in s)]:
            with contextlib.suppress(Exception):
                await ws.close(code=1001, message=b"server shutdown")
