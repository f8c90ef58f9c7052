"""AMIClient against an in-process fake Asterisk Manager speaking the wire protocol."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from structlog.testing import capture_logs

from ari_app.ami import (
    AMIActionError,
    AMIArgumentError,
    AMIClient,
    AMIConnectionLost,
    AMINotConnected,
    AMITimeout,
    Message,
    encode_action,
)

USER, SECRET = "centrala", "s3cret"


class FakeConn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    def send(self, *pairs: tuple[str, str]) -> None:
        if self.writer.is_closing():
            return
        self.writer.write(b"".join(f"{k}: {v}\r\n".encode() for k, v in pairs) + b"\r\n")

    def send_raw(self, data: bytes) -> None:
        self.writer.write(data)

    def reply(self, action: Message, *pairs: tuple[str, str]) -> None:
        self.send(("Response", "Success"), ("ActionID", action["ActionID"]), *pairs)

    def close(self) -> None:
        self.writer.close()


Handler = Callable[[FakeConn, Message], Awaitable[None] | None]


class FakeAMI:
    """Scriptable AMI server: ``handlers[action_name](conn, msg)`` replaces the default
    ``Response: Success`` reply. Every action received on any connection is in ``actions``."""

    def __init__(self) -> None:
        self.accept_login = True
        self.handlers: dict[str, Handler] = {}
        self.actions: list[Message] = []
        self.conns: list[FakeConn] = []
        self.server: asyncio.Server | None = None
        self.port = 0

    async def start(self) -> None:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]

    async def close(self) -> None:
        assert self.server is not None
        self.server.close()
        for conn in self.conns:
            conn.close()
        await self.server.wait_closed()

    @property
    def conn(self) -> FakeConn:
        return self.conns[-1]

    def names(self) -> list[str]:
        return [a["Action"] for a in self.actions]

    def count(self, name: str) -> int:
        return self.names().count(name)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = FakeConn(reader, writer)
        self.conns.append(conn)
        writer.write(b"Asterisk Call Manager/9.0.0\r\n")  # banner: one line, no blank line
        try:
            while (msg := await self._read_message(reader)) is not None:
                self.actions.append(msg)
                name = msg["Action"]
                if name in self.handlers:
                    result = self.handlers[name](conn, msg)
                    if result is not None:
                        await result
                elif name == "Login":
                    ok = self.accept_login and msg["Username"] == USER and msg["Secret"] == SECRET
                    conn.send(
                        ("Response", "Success" if ok else "Error"),
                        ("ActionID", msg["ActionID"]),
                        ("Message", "Authentication accepted" if ok else "Authentication failed"),
                    )
                    if not ok:  # Asterisk closes the socket after a failed login
                        break
                elif name == "Logoff":
                    conn.send(("Response", "Goodbye"), ("ActionID", msg["ActionID"]))
                    break
                else:
                    conn.reply(msg)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()

    @staticmethod
    async def _read_message(reader: asyncio.StreamReader) -> Message | None:
        items: list[tuple[str, str]] = []
        while True:
            line = await reader.readline()
            if not line:
                return None
            text = line.decode().rstrip("\r\n")
            if not text:
                if items:
                    return Message(items)
                continue
            key, _, value = text.partition(":")
            items.append((key.strip(), value.strip()))


async def eventually(predicate: Callable[[], bool], within: float = 2.0) -> None:
    """Poll the fake's or client's state; simpler than wiring events through the fake."""
    async with asyncio.timeout(within):
        while not predicate():
            await asyncio.sleep(0.005)


@pytest.fixture
async def fake() -> AsyncIterator[FakeAMI]:
    server = FakeAMI()
    await server.start()
    yield server
    await server.close()


ClientFactory = Callable[..., Awaitable[AMIClient]]


@pytest.fixture
async def make_client(fake: FakeAMI) -> AsyncIterator[ClientFactory]:
    clients: list[AMIClient] = []

    async def factory(*, connect: bool = True, **kwargs: Any) -> AMIClient:
        opts: dict[str, Any] = {
            "action_timeout": 1.0,
            "reconnect_min": 0.01,
            "reconnect_max": 0.05,
            "action_id_prefix": "t",
        }
        opts.update(kwargs)
        client = AMIClient("127.0.0.1", fake.port, USER, SECRET, **opts)
        clients.append(client)
        if connect:
            await client.start()
            await client.wait_connected(2.0)
        return client

    yield factory
    for client in clients:
        await client.stop()


# --------------------------------------------------------------------------- message


def test_message_is_first_value_mapping_with_getall_for_repeated_keys() -> None:
    msg = Message([("Event", "VarSet"), ("ChanVariable", "a=1"), ("ChanVariable", "b=2")])
    assert msg["ChanVariable"] == "a=1"
    assert msg["chanvariable"] == "a=1"  # header names are case-insensitive
    assert msg.getall("ChanVariable") == ["a=1", "b=2"]
    assert msg.getall("Missing") == []
    assert list(msg) == ["Event", "ChanVariable"]
    assert dict(msg) == {"Event": "VarSet", "ChanVariable": "a=1"}


def test_encode_action_repeats_key_for_sequence_value() -> None:
    data = encode_action("Originate", "t-1", {"Channel": "PJSIP/1", "Variable": ["a=1", "b=2"]})
    assert data == (
        b"Action: Originate\r\nActionID: t-1\r\nChannel: PJSIP/1\r\n"
        b"Variable: a=1\r\nVariable: b=2\r\n\r\n"
    )


# --------------------------------------------------------------------------- login


async def test_login_success_sends_credentials_and_events_on(
    fake: FakeAMI, make_client: ClientFactory
) -> None:
    client = await make_client()
    assert client.connected
    login = fake.actions[0]
    assert (login["Action"], login["Username"], login["Secret"], login["Events"]) == (
        "Login",
        USER,
        SECRET,
        "on",
    )
    assert login["ActionID"].startswith("t-")


async def test_login_can_ask_for_no_events(fake: FakeAMI, make_client: ClientFactory) -> None:
    """serve only sends actions: it logs in with `Events: off`, so Asterisk sends it none."""
    client = await make_client(events="off")
    assert client.connected
    assert fake.actions[0]["Events"] == "off"


async def test_refused_login_is_logged_and_retried_until_server_accepts(
    fake: FakeAMI, make_client: ClientFactory
) -> None:
    fake.accept_login = False
    with capture_logs() as logs:
        client = await make_client(connect=False)
        await client.start()
        await eventually(lambda: fake.count("Login") >= 3)
        assert not client.connected
        with pytest.raises(AMITimeout):
            await client.wait_connected(0.05)
        fake.accept_login = True
        await client.wait_connected(2.0)
    assert client.connected
    failures = [e for e in logs if e["event"] == "ami_login_failed"]
    assert failures and all(e["log_level"] == "error" for e in failures)
    assert "Authentication failed" in failures[0]["error"]
    assert (await client.action("Ping"))["Response"] == "Success"


async def test_on_connect_runs_after_every_login(fake: FakeAMI, make_client: ClientFactory) -> None:
    client = await make_client(connect=False)
    calls: list[int] = []

    async def resubscribe() -> None:
        await client.action("Ping")
        calls.append(1)

    client.on_connect(resubscribe)
    await client.start()
    await eventually(lambda: len(calls) == 1)
    fake.conn.close()
    await eventually(lambda: len(calls) == 2)
    assert fake.count("Login") == 2 and fake.count("Ping") == 2


# --------------------------------------------------------------------------- actions


async def test_action_before_connect_raises_not_connected_without_queueing(
    fake: FakeAMI, make_client: ClientFactory
) -> None:
    client = await make_client(connect=False)
    with pytest.raises(AMINotConnected):
        await client.action("Ping")
    await client.start()
    await client.wait_connected(2.0)
    await asyncio.sleep(0.05)
    assert fake.names() == ["Login"]


async def test_replies_arriving_out_of_order_are_matched_by_action_id(
    fake: FakeAMI, make_client: ClientFactory
) -> None:
    held: list[Message] = []

    def hold_two(conn: FakeConn, msg: Message) -> None:
        held.append(msg)
        if len(held) == 2:  # answer the second first
            for m in reversed(held):
                conn.reply(m, ("Value", m["Variable"]))

    fake.handlers["Getvar"] = hold_two
    client = await make_client()
    first, second = await asyncio.gather(
        client.action("Getvar", {"Variable": "first"}),
        client.action("Getvar", {"Variable": "second"}),
    )
    assert first["Value"] == "first"
    assert second["Value"] == "second"


async def test_success_response_without_async_header_is_delivered_and_link_stays_up(
    fake: FakeAMI, make_client: ClientFactory
) -> None:
    fake.handlers["PlayDTMF"] = lambda conn, msg: conn.reply(
        msg, ("Message", "DTMF successfully queued")
    )
    client = await make_client()
    reply = await client.action("PlayDTMF", {"Channel": "PJSIP/100-0001", "Digit": "5"})
    assert reply["Message"] == "DTMF successfully queued"
    assert "Async" not in reply
    assert client.connected
    await client.action("Ping")
    assert fake.count("Login") == 1  # never reconnected


async def test_error_response_raises_action_error_carrying_the_message(
    fake: FakeAMI, make_client: ClientFactory
) -> None:
    fake.handlers["Hangup"] = lambda conn, msg: conn.send(
        ("Response", "Error"), ("ActionID", msg["ActionID"]), ("Message", "No such channel")
    )
    client = await make_client()
    with pytest.raises(AMIActionError, match="No such channel") as info:
        await client.action("Hangup", {"Channel": "PJSIP/nope"})
    assert info.value.response["Response"] == "Error"
    assert client.connected


async def test_event_list_collects_events_until_complete(
    fake: FakeAMI, make_client: ClientFactory
) -> None:
    def core_show_channels(conn: FakeConn, msg: Message) -> None:
        aid = ("ActionID", msg["ActionID"])
        conn.send(
            ("Response", "Success"),
            aid,
            ("EventList", "start"),
            ("Message", "Channels will follow"),
        )
        conn.send(("Event", "CoreShowChannel"), aid, ("Channel", "PJSIP/1-0001"))
        conn.send(("Event", "Newchannel"), ("Channel", "PJSIP/3-0003"))  # unrelated
        conn.send(("Event", "CoreShowChannel"), aid, ("Channel", "PJSIP/2-0002"))
        conn.send(
            ("Event", "CoreShowChannelsComplete"),
            aid,
            ("EventList", "Complete"),
            ("ListItems", "2"),
        )

    fake.handlers["CoreShowChannels"] = core_show_channels
    client = await make_client()
    seen: list[str] = []
    client.on_event("*", lambda m: seen.append(m["Event"]))
    response, events = await client.action_list("CoreShowChannels")
    assert response["EventList"] == "start"
    assert [e["Channel"] for e in events] == ["PJSIP/1-0001", "PJSIP/2-0002"]
    assert seen == ["Newchannel"]  # list items go to the caller, other events to handlers


async def test_timeout_raises_and_late_reply_does_not_disturb_next_action(
    fake: FakeAMI, make_client: ClientFactory
) -> None:
    stalled: list[Message] = []
    fake.handlers["Stall"] = lambda conn, msg: stalled.append(msg)
    fake.handlers["Ping"] = lambda conn, msg: conn.reply(msg, ("Ping", "Pong"))
    client = await make_client()
    with pytest.raises(AMITimeout):
        await client.action("Stall", timeout=0.1)
    fake.conn.reply(stalled[0], ("Message", "too late"))
    reply = await client.action("Ping")
    assert reply["Ping"] == "Pong"
    assert reply["ActionID"] != stalled[0]["ActionID"]
    assert client.connected


async def test_connection_lost_while_waiting_fails_action_and_never_resends_it(
    fake: FakeAMI, make_client: ClientFactory
) -> None:
    fake.handlers["Originate"] = lambda conn, msg: conn.close()  # dies before replying
    client = await make_client()
    with pytest.raises(AMIConnectionLost):
        await client.action("Originate", {"Channel": "PJSIP/600", "Exten": "100"})
    await eventually(lambda: fake.count("Login") == 2)
    await client.wait_connected(2.0)
    await client.action("Ping")
    await asyncio.sleep(0.05)
    assert fake.count("Originate") == 1


@pytest.mark.parametrize(
    ("name", "fields"),
    [
        ("Originate", {"CallerID": "Mallory\r\nAction: Hangup"}),
        ("Originate", {"CallerID": "Mallory\nAction: Hangup"}),
        ("Originate", {"Bad\rKey": "x"}),
        ("Originate", {"Variable": ["ok=1", "evil=\x00"]}),
        ("Hangup\r\nChannel: PJSIP/1", None),
        ("Originate", {"ActionID": "spoofed"}),
    ],
)
async def test_crlf_or_nul_in_action_is_rejected_and_nothing_sent(
    fake: FakeAMI, make_client: ClientFactory, name: str, fields: dict[str, Any] | None
) -> None:
    client = await make_client()
    with pytest.raises(AMIArgumentError):
        await client.action(name, fields)
    await client.action("Ping")
    assert fake.names() == ["Login", "Ping"]
    assert client.connected


# --------------------------------------------------------------------------- events


async def test_failing_event_callback_does_not_stop_later_events(
    fake: FakeAMI, make_client: ClientFactory
) -> None:
    client = await make_client()
    sync_seen: list[str] = []
    async_seen: list[str] = []

    def explode(msg: Message) -> None:
        raise RuntimeError("boom")

    async def explode_async(msg: Message) -> None:
        raise RuntimeError("async boom")

    async def collect_async(msg: Message) -> None:
        await asyncio.sleep(0)
        async_seen.append(msg["Uniqueid"])

    client.on_event("Newchannel", explode)
    client.on_event("newchannel", explode_async)
    client.on_event("*", lambda m: sync_seen.append(m["Uniqueid"]))
    client.on_event("Newchannel", collect_async)
    with capture_logs() as logs:
        for uid in ("1", "2", "3"):
            fake.conn.send(("Event", "Newchannel"), ("Uniqueid", uid))
        await eventually(lambda: len(async_seen) == 3)
    assert sync_seen == ["1", "2", "3"]
    assert sorted(async_seen) == ["1", "2", "3"]
    assert sum(e["event"] == "ami_callback_failed" for e in logs) == 6
    assert client.connected


async def test_event_with_repeated_headers_keeps_every_value(
    fake: FakeAMI, make_client: ClientFactory
) -> None:
    client = await make_client()
    got: list[Message] = []
    remove = client.on_event("Newstate", got.append)
    fake.conn.send(("Event", "Newstate"), ("ChanVariable", "a=1"), ("ChanVariable", "b=2"))
    await eventually(lambda: len(got) == 1)
    assert got[0].getall("ChanVariable") == ["a=1", "b=2"]
    remove()
    fake.conn.send(("Event", "Newstate"))
    await client.action("Ping")  # the reader has processed the event by now
    assert len(got) == 1


# --------------------------------------------------------------------------- hostile peer


@pytest.mark.parametrize(
    "payload",
    [
        b"".join(b"Header%05d: %s\r\n" % (i, b"x" * 60) for i in range(1200)) + b"\r\n",
        b"Event: Newchannel\r\nCallerIDName: " + b"x" * 40_000 + b"\r\n\r\n",
    ],
    ids=["message-over-64KiB", "line-over-16KiB"],
)
async def test_oversized_message_drops_connection_and_reconnects(
    fake: FakeAMI, make_client: ClientFactory, payload: bytes
) -> None:
    client = await make_client()
    seen: list[Message] = []
    client.on_event("*", seen.append)
    with capture_logs() as logs:
        fake.conn.send_raw(payload)
        await eventually(lambda: fake.count("Login") == 2)
        await client.wait_connected(2.0)
    assert (await client.action("Ping"))["Response"] == "Success"
    assert seen == []
    assert any(
        e["event"] == "ami_connection_failed" and "AMIProtocolError" in e["error"] for e in logs
    )


async def test_bad_banner_is_treated_as_protocol_error(make_client: ClientFactory) -> None:
    async def not_asterisk(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"SSH-2.0-OpenSSH_9.6\r\n")
        with contextlib.suppress(ConnectionError):
            await reader.read()
        writer.close()

    server = await asyncio.start_server(not_asterisk, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    client = AMIClient("127.0.0.1", port, USER, SECRET, reconnect_min=0.01, reconnect_max=0.02)
    with capture_logs() as logs:
        await client.start()
        with pytest.raises(AMITimeout):
            await client.wait_connected(0.1)
        await client.stop()
    server.close()
    assert any("banner" in e.get("error", "") for e in logs)


# --------------------------------------------------------------------------- stop


async def test_stop_logs_off_and_fails_pending_actions(
    fake: FakeAMI, make_client: ClientFactory
) -> None:
    fake.handlers["Stall"] = lambda conn, msg: None
    client = await make_client()
    pending = asyncio.create_task(client.action("Stall"))
    await eventually(lambda: fake.count("Stall") == 1)
    await client.stop()
    with pytest.raises(AMIConnectionLost):
        await pending
    assert not client.connected
    await eventually(lambda: fake.count("Logoff") == 1)
    with pytest.raises(AMINotConnected):
        await client.action("Ping")
