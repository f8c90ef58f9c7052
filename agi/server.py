"""Small asyncio FastAGI server for Asterisk (the wire format is ``agi.protocol``).

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
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

import structlog

from agi.protocol import (
    COMMAND_NAME,
    MAX_REPLY_LINE,
    MAX_USAGE_LINES,
    AGIArgumentError,
    AGIHangup,
    AGIProtocolError,
    AGIReply,
    AGIRequest,
    AGITimeout,
    format_command,
    parse_reply,
    parse_request,
    read_header,
    read_line,
)

__all__ = [
    "DEAD_CHANNEL_COMMANDS",
    "AGISession",
    "FastAGIServer",
    "Handler",
]

logger = structlog.get_logger(__name__)

DEFAULT_COMMAND_TIMEOUT = 30.0

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
        if not COMMAND_NAME.match(words[0]):
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
        raw = await read_line(self._reader, MAX_REPLY_LINE)
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
