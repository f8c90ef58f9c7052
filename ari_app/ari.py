"""Over 500 lines: the REST client, the events WebSocket and its reconnect share one session
and one set of handlers; split, each half would reach into the other's state.

A thin, typed ARI client on aiohttp: REST calls plus the events WebSocket.

Why our own: ari-py is Python 2 only; aioari has no reconnect and runs handlers inline (one
slow call delays every other); asyncari and ari-client broke on a dropped socket. Raw aiohttp
was as fast as any of them, Asterisk being the limit.

Events are delivered in order *per channel* (one queue and one worker task per channel), so a
slow handler for one call never delays another. The WebSocket reconnects with backoff after
Asterisk restarts or the socket drops; Asterisk sends no events while we are disconnected, so
``on_connect`` callbacks run after every (re)connect to adopt what happened meanwhile.

Over 500 lines: one class, the connection (WebSocket, reconnect, per-channel streams) and the
typed REST calls on it; splitting the calls off would leave them a second class that only
forwards to ``request``.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import random
from collections import deque
from collections.abc import Awaitable, Callable, Collection, Mapping
from datetime import UTC, datetime
from typing import Any, cast
from urllib.parse import quote, urlsplit, urlunsplit

import aiohttp
import structlog

from core.errors import UpstreamError

log = structlog.get_logger(__name__)

Event = dict[str, Any]
EventHandler = Callable[[Event], Awaitable[None]]
ConnectHandler = Callable[[], Awaitable[None]]

MAX_EVENT_BYTES = 4 * 1024 * 1024
# Connections kept to Asterisk's HTTP server for requests (the event WebSocket is one more).
# Asterisk closes what passes its `sessionlimit` (100 by default, shared with every other
# client): a burst of calls with aiohttp's own limit (100) lost requests ("Server
# disconnected") and the callers their first prompt. Requests beyond these wait their turn.
REQUEST_CONNECTIONS = 24


class ARIError(UpstreamError):
    """A failed ARI request. ``status`` is the HTTP status Asterisk gave (0: no answer)."""

    error_id = "ari_error"

    def __init__(self, status: int, message: str, method: str = "", path: str = "") -> None:
        super().__init__(f"{method} {path}: {status} {message}".strip())
        self.status = status
        self.message = message


class ARIUnavailable(ARIError):
    """Asterisk did not answer (down, restarting, unreachable): a 503 to our own callers."""

    error_id = "pbx_unavailable"
    http_status = 503


class ARINotFound(ARIError):
    """The channel/bridge/playback is gone, usually because the caller hung up."""

    error_id = "not_found"


class ARIConflict(ARIError):
    """409: e.g. an originate with a channelId that exists already (an idempotent retry)."""

    error_id = "conflict"


def event_key(event: Event) -> str:
    """Which ordered stream an event belongs to: its channel (or the dialled peer), else its
    playback's or recording's target, else its bridge; else the app-wide stream."""
    channel = event.get("channel")
    if isinstance(channel, dict) and "id" in channel:
        return f"channel:{channel['id']}"
    peer = event.get("peer")  # an originate's Dial events name only the channel dialled
    if isinstance(peer, dict) and "id" in peer:
        return f"channel:{peer['id']}"
    for holder in ("playback", "recording"):
        target = event.get(holder, {}).get("target_uri") if holder in event else None
        if isinstance(target, str) and target:
            return target
    bridge = event.get("bridge")
    if isinstance(bridge, dict) and "id" in bridge:
        return f"bridge:{bridge['id']}"
    return "app"


def _redact(url: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, parts.path, "", ""))


class ARIClient:
    def __init__(
        self,
        url: str,
        user: str,
        password: str,
        apps: list[str],
        *,
        request_timeout: float = 10.0,
        reconnect_min: float = 0.2,
        reconnect_max: float = 5.0,
        heartbeat: float = 10.0,
        events: Collection[str] | None = None,
    ) -> None:
        self.base = url.rstrip("/")
        # The only event types the apps want (None: all): set on each app after every
        # connect (Asterisk keeps an app's filter only while the app is registered).
        self._events = None if events is None else sorted(events)
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        self._headers = {"Authorization": f"Basic {token}"}
        self.apps = list(apps)
        self._timeout = aiohttp.ClientTimeout(total=request_timeout)
        self._reconnect_min = reconnect_min
        self._reconnect_max = reconnect_max
        self._heartbeat = heartbeat
        self._session: aiohttp.ClientSession | None = None
        self._runner: asyncio.Task[None] | None = None
        self._handlers: list[EventHandler] = []
        self._on_connect: list[ConnectHandler] = []
        self._streams: dict[str, deque[Event]] = {}
        self._workers: set[asyncio.Task[None]] = set()
        self._connected = asyncio.Event()
        self.ws_local_port: int | None = None
        self.connects = 0
        self.disconnected_at: datetime | None = None

    # ---- lifecycle ------------------------------------------------------------------------

    async def start(self) -> None:
        await self.open()
        self._runner = asyncio.create_task(self._run(), name="ari-events")

    async def open(self) -> None:
        """REST only, no event WebSocket (a command that makes one request)."""
        self._session = aiohttp.ClientSession(
            headers=self._headers,
            timeout=self._timeout,
            connector=aiohttp.TCPConnector(limit=REQUEST_CONNECTIONS),
        )

    async def stop(self) -> None:
        if self._runner:
            self._runner.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._runner
        for task in list(self._workers):
            task.cancel()
        if self._workers:
            await asyncio.wait(self._workers, timeout=5)
        if self._session:
            await self._session.close()

    @property
    def connected(self) -> bool:
        return self._connected.is_set()

    async def wait_connected(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        async with asyncio.timeout(timeout):
            await self._connected.wait()

    def on_event(self, handler: EventHandler) -> None:
        self._handlers.append(handler)

    def on_connect(self, handler: ConnectHandler) -> None:
        self._on_connect.append(handler)

    # ---- events ---------------------------------------------------------------------------

    def _ws_url(self) -> str:
        parts = urlsplit(self.base)
        scheme = "wss" if parts.scheme == "https" else "ws"
        query = "app=" + ",".join(quote(a, safe="") for a in self.apps)
        return urlunsplit((scheme, parts.netloc, parts.path + "/events", query, ""))

    async def _run(self) -> None:
        delay = self._reconnect_min
        assert self._session is not None
        while True:
            try:
                async with self._session.ws_connect(
                    self._ws_url(),
                    heartbeat=self._heartbeat,
                    max_msg_size=MAX_EVENT_BYTES,
                    timeout=aiohttp.ClientWSTimeout(ws_close=2.0),
                ) as ws:
                    sock = ws.get_extra_info("sockname")
                    self.ws_local_port = sock[1] if sock else None
                    self.connects += 1
                    self._connected.set()
                    delay = self._reconnect_min
                    log.info("ari_connected", apps=self.apps, local_port=self.ws_local_port)
                    if self._events is not None:
                        self._spawn(self._filter_events(self._events), "ari-event-filter")
                    for callback in self._on_connect:
                        self._spawn(self._guarded(callback), "ari-on-connect")
                    async for msg in ws:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            self._dispatch_text(msg.data)
                        elif msg.type in (aiohttp.WSMsgType.ERROR, aiohttp.WSMsgType.CLOSED):
                            break
                    log.warning("ari_disconnected", close_code=ws.close_code)
            except asyncio.CancelledError:
                raise
            except (TimeoutError, aiohttp.ClientError, OSError) as exc:
                log.warning("ari_connect_failed", url=_redact(self._ws_url()), error=str(exc))
            finally:
                if self._connected.is_set():
                    # From here Asterisk's events reach nobody (reconcile dates what it missed).
                    self.disconnected_at = datetime.now(UTC)
                self._connected.clear()
                self.ws_local_port = None
            await asyncio.sleep(delay * (0.5 + random.random() / 2))
            delay = min(delay * 2, self._reconnect_max)

    async def _filter_events(self, events: list[str]) -> None:
        body = {"allowed": [{"type": kind} for kind in events]}
        for app in self.apps:
            try:
                await self.request("PUT", f"/applications/{_q(app)}/eventFilter", body=body)
            except ARIError as exc:
                # An Asterisk without filters sends everything: slower, not wrong.
                log.warning("ari_event_filter_failed", app=app, error=str(exc))

    def _dispatch_text(self, data: str) -> None:
        try:
            event = json.loads(data)
        except ValueError:
            log.warning("ari_bad_event", size=len(data))
            return
        if not isinstance(event, dict):
            return
        self.dispatch(event)

    def dispatch(self, event: Event) -> None:
        """Queue an event on its channel's stream; start that stream's worker if idle."""
        key = event_key(event)
        stream = self._streams.get(key)
        if stream is not None:
            stream.append(event)
            return
        stream = self._streams[key] = deque([event])
        self._spawn(self._drain(key, stream), f"ari-{key}")

    async def _drain(self, key: str, stream: deque[Event]) -> None:
        try:
            while stream:
                event = stream.popleft()
                for handler in self._handlers:
                    try:
                        await handler(event)
                    except Exception:
                        log.exception("ari_handler_failed", event_type=event.get("type"), key=key)
        finally:
            # No await between the last empty check and here: nothing can slip in unseen.
            self._streams.pop(key, None)

    async def _guarded(self, callback: ConnectHandler) -> None:
        try:
            await callback()
        except Exception:
            log.exception("ari_on_connect_failed")

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task = asyncio.ensure_future(coro)
        task.set_name(name)
        self._workers.add(task)
        task.add_done_callback(self._workers.discard)

    # ---- REST -----------------------------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | list[tuple[str, str]] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        if self._session is None:
            raise ARIUnavailable(0, "client not started", method, path)
        url = self.base + path
        try:
            async with self._session.request(method, url, params=params, json=body) as resp:
                text = await resp.text()
                if resp.status >= 400:
                    raise _error(resp.status, text, method, path)
                if not text:
                    return None
                return json.loads(text)
        except (TimeoutError, aiohttp.ClientConnectionError) as exc:
            raise ARIUnavailable(0, str(exc) or type(exc).__name__, method, path) from exc

    async def put_config(
        self, config_class: str, object_type: str, object_id: str, fields: list[tuple[str, str]]
    ) -> None:
        """Create or replace a sorcery object (ARI's dynamic configuration: the object type
        must have a writable wizard, sorcery.conf's ``memory``)."""
        path = f"/asterisk/config/dynamic/{_q(config_class)}/{_q(object_type)}/{_q(object_id)}"
        body = {"fields": [{"attribute": a, "value": v} for a, v in fields]}
        await self.request("PUT", path, body=body)

    async def delete_config(self, config_class: str, object_type: str, object_id: str) -> None:
        path = f"/asterisk/config/dynamic/{_q(config_class)}/{_q(object_type)}/{_q(object_id)}"
        await self.request("DELETE", path)

    async def answer(self, channel_id: str) -> None:
        await self.request("POST", f"/channels/{quote(channel_id, safe='')}/answer")

    async def hangup(self, channel_id: str, reason: str = "normal") -> None:
        await self.request(
            "DELETE", f"/channels/{quote(channel_id, safe='')}", params={"reason": reason}
        )

    async def play(
        self, channel_id: str, media: str | list[str], playback_id: str
    ) -> dict[str, Any]:
        """Play one media URI, or several in a row as one playback."""
        path = f"/channels/{quote(channel_id, safe='')}/play/{quote(playback_id, safe='')}"
        media_list = [media] if isinstance(media, str) else media
        params = [("media", m) for m in media_list]
        return cast(dict[str, Any], await self.request("POST", path, params=params))

    async def send_dtmf(self, channel_id: str, dtmf: str, *, between_ms: int = 100) -> None:
        await self.request(
            "POST",
            f"/channels/{quote(channel_id, safe='')}/dtmf",
            params={"dtmf": dtmf, "between": between_ms},
        )

    async def get_channel(self, channel_id: str) -> dict[str, Any]:
        path = f"/channels/{quote(channel_id, safe='')}"
        return cast(dict[str, Any], await self.request("GET", path))

    async def channels(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], await self.request("GET", "/channels"))

    async def bridges(self) -> list[dict[str, Any]]:
        return cast(list[dict[str, Any]], await self.request("GET", "/bridges"))

    # ---- bridges, music, variables: one typed call each, ids quoted ------------------------

    async def create_bridge(self, bridge_id: str, kind: str = "mixing") -> None:
        await self.request("POST", f"/bridges/{_q(bridge_id)}", params={"type": kind})

    async def get_bridge(self, bridge_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], await self.request("GET", f"/bridges/{_q(bridge_id)}"))

    async def add_to_bridge(self, bridge_id: str, channel_id: str) -> None:
        path = f"/bridges/{_q(bridge_id)}/addChannel"
        await self.request("POST", path, params={"channel": channel_id})

    async def remove_from_bridge(self, bridge_id: str, channel_id: str) -> None:
        path = f"/bridges/{_q(bridge_id)}/removeChannel"
        await self.request("POST", path, params={"channel": channel_id})

    async def destroy_bridge(self, bridge_id: str) -> None:
        await self.request("DELETE", f"/bridges/{_q(bridge_id)}")

    async def start_moh(self, channel_id: str, moh_class: str = "default") -> None:
        path = f"/channels/{_q(channel_id)}/moh"
        await self.request("POST", path, params={"mohClass": moh_class})

    async def stop_moh(self, channel_id: str) -> None:
        await self.request("DELETE", f"/channels/{_q(channel_id)}/moh")

    async def get_playback(self, playback_id: str) -> dict[str, Any]:
        return cast(dict[str, Any], await self.request("GET", f"/playbacks/{_q(playback_id)}"))

    async def stop_playback(self, playback_id: str) -> None:
        await self.request("DELETE", f"/playbacks/{_q(playback_id)}")

    async def record(
        self,
        channel_id: str,
        name: str,
        *,
        max_seconds: int,
        silence_seconds: int,
        beep: bool,
        terminate_on: str,
    ) -> None:
        """Record the channel into Asterisk's recordings as ``name``.wav (a retried call's
        recording replaces its own)."""
        params: dict[str, str | int] = {
            "name": name,
            "format": "wav",
            "maxDurationSeconds": max_seconds,
            "maxSilenceSeconds": silence_seconds,
            "ifExists": "overwrite",
            "beep": "true" if beep else "false",
            "terminateOn": terminate_on,
        }
        await self.request("POST", f"/channels/{_q(channel_id)}/record", params=params)

    async def set_variable(self, channel_id: str, name: str, value: str) -> None:
        path = f"/channels/{_q(channel_id)}/variable"
        await self.request("POST", path, params={"variable": name, "value": value})

    async def continue_in_dialplan(
        self, channel_id: str, context: str, extension: str, priority: int = 1
    ) -> None:
        """The channel leaves Stasis for the dialplan."""
        path = f"/channels/{_q(channel_id)}/continue"
        params: dict[str, str | int] = {
            "context": context,
            "extension": extension,
            "priority": priority,
        }
        await self.request("POST", path, params=params)

    async def asterisk_started(self) -> str | None:
        """When this Asterisk started: another value than last time means it was restarted
        (every call it had is gone)."""
        info = await self.request("GET", "/asterisk/info", params={"only": "status"})
        started = ((info or {}).get("status") or {}).get("startup_time")
        return str(started) if started else None

    async def application(self, name: str) -> dict[str, Any]:
        path = f"/applications/{quote(name, safe='')}"
        return cast(dict[str, Any], await self.request("GET", path))

    async def subscribe(self, app: str, event_source: str) -> None:
        """Keep receiving a channel's events after it leaves Stasis, up to ChannelDestroyed
        (which carries the real hang-up cause; StasisEnd does not)."""
        await self.request(
            "POST",
            f"/applications/{quote(app, safe='')}/subscription",
            params={"eventSource": event_source},
        )

    async def originate(
        self,
        endpoint: str,
        *,
        channel_id: str,
        app: str,
        app_args: str = "",
        caller_id: str | None = None,
        dial_timeout: int = 30,
        variables: Mapping[str, str] | None = None,
    ) -> dict[str, Any]:
        """Originate with a channel id derived from the dial attempt: a retry gets
        ARIConflict instead of dialling twice."""
        params: dict[str, str | int] = {
            "endpoint": endpoint,
            "app": app,
            "appArgs": app_args,
            "timeout": dial_timeout,
        }
        if caller_id:
            params["callerId"] = caller_id
        body = {"variables": dict(variables)} if variables else None
        path = f"/channels/{quote(channel_id, safe='')}"
        return cast(dict[str, Any], await self.request("POST", path, params=params, body=body))


