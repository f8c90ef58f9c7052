"""Small asyncio FastAGI server for Asterisk.

Why our own: panoramisk's server spins at 100% CPU when a client closes mid-header,
shifts replies by one after an unsolicited ``HANGUP`` line, crashes on ``520`` usage
blocks and has no timeouts.

Protocol summary (Asterisk ``res_agi.c``):

* Asterisk connects, sends ``agi_<name>: <value>`` lines and an empty line.
* We send one command per line; Asterisk answers each with exactly one reply:
  ``200 result=<r> [(<data>)] [key=value ...]``, ``510 ...`` (unknown command),
  ``511 ...`` (not permitted on a dead channel) or a ``520`` usage block, which is
  either a single ``520 ...`` line or ``520-...`` + usage text + ``520 End of proper usage.``.
* On hang-up Asterisk writes an unsolicited ``HANGUP`` line between replies (also again
  right before it closes the socket).  It is *not* a reply and must be skipped, or every
  later reply is matched to the wrong command.  After it Asterisk keeps serving the
  socket in "dead" mode: only dead-capable commands run, others get ``511``.

Hang-up policy: once ``session.hung_up`` is set, :meth:`AGISession.command` raises
:class:`AGIHangup` locally (nothing is written) for every command that is not in
:data:`DEAD_CHANNEL_COMMANDS`; allowed commands are sent, and if Asterisk still answers
``511`` that also raises :class:`AGIHangup`.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, unquote, urlsplit

import structlog

__all__ = [
    "DEAD_CHANNEL_COMMANDS",
    "AGIArgumentError",
    "AGICommandError",
    "AGIError",
    "AGIHangup",
    "AGIProtocolError",
    "AGIReply",
    "AGIRequest",
    "AGISession",
    "AGITimeout",
    "AGIUsageError",
    "FastAGIServer",
    "Handler",
    "format_command",
    "parse_reply",
    "parse_request",
    "read_header",
]

logger = structlog.get_logger(__name__)

# res_agi.c reads commands with fgets() into char buf[AGI_BUF_LEN=2048]: a longer line is
# silently split and the tail executed as a *second* command, so we refuse to send one.
MAX_COMMAND_BYTES = 2046  # + "\n" + NUL == 2048
# parse_args() keeps at most MAX_ARGS - 1 == 127 words and silently drops the rest.
MAX_COMMAND_WORDS = 127

DEFAULT_COMMAND_TIMEOUT = 30.0
MAX_REPLY_LINE = 1 << 20  # GET VARIABLE values can be long; bound memory anyway
MAX_USAGE_LINES = 500

# Commands Asterisk runs on a dead channel (``dead=1`` in res_agi.c) that we let through
# after HANGUP.  EXEC is dead-capable in Asterisk too but runs dialplan apps, which is
# never what a hung-up session wants, so it is refused locally.
DEAD_CHANNEL_COMMANDS: frozenset[tuple[str, ...]] = frozenset(
    {
        ("GET", "VARIABLE"),
        ("GET", "FULL", "VARIABLE"),
        ("SET", "VARIABLE"),
        ("VERBOSE",),
        ("NOOP",),
        ("DATABASE", "GET"),
        ("DATABASE", "PUT"),
        ("DATABASE", "DEL"),
        ("DATABASE", "DELTREE"),
    }
)

_COMMAND_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]*\Z")
_NEEDS_QUOTES = frozenset(' \t"\\')
_FORBIDDEN = frozenset("\r\n\x00")
_REPLY_LINE = re.compile(r"(\d{3})([ -])(.*)\Z", re.DOTALL)
# Greedy data group: a value may itself contain parentheses; backtracking leaves only
# well-formed key=value tokens after the last ")".
_RESULT = re.compile(r"result=(\S*)(?:\s+\((.*)\))?((?:\s+[^\s=]+=\S*)*)\s*\Z", re.DOTALL)


# --------------------------------------------------------------------------- errors


class AGIError(Exception):
    """Base class of all AGI errors."""


class AGIProtocolError(AGIError):
    """The peer violated the AGI protocol (bad header, unparsable reply, limits)."""


class AGIArgumentError(AGIError, ValueError):
    """A command cannot be sent safely (CR/LF/NUL in a word, too long, bad name)."""


class AGICommandError(AGIError):
    """Asterisk rejected the command (510 unknown command, or another non-200 code)."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(f"{code} {text}")
        self.code = code
        self.text = text


