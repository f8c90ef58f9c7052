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
import hmac
import ipaddress
import math
from collections import Counter
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import structlog

from agi.protocol import (
    COMMAND_NAME,
    MAX_REPLY_LINE,
    MAX_USAGE_LINES,
    AGIArgumentError,
    AGIDuplicateKey,
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
from core.agi_gate import Refusal, RefusalLog, SessionLimits, refusal

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


def _address(peer: object) -> str:
    """The remote address of ``peername``, IPv4-mapped IPv6 written as IPv4."""
    host = peer[0] if isinstance(peer, tuple) and peer else str(peer)
    try:
        address = ipaddress.ip_address(str(host).split("%", 1)[0])
    except ValueError:
        return str(host)
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(address)


class FastAGIServer:
    """FastAGI listener dispatching ``agi://host:port/<script>`` to ``handlers[script]``.

    With a ``secret``, a request must carry it as its first AGI argument
    (``AGI(agi://host/script,<secret>,...)``); it is compared in constant time and removed
    before the handler sees the arguments. Asterisk writes the arguments after every other
    header line, the caller's name included, so a name that ends the header early with an
    injected blank line cuts the real secret off, and one that injects its own ``agi_arg_1``
    repeats a key (refused): an accepted header is the one the dialplan wrote. A query
    parameter in the URL would come first and vouch for nothing after it. Without a secret
    (tests of the protocol alone) every request is let in; ``centrala serve`` always has one.

    ``limits``: sessions by remote address (``core.agi_gate``); ``max_connections`` alone is
    a plain total with no per-address rule.
    """

    def __init__(
        self,
        handlers: Mapping[str, Handler],
        host: str | None = "127.0.0.1",
        port: int = 4573,
        *,
        secret: str | None = None,
        limits: SessionLimits | None = None,
        header_timeout: float = 5.0,
        max_connections: int | None = None,
        command_timeout: float = DEFAULT_COMMAND_TIMEOUT,
        max_header_bytes: int = 16 * 1024,
        max_header_lines: int = 256,
        max_header_line_length: int = 4096,
        stop_timeout: float = 2.0,
        refusal_log_interval: float = 60.0,
    ) -> None:
        self._handlers = dict(handlers)
        self._host = host
        self._port = port
        self._secret = secret.encode("utf-8") if secret is not None else None
        if limits is None:
            limits = (
                SessionLimits()
                if max_connections is None
                else SessionLimits(
                    total=max_connections,
                    per_peer=max_connections,
                    reserved_for_pbx=0,
                    pbx_addresses=frozenset(),
                )
            )
        self._limits = limits
        self._header_timeout = header_timeout
        self._command_timeout = command_timeout
        self._max_header_bytes = max_header_bytes
        self._max_header_lines = max_header_lines
        self._max_header_line_length = max_header_line_length
        self._stop_timeout = stop_timeout
        self._server: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[Any]] = set()
        self._by_address: Counter[str] = Counter()
        self._refusals = RefusalLog(refusal_log_interval)
        self._refusal_flush: asyncio.TimerHandle | None = None
        self._stopping = False

    @property
    def port(self) -> int:
        """The real bound port (useful with port=0)."""
        if self._server is None or not self._server.sockets:
            raise RuntimeError("server is not started")
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def listening(self) -> bool:
        """Accepting connections from Asterisk."""
        return self._server is not None and self._server.is_serving()

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
            backlog=max(128, min(self._limits.total, 4096)),
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
        self._log_held_refusals()
        logger.info("agi.server_stopped")

    async def __aenter__(self) -> FastAGIServer:
        await self.start()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.stop()

    # ---- refusals: counted, and logged at most once an interval ---------------------------

    def _refused(self, reason: Refusal, peer: object, **details: object) -> None:
        loop = asyncio.get_running_loop()
        counts = self._refusals.note(reason, loop.time())
        if counts is not None:
            # The first refusal after a quiet interval, with its details.
            logger.warning(
                "agi.connections_refused", counts=counts, peer=peer, reason=reason, **details
            )
        elif self._refusal_flush is None:
            self._refusal_flush = loop.call_at(self._refusals.due_at, self._log_held_refusals)

    def _log_held_refusals(self) -> None:
        if self._refusal_flush is not None:
            self._refusal_flush.cancel()
            self._refusal_flush = None
        counts = self._refusals.take(asyncio.get_running_loop().time())
        if counts:
            logger.warning("agi.connections_refused", counts=counts, total=sum(counts.values()))

    # ---- connections --------------------------------------------------------------------

    async def _on_connect(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = _address(peer)
        task = asyncio.current_task()
        why = refusal(address, self._by_address, self._limits, stopping=self._stopping)
        if task is None or why is not None:
            self._refused(why or Refusal.STOPPING, peer, active=len(self._tasks))
            await _close_writer(writer)
            return
        self._tasks.add(task)
        self._by_address[address] += 1
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
                self._by_address[address] -= 1
                if self._by_address[address] <= 0:
                    del self._by_address[address]

    async def _read_request(self, reader: asyncio.StreamReader, peer: object) -> AGIRequest | None:
        """The authenticated request (secret removed from its arguments), None if refused."""
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
            self._refused(Refusal.HEADER_TIMEOUT, peer, timeout=self._header_timeout)
            return None
        except AGIDuplicateKey as exc:
            self._refused(Refusal.DUPLICATE_KEY, peer, error=str(exc))
            return None
        except AGIProtocolError as exc:
            self._refused(Refusal.BAD_HEADER, peer, error=str(exc))
            return None
        except OSError as exc:
            self._refused(Refusal.BAD_HEADER, peer, error=repr(exc))
            return None
        if self._secret is None:
            return request
        given = request.args[0].encode("utf-8") if request.args else b""
        if not hmac.compare_digest(given, self._secret):
            self._refused(Refusal.UNAUTHENTICATED, peer, script=request.script[:64])
            return None
        return replace(request, args=request.args[1:])

    async def _serve(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, peer: object
    ) -> None:
        request = await self._read_request(reader, peer)
        if request is None:
            return
        with structlog.contextvars.bound_contextvars(
            agi_script=request.script, call_id=request.uniqueid
        ):
            handler = self._handlers.get(request.script)
            if handler is None:
                self._refused(Refusal.UNKNOWN_SCRIPT, peer, script=request.script[:64])
                return
            session = AGISession(request, reader, writer, command_timeout=self._command_timeout)
            logger.info("agi.session_start", channel=request.channel)
            try:
                await handler(request, session)
            except AGIHangup as exc:
                logger.info("agi.session_hangup", reason=str(exc))
            except AGITimeout as exc:
                logger.warning("agi.session_timeout", reason=str(exc))
            except Exception:
                logger.exception("agi.handler_error")
            else:
                logger.info("agi.session_end", hung_up=session.hung_up)
