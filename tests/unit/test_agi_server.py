"""Tests for agi.server: pure parsers plus real TCP sessions against a fake Asterisk."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, ClassVar

import pytest
import structlog
from hypothesis import given
from hypothesis import strategies as st

from agi.protocol import (
    MAX_COMMAND_BYTES,
    AGIArgumentError,
    AGICommandError,
    AGIHangup,
    AGIProtocolError,
    AGIReply,
    AGIRequest,
    AGITimeout,
    AGIUsageError,
    format_command,
    parse_reply,
    parse_request,
)
from agi.server import AGISession, FastAGIServer, Handler

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
