"""ARI events are delivered in order per channel, and a slow call never delays another."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

from ari_app.ari import APP_EVENTS, ARIClient, Event, event_key
from ari_app.infoline import ari_time


def _ev(kind: str, channel: str, n: int) -> Event:
    return {"type": kind, "channel": {"id": channel}, "n": n}


def test_event_key_groups_a_channels_playbacks_with_the_channel() -> None:
    assert event_key({"channel": {"id": "a"}}) == "channel:a"
    assert event_key({"playback": {"id": "p", "target_uri": "channel:a"}}) == "channel:a"
    assert event_key({"bridge": {"id": "b"}}) == "bridge:b"
    assert event_key({"type": "ApplicationReplaced"}) == "app"


async def test_events_of_one_channel_are_handled_in_order_and_one_at_a_time() -> None:
    client = ARIClient("http://127.0.0.1:1/ari", "u", "p", ["app"])
    seen: list[int] = []
    running = 0

    async def handler(event: Event) -> None:
        nonlocal running
        running += 1
        assert running == 1
        await asyncio.sleep(0.001 * (5 - event["n"] % 5))
        seen.append(event["n"])
        running -= 1

    client.on_event(handler)
    for n in range(50):
        client.dispatch(_ev("X", "a", n))
    while client._streams:
        await asyncio.sleep(0.01)
    assert seen == list(range(50))


async def test_a_slow_call_does_not_delay_another() -> None:
    client = ARIClient("http://127.0.0.1:1/ari", "u", "p", ["app"])
    release = asyncio.Event()
    fast_done = asyncio.Event()

    async def handler(event: Event) -> None:
        if event["channel"]["id"] == "slow":
            await release.wait()
        else:
            fast_done.set()

    client.on_event(handler)
    client.dispatch(_ev("X", "slow", 1))
    client.dispatch(_ev("X", "fast", 1))
    await asyncio.wait_for(fast_done.wait(), 1)
    release.set()
    await asyncio.sleep(0)


async def test_a_failing_handler_does_not_stop_the_channels_later_events() -> None:
    client = ARIClient("http://127.0.0.1:1/ari", "u", "p", ["app"])
    seen: list[int] = []

    async def handler(event: Event) -> None:
        if event["n"] == 0:
            raise RuntimeError("boom")
        seen.append(event["n"])

    client.on_event(handler)
    for n in range(3):
        client.dispatch(_ev("X", "a", n))
    while client._streams:
        await asyncio.sleep(0.01)
    assert seen == [1, 2]


def test_ari_timestamps_are_read_as_utc() -> None:
    at = ari_time("2026-11-23T16:40:00.123+0100")
    assert at == datetime(2026, 11, 23, 15, 40, 0, 123000, tzinfo=UTC)


async def test_client_asks_asterisk_for_only_the_events_its_apps_use() -> None:
    """Issue 18: without a filter Asterisk sends an app every event of its channels (variables
    set, dialplan steps, connected line, ...), most of a call's events, for nothing. After
    each connect the client sets each app's event filter to the types it was given."""
    filters: dict[str, Any] = {}
    got_both = asyncio.Event()

    async def events(request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        async for _ in ws:
            pass
        return ws

    async def event_filter(request: web.Request) -> web.Response:
        filters[request.match_info["app"]] = await request.json()
        if len(filters) == 2:
            got_both.set()
        return web.json_response({"name": request.match_info["app"]})

    server_app = web.Application()
    server_app.router.add_get("/ari/events", events)
    server_app.router.add_put("/ari/applications/{app}/eventFilter", event_filter)
    async with TestServer(server_app) as server:
        client = ARIClient(
            str(server.make_url("/ari")), "u", "p", ["infoline", "survey"], events=APP_EVENTS
        )
        await client.start()
        try:
            await asyncio.wait_for(got_both.wait(), 5)
        finally:
            await client.stop()
    wanted = sorted(APP_EVENTS)
    assert filters == {app: {"allowed": [{"type": t} for t in wanted]} for app in filters}
    assert sorted(filters) == ["infoline", "survey"]
    assert "ChannelVarset" not in wanted and "StasisStart" in wanted
