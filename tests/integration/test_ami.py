"""Our AMI client against the real Asterisk: login, event lists, and the replies that broke
panoramisk (PlayDTMF's "queued" without an Async header)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from ari_app.ami import AMIActionError, AMIClient
from tests.integration.conftest import PBX, Callers, Server


@pytest.fixture
async def ami(pbx: PBX) -> AsyncIterator[AMIClient]:
    s = pbx.settings
    client = AMIClient(s.ami_host, s.ami_port, s.ami_user, s.ami_secret)
    await client.start()
    await client.wait_connected(10)
    yield client
    await client.stop()


async def test_ping_and_core_status_over_real_ami(ami: AMIClient) -> None:
    pong = await ami.action("Ping")
    assert pong["Response"] == "Success"
    status = await ami.action("CoreStatus")
    assert int(status["CoreCurrentCalls"]) >= 0


async def test_play_dtmf_reply_without_async_header_keeps_connection(
    ami: AMIClient, callers: Callers, server: Server
) -> None:
    # A channel to press keys on: a FastAGI info-line call (nothing listens on the test's
    # side for DTMF, so nothing reacts to the key).
    call = await callers.place(context="infoline-agi", caller_id="<+38761400400>")
    start = await call.wait_for("StasisStart")
    reply = await ami.action("PlayDTMF", {"Channel": start["channel"]["name"], "Digit": "5"})
    assert reply["Response"] == "Success"
    assert "Async" not in reply
    _, channels = await ami.action_list("CoreShowChannels")
    assert start["channel"]["name"] in {c["Channel"] for c in channels}
    assert ami.connected
    assert (await ami.action("Ping"))["Response"] == "Success"
    await call.hangup()


async def test_error_reply_raises_and_connection_stays(ami: AMIClient) -> None:
    with pytest.raises(AMIActionError):
        await ami.action("Hangup", {"Channel": "PJSIP/does-not-exist-0001"})
    assert (await ami.action("Ping"))["Response"] == "Success"
