"""Manual calls after a restart of ``serve`` or a lost ARI link: each open row's saved
state (``calls.live_state``) says its two legs; a call whose legs are up is followed again,
one with a leg gone is ended now."""

from __future__ import annotations

import contextlib
import time
from datetime import datetime
from typing import Any

import structlog

from ari_app.ari import ARINotFound
from ari_app.outbound.calls import HANDLER, ManualCall, OutboundCalls
from core.acd import ACDError
from core.cluster import NODE_GONE
from models.calllog import LiveRow, now

log = structlog.get_logger(__name__)


class OutboundApp(OutboundCalls):
    """Agents' manual outbound calls: placed, followed, and adopted again after a restart."""

    async def reconcile(self) -> None:
        """At every ARI (re)connect: Asterisk sent nothing meanwhile. A call whose two legs
        are still up (talking, or the client still ringing) is followed again; one with a
        leg gone is ended now (the other leg hung up, the row closed: answered with its talk
        time if it was connected, else ``lost``)."""
        try:
            # With the database away, from the journal (the info line's adoption reads and
            # reports that once; manual calls are rare, so no second read or log line).
            if self.calllog.degraded:
                rows = self.calllog.journaled_live(HANDLER, self.node)
            else:
                rows = await self.calllog.live_calls(HANDLER, self.node)
        except Exception:
            log.exception("manual_calls_reconcile_failed")
            return
        known = {c.call_id: c for c in self.calls.values()}
        for row in rows:
            with structlog.contextvars.bound_contextvars(call_id=row.call_id):
                call = await self._call_of(row, known, now(), None)
                if call is not None:
                    async with call.lock:
                        await self._resync(call)

    async def pbx_gone(self, at: datetime) -> int:
        """Asterisk is gone (its node died): every manual call on it is over, closed at
        ``at``, when the link was lost (answered if the agent and the client had talked, else
        lost) and its agent freed. Returns how many. A node that comes back finds them
        closed."""
        rows = await self.calllog.live_calls(HANDLER, self.node)
        known = {c.call_id: c for c in self.calls.values()}
        for row in rows:
            with structlog.contextvars.bound_contextvars(call_id=row.call_id):
                call = await self._call_of(row, known, at, NODE_GONE)
                if call is None:
                    continue
                async with call.lock:
                    result = "answered" if call.connected_at is not None else "lost"
                    await self._close(call, cause=None, text=NODE_GONE, result=result, at=at)
                for channel in (call.agent_channel, call.client_channel):
                    self.by_channel.pop(channel, None)
                self.calls.pop(call.key, None)
        return len(rows)

    async def _call_of(
        self, row: LiveRow, known: dict[str, ManualCall], at: datetime, text: str | None
    ) -> ManualCall | None:
        """The live row's call, held or rebuilt from its saved state; None (and the row
        closed as lost at ``at``) when its state cannot be read."""
        call = known.get(row.call_id) or self._rebuild(row.call_id, row.state)
        if call is None:
            await self.calllog.close(
                row.call_id, at=at, cause=None, cause_text=text, outcome="lost"
            )
        return call

    def _rebuild(self, call_id: str, state: dict[str, Any] | None) -> ManualCall | None:
        saved = (state or {}).get("manual")
        if not isinstance(saved, dict):
            return None
        try:
            call = ManualCall(
                key=str(saved["key"]),
                call_id=call_id,
                agent_id=str(saved["agent_id"]),
                number=str(saved["number"]),
                presented=str(saved["presented"]),
                queue=saved.get("queue"),
                origin="phone" if saved.get("origin") == "phone" else "desk",
                agent_channel=str(saved["agent_channel"]),
                client_channel=str(saved["client_channel"]),
                callback_id=saved.get("callback_id"),
                agent_up=bool(saved.get("agent_up")),
                client_dialled=bool(saved.get("client_dialled")),
                bridge_id=saved.get("bridge_id"),
                connected_at=(
                    datetime.fromisoformat(saved["connected_at"])
                    if saved.get("connected_at")
                    else None
                ),
            )
        except (KeyError, TypeError, ValueError):
            log.warning("manual_call_state_unreadable")
            return None
        self.calls[call.key] = call
        self.by_channel[call.agent_channel] = call.key
        self.by_channel[call.client_channel] = call.key
        return call

    async def _alive(self, channel_id: str) -> bool:
        try:
            await self.ari.get_channel(channel_id)
        except ARINotFound:
            return False
        return True

    async def _resync(self, call: ManualCall) -> None:
        agent = await self._alive(call.agent_channel)
        client = call.client_dialled and await self._alive(call.client_channel)
        if agent and (client or not call.client_dialled):
            for channel in (call.agent_channel, call.client_channel if client else None):
                if channel is not None:
                    with contextlib.suppress(ARINotFound):
                        await self.ari.subscribe(self.app, f"channel:{channel}")
            if not call.in_acd:
                with contextlib.suppress(ACDError):  # not logged in (again): nothing to hold
                    self.acd.adopt_call(call.key, call.agent_id, time.monotonic())
                    call.in_acd = True
            log.info("manual_call_adopted", connected=call.connected_at is not None)
            return
        # A leg ended while nobody listened: end the call now.
        result = "answered" if call.connected_at is not None else "lost"
        await self._close(call, cause=None, text="ended while serve was away", result=result)
        for channel, up in ((call.agent_channel, agent), (call.client_channel, client)):
            if up:
                await self._hangup(channel, "normal")
            self.by_channel.pop(channel, None)
        self.calls.pop(call.key, None)
