"""Over 500 lines: one fake of one client (its REST routes and the Asterisk behaviour they
stand for: channels, bridges, playbacks, restarts), kept whole so it moves with ``ari.py``.

A fake ARI for fast tests of the Stasis apps, beside the client it stands in for (the way
panoramisk ships ``testing.py`` beside its AMI client).

``FakeARI`` *is* an ``ARIClient``: the apps call the same methods, and the events a test pushes
(``emit``, ``stasis_start``, ``dtmf``, ``finish_playback``, ``hang_up``…) go through the
client's own ``dispatch``, so they are ordered per channel exactly as in production (one stream
and one worker per ``event_key``). Only ``request`` is replaced: every REST call is recorded
in order (method, path, params, json) and answered from a small model of Asterisk's channels,
bridges, playbacks and live recordings, with Asterisk's errors (404 for a channel that is
gone, 409 for an originate with a channel id in use, …) and the events Asterisk would send back
(a hang-up brings StasisEnd and ChannelDestroyed, a stopped playback PlaybackFinished, …).

Not modelled: media, dialplan, endpoints' states, stored recordings, snoop channels. A REST
path the model does not know raises ``ARIError`` with status 501, so a test notices an
unmodelled call instead of getting a silent ``None``.

Longer than 500 lines on purpose: it is one model of Asterisk's REST surface, read as a whole
when a test and the real Asterisk disagree.
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from urllib.parse import unquote

from ari_app.ari import (
    ARIClient,
    ARIConflict,
    ARIError,
    ARINotFound,
    Event,
)

# ---- the model ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Request:
    """One REST call as the app made it. ``params``: the query; a query given as a list of
    pairs (repeatable keys, like ``media``) is kept as a dict of lists."""

    method: str
    path: str
    params: dict[str, Any] = field(default_factory=dict)
    json: dict[str, Any] | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path} {self.params or ''}".strip()


@dataclass
class FakeChannel:
    id: str
    name: str
    caller_name: str = ""
    caller_number: str = ""
    exten: str = ""
    context: str = "default"
    state: str = "Ring"
    app: str | None = None  # the Stasis app it is in (or will enter, when originated)
    args: list[str] = field(default_factory=list)
    in_stasis: bool = False
    subscribed: bool = False  # events reach the app (in Stasis, originated or subscribed)
    endpoint: str | None = None  # originated: the dial string
    variables: dict[str, str] = field(default_factory=dict)
    moh: str | None = None  # the music-on-hold class playing, if any
    bridge: str | None = None
    created: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "state": self.state,
            "caller": {"name": self.caller_name, "number": self.caller_number},
            "connected": {"name": "", "number": ""},
            "accountcode": "",
            "dialplan": {
                "context": self.context,
                "exten": self.exten,
                "priority": 1,
                "app_name": "Stasis" if self.in_stasis else "",
                "app_data": ",".join([self.app or "", *self.args]) if self.in_stasis else "",
            },
            "creationtime": self.created,
            "language": "en",
        }


@dataclass
class FakeBridge:
    id: str
    bridge_type: str = "mixing"
    channels: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "technology": "simple_bridge",
            "bridge_type": self.bridge_type,
            "bridge_class": "stasis",
            "creator": "Stasis",
            "name": "",
            "channels": list(self.channels),
        }


@dataclass
class FakePlayback:
    id: str
    channel_id: str
    media: list[str]
    state: str = "playing"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "media_uri": self.media[0] if self.media else "",
            "media_playing": self.media[0] if self.media else "",
            "target_uri": f"channel:{self.channel_id}",
            "language": "en",
            "state": self.state,
        }


@dataclass
class FakeRecording:
    name: str
    channel_id: str
    format: str
    state: str = "recording"

    def to_json(self, seconds: float = 0.0) -> dict[str, Any]:
        return {
            "name": self.name,
            "format": self.format,
            "state": self.state,
            "target_uri": f"channel:{self.channel_id}",
            "duration": round(seconds),
            "talking_duration": round(seconds),
            "silence_duration": 0,
        }


def ari_timestamp(at: datetime | None = None) -> str:
    """As Asterisk writes them: 2026-11-23T16:40:00.123+0000."""
    at = at or datetime.now(UTC)
    return at.strftime("%Y-%m-%dT%H:%M:%S.") + f"{at.microsecond // 1000:03d}+0000"


# ---- the fake -----------------------------------------------------------------------------


class FakeARI(ARIClient):
    """An ``ARIClient`` whose Asterisk is a dict. Connected from the start; ``start`` runs the
    ``on_connect`` callbacks as a real (re)connect would."""

    def __init__(self, apps: Iterable[str] = ("infoline",)) -> None:
        super().__init__("http://fake-asterisk.invalid/ari", "fake", "fake", list(apps))
        self.requests: list[Request] = []
        self.live_channels: dict[str, FakeChannel] = {}
        self.live_bridges: dict[str, FakeBridge] = {}
        self.live_playbacks: dict[str, FakePlayback] = {}
        self.live_recordings: dict[str, FakeRecording] = {}
        self.emitted: list[Event] = []  # every event sent to the app, in order
        self.lost: list[Event] = []  # events Asterisk sent while the app was disconnected
        self.startup_time = "2026-11-30T08:00:00.000+0000"  # when "Asterisk" started
        self.destroyed: list[str] = []  # channel ids, in the order they went
        # Dynamic configuration (sorcery's memory wizard): (class, type, id) -> fields.
        self.config: dict[tuple[str, str, str], dict[str, str]] = {}
        self._seq = itertools.count(1)
        self._connected.set()

    # ---- lifecycle: no socket -------------------------------------------------------------

    async def start(self) -> None:
        await self.reconnect()

    async def reconnect(self) -> None:
        """As after the WebSocket came back: the ``on_connect`` callbacks run."""
        self._connected.set()
        self.connects += 1
        for callback in self._on_connect:
            self._spawn(self._guarded(callback), "ari-on-connect")

    def new_process(self) -> None:
        """As when the app's process is replaced (a crash, a deploy): Asterisk keeps its
        channels, bridges and playbacks; the old process's handlers are gone, the new one
        attaches its own and then ``reconnect``s."""
        self._handlers.clear()
        self._on_connect.clear()
        self.requests.clear()

    def disconnect(self) -> None:
        self._connected.clear()
        self.disconnected_at = datetime.now(UTC)

    def restart_asterisk(self) -> None:
        """Asterisk dies and comes back (the app is disconnected meanwhile): every channel,
        bridge and playback is gone, and no event of it reaches the app."""
        if self._connected.is_set():
            self.disconnect()
        for channel in list(self.live_channels.values()):
            self._destroy(channel, 0, "Asterisk restarted")
        self.live_bridges.clear()
        self.live_playbacks.clear()
        self.startup_time = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "+0000"

    async def stop(self) -> None:
        for task in list(self._workers):
            task.cancel()
        if self._workers:
            await asyncio.wait(self._workers, timeout=5)

    # ---- pushing events (the test plays Asterisk and the callers) ------------------------

    def emit(self, event: Event) -> None:
        """Send one event to the app, through the client's per-channel ordered dispatch; while
        disconnected it is lost, as Asterisk sends nothing to an app that is not connected."""
        if not self._connected.is_set():
            self.lost.append(event)
            return
        self.emitted.append(event)
        self.dispatch(event)

    async def settle(self, timeout: float = 5.0) -> None:  # noqa: ASYNC109
        """Wait until every event dispatched so far, and every event those handlers posted
        in turn (offers, timers already due, …), has been handled."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        quiet = 0
        while quiet < 3:  # idle over a few loop turns: call_soon work has run too
            busy = {task for task in self._workers if not task.done()}
            if busy or self._streams:
                quiet = 0
                left = deadline - loop.time()
                if left <= 0:
                    raise AssertionError(f"ARI events still being handled: {sorted(self._streams)}")
                if busy:
                    await asyncio.wait(busy, timeout=left)
                else:
                    await asyncio.sleep(0)
            else:
                quiet += 1
                await asyncio.sleep(0)

    def stasis_start(
        self,
        channel_id: str,
        args: Iterable[str] = (),
        *,
        caller: str | tuple[str, str] = "",
        exten: str = "",
        app: str | None = None,
    ) -> Event:
        """A call enters Stasis: a new incoming channel (``caller``: a number, or (name,
        number)), or an originated one that answered. Returns the event (emit it again for a
        duplicate)."""
        channel = self.live_channels.get(channel_id)
        if channel is None:
            name, number = caller if isinstance(caller, tuple) else ("", caller)
            channel = self._new_channel(
                channel_id,
                f"PJSIP/trunk-{next(self._seq):08x}",
                caller_name=name,
                caller_number=number,
                exten=exten,
            )
            channel.args = list(args)
        elif args:
            channel.args = list(args)
        channel.app = app or channel.app or self.apps[0]
        channel.in_stasis = channel.subscribed = True
        if channel.endpoint is not None:
            channel.state = "Up"  # an originated leg enters Stasis when it answers
        return self._send(channel, "StasisStart", args=list(channel.args))

    def pick_up(self, channel_id: str) -> Event:
        """An originated channel (an agent's phone) answers: it enters Stasis with the
        originate's appArgs."""
        channel = self._channel(channel_id)
        if channel.endpoint is None:
            raise AssertionError(f"{channel_id} was not originated")
        return self.stasis_start(channel_id)

    def dtmf(self, channel_id: str, digits: str) -> None:
        """The caller presses keys (one ChannelDtmfReceived per digit)."""
        channel = self._channel(channel_id)
        for digit in digits:
            self._send(channel, "ChannelDtmfReceived", digit=digit, duration_ms=100)

    def finish_playback(self, playback_id: str) -> Event:
        """A playback played to its end."""
        playback = self.live_playbacks.pop(playback_id, None)
        if playback is None:
            raise ARINotFound(404, "Playback not found", "(test)", playback_id)
        return self._playback_event(playback, "PlaybackFinished", "done")

    def finish_recording(self, name: str, seconds: float = 2.0) -> Event:
        """A live recording ends (silence, the limit, or the terminating key) having heard
        ``seconds`` of talk."""
        recording = self.live_recordings.pop(name, None)
        if recording is None:
            raise ARINotFound(404, "Recording not found", "(test)", name)
        return self._recording_event(recording, "RecordingFinished", "done", seconds)

    def hang_up(self, channel_id: str, cause: int = 16, cause_txt: str = "Normal Clearing") -> None:
        """The far end hangs up (the caller, or an agent's phone; one still ringing: no
        answer)."""
        channel = self._channel(channel_id)
        if channel.subscribed:
            self._send(channel, "ChannelHangupRequest", cause=cause)
        self._destroy(channel, cause, cause_txt)

    # ---- looking at what happened ---------------------------------------------------------

    def requests_to(self, method: str, path_prefix: str = "") -> list[Request]:
        return [r for r in self.requests if r.method == method and r.path.startswith(path_prefix)]

    def originated(self) -> list[FakeChannel]:
        """Channels the app originated (still alive), oldest first."""
        return [c for c in self.live_channels.values() if c.endpoint is not None]

    def playing(self, channel_id: str) -> list[FakePlayback]:
        return [p for p in self.live_playbacks.values() if p.channel_id == channel_id]

    def bridge_of(self, channel_id: str) -> FakeBridge | None:
        channel = self.live_channels.get(channel_id)
        return self.live_bridges.get(channel.bridge) if channel and channel.bridge else None

    # ---- REST, answered by the model ------------------------------------------------------

    async def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, str | int] | list[tuple[str, str]] | None = None,
        body: Mapping[str, Any] | None = None,
    ) -> Any:
        query: dict[str, Any] = {}
        if isinstance(params, list):
            for key, value in params:
                query.setdefault(key, []).append(value)
        elif params is not None:
            query = dict(params)
        self.requests.append(Request(method, path, query, dict(body) if body else None))
        await asyncio.sleep(0)  # a real request yields to the loop; so does this one
        parts = [unquote(p) for p in path.strip("/").split("/")]
        routes = {
            "channels": self._channels,
            "bridges": self._bridges,
            "playbacks": self._playbacks,
            "recordings": self._recordings,
            "applications": self._applications,
            "asterisk": self._asterisk,
        }
        route = routes.get(parts[0])
        if route is None:
            raise ARIError(501, "not in the fake", method, path)
        return route(method, parts[1:], query, body, path)

    def _asterisk(
        self,
        method: str,
        rest: list[str],
        query: dict[str, Any],
        body: Mapping[str, Any] | None,
        path: str,
    ) -> Any:
        if method == "GET" and rest == ["info"]:
            return {"status": {"startup_time": self.startup_time, "last_reload_time": ""}}
        if rest[:2] == ["config", "dynamic"] and len(rest) == 5:
            key = (rest[2], rest[3], rest[4])
            if method == "PUT":
                fields = {f["attribute"]: f["value"] for f in (body or {}).get("fields", [])}
                self.config[key] = fields
                return [{"attribute": a, "value": v} for a, v in fields.items()]
            if key not in self.config:
                raise ARINotFound(404, "Object not found", method, path)
            if method == "DELETE":
                del self.config[key]
                return None
            if method == "GET":
                return [{"attribute": a, "value": v} for a, v in self.config[key].items()]
        raise ARIError(501, "not in the fake", method, path)

    def _channels(
        self,
        method: str,
        rest: list[str],
        query: dict[str, Any],
        body: Mapping[str, Any] | None,
        path: str,
    ) -> Any:
        if not rest:
            if method == "GET":
                return [c.to_json() for c in self.live_channels.values()]
            if method == "POST":
                return self._originate(str(query.get("channelId", "")), query, body, path)
        elif len(rest) == 1:
            if method == "POST" and "endpoint" in query:
                return self._originate(rest[0], query, body, path)
            channel = self._channel(rest[0], method, path)
            if method == "GET":
                return channel.to_json()
            if method == "DELETE":
                self._destroy(channel, 16, "Normal Clearing")
                return None
        else:
            channel = self._channel(rest[0], method, path)
            action = rest[1]
            if action == "answer" and method == "POST":
                channel.state = "Up"
                self._send(channel, "ChannelStateChange")
                return None
            if action == "play" and method == "POST":
                playback_id = rest[2] if len(rest) > 2 else f"playback-{next(self._seq)}"
                return self._play(channel, playback_id, list(query.get("media", [])))
            if action == "moh":
                channel.moh = str(query.get("mohClass", "default")) if method == "POST" else None
                return None
            if action == "record" and method == "POST":
                return self._record(channel, query, path)
            if action == "dtmf" and method == "POST":
                return None  # sent towards the far end; nothing comes back to the app
            if action == "variable":
                if method == "POST":
                    channel.variables[str(query["variable"])] = str(query.get("value", ""))
                    return None
                value = channel.variables.get(str(query.get("variable")))
                if value is None:
                    raise ARINotFound(404, "Provided variable was not found", method, path)
                return {"value": value}
            if action == "continue" and method == "POST":
                self._leave_stasis(channel)
                channel.context = str(query.get("context", channel.context))
                channel.exten = str(query.get("extension", channel.exten))
                return None
        raise ARIError(501, "not in the fake", method, path)

    def _bridges(
        self,
        method: str,
        rest: list[str],
        query: dict[str, Any],
        body: Mapping[str, Any] | None,
        path: str,
    ) -> Any:
        if not rest:
            if method == "GET":
                return [b.to_json() for b in self.live_bridges.values()]
            if method == "POST":
                bridge_id = str(query.get("bridgeId") or f"bridge-{next(self._seq)}")
                return self._create_bridge(bridge_id, query).to_json()
        elif len(rest) == 1:
            if method == "POST":  # create, or update one that exists (as Asterisk does)
                return self._create_bridge(rest[0], query).to_json()
            bridge = self._bridge(rest[0], method, path)
            if method == "GET":
                return bridge.to_json()
            if method == "DELETE":
                for channel_id in list(bridge.channels):
                    self._leave_bridge(self.live_channels[channel_id], bridge)
                del self.live_bridges[bridge.id]
                return None
        elif method == "POST" and rest[1] in ("addChannel", "removeChannel"):
            bridge = self._bridge(rest[0], method, path)
            for channel_id in str(query.get("channel", "")).split(","):
                channel = self.live_channels.get(channel_id)
                if channel is None:
                    raise ARIError(400, "Channel not found", method, path)
                if rest[1] == "addChannel":
                    if not channel.in_stasis:
                        raise ARIError(422, "Channel not in Stasis application", method, path)
                    self._enter_bridge(channel, bridge)
                else:
                    if channel.bridge != bridge.id:
                        raise ARIError(422, "Channel not in this bridge", method, path)
                    self._leave_bridge(channel, bridge)
            return None
        raise ARIError(501, "not in the fake", method, path)

    def _playbacks(
        self,
        method: str,
        rest: list[str],
        query: dict[str, Any],
        body: Mapping[str, Any] | None,
        path: str,
    ) -> Any:
        if len(rest) == 1:
            playback = self.live_playbacks.get(rest[0])
            if playback is None:
                raise ARINotFound(404, "Playback not found", method, path)
            if method == "GET":
                return playback.to_json()
            if method == "DELETE":
                del self.live_playbacks[playback.id]
                self._playback_event(playback, "PlaybackFinished", "done")
                return None
        raise ARIError(501, "not in the fake", method, path)

    def _recordings(
        self,
        method: str,
        rest: list[str],
        query: dict[str, Any],
        body: Mapping[str, Any] | None,
        path: str,
    ) -> Any:
        if len(rest) >= 2 and rest[0] == "live":
            recording = self.live_recordings.get(rest[1])
            if recording is None:
                raise ARINotFound(404, "Recording not found", method, path)
            if len(rest) == 2 and method == "GET":
                return recording.to_json()
            if (len(rest), method) == (2, "DELETE"):  # cancelled: the file is thrown away
                del self.live_recordings[recording.name]
                self._recording_event(recording, "RecordingFailed", "canceled", 0.0)
                return None
            if len(rest) == 3 and rest[2] == "stop" and method == "POST":
                self.finish_recording(recording.name)
                return None
        raise ARIError(501, "not in the fake", method, path)

    def _applications(
        self,
        method: str,
        rest: list[str],
        query: dict[str, Any],
        body: Mapping[str, Any] | None,
        path: str,
    ) -> Any:
        if not rest and method == "GET":
            return [{"name": app} for app in self.apps]
        if not rest or rest[0] not in self.apps:
            raise ARINotFound(404, "Application not found", method, path)
        app = rest[0]
        if len(rest) == 1 and method == "GET":
            mine = [c for c in self.live_channels.values() if c.app == app and c.subscribed]
            return {
                "name": app,
                "channel_ids": [c.id for c in mine],
                "bridge_ids": list(self.live_bridges),
                "endpoint_ids": [],
                "device_names": [],
            }
        if len(rest) == 2 and rest[1] == "subscription" and method == "POST":
            source = str(query.get("eventSource", ""))
            kind, _, source_id = source.partition(":")
            if kind != "channel" or source_id not in self.live_channels:
                raise ARIError(422, "Event source does not exist", method, path)
            self.live_channels[source_id].subscribed = True
            return {"name": app}
        raise ARIError(501, "not in the fake", method, path)

    # ---- the model's moves ----------------------------------------------------------------

    def _channel(self, channel_id: str, method: str = "(test)", path: str = "") -> FakeChannel:
        channel = self.live_channels.get(channel_id)
        if channel is None:
            raise ARINotFound(404, "Channel not found", method, path or channel_id)
        return channel

    def _bridge(self, bridge_id: str, method: str, path: str) -> FakeBridge:
        bridge = self.live_bridges.get(bridge_id)
        if bridge is None:
            raise ARINotFound(404, "Bridge not found", method, path)
        return bridge

    def _new_channel(self, channel_id: str, name: str, **fields: Any) -> FakeChannel:
        channel = FakeChannel(channel_id, name, created=ari_timestamp(), **fields)
        self.live_channels[channel_id] = channel
        return channel

    def _originate(
        self, channel_id: str, query: dict[str, Any], body: Mapping[str, Any] | None, path: str
    ) -> dict[str, Any]:
        channel_id = channel_id or f"originated-{next(self._seq)}"
        if channel_id in self.live_channels:
            raise ARIConflict(409, "Channel with given unique ID already exists", "POST", path)
        endpoint = str(query["endpoint"])
        channel = self._new_channel(
            channel_id,
            f"{endpoint}-{next(self._seq):08x}",
            endpoint=endpoint,
            state="Down",
            app=str(query.get("app") or self.apps[0]),
            args=[a for a in str(query.get("appArgs", "")).split(",") if a],
            subscribed=True,  # the originating app is subscribed to the new channel
            variables=dict((body or {}).get("variables", {})),
        )
        return channel.to_json()

    def _create_bridge(self, bridge_id: str, query: dict[str, Any]) -> FakeBridge:
        bridge = self.live_bridges.get(bridge_id)
        if bridge is None:
            bridge = self.live_bridges[bridge_id] = FakeBridge(
                bridge_id, str(query.get("type", "mixing"))
            )
        return bridge

    def _enter_bridge(self, channel: FakeChannel, bridge: FakeBridge) -> None:
        if channel.bridge == bridge.id:
            return
        if channel.bridge is not None and channel.bridge in self.live_bridges:
            self._leave_bridge(channel, self.live_bridges[channel.bridge])
        bridge.channels.append(channel.id)
        channel.bridge = bridge.id
        self._send(channel, "ChannelEnteredBridge", bridge=bridge.to_json())

    def _leave_bridge(self, channel: FakeChannel, bridge: FakeBridge) -> None:
        if channel.id in bridge.channels:
            bridge.channels.remove(channel.id)
        channel.bridge = None
        self._send(channel, "ChannelLeftBridge", bridge=bridge.to_json())

    def _play(self, channel: FakeChannel, playback_id: str, media: list[str]) -> dict[str, Any]:
        if playback_id in self.live_playbacks:
            raise ARIConflict(409, "Playback with given id already exists", "POST", playback_id)
        playback = self.live_playbacks[playback_id] = FakePlayback(playback_id, channel.id, media)
        self._playback_event(playback, "PlaybackStarted", "playing")
        return playback.to_json()

    def _record(self, channel: FakeChannel, query: dict[str, Any], path: str) -> dict[str, Any]:
        name = str(query.get("name", ""))
        if name in self.live_recordings:  # ifExists is about stored files, not live ones
            raise ARIConflict(409, "Recording with the same name in progress", "POST", path)
        recording = FakeRecording(name, channel.id, str(query.get("format", "wav")))
        self.live_recordings[name] = recording
        self._recording_event(recording, "RecordingStarted", "recording", 0.0)
        return recording.to_json()

    def _leave_stasis(self, channel: FakeChannel) -> None:
        if channel.bridge is not None and channel.bridge in self.live_bridges:
            self._leave_bridge(channel, self.live_bridges[channel.bridge])
        if channel.in_stasis:
            channel.in_stasis = False
            self._send(channel, "StasisEnd")

    def _destroy(self, channel: FakeChannel, cause: int, cause_txt: str) -> None:
        """The channel hangs up: out of its bridge and Stasis, its playbacks dropped, then
        ChannelDestroyed (with the cause) if the app still hears about it."""
        for playback in self.playing(channel.id):
            del self.live_playbacks[playback.id]
        for recording in [r for r in self.live_recordings.values() if r.channel_id == channel.id]:
            del self.live_recordings[recording.name]
        self._leave_stasis(channel)
        del self.live_channels[channel.id]
        self.destroyed.append(channel.id)
        if channel.subscribed:
            self._send(channel, "ChannelDestroyed", cause=cause, cause_txt=cause_txt)

    def _send(self, channel: FakeChannel, kind: str, **data: Any) -> Event:
        event: Event = {
            "type": kind,
            "application": channel.app or self.apps[0],
            "timestamp": ari_timestamp(),
            "channel": channel.to_json(),
            **data,
        }
        self.emit(event)
        return event

    def _playback_event(self, playback: FakePlayback, kind: str, state: str) -> Event:
        playback.state = state
        channel = self.live_channels.get(playback.channel_id)
        event: Event = {
            "type": kind,
            "application": (channel.app if channel else None) or self.apps[0],
            "timestamp": ari_timestamp(),
            "playback": playback.to_json(),
        }
        self.emit(event)
        return event

    def _recording_event(
        self, recording: FakeRecording, kind: str, state: str, seconds: float
    ) -> Event:
        recording.state = state
        channel = self.live_channels.get(recording.channel_id)
        event: Event = {
            "type": kind,
            "application": (channel.app if channel else None) or self.apps[0],
            "timestamp": ari_timestamp(),
            "recording": recording.to_json(seconds),
        }
        self.emit(event)
        return event