def _q(resource_id: str) -> str:
    return quote(resource_id, safe="")


def _error(status: int, text: str, method: str, path: str) -> ARIError:
    try:
        message = str(json.loads(text).get("message", text))
    except (ValueError, AttributeError):
        message = text[:200]
    cls = {404: ARINotFound, 409: ARIConflict, 503: ARIUnavailable}.get(status, ARIError)
    return cls(status, message, method, path)


# The event types the Stasis apps act on (ari_app/infoline, ari_app/campaigns, the agents'
# legs in ari_app/agents.py). Asterisk otherwise sends an app every event of each channel it
# holds or follows (variables set, dialplan steps, caller id and connected line, state and
# bridge moves): most of a call's events, each built as JSON by Asterisk, parsed and
# dispatched by us for nothing.
APP_EVENTS = (
    "StasisStart",
    "StasisEnd",
    "ChannelDestroyed",
    "ChannelHangupRequest",
    "ChannelDtmfReceived",
    "PlaybackFinished",
    "PlaybackFailed",
    "RecordingFinished",
    "RecordingFailed",
    "Dial",
    "ApplicationReplaced",
    "ApplicationMoveFailed",
)

TIMER = "CentralaTimer"  # the synthetic event a call's timer posts when it goes off


class ChannelTimers:
    """A call's named timers. One that goes off arrives as a synthetic ``TIMER`` event (with
    its ``timer`` name) on the call's own ordered stream, in order with the call's ARI events;
    starting a name again restarts it."""

    def __init__(self, ari: ARIClient, app: str, channel_id: str) -> None:
        self.ari = ari
        self.app = app
        self.channel_id = channel_id
        self._tasks: dict[str, asyncio.Task[None]] = {}

    def start(self, timer_id: str, seconds: float) -> None:
        self.cancel(timer_id)
        self._tasks[timer_id] = asyncio.create_task(self._fire(timer_id, seconds))

    async def _fire(self, timer_id: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._tasks.pop(timer_id, None)
        self.ari.dispatch(
            {
                "type": TIMER,
                "application": self.app,
                "channel": {"id": self.channel_id},
                "timer": timer_id,
            }
        )

    def cancel(self, timer_id: str) -> None:
        task = self._tasks.pop(timer_id, None)
        if task is not None:
            task.cancel()

    def cancel_all(self) -> None:
        for timer_id in list(self._tasks):
            self.cancel(timer_id)