class AGIUsageError(AGICommandError):
    """520: wrong command syntax; ``usage`` holds Asterisk's usage text, if any."""

    def __init__(self, code: int, text: str, usage: str = "") -> None:
        super().__init__(code, text)
        self.usage = usage


class AGIHangup(AGIError):
    """The channel hung up (511, HANGUP seen, or the connection closed)."""


class AGITimeout(AGIError):
    """No reply within the command timeout; the connection has been closed."""


# --------------------------------------------------------------------------- request


@dataclass(frozen=True)
class AGIRequest:
    """The FastAGI request header, parsed."""

    script: str
    query: dict[str, str]
    env: dict[str, str]
    args: list[str]

    @property
    def channel(self) -> str:
        return self.env.get("channel", "")

    @property
    def uniqueid(self) -> str:
        return self.env.get("uniqueid", "")

    @property
    def callerid(self) -> str:
        """Raw ``agi_callerid``; Asterisk sends ``unknown`` when there is none."""
        return self.env.get("callerid", "")

    @property
    def calleridname(self) -> str:
        return self.env.get("calleridname", "")

    @property
    def dnid(self) -> str:
        return self.env.get("dnid", "")

    @property
    def extension(self) -> str:
        return self.env.get("extension", "")

    @property
    def context(self) -> str:
        return self.env.get("context", "")


def parse_request(lines: Sequence[str]) -> AGIRequest:
    """Parse header lines (without the terminating empty line) into an AGIRequest.

    Every line must be ``agi_<name>: <value>``; anything else raises AGIProtocolError.
    """
    env: dict[str, str] = {}
    for raw in lines:
        line = raw.rstrip("\r\n")
        if not line:
            continue
        key, sep, value = line.partition(":")
        if not sep:
            raise AGIProtocolError(f"header line without colon: {line[:80]!r}")
        if not key.startswith("agi_") or len(key) == 4 or not key.isprintable() or " " in key:
            raise AGIProtocolError(f"not an agi_* header: {key[:80]!r}")
        if "\x00" in value:
            raise AGIProtocolError(f"NUL byte in header {key!r}")
        # Asterisk writes "agi_x: value"; the value may be empty ("agi_accountcode: ").
        env[key[4:]] = value[1:] if value.startswith(" ") else value

    # agi_network_script is "path?query" as written after the host in agi://host/path?query;
    # fall back to agi_request (the full URL) if it is missing.
    target = env.get("network_script")
    if target is None:
        request = env.get("request")
        if request is None:
            raise AGIProtocolError("header has neither agi_network_script nor agi_request")
        parts = urlsplit(request)
        if parts.scheme in ("agi", "hagi"):
            target = parts.path + ("?" + parts.query if parts.query else "")
        else:
            target = request
    path, _, query = target.partition("?")

    numbered: list[tuple[int, str]] = []
    for key, value in env.items():
        if key.startswith("arg_"):
            index = key[4:]
            if not index.isdigit():
                raise AGIProtocolError(f"bad argument header agi_{key}")
            numbered.append((int(index), value))
    numbered.sort()

    return AGIRequest(
        script=unquote(path).lstrip("/"),
        query=dict(parse_qsl(query, keep_blank_values=True)),
        env=env,
        args=[value for _, value in numbered],
    )


async def _read_line(reader: asyncio.StreamReader, max_len: int) -> bytes:
    """Read one ``\\n``-terminated line of at most ``max_len`` bytes (newline included).

    Works with a small StreamReader limit: LimitOverrunError leaves the buffer intact, so
    we consume it in pieces.  EOF raises IncompleteReadError (never loops on b"").
    """
    parts: list[bytes] = []
    size = 0
    while True:
        try:
            chunk = await reader.readuntil(b"\n")
        except asyncio.LimitOverrunError as exc:
            chunk = await reader.readexactly(exc.consumed)
            size += len(chunk)
            if size > max_len:
                raise AGIProtocolError(f"line longer than {max_len} bytes") from None
            parts.append(chunk)
            continue
        except asyncio.IncompleteReadError as exc:
            raise asyncio.IncompleteReadError(b"".join(parts) + exc.partial, None) from None
        size += len(chunk)
        if size > max_len:
            raise AGIProtocolError(f"line longer than {max_len} bytes")
        parts.append(chunk)
        return b"".join(parts)


