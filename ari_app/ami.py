"""Over 500 lines: one AMI client: connection, login, actions, events and reconnect share one state.

A small asyncio client for the Asterisk Manager Interface (AMI).

Written instead of panoramisk because we need three things it gets wrong:

* every ``Response`` is delivered to the action that sent it, whatever its headers (panoramisk
  expects ``Async`` on a "successfully queued" reply such as PlayDTMF's and drops the link);
* an action is sent at most once: after a reconnect nothing pending is re-sent (a re-sent
  Originate could dial a customer twice); waiters get :class:`AMIConnectionLost` instead;
* every action has a timeout.

Wire format: TCP, lines end with CRLF, a message is ``Key: Value`` lines ended by an empty line.
Keys may repeat (``Variable``, ``ChanVariable``), hence :class:`Message` keeps every pair.

Usage::

    ami = AMIClient("127.0.0.1", 5038, "centrala", secret)
    ami.on_event("Hangup", on_hangup)
    await ami.start()
    await ami.wait_connected(10)
    reply = await ami.action("PlayDTMF", {"Channel": chan, "Digit": "5"})
    ...
    await ami.stop()
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import inspect
import itertools
import random
import secrets
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog

__all__ = [
    "AMIActionError",
    "AMIArgumentError",
    "AMIAuthError",
    "AMIClient",
    "AMIConnectionLost",
    "AMIError",
    "AMINotConnected",
    "AMIProtocolError",
    "AMITimeout",
    "ConnectCallback",
    "EventCallback",
    "Fields",
    "Message",
]

log = structlog.get_logger(__name__)

BANNER_PREFIX = "Asterisk Call Manager/"
DEFAULT_MAX_LINE = 16 * 1024
DEFAULT_MAX_MESSAGE = 64 * 1024

_FORBIDDEN_CHARS = ("\r", "\n", "\0")
# Headers the client owns; a caller-supplied one would duplicate or hijack ours.
_RESERVED_KEYS = frozenset({"action", "actionid"})


# --------------------------------------------------------------------------- exceptions


class AMIError(Exception):
    """Base class of every error raised by this module."""


class AMIArgumentError(AMIError, ValueError):
    """An action name, key or value cannot be sent (CR, LF or NUL would inject headers)."""


class AMINotConnected(AMIError):
    """The client is not connected and logged in; the action was not sent (nor queued)."""


class AMIConnectionLost(AMIError):
    """The connection dropped before the reply arrived. The action may or may not have been
    executed by Asterisk; it is never re-sent."""


class AMITimeout(AMIError):
    """No complete reply within the timeout. A reply arriving later is ignored."""


class AMIProtocolError(AMIError):
    """The peer violated the protocol (bad banner, over-long line or message)."""


class AMIActionError(AMIError):
    """Asterisk answered ``Response: Error``. ``response`` is the whole reply."""

    def __init__(self, response: Message) -> None:
        self.response = response
        super().__init__(response.get("Message", "Response: Error"))


class AMIAuthError(AMIActionError):
    """Login was refused. Only logged: the client keeps retrying with backoff."""


# --------------------------------------------------------------------------- message


class Message(Mapping[str, str]):
    """One AMI message: an immutable ordered list of ``(key, value)`` pairs.

    As a mapping it yields the *first* value of a key; :meth:`getall` returns all of them.
    Lookups ignore case (Asterisk itself treats header names case-insensitively, and spells
    some inconsistently, e.g. ``ActionID``/``ActionId``); iteration yields each distinct key
    once, as first spelled.
    """

    __slots__ = ("_first", "_items")

    def __init__(self, items: Iterable[tuple[str, str]] = ()) -> None:
        self._items: tuple[tuple[str, str], ...] = tuple(items)
        first: dict[str, tuple[str, str]] = {}
        for key, value in self._items:
            first.setdefault(key.casefold(), (key, value))
        self._first = first

    @property
    def items_list(self) -> tuple[tuple[str, str], ...]:
        """Every pair in wire order, repeats included."""
        return self._items

    def getall(self, key: str) -> list[str]:
        folded = key.casefold()
        return [v for k, v in self._items if k.casefold() == folded]

    def __getitem__(self, key: str) -> str:
        return self._first[key.casefold()][1]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and key.casefold() in self._first

    def __iter__(self) -> Iterator[str]:
        return (k for k, _ in self._first.values())

    def __len__(self) -> int:
        return len(self._first)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, Message):
            return self._items == other._items
        return super().__eq__(other)

    def __repr__(self) -> str:
        return f"Message({list(self._items)!r})"


#: Action fields. A sequence value sends the key once per element (e.g. several ``Variable``).
Fields = Mapping[str, str | Sequence[str]]
EventCallback = Callable[[Message], Awaitable[None] | None]
ConnectCallback = Callable[[], Awaitable[None] | None]


def _check_text(what: str, text: object) -> str:
    if not isinstance(text, str):
        raise AMIArgumentError(f"{what} must be str, not {type(text).__name__}")
    if any(c in text for c in _FORBIDDEN_CHARS):
        raise AMIArgumentError(f"{what} contains CR, LF or NUL: {text!r}")
    return text


def _check_key(what: str, key: object) -> str:
    key = _check_text(what, key)
    if not key.strip() or ":" in key:
        raise AMIArgumentError(f"{what} must be non-empty and without ':': {key!r}")
    return key


def encode_action(name: str, action_id: str, fields: Fields | None) -> bytes:
    """Serialise an action, validating everything first (raises :class:`AMIArgumentError`)."""
    lines = [f"Action: {_check_key('action name', name)}", f"ActionID: {action_id}"]
    for key, value in (fields or {}).items():
        _check_key("field name", key)
        if key.strip().casefold() in _RESERVED_KEYS:
            raise AMIArgumentError(f"field {key!r} is set by the client")
        values = [value] if isinstance(value, str) else list(value)
        for v in values:
            lines.append(f"{key}: {_check_text(f'value of {key}', v)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode()


# --------------------------------------------------------------------------- client


@dataclass(eq=False)
class _Pending:
    name: str
    is_list: bool
    future: asyncio.Future[tuple[Message, list[Message]]]
    response: Message | None = None
    events: list[Message] = field(default_factory=list)
    complete: bool = False

    def resolve(self) -> None:
        if self.response is not None and not self.future.done():
            self.future.set_result((self.response, self.events))


@dataclass(eq=False)
class _Connection:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter
    pending: dict[str, _Pending] = field(default_factory=dict)
    closed: bool = False


class AMIClient:
    """AMI client with automatic reconnect.

    * :meth:`start` spawns a task that connects, logs in, reads, and after any disconnect
      (or refused login) reconnects with exponential backoff and jitter.
    * :meth:`action` / :meth:`action_list` fail fast with :class:`AMINotConnected` when not
      logged in; nothing is queued and nothing is ever re-sent after a reconnect.
    * Event callbacks run in the reader, in arrival order. A sync callback runs inline (keep it
      quick). An async callback (any callback returning an awaitable) is scheduled as a task
      so that a slow one cannot stall the reader; the client keeps a reference to each task
      until it finishes, and :meth:`stop` cancels the unfinished ones. Async callbacks
      therefore *start* in arrival order but may interleave. Exceptions are logged.
    * Events carrying the ActionID of a pending :meth:`action_list` are collected for it and
      not dispatched; every other event (including ``OriginateResponse`` of an async
      Originate, which carries its ActionID) is dispatched.
    """

    def __init__(
        self,
        host: str,
        port: int,
        username: str,
        secret: str,
        *,
        action_timeout: float = 5.0,
        reconnect_min: float = 0.5,
        reconnect_max: float = 10.0,
        connect_timeout: float = 5.0,
        max_line_bytes: int = DEFAULT_MAX_LINE,
        max_message_bytes: int = DEFAULT_MAX_MESSAGE,
        action_id_prefix: str | None = None,
        events: str = "on",
    ) -> None:
        if not 0 < reconnect_min <= reconnect_max:
            raise ValueError("need 0 < reconnect_min <= reconnect_max")
        self.host = host
        self.port = port
        self._username = _check_text("username", username)
        self._secret = _check_text("secret", secret)
        # The Login's `Events`: "on", "off" (a client that only sends actions: Asterisk then
        # writes it no event at all, where "on" has it format and send every one), or a list
        # of event classes ("call,agent").
        self._events = _check_text("events", events)
        self.action_timeout = action_timeout
        self.reconnect_min = reconnect_min
        self.reconnect_max = reconnect_max
        self.connect_timeout = connect_timeout
        self.max_line_bytes = max_line_bytes
        self.max_message_bytes = max_message_bytes
        self._prefix = _check_text(
            "action_id_prefix", action_id_prefix or f"centrala-{secrets.token_hex(4)}"
        )
        self._ids = itertools.count(1)
        self._conn: _Connection | None = None
        self._logged_in = False
        self._connected_event = asyncio.Event()
        self._run_task: asyncio.Task[None] | None = None
        self._handlers: dict[str, list[EventCallback]] = {}
        self._connect_callbacks: list[ConnectCallback] = []
        self._tasks: set[asyncio.Future[Any]] = set()
        self._log = log.bind(ami=f"{host}:{port}")

    # ------------------------------------------------------------------ public API

    @property
    def connected(self) -> bool:
        """True while connected and logged in."""
        conn = self._conn
        return self._logged_in and conn is not None and not conn.closed

    async def start(self) -> None:
        """Start the background connect/read/reconnect task (no-op if already running)."""
        if self._run_task is None or self._run_task.done():
            self._run_task = asyncio.create_task(self._run(), name=f"ami-{self.host}:{self.port}")

    async def stop(self) -> None:
        """Log off (best effort), close the connection, stop reconnecting and cancel unfinished
        callback tasks. Pending actions fail with :class:`AMIConnectionLost`."""
        conn = self._conn
        if conn is not None and self.connected:
            # Fire-and-forget Logoff so Asterisk logs a clean logout rather than a reset.
            with contextlib.suppress(Exception):
                conn.writer.write(encode_action("Logoff", self._next_id(), None))
        task, self._run_task = self._run_task, None
        if task is not None:
            task.cancel()
            await asyncio.wait([task])
        tasks = list(self._tasks)
        for t in tasks:
            t.cancel()
        if tasks:
            await asyncio.wait(tasks)

    # The timeout parameters (ASYNC109) are deliberate: on expiry we must drop the pending
    # entry and raise AMITimeout, and callers get action_timeout without wrapping every call.
    async def wait_connected(self, timeout: float | None = None) -> None:  # noqa: ASYNC109
        """Wait until logged in; raise :class:`AMITimeout` after ``timeout`` seconds."""
        try:
            async with asyncio.timeout(timeout):
                while not self.connected:
                    await self._connected_event.wait()
                    if not self.connected:  # dropped again before we woke up
                        await asyncio.sleep(0.01)
        except TimeoutError:
            raise AMITimeout(f"not connected to AMI within {timeout}s") from None

    async def action(
        self,
        name: str,
        fields: Fields | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> Message:
        """Send a single-response action and return its ``Response``.

        Raises :class:`AMIArgumentError` (nothing sent), :class:`AMINotConnected` (nothing
        sent), :class:`AMIActionError` (``Response: Error``), :class:`AMITimeout`,
        :class:`AMIConnectionLost`. ``timeout`` defaults to ``action_timeout``.
        """
        response, _ = await self._request(name, fields, timeout, is_list=False)
        return response

    async def action_list(
        self,
        name: str,
        fields: Fields | None = None,
        *,
        timeout: float | None = None,  # noqa: ASYNC109
    ) -> tuple[Message, list[Message]]:
        """Send an EventList action (CoreShowChannels, QueueStatus, Status, ...).

        Returns ``(response, events)``: the ``Response: Success`` / ``EventList: start`` reply
        and the events carrying our ActionID, in order, *excluding* the closing
        ``EventList: Complete`` event (e.g. CoreShowChannelsComplete). If the response has no
        ``EventList: start`` header, it is returned with an empty list. ``timeout`` covers the
        whole exchange. Raises as :meth:`action`.
        """
        return await self._request(name, fields, timeout, is_list=True)

    def on_event(self, name: str, callback: EventCallback) -> Callable[[], None]:
        """Call ``callback(message)`` for events named ``name`` (case-insensitive) or, with
        ``"*"``, for every event. Returns a function that unregisters it."""
        key = name if name == "*" else name.casefold()
        self._handlers.setdefault(key, []).append(callback)

        def remove() -> None:
            with contextlib.suppress(KeyError, ValueError):
                self._handlers[key].remove(callback)

        return remove

    def on_connect(self, callback: ConnectCallback) -> Callable[[], None]:
        """Call ``callback()`` after every successful login (re-subscribe, resync state).
        Runs like an event callback: sync inline, async as a task. Returns an unregister
        function."""
        self._connect_callbacks.append(callback)

        def remove() -> None:
            with contextlib.suppress(ValueError):
                self._connect_callbacks.remove(callback)

        return remove

    # ------------------------------------------------------------------ actions

    def _next_id(self) -> str:
        return f"{self._prefix}-{next(self._ids)}"

    async def _request(
        self,
        name: str,
        fields: Fields | None,
        time_limit: float | None,
        *,
        is_list: bool,
        require_login: bool = True,
    ) -> tuple[Message, list[Message]]:
        action_id = self._next_id()
        data = encode_action(name, action_id, fields)  # validate before anything else
        conn = self._conn
        if conn is None or conn.closed or (require_login and not self._logged_in):
            raise AMINotConnected(f"AMI not connected; {name} not sent")
        timeout = self.action_timeout if time_limit is None else time_limit
        future: asyncio.Future[tuple[Message, list[Message]]] = (
            asyncio.get_running_loop().create_future()
        )
        # Register before writing: the reply may be read before drain() returns.
        conn.pending[action_id] = _Pending(name, is_list, future)
        try:
            async with asyncio.timeout(timeout):
                conn.writer.write(data)
                await conn.writer.drain()
                return await future
        except TimeoutError:
            raise AMITimeout(f"{name} ({action_id}): no reply within {timeout}s") from None
        except (ConnectionError, OSError) as exc:
            raise AMIConnectionLost(f"{name} ({action_id}): {exc}") from exc
        finally:
            # Whatever happened, forget the action: a late reply is then just ignored.
            conn.pending.pop(action_id, None)

    # ------------------------------------------------------------------ connection loop

    async def _run(self) -> None:
        failures = 0
        while True:
            try:
                await self._connect_and_serve()
                failures = 0  # we were logged in: a fresh outage starts from the short delay
            except asyncio.CancelledError:
                raise
            except AMIAuthError as exc:
                failures += 1
                self._log.error("ami_login_failed", error=str(exc))
            except (OSError, EOFError, AMIError) as exc:
                failures += 1
                self._log.warning("ami_connection_failed", error=repr(exc))
            except Exception:
                failures += 1
                self._log.exception("ami_connection_crashed")
            delay = self._backoff(failures)
            self._log.info("ami_reconnecting", delay=round(delay, 3))
            await asyncio.sleep(delay)

    def _backoff(self, failures: int) -> float:
        ceiling = min(self.reconnect_max, self.reconnect_min * 2 ** min(failures, 30))
        # "Equal jitter": at least half the ceiling, so many clients don't stampede.
        return random.uniform(ceiling / 2, ceiling)

    async def _connect_and_serve(self) -> None:
        self._log.debug("ami_connecting")
        async with asyncio.timeout(self.connect_timeout):
            reader, writer = await asyncio.open_connection(
                self.host, self.port, limit=self.max_line_bytes
            )
        conn = _Connection(reader, writer)
        reader_task: asyncio.Task[None] | None = None
        try:
            # The banner is a single line with no blank line after it.
            async with asyncio.timeout(self.connect_timeout):
                banner = await self._read_line(reader)
            if banner is None or not banner.startswith(BANNER_PREFIX):
                raise AMIProtocolError(f"unexpected banner {banner!r}")
            self._conn = conn
            reader_task = asyncio.create_task(self._read_loop(conn))
            fields = {"Username": self._username, "Secret": self._secret, "Events": self._events}
            try:
                await self._request("Login", fields, None, is_list=False, require_login=False)
            except AMIActionError as exc:
                raise AMIAuthError(exc.response) from None
            self._logged_in = True
            self._connected_event.set()
            self._log.info("ami_connected", banner=banner)
            for callback in list(self._connect_callbacks):
                self._invoke(callback, _name(callback), "connect", "")
            await reader_task  # until the peer closes; re-raises protocol errors
            self._log.warning("ami_disconnected")
        finally:
            self._logged_in = False
            self._connected_event.clear()
            conn.closed = True
            if self._conn is conn:
                self._conn = None
            if reader_task is not None and not reader_task.done():
                reader_task.cancel()
                await asyncio.wait([reader_task])
            self._fail_pending(conn, "connection closed")
            writer.close()
            with contextlib.suppress(OSError, TimeoutError):
                async with asyncio.timeout(1.0):
                    await writer.wait_closed()

    def _fail_pending(self, conn: _Connection, reason: str) -> None:
        for action_id, pending in list(conn.pending.items()):
            if not pending.future.done():
                pending.future.set_exception(
                    AMIConnectionLost(f"{pending.name} ({action_id}): {reason}")
                )
        conn.pending.clear()

    # ------------------------------------------------------------------ reading

    async def _read_line(self, reader: asyncio.StreamReader) -> str | None:
        """One line without its terminator, or None at EOF."""
        try:
            raw = await reader.readuntil(b"\n")
        except asyncio.IncompleteReadError:
            return None
        except asyncio.LimitOverrunError:
            raise AMIProtocolError(f"line longer than {self.max_line_bytes} bytes") from None
        # Asterisk sends UTF-8 but passes through whatever bytes a caller ID contained.
        return raw.rstrip(b"\r\n").decode("utf-8", errors="replace")

    async def _read_message(self, reader: asyncio.StreamReader) -> Message | None:
        items: list[tuple[str, str]] = []
        size = 0
        while True:
            line = await self._read_line(reader)
            if line is None:
                if items:
                    self._log.debug("ami_truncated_message_at_eof", lines=len(items))
                return None
            size += len(line) + 2
            if size > self.max_message_bytes:
                raise AMIProtocolError(f"message larger than {self.max_message_bytes} bytes")
            if not line:
                if items:
                    return Message(items)
                size = 0  # stray blank line between messages
                continue
            key, sep, value = line.partition(":")
            if not sep:
                self._log.debug("ami_line_without_colon", line=line[:200])
                continue
            items.append((key.strip(), value.strip()))

    async def _read_loop(self, conn: _Connection) -> None:
        try:
            while (msg := await self._read_message(conn.reader)) is not None:
                try:
                    self._handle(conn, msg)
                except Exception:  # a bug here must not cost us the connection
                    self._log.exception("ami_dispatch_failed", message=msg)
        finally:
            conn.closed = True
            self._fail_pending(conn, "connection lost")

    def _handle(self, conn: _Connection, msg: Message) -> None:
        if "Response" in msg:
            self._handle_response(conn, msg)
        elif "Event" in msg:
            self._handle_event(conn, msg)
        else:
            self._log.debug("ami_unknown_message", message=msg)

    def _handle_response(self, conn: _Connection, msg: Message) -> None:
        action_id = msg.get("ActionID", "")
        pending = conn.pending.get(action_id)
        if pending is None or pending.future.done():
            # Timed-out action, or one sent by someone else on this login.
            self._log.debug("ami_unmatched_response", action_id=action_id, response=msg)
            return
        if msg["Response"].casefold() == "error":
            pending.future.set_exception(AMIActionError(msg))
            return
        # Any other Response (Success, Goodbye, Follows...) with any other headers is the
        # reply. No "Async" header needed (PlayDTMF: "Message: DTMF successfully queued").
        pending.response = msg
        if not pending.is_list or pending.complete:
            pending.resolve()
        elif msg.get("EventList", "").casefold() != "start":
            pending.events.clear()
            pending.resolve()

    def _handle_event(self, conn: _Connection, msg: Message) -> None:
        pending = conn.pending.get(msg.get("ActionID", ""))
        if pending is not None and pending.is_list and not pending.future.done():
            if msg.get("EventList", "").casefold() in ("complete", "cancelled"):
                pending.complete = True
                pending.resolve()  # no-op if the response somehow has not arrived yet
            else:
                pending.events.append(msg)
            return
        name = msg["Event"]
        callbacks = [*self._handlers.get(name.casefold(), ()), *self._handlers.get("*", ())]
        for callback in callbacks:
            self._invoke(functools.partial(callback, msg), _name(callback), "event", name)

    # ------------------------------------------------------------------ callbacks

    def _invoke(
        self, call: Callable[[], Awaitable[None] | None], name: str, kind: str, event: str
    ) -> None:
        try:
            result = call()
        except Exception:
            self._log.exception("ami_callback_failed", kind=kind, callback=name, ami_event=event)
            return
        if inspect.isawaitable(result):
            task = asyncio.ensure_future(result)
            self._tasks.add(task)
            task.add_done_callback(lambda t: self._callback_done(t, name, kind, event))

    def _callback_done(self, task: asyncio.Future[Any], name: str, kind: str, event: str) -> None:
        self._tasks.discard(task)
        if task.cancelled():
            return
        exc = task.exception()
        if exc is not None:
            self._log.error(
                "ami_callback_failed", kind=kind, callback=name, ami_event=event, exc_info=exc
            )


def _name(callback: object) -> str:
    return getattr(callback, "__qualname__", None) or repr(callback)
