"""Tests for agi.server: pure parsers plus real TCP sessions against a fake Asterisk."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, MutableMapping
from typing import Any, ClassVar, cast

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from agi.infoline import InfolineAGI
from agi.protocol import (
    MAX_COMMAND_BYTES,
    AGIArgumentError,
    AGICommandError,
    AGIDuplicateKey,
    AGIHangup,
    AGIProtocolError,
    AGIReply,
    AGIRequest,
    AGITimeout,
    AGIUsageError,
    format_command,
    parse_reply,
    parse_request,
    read_header,
)
from agi.server import AGISession, FastAGIServer, Handler
from core.agi_gate import Refusal, RefusalLog, SessionLimits, refusal
from models.calllog import CallLog, OpenedCall
from tests.fake_agi import SECRET, AsteriskClient, asterisk_header
from tests.support import wait_until

IO_TIMEOUT = 2.0

# --------------------------------------------------------------------------- helpers


def asterisk_parse_args(line: str) -> list[str]:
    """Reference port of res_agi.c parse_args(): whitespace separates words, '"' toggles
    quoting (and starts a word when it opens after whitespace), '\\' escapes the next char.
    """
    words: list[list[str]] = []
    quoted = escaped = False
    whitespace = True
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and whitespace:
                words.append([])
                whitespace = False
        elif ch in " \t" and not quoted and not escaped:
            whitespace = True
        elif ch == "\\" and not escaped:
            escaped = True
        else:
            if whitespace:
                words.append([])
                whitespace = False
            words[-1].append(ch)
            escaped = False
    return ["".join(word) for word in words]


def header_bytes(
    script: str = "infoline",
    uniqueid: str = "1700000000.1",
    args: tuple[str, ...] = (),
    extra: Mapping[str, str] | None = None,
) -> bytes:
    fields = {
        "agi_network": "yes",
        "agi_network_script": f"{script}?lang=pl",
        "agi_request": f"agi://127.0.0.1/{script}?lang=pl",
        "agi_channel": "PJSIP/trunk-00000001",
        "agi_language": "pl",
        "agi_type": "PJSIP",
        "agi_uniqueid": uniqueid,
        "agi_version": "22.0.0",
        "agi_callerid": "48123456789",
        "agi_calleridname": "Jan Kowalski",
        "agi_dnid": "800100200",
        "agi_context": "from-trunk",
        "agi_extension": "s",
        "agi_priority": "1",
        "agi_accountcode": "",
        **{f"agi_arg_{i}": arg for i, arg in enumerate(args, start=1)},
        **(extra or {}),
    }
    return "".join(f"{k}: {v}\n" for k, v in fields.items()).encode() + b"\n"


class FakeAsterisk:
    """The Asterisk side of one FastAGI connection."""

    opened: ClassVar[list[FakeAsterisk]] = []

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        FakeAsterisk.opened.append(self)

    @classmethod
    async def connect(cls, port: int, **header: Any) -> FakeAsterisk:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        fake = cls(reader, writer)
        writer.write(header_bytes(**header))
        await writer.drain()
        return fake

    async def expect(self) -> str:
        line = await asyncio.wait_for(self.reader.readline(), IO_TIMEOUT)
        assert line.endswith(b"\n"), f"connection closed instead of a command: {line!r}"
        return line.decode().rstrip("\n")

    async def send(self, *lines: str) -> None:
        self.writer.write("".join(f"{line}\n" for line in lines).encode())
        await self.writer.drain()

    async def expect_closed(self) -> bytes:
        """Wait for the server to close; return whatever it still sent."""
        return await read_until_closed(self.reader)

    def close(self) -> None:
        self.writer.close()


async def read_until_closed(reader: asyncio.StreamReader) -> bytes:
    data = b""
    try:
        async with asyncio.timeout(IO_TIMEOUT):
            while chunk := await reader.read(65536):
                data += chunk
    except ConnectionResetError:
        # Closing with unread input makes the kernel send RST instead of FIN.
        pass
    return data


async def wait_for_idle(server: FastAGIServer, within: float = IO_TIMEOUT) -> None:
    async with asyncio.timeout(within):
        while server.active_sessions:
            await asyncio.sleep(0.01)


ServerFactory = Callable[..., Awaitable[FastAGIServer]]


@pytest.fixture(autouse=True)
async def close_fakes() -> AsyncIterator[None]:
    yield
    for fake in FakeAsterisk.opened:
        fake.close()
    FakeAsterisk.opened.clear()


@pytest.fixture
async def make_server() -> AsyncIterator[ServerFactory]:
    servers: list[FastAGIServer] = []

    async def factory(handlers: Mapping[str, Handler], **kwargs: Any) -> FastAGIServer:
        server = FastAGIServer(handlers, "127.0.0.1", 0, **kwargs)
        await server.start()
        servers.append(server)
        return server

    yield factory
    for server in servers:
        await server.stop()


class Recorder:
    """Collects what handlers saw; `done` is set when a handler returns or raises."""

    def __init__(self) -> None:
        self.events: list[Any] = []
        self.done = asyncio.Event()

    async def wait(self) -> list[Any]:
        await asyncio.wait_for(self.done.wait(), IO_TIMEOUT)
        return self.events


# --------------------------------------------------------------------------- parse_request


def test_parse_request_strips_prefix_and_splits_script_query_and_args() -> None:
    lines = header_bytes(args=("a b", "", "3")).decode().splitlines()[:-1]
    lines.append("agi_arg_10: ten")  # numeric, not lexicographic ordering
    req = parse_request(lines)
    assert req.script == "infoline"
    assert req.query == {"lang": "pl"}
    assert req.args == ["a b", "", "3", "ten"]
    assert req.env["accountcode"] == ""
    assert req.env["network"] == "yes"
    assert req.channel == "PJSIP/trunk-00000001"
    assert req.uniqueid == "1700000000.1"
    assert req.callerid == "48123456789"
    assert req.calleridname == "Jan Kowalski"
    assert req.dnid == "800100200"
    assert req.extension == "s"
    assert req.context == "from-trunk"


def test_parse_request_falls_back_to_agi_request_url() -> None:
    req = parse_request(["agi_request: agi://10.0.0.1:4573/ivr/survey?x=1&y=", "agi_uniqueid: 5"])
    assert req.script == "ivr/survey"
    assert req.query == {"x": "1", "y": ""}
    assert req.args == []


def test_parse_request_keeps_colons_in_values() -> None:
    req = parse_request(["agi_network_script: infoline", "agi_calleridname: a: b"])
    assert req.calleridname == "a: b"


@pytest.mark.parametrize(
    "lines",
    [
        ["agi_network_script: infoline", "no colon here"],
        ["agi_network_script: infoline", "Host: example.com"],
        ["GET / HTTP/1.1"],
        ["agi_channel: x"],  # neither agi_network_script nor agi_request
        ["agi_network_script: x", "agi_arg_x: 1"],
    ],
)
def test_parse_request_rejects_malformed_headers(lines: list[str]) -> None:
    with pytest.raises(AGIProtocolError):
        parse_request(lines)


def test_request_is_frozen() -> None:
    req = AGIRequest(script="s", query={}, env={}, args=[])
    with pytest.raises(AttributeError):
        req.script = "other"  # type: ignore[misc]


# --------------------------------------------------------------------------- format_command


@pytest.mark.parametrize(
    ("words", "expected"),
    [
        (("ANSWER",), "ANSWER"),
        (("STREAM", "FILE", "hello", ""), 'STREAM FILE hello ""'),
        (("SET", "VARIABLE", "NAME", "Jan Kowalski"), 'SET VARIABLE NAME "Jan Kowalski"'),
        (("VERBOSE", 'say "hi"', "1"), 'VERBOSE "say \\"hi\\"" 1'),
        (("VERBOSE", "C:\\x", "1"), 'VERBOSE "C:\\\\x" 1'),
        (("VERBOSE", "a\tb"), 'VERBOSE "a\tb"'),
        (("SET", "VARIABLE", "X", "zażółć"), "SET VARIABLE X zażółć"),
    ],
)
def test_format_command_quotes_only_what_asterisk_would_split(
    words: tuple[str, ...], expected: str
) -> None:
    assert format_command(*words) == expected
    assert asterisk_parse_args(expected) == list(words)


@pytest.mark.parametrize("bad", ["a\nb", "x\r", "nul\x00", "\nANSWER"])
def test_format_command_rejects_line_breaks_and_nul(bad: str) -> None:
    with pytest.raises(AGIArgumentError):
        format_command("SET", "VARIABLE", "CALLERNAME", bad)


def test_format_command_rejects_lines_asterisk_would_split_in_two() -> None:
    format_command("VERBOSE", "x" * (MAX_COMMAND_BYTES - len("VERBOSE ")))
    with pytest.raises(AGIArgumentError):
        format_command("VERBOSE", "x" * (MAX_COMMAND_BYTES - len("VERBOSE ") + 1))


def test_format_command_rejects_empty_too_many_words_and_surrogates() -> None:
    with pytest.raises(AGIArgumentError):
        format_command()
    with pytest.raises(AGIArgumentError):
        format_command("NOOP", *(["x"] * 127))
    with pytest.raises(AGIArgumentError):
        format_command("VERBOSE", "\udcff")


_safe_text = st.text(
    alphabet=st.characters(codec="utf-8", exclude_characters="\r\n\x00"),
    max_size=40,
)


@given(st.lists(_safe_text, min_size=1, max_size=8))
def test_format_command_round_trips_through_asterisk_parse_args(words: list[str]) -> None:
    line = format_command(*words)
    assert not {"\r", "\n", "\x00"} & set(line)
    assert asterisk_parse_args(line) == words


# --------------------------------------------------------------------------- parse_reply


def test_parse_reply_reads_result_data_and_extra() -> None:
    reply = parse_reply("200 result=1 (some data) endpos=1234")
    assert reply == AGIReply(code=200, result="1", data="some data", extra={"endpos": "1234"})
    assert reply.int_result == 1
    assert not reply.failed


def test_parse_reply_data_may_contain_parentheses() -> None:
    assert parse_reply("200 result=1 (a (b) c)").data == "a (b) c"
    assert parse_reply("200 result=1 ()").data == ""


def test_parse_reply_minus_one_is_a_failed_reply_not_an_exception() -> None:
    reply = parse_reply("200 result=-1")
    assert reply == AGIReply(code=200, result="-1")
    assert reply.failed


def test_parse_reply_keeps_odd_200_lines_leniently() -> None:
    raw = "200 result=1 (speech) endpos=0 results=1 text0=dzień dobry"
    reply = parse_reply(raw)
    assert reply.result == "1"
    assert reply.raw == raw


def test_parse_reply_510_raises_command_error() -> None:
    with pytest.raises(AGICommandError) as info:
        parse_reply("510 Invalid or unknown command")
    assert info.value.code == 510
    assert not isinstance(info.value, AGIUsageError)


@pytest.mark.parametrize(
    "line",
    [
        "511 Command Not Permitted on a dead channel or intercept routine",
        "511 Command Not Permitted on a dead channel",
    ],
)
def test_parse_reply_511_raises_hangup(line: str) -> None:
    with pytest.raises(AGIHangup):
        parse_reply(line)


def test_parse_reply_520_block_raises_usage_error_with_usage_text() -> None:
    block = [
        "520-Invalid command syntax.  Proper usage follows:",
        "Usage: STREAM FILE <filename> <escape digits> [sample offset]",
        "  Send the given file.",
        "520 End of proper usage.",
    ]
    with pytest.raises(AGIUsageError) as info:
        parse_reply(block)
    assert info.value.code == 520
    assert "Usage: STREAM FILE" in info.value.usage
    with pytest.raises(AGIUsageError):
        parse_reply("520 Invalid command syntax.  Proper usage not available.")


@pytest.mark.parametrize(
    "reply", ["", "HANGUP", "hello", "20 result=1", ["520-Invalid", "no end"], "200-x"]
)
def test_parse_reply_rejects_garbage(reply: str | list[str]) -> None:
    with pytest.raises(AGIProtocolError):
        parse_reply(reply)


# --------------------------------------------------------------------------- sessions


async def test_session_round_trip_and_handler_sees_request(make_server: ServerFactory) -> None:
    rec = Recorder()

    async def handler(request: AGIRequest, session: AGISession) -> None:
        rec.events.append(request)
        rec.events.append(await session.command("GET", "VARIABLE", "CALLERID(name)"))
        rec.done.set()

    server = await make_server({"infoline": handler})
    fake = await FakeAsterisk.connect(server.port, args=("x y",))
    assert await fake.expect() == "GET VARIABLE CALLERID(name)"
    await fake.send("200 result=1 (Jan Kowalski)")
    request, reply = await rec.wait()
    assert request.script == "infoline" and request.args == ["x y"]
    assert reply.data == "Jan Kowalski"
    assert await fake.expect_closed() == b""  # handler returned -> connection closed
    await wait_for_idle(server)


async def test_half_header_then_close_does_not_spin_and_next_call_is_served(
    make_server: ServerFactory,
) -> None:
    rec = Recorder()

    async def handler(request: AGIRequest, session: AGISession) -> None:
        rec.events.append((await session.command("ANSWER")).result)
        rec.done.set()

    server = await make_server({"infoline": handler}, header_timeout=5.0)
    _, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"agi_network: yes\nagi_network_script: info")  # cut mid-line
    await writer.drain()
    writer.close()
    await wait_for_idle(server, within=1.0)  # dropped on EOF, long before header_timeout

    cpu_before = time.process_time()
    await asyncio.sleep(0.3)
    assert time.process_time() - cpu_before < 0.15  # no busy loop left behind

    started = time.monotonic()
    fake = await FakeAsterisk.connect(server.port)
    assert await fake.expect() == "ANSWER"
    await fake.send("200 result=0")
    assert await rec.wait() == ["0"]
    assert time.monotonic() - started < 1.0
    await fake.expect_closed()
    await wait_for_idle(server)


async def test_stalled_header_is_dropped_after_header_timeout(make_server: ServerFactory) -> None:
    called = False

    async def handler(request: AGIRequest, session: AGISession) -> None:
        nonlocal called
        called = True

    server = await make_server({"infoline": handler}, header_timeout=0.2)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(b"agi_network: yes\n")
    await writer.drain()
    started = time.monotonic()
    assert await read_until_closed(reader) == b""
    assert 0.15 < time.monotonic() - started < 1.5
    await wait_for_idle(server)
    assert not called
    writer.close()


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"agi_x: " + b"y" * 100_000, id="one-huge-line-without-newline"),
        pytest.param(b"agi_x: " + b"y" * 5000 + b"\n\n", id="line-over-4096"),
        pytest.param(b"".join(b"agi_v%d: %s\n" % (i, b"y" * 1000) for i in range(40)), id="17k"),
        pytest.param(b"".join(b"agi_v%d: 1\n" % i for i in range(300)) + b"\n", id="300-lines"),
        pytest.param(b"\x00\xff\xfe\x01binary\n\n", id="binary"),
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", id="http"),
        pytest.param(b"\n", id="empty-header"),
    ],
)
async def test_oversized_or_junk_header_is_dropped_without_calling_handler(
    make_server: ServerFactory, payload: bytes
) -> None:
    called = False

    async def handler(request: AGIRequest, session: AGISession) -> None:
        nonlocal called
        called = True

    server = await make_server({"infoline": handler}, header_timeout=5.0)
    reader, writer = await asyncio.open_connection("127.0.0.1", server.port)
    writer.write(payload)
    started = time.monotonic()
    with contextlib.suppress(ConnectionError):
        await writer.drain()
    assert await read_until_closed(reader) == b""
    assert time.monotonic() - started < 1.0  # dropped for size/junk, not by the timeout
    await wait_for_idle(server)
    assert not called
    writer.close()


async def test_hangup_before_reply_keeps_replies_aligned_and_blocks_live_commands(
    make_server: ServerFactory,
) -> None:
    rec = Recorder()

    async def handler(request: AGIRequest, session: AGISession) -> None:
        try:
            rec.events.append(await session.command("STREAM", "FILE", "hello", ""))
            rec.events.append(session.hung_up)
            rec.events.append(await session.command("GET", "VARIABLE", "SURVEY"))
            await session.command("STREAM", "FILE", "bye", "")
        except AGIHangup as exc:
            rec.events.append(exc)
        finally:
            rec.done.set()

    server = await make_server({"infoline": handler})
    fake = await FakeAsterisk.connect(server.port)
    assert await fake.expect() == 'STREAM FILE hello ""'
    await fake.send("HANGUP", "200 result=-1 endpos=0")  # notice arrives before the reply
    assert await fake.expect() == "GET VARIABLE SURVEY"
    await fake.send("200 result=1 (5)")
    first, hung_up, second, error = await rec.wait()
    assert first == AGIReply(code=200, result="-1", extra={"endpos": "0"})
    assert hung_up is True
    assert second.data == "5"  # matched to GET VARIABLE, not shifted by the HANGUP line
    assert isinstance(error, AGIHangup)
    assert await fake.expect_closed() == b""  # "STREAM FILE bye" was never written


async def test_idle_hangup_then_511_raises_hangup_and_session_stays_aligned(
    make_server: ServerFactory,
) -> None:
    rec = Recorder()

    async def handler(request: AGIRequest, session: AGISession) -> None:
        rec.events.append((await session.command("ANSWER")).result)
        try:
            await session.command("STREAM", "FILE", "menu", "123")
        except AGIHangup as exc:
            rec.events.append(("hangup", session.hung_up, str(exc)))
        with pytest.raises(AGIHangup):
            await session.command("WAIT", "FOR", "DIGIT", "1000")  # refused locally now
        rec.events.append(await session.command("VERBOSE", "caller left", "1"))
        rec.done.set()

    server = await make_server({"infoline": handler})
    fake = await FakeAsterisk.connect(server.port)
    assert await fake.expect() == "ANSWER"
    await fake.send("200 result=0", "HANGUP")  # HANGUP while the script is idle
    assert await fake.expect() == "STREAM FILE menu 123"
    await fake.send("511 Command Not Permitted on a dead channel or intercept routine")
    assert await fake.expect() == 'VERBOSE "caller left" 1'
    await fake.send("200 result=1")
    answered, (kind, hung_up, text), verbose = await rec.wait()
    assert answered == "0"
    assert (kind, hung_up) == ("hangup", True)
    assert text.startswith("511")
    assert verbose.result == "1"


async def test_520_usage_block_raises_usage_error_and_next_command_works(
    make_server: ServerFactory,
) -> None:
    rec = Recorder()

    async def handler(request: AGIRequest, session: AGISession) -> None:
        try:
            await session.command("STREAM", "FILE")
        except AGIUsageError as exc:
            rec.events.append(exc.usage)
        with pytest.raises(AGICommandError):
            await session.command("FROBNICATE")
        rec.events.append(await session.command("ANSWER"))
        rec.done.set()

    server = await make_server({"infoline": handler})
    fake = await FakeAsterisk.connect(server.port)
    assert await fake.expect() == "STREAM FILE"
    await fake.send(
        "520-Invalid command syntax.  Proper usage follows:",
        "Usage: STREAM FILE <filename> <escape digits> [sample offset]",
        "",
        "  Send the given file, allowing playback to be interrupted.",
        "520 End of proper usage.",
    )
    assert await fake.expect() == "FROBNICATE"
    await fake.send("510 Invalid or unknown command")
    assert await fake.expect() == "ANSWER"
    await fake.send("200 result=0")
    usage, answer = await rec.wait()
    assert usage.startswith("Usage: STREAM FILE")
    assert answer.result == "0"


async def test_handler_exception_is_logged_and_server_keeps_serving(
    make_server: ServerFactory,
) -> None:
    rec = Recorder()

    async def broken(request: AGIRequest, session: AGISession) -> None:
        raise RuntimeError("bug in handler")

    async def fine(request: AGIRequest, session: AGISession) -> None:
        rec.events.append((await session.command("ANSWER")).result)
        rec.done.set()

    server = await make_server({"broken": broken, "infoline": fine})
    with structlog.testing.capture_logs(
        processors=[structlog.contextvars.merge_contextvars]
    ) as logs:
        bad = await FakeAsterisk.connect(server.port, script="broken", uniqueid="42.1")
        assert await bad.expect_closed() == b""
        await wait_for_idle(server)
    errors = [e for e in logs if e["event"] == "agi.handler_error"]
    assert len(errors) == 1
    assert errors[0]["exc_info"] is True
    assert errors[0]["call_id"] == "42.1"
    assert errors[0]["agi_script"] == "broken"

    fake = await FakeAsterisk.connect(server.port)
    assert await fake.expect() == "ANSWER"
    await fake.send("200 result=0")
    assert await rec.wait() == ["0"]


async def test_newline_in_argument_raises_and_writes_nothing(make_server: ServerFactory) -> None:
    rec = Recorder()

    async def handler(request: AGIRequest, session: AGISession) -> None:
        hostile = "Evil\nEXEC Dial PJSIP/premium"  # attacker-controlled caller name
        with pytest.raises(AGIArgumentError):
            await session.command("SET", "VARIABLE", "CALLERNAME", hostile)
        with pytest.raises(AGIArgumentError):
            await session.command("SET VARIABLE", "X", "1")  # keywords must be separate
        rec.events.append(await session.command("ANSWER"))
        rec.done.set()

    server = await make_server({"infoline": handler})
    fake = await FakeAsterisk.connect(server.port)
    assert await fake.expect() == "ANSWER"  # the first thing on the wire
    await fake.send("200 result=0")
    await rec.wait()
    assert await fake.expect_closed() == b""


async def test_command_timeout_raises_and_closes_connection(make_server: ServerFactory) -> None:
    rec = Recorder()

    async def handler(request: AGIRequest, session: AGISession) -> None:
        try:
            await session.command("GET", "DATA", "beep", timeout=0.1)
        except AGITimeout:
            rec.events.append(session.closed)
        with pytest.raises(AGIHangup):
            await session.command("ANSWER")
        rec.done.set()

    server = await make_server({"infoline": handler})
    fake = await FakeAsterisk.connect(server.port)
    assert await fake.expect() == "GET DATA beep"
    assert await rec.wait() == [True]
    await fake.send("200 result=1 (too late)")
    await fake.expect_closed()
    await wait_for_idle(server)


async def test_eof_while_waiting_for_reply_raises_hangup(make_server: ServerFactory) -> None:
    rec = Recorder()

    async def handler(request: AGIRequest, session: AGISession) -> None:
        try:
            await session.command("STREAM", "FILE", "hello", "")
        except AGIHangup:
            rec.events.append(session.hung_up)
        rec.done.set()

    server = await make_server({"infoline": handler})
    fake = await FakeAsterisk.connect(server.port)
    assert await fake.expect() == 'STREAM FILE hello ""'
    fake.writer.write(b"HANGUP\n200 res")  # then Asterisk goes away mid-line
    fake.writer.write_eof()
    assert await rec.wait() == [True]
    await wait_for_idle(server)


async def test_unknown_script_is_closed(make_server: ServerFactory) -> None:
    server = await make_server({"infoline": lambda r, s: asyncio.sleep(0)})
    fake = await FakeAsterisk.connect(server.port, script="nope")
    assert await fake.expect_closed() == b""
    await wait_for_idle(server)


async def test_connections_over_max_are_closed_immediately(make_server: ServerFactory) -> None:
    release = asyncio.Event()
    entered = asyncio.Event()

    async def handler(request: AGIRequest, session: AGISession) -> None:
        entered.set()
        await release.wait()

    server = await make_server({"infoline": handler}, max_connections=1)
    first = await FakeAsterisk.connect(server.port)
    await asyncio.wait_for(entered.wait(), IO_TIMEOUT)
    second = await FakeAsterisk.connect(server.port, uniqueid="2")
    assert await second.expect_closed() == b""
    assert server.active_sessions == 1
    release.set()
    await first.expect_closed()
    await wait_for_idle(server)


async def test_many_concurrent_sessions_are_all_served(make_server: ServerFactory) -> None:
    n = 200
    served: set[str] = set()

    async def handler(request: AGIRequest, session: AGISession) -> None:
        reply = await session.command("GET", "VARIABLE", "N")
        assert reply.data == request.uniqueid
        served.add(request.uniqueid)

    server = await make_server({"infoline": handler})

    async def call(i: int) -> None:
        fake = await FakeAsterisk.connect(server.port, uniqueid=f"{i}.0")
        assert await fake.expect() == "GET VARIABLE N"
        await fake.send(f"200 result=1 ({i}.0)")
        assert await fake.expect_closed() == b""
        fake.close()

    async with asyncio.timeout(10):
        await asyncio.gather(*(call(i) for i in range(n)))
    assert served == {f"{i}.0" for i in range(n)}
    await wait_for_idle(server)


async def test_stop_cancels_running_sessions_and_closes_them() -> None:
    entered = asyncio.Event()
    cancelled = asyncio.Event()

    async def handler(request: AGIRequest, session: AGISession) -> None:
        entered.set()
        try:
            await session.command("EXEC", "Dial", "PJSIP/100", timeout=float("inf"))
        except asyncio.CancelledError:
            cancelled.set()
            raise

    server = FastAGIServer({"infoline": handler}, "127.0.0.1", 0)
    await server.start()
    fake = await FakeAsterisk.connect(server.port)
    assert await fake.expect() == "EXEC Dial PJSIP/100"
    await asyncio.wait_for(entered.wait(), IO_TIMEOUT)
    started = time.monotonic()
    await server.stop()
    assert time.monotonic() - started < 1.0
    assert cancelled.is_set()
    assert server.active_sessions == 0
    assert await fake.expect_closed() == b""


# --------------------------------------------------------------------------- hostile input
# Issue 10: a caller's name is written into the header unescaped; anyone reaching the port
# could run a script; idle clients took every slot; a stalled peer counted as completed;
# every refused connection logged a line.


def _header_lines(header: bytes) -> list[str]:
    return header.decode().split("\n\n", 1)[0].split("\n")


def test_newline_in_caller_name_cannot_change_the_script_or_the_uniqueid() -> None:
    name = "Ana\nagi_network_script: survey\nagi_uniqueid: 1764400000.7\nagi_arg_1: x"
    request = parse_request(_header_lines(asterisk_header(calleridname=name, args=(SECRET, "L1"))))
    assert request.script == "infoline"
    assert request.uniqueid == "1764500000.1"
    assert request.args == [SECRET, "L1"]
    assert request.calleridname == name  # the whole name, line feeds and all
    assert request.extension == "0800100200"


def test_newline_in_caller_number_is_kept_in_the_number() -> None:
    number = "061\nagi_channel: PJSIP/victim-00000001"
    request = parse_request(_header_lines(asterisk_header(callerid=number)))
    assert request.callerid == number
    assert request.channel == "Local/0800100200@infoline-agi-00000001;2"


def test_injection_that_escapes_the_name_repeats_a_key_and_is_refused() -> None:
    # A forged agi_callingpres ends the name early; what follows it repeats real keys.
    name = "Ana\nagi_callingpres: 0\nagi_uniqueid: 1764400000.7"
    with pytest.raises(AGIDuplicateKey, match="agi_uniqueid"):
        parse_request(_header_lines(asterisk_header(calleridname=name)))


@pytest.mark.parametrize(
    "repeated",
    [
        "agi_network_script: survey",
        "agi_uniqueid: 1764400000.7",
        "agi_channel: PJSIP/victim-1",
        "agi_arg_1: forged",
        "agi_request: agi://127.0.0.1/survey",
    ],
)
def test_a_repeated_security_relevant_key_refuses_the_request(repeated: str) -> None:
    lines = [*_header_lines(asterisk_header(args=("a",))), repeated]
    with pytest.raises(AGIDuplicateKey):
        parse_request(lines)


def test_a_repeated_harmless_key_never_overrides_the_first() -> None:
    lines = [*_header_lines(asterisk_header()), "agi_language: xx", "agi_priority: 99"]
    request = parse_request(lines)
    assert (request.env["language"], request.env["priority"]) == ("en", "2")


async def test_lines_after_the_blank_line_are_not_header() -> None:
    # A name with an empty line in it ends the header there: the rest is never header.
    name = "Ana\n\nagi_network_script: survey"
    reader = asyncio.StreamReader()
    reader.feed_data(asterisk_header(calleridname=name, args=(SECRET,)))
    reader.feed_eof()
    request = parse_request(await read_header(reader))
    assert request.script == "infoline"
    assert request.args == []  # the real arguments (the secret) came after the blank line
    assert (await reader.readline()) == b"agi_network_script: survey\n"


def test_other_addresses_are_capped_and_leave_the_pbx_its_share() -> None:
    limits = SessionLimits(
        total=10, per_peer=3, reserved_for_pbx=4, pbx_addresses=frozenset({"10.0.0.5"})
    )
    assert refusal("10.9.9.9", {"10.9.9.9": 2}, limits) is None
    assert refusal("10.9.9.9", {"10.9.9.9": 3}, limits) is Refusal.PEER_LIMIT
    others = {"10.9.9.1": 3, "10.9.9.2": 3}
    assert refusal("10.9.9.3", others, limits) is Refusal.OTHERS_LIMIT
    # The PBX is held to no per-address cap, only to the total.
    assert refusal("10.0.0.5", {**others, "10.0.0.5": 3}, limits) is None
    assert refusal("10.0.0.5", {**others, "10.0.0.5": 4}, limits) is Refusal.FULL
    assert refusal("10.0.0.5", {}, limits, stopping=True) is Refusal.STOPPING


@pytest.mark.parametrize("reserved", [10, -1])
def test_session_limits_that_cannot_work_are_refused(reserved: int) -> None:
    with pytest.raises(ValueError):
        SessionLimits(total=10, reserved_for_pbx=reserved)


def test_refusal_log_says_the_first_at_once_then_one_summary_per_interval() -> None:
    log = RefusalLog(interval=60)
    assert log.note(Refusal.BAD_HEADER, now=0) == {"bad_header": 1}
    assert [log.note(Refusal.PEER_LIMIT, now=t) for t in range(1, 50)] == [None] * 49
    assert log.note(Refusal.BAD_HEADER, now=50) is None
    assert log.due_at == 60
    assert log.take(now=60) == {"peer_limit": 49, "bad_header": 1}
    assert log.note(Refusal.UNAUTHENTICATED, now=61) is None  # within the next interval
    assert log.take(now=120) == {"unauthenticated": 1}
    assert log.take(now=180) == {}
    assert log.note(Refusal.UNAUTHENTICATED, now=181) == {"unauthenticated": 1}


async def _secured(make_server: ServerFactory, rec: Recorder, **kwargs: Any) -> FastAGIServer:
    async def handler(request: AGIRequest, session: AGISession) -> None:
        rec.events.append(request.args)
        rec.done.set()

    return await make_server({"infoline": handler, "survey": handler}, secret=SECRET, **kwargs)


@pytest.mark.parametrize(
    "header",
    [
        asterisk_header(args=()),
        asterisk_header(args=("wrong-secret-0123456789", "L1")),
        asterisk_header(args=(SECRET[:-1], "L1")),
        # A name that ends the header with a blank line cuts the real secret off ...
        asterisk_header(calleridname="Ana\n", args=(SECRET, "L1")),
        # ... and one that brings its own first argument first must know the secret.
        asterisk_header(calleridname="Ana\nagi_arg_1: guess\n", args=(SECRET, "L1")),
    ],
    ids=["no-secret", "wrong-secret", "prefix-of-secret", "secret-cut-off", "secret-guessed"],
)
async def test_request_without_the_secret_is_refused_before_any_handler(
    make_server: ServerFactory, header: bytes
) -> None:
    rec = Recorder()
    server = await _secured(make_server, rec)
    with structlog.testing.capture_logs() as logs:
        client = await AsteriskClient.connect(server.port, header)
        assert await client.closed() == b""
        await wait_for_idle(server)
    assert rec.events == []
    assert [entry["reason"] for entry in logs if entry["event"] == "agi.connections_refused"] == [
        "unauthenticated"
    ]


async def test_the_secret_is_checked_and_taken_off_the_arguments(
    make_server: ServerFactory,
) -> None:
    rec = Recorder()
    server = await _secured(make_server, rec)
    await AsteriskClient.connect(server.port, asterisk_header(args=(SECRET, "L1", "")))
    assert await rec.wait() == [["L1", ""]]


async def test_idle_flood_from_one_address_does_not_stop_the_pbx_session(
    make_server: ServerFactory,
) -> None:
    rec = Recorder()
    limits = SessionLimits(total=12, per_peer=4, reserved_for_pbx=4)
    server = await _secured(make_server, rec, limits=limits, header_timeout=30)
    flood = [await AsteriskClient.connect(server.port, source="127.0.0.2") for _ in range(40)]
    await wait_until(lambda: server.active_sessions == 4, timeout=5)
    # Another attacking address gets its own few, and the others together stop at 8.
    flood += [await AsteriskClient.connect(server.port, source="127.0.0.3") for _ in range(40)]
    await wait_until(lambda: server.active_sessions == 8, timeout=5)
    flood += [await AsteriskClient.connect(server.port, source="127.0.0.4") for _ in range(4)]
    await AsteriskClient.connect(server.port, asterisk_header(args=(SECRET, "L1")))
    assert await rec.wait() == [["L1"]]
    assert server.active_sessions <= 8 + 1
    for client in flood:
        client.close()


class _CallLog:
    """Just what the info-line script writes, kept for the assertions."""

    def __init__(self) -> None:
        self.closed: list[dict[str, Any]] = []

    async def open_call(self, **fields: Any) -> OpenedCall:
        return OpenedCall(id="call-1", client_id=None, caller_e164=None, new=False)

    async def answered(self, call_id: str, at: Any) -> None:
        pass

    async def event(self, call_id: str, kind: str, **data: Any) -> None:
        pass

    async def close(self, call_id: str, **fields: Any) -> bool:
        self.closed.append(fields)
        return True


async def test_a_peer_that_stops_answering_ends_the_call_as_timeout_not_completed(
    make_server: ServerFactory,
) -> None:
    calllog = _CallLog()
    infoline = InfolineAGI(cast(CallLog, calllog), "sound:hello-world")
    server = await make_server({"infoline": infoline}, secret=SECRET, command_timeout=0.2)
    client = await AsteriskClient.connect(server.port, asterisk_header(args=(SECRET, "L1")))
    assert await client.command() == "ANSWER"
    # ... and no reply, ever.
    assert await client.closed() == b""
    await wait_until(lambda: calllog.closed, timeout=5)
    assert [(c["outcome"], c["cause"]) for c in calllog.closed] == [("timeout", None)]


async def test_refused_connections_are_logged_once_per_interval_with_a_count(
    make_server: ServerFactory,
) -> None:
    rec = Recorder()
    server = await _secured(make_server, rec, refusal_log_interval=0.3)
    with structlog.testing.capture_logs() as logs:
        for _ in range(30):
            client = await AsteriskClient.connect(server.port, asterisk_header(args=("bad",)))
            assert await client.closed() == b""

        def refused() -> list[MutableMapping[str, Any]]:
            return [e for e in logs if e["event"] == "agi.connections_refused"]

        await wait_until(lambda: sum(sum(e["counts"].values()) for e in refused()) == 30)
    lines = refused()
    assert lines[0]["counts"] == {"unauthenticated": 1}
    assert len(lines) <= 3  # 30 refusals in well under a second: a line, then a summary or two
    assert rec.events == []