async def read_header(
    reader: asyncio.StreamReader,
    *,
    max_bytes: int = 16 * 1024,
    max_lines: int = 256,
    max_line_length: int = 4096,
) -> list[str]:
    """Read the header block up to the empty line; enforce limits (no timeout here).

    Raises AGIProtocolError on limit violations, binary data or EOF mid-header.
    """
    lines: list[str] = []
    total = 0
    while True:
        try:
            raw = await _read_line(reader, max_line_length + 1)  # +1 for the "\n"
        except AGIProtocolError:
            raise AGIProtocolError(f"header line longer than {max_line_length} bytes") from None
        except asyncio.IncompleteReadError as exc:
            raise AGIProtocolError(
                f"EOF inside header after {len(lines)} lines ({total + len(exc.partial)} bytes)"
            ) from None
        total += len(raw)
        if total > max_bytes:
            raise AGIProtocolError(f"header larger than {max_bytes} bytes")
        if b"\x00" in raw:
            raise AGIProtocolError("binary data in header")
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if not lines:
                raise AGIProtocolError("empty header")
            return lines
        lines.append(line)
        if len(lines) > max_lines:
            raise AGIProtocolError(f"header has more than {max_lines} lines")


# --------------------------------------------------------------------------- commands


def _quote(word: str) -> str:
    if any(ch in _FORBIDDEN for ch in word):
        # A newline would terminate the command line and inject a second command.
        raise AGIArgumentError(f"CR, LF or NUL in AGI argument: {word[:40]!r}")
    if word and not any(ch in _NEEDS_QUOTES for ch in word):
        return word
    # res_agi.c parse_args(): '"' toggles quoting, '\' escapes the next char, and an
    # empty "" still yields an (empty) argument.
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def format_command(*words: str) -> str:
    """Build one AGI command line (without the trailing newline) from separate words.

    Pass command keywords as separate words: ``format_command("STREAM", "FILE", f, "")``.
    """
    if not words:
        raise AGIArgumentError("empty AGI command")
    if len(words) > MAX_COMMAND_WORDS:
        raise AGIArgumentError(f"more than {MAX_COMMAND_WORDS} words in AGI command")
    line = " ".join(_quote(word) for word in words)
    try:
        size = len(line.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise AGIArgumentError(f"AGI argument is not encodable as UTF-8: {exc}") from None
    if size > MAX_COMMAND_BYTES:
        raise AGIArgumentError(f"AGI command is {size} bytes, limit {MAX_COMMAND_BYTES}")
    return line


@dataclass(frozen=True)
class AGIReply:
    """A ``200`` reply.  ``result == "-1"`` usually means failure/hang-up on the channel."""

    code: int
    result: str
    data: str | None = None
    extra: dict[str, str] = field(default_factory=dict)
    raw: str = field(default="", compare=False)

    @property
    def failed(self) -> bool:
        return self.result == "-1"

    @property
    def int_result(self) -> int | None:
        try:
            return int(self.result)
        except ValueError:
            return None


def parse_reply(lines: str | Sequence[str]) -> AGIReply:
    """Parse one complete reply (a line, or a 520 block as a list / newline-joined str).

    Returns AGIReply for 200; raises AGIHangup (511), AGIUsageError (520),
    AGICommandError (510 and other codes), AGIProtocolError (unparsable).
    """
    if isinstance(lines, str):
        lines = lines.split("\n")
    block = [line.rstrip("\r") for line in lines]
    while len(block) > 1 and not block[-1]:
        block.pop()
    if not block:
        raise AGIProtocolError("empty reply")
    first = block[0]
    match = _REPLY_LINE.match(first)
    if match is None:
        raise AGIProtocolError(f"malformed reply: {first[:120]!r}")
    code, continued, text = int(match[1]), match[2] == "-", match[3]

    if code == 520:
        if not continued:
            if len(block) > 1:
                raise AGIProtocolError("single-line 520 followed by more lines")
            raise AGIUsageError(code, text)
        if len(block) < 2 or not block[-1].startswith("520 "):
            raise AGIProtocolError("520 usage block without closing '520 ' line")
        raise AGIUsageError(code, text, "\n".join(block[1:-1]))
    if continued or len(block) > 1:
        raise AGIProtocolError(f"unexpected multi-line {code} reply")
    if code == 511:
        raise AGIHangup(first)
    if code != 200:
        raise AGICommandError(code, text)

    result = _RESULT.match(text)
    if result is not None:
        extra = {k: v for k, _, v in (token.partition("=") for token in result[3].split())}
        return AGIReply(code, result[1], result[2], extra, raw=first)
    # Lenient fallback for odd 200 lines (e.g. SPEECH RECOGNIZE text with spaces):
    # keep the result token, the full line stays available in ``raw``.
    _, _, rest = text.partition("result=")
    return AGIReply(code, rest.split(" ", 1)[0] if rest else "", raw=first)


def _allowed_after_hangup(words: Sequence[str]) -> bool:
    upper = tuple(word.upper() for word in words[:3])
    return any(upper[: len(cmd)] == cmd for cmd in DEAD_CHANNEL_COMMANDS)


class AGISession:
    """One FastAGI connection; commands are serialised (one in flight at a time).

    ``hung_up`` is only updated while reading replies (there is no background reader),
    so an idle HANGUP is noticed at the next command.
    """

    def __init__(
        self,
        request: AGIRequest,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        *,
        command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
    ) -> None:
        self.request = request
        self.hung_up = False
        self.command_timeout = command_timeout
        self._reader = reader
        self._writer = writer
        self._closed = False
        self._lock = asyncio.Lock()

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """Close the connection (Asterisk then continues the dialplan)."""
        self._closed = True
        self._writer.close()

    # The timeout is part of the contract (AGITimeout + connection closed), not merely a
    # cancellation scope, hence the parameter despite ASYNC109.
    async def command(self, *words: str, timeout: float | None = None) -> AGIReply:  # noqa: ASYNC109
        """Send one command and return its 200 reply.

        ``timeout``: seconds to wait for the reply; None = ``command_timeout`` (30 s),
        ``math.inf`` = no limit (e.g. ``EXEC Dial``).  On timeout or cancellation the
        connection is closed, because a late reply would be read as the next one's.
        """
        line = format_command(*words)
        if not _COMMAND_NAME.match(words[0]):
            raise AGIArgumentError(
                f"bad AGI command name {words[0][:40]!r}; pass keywords as separate words"
            )
        limit = self.command_timeout if timeout is None else timeout
        async with self._lock:
            if self._closed or self._writer.is_closing():
                raise AGIHangup("AGI connection is closed")
            if self.hung_up and not _allowed_after_hangup(words):
                raise AGIHangup(f"channel hung up; {words[0]} not sent")
            try:
                async with asyncio.timeout(None if math.isinf(limit) else limit):
                    self._writer.write(line.encode("utf-8") + b"\n")
                    await self._writer.drain()
                    block = await self._read_reply()
            except TimeoutError:
                self.close()
                logger.warning("agi.command_timeout", command=words[0], timeout=limit)
                raise AGITimeout(f"no reply to {words[0]} within {limit} s") from None
            except (asyncio.IncompleteReadError, ConnectionError) as exc:
                self.hung_up = True
                self.close()
                raise AGIHangup(f"connection closed while waiting for reply: {exc!r}") from None
            except BaseException:
                # Protocol error or cancellation mid-command: alignment is lost.
                self.close()
                raise
        try:
            return parse_reply(block)
        except AGIHangup:
            self.hung_up = True
            raise
        except AGIProtocolError:
            self.close()
            raise

    async def _read_reply(self) -> list[str]:
        while True:
            line = await self._read_text_line()
            if line == "HANGUP":
                # Unsolicited FastAGI notice, not a reply: note it, keep waiting.
                if not self.hung_up:
                    logger.info("agi.hangup_notice")
                self.hung_up = True
                continue
            if not line.startswith("520-"):
                return [line]
            block = [line]
            while len(block) <= MAX_USAGE_LINES:
                line = await self._read_text_line()
                block.append(line)
                if line.startswith("520 "):
                    return block
            raise AGIProtocolError("520 usage block too long")

    async def _read_text_line(self) -> str:
        raw = await _read_line(self._reader, MAX_REPLY_LINE)
        return raw.decode("utf-8", errors="replace").rstrip("\r\n")


# --------------------------------------------------------------------------- server

Handler = Callable[[AGIRequest, AGISession], Awaitable[None]]


async def _close_writer(writer: asyncio.StreamWriter) -> None:
    writer.close()
    with contextlib.suppress(Exception):
        async with asyncio.timeout(1.0):
            await writer.wait_closed()


class FastAGIServer:
    """FastAGI listener dispatching ``agi://host:port/<script>`` to ``handlers[script]``."""

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        host: str | None = "127.0.0.1",
        port: int = 4573,
        *,
        header_timeout: float = 5.0,
        max_connections: int = 500,
        command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
        max_header_bytes: int = 16 * 1024,
        max_header_lines: int = 256,
        max_header_line_length: int = 4096,
        stop_timeout: float = 2.0,
    ) -> None:
        self._handlers = dict(handlers)
        self._host = host
        self._port = port
        self._header_timeout = header_timeout
        self._max_connections = max_connections
        self._command_timeout = command_timeout
        self._max_header_bytes = max_header_bytes
        self._max_header_lines = max_header_lines
        self._max_header_line_length = max_header_line_length
        self._stop_timeout = stop_timeout
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._stopping = False

    @property
    def port(self) -> int:
        """The real bound port (useful with port=0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def active_sessions(self) -> int:
        """Open connections being handled (header phase included)."""
        return len(self._tasks)

    async def start(self) -> None:
        self._stopping = False
        self._server = await asyncio.start_server(
            self._on_connect,
            self._host,
            self._port,
            # Small stream limit: header lines longer than this fail fast; replies are
            # read in pieces by _read_line, so they are not limited by it.
            limit=self._max_header_line_length + 1,
            backlog=max(128, min(self._max_connections, 4096)),
        )
        logger.info("agi.server_started", host=self._host, port=self.port)

    async def stop(self) -> None:
        """Stop listening, cancel running sessions and wait (briefly) for them."""
        self._stopping = True
        if self._server is not None:
            self._server.close()
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self._stop_timeout)
            if pending:
                logger.warning("agi.stop_pending_sessions", count=len(pending))
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None
        logger.info("agi.server_stopped")

    async def __aenter__(self) -> FastAGIServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        task = asyncio.current_task()
        if task is None or self._stopping or len(self._tasks) >= self._max_connections:
            logger.warning("agi.connection_rejected", peer=peer, active=len(self._tasks))
            await _close_writer(writer)
            return
        self._tasks.add(task)
        try:
            await self._serve(reader, writer, peer)
        except asyncio.CancelledError:
            # Python 3.11's start_server done-callback calls task.exception() and would
            # itself crash on a cancelled task, so end normally when we cancelled it.
            if not self._stopping:
                raise
            logger.info("agi.session_cancelled", peer=peer)
        finally:
            try:
                await _close_writer(writer)
            finally:
                self._tasks.discard(task)

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: object
    ) -> None:
        try:
            async with asyncio.timeout(self._header_timeout):
                lines = await read_header(
                    reader,
                    max_bytes=self._max_header_bytes,
                    max_lines=self._max_header_lines,
                    max_line_length=self._max_header_line_length,
                )
            request = parse_request(lines)
        except TimeoutError:
            logger.warning("agi.header_timeout", peer=peer, timeout=self._header_timeout)
            return
        except AGIProtocolError as exc:
            logger.warning("agi.bad_header", peer=peer, error=str(exc))
            return
        except OSError as exc:
            logger.warning("agi.header_io_error", peer=peer, error=repr(exc))
            return

        with structlog.contextvars.bound_contextvars(
            agi_script=request.script, call_id=request.uniqueid
        ):
            handler = self._handlers.get(request.script)
            if handler is None:
                logger.warning("agi.unknown_script", peer=peer)
                return
            session = AGISession(request, reader, writer, command_timeout=self._command_timeout)
            logger.info("agi.session_start", channel=request.channel)
            try:
                await handler(request, session)
            except AGIHangup as exc:
                logger.info("agi.session_hangup", reason=str(exc))
            except Exception:
                logger.exception("agi.handler_error")
            else:
                logger.info("agi.session_end", hung_up=session.hung_up)
