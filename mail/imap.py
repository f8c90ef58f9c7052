"""Reading a mailbox over IMAP (aioimaplib: the asyncio IMAP4rev1 client, with IDLE): the
call centre's inquiries address, read as its messages come.

``MailboxReader.read_new(handle)`` hands each unseen message of the folder to ``handle`` as
``Fetched(uidvalidity, uid, raw)`` and marks it \\Seen only once ``handle`` returned: a
handler that raised (the database down, a bug) or a process that died leaves the message
unseen, read again next time. Reading alone never marks it (``BODY.PEEK[]``), so the one
thing that makes a message read is our having stored it; the use case behind ``handle`` is
idempotent on (mailbox, UIDVALIDITY, UID) and on the Message-ID, for the message stored
whose \\Seen did not reach the server.

``wait_for_mail(seconds)`` waits for new mail with IDLE (RFC 2177), or by polling a server
without it. A connection that dropped or a server that went away is connected again by the
next call; ``run_mailbox`` is the loop ``serve`` runs per mailbox: read what is new, wait,
and back off while the server is away.

May import ``core``; never ``models``, ``usecases``, the other adapters, ``web`` or
``centrala`` (the settings come in as ``ImapMailbox``)."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import re
import ssl
import time
from collections.abc import Awaitable, Callable, Coroutine
from dataclasses import dataclass
from typing import Any, TypeVar

import aioimaplib
import structlog

from core.outage import backoff

log = structlog.get_logger(__name__)

T = TypeVar("T")
MAX_MESSAGE_BYTES = 25 * 1024 * 1024  # read of a larger message: its first 25 MB
BATCH = 20  # messages fetched in one command
# aioimaplib gives "* SEARCH 4 7" as b"4 7" (the name taken off); some versions keep it.
_SEARCH = re.compile(rb"^(?:SEARCH)?([\d ]*)$", re.IGNORECASE)
_FETCH = re.compile(rb"^\d+ FETCH \(", re.IGNORECASE)
_UID = re.compile(rb"[( ]UID (\d+)", re.IGNORECASE)
_SIZE = re.compile(rb"RFC822\.SIZE (\d+)", re.IGNORECASE)
_LITERAL = re.compile(rb"\{(\d+)\}$")
_UIDVALIDITY = re.compile(rb"\[UIDVALIDITY (\d+)\]", re.IGNORECASE)
_UIDNEXT = re.compile(rb"\[UIDNEXT (\d+)\]", re.IGNORECASE)


@dataclass(frozen=True)
class ImapMailbox:
    """Where a mailbox is and how we log in: ``tls`` is IMAP over TLS (port 993); without
    it, plain IMAP (a server on the same machine or a test's)."""

    host: str
    port: int = 993
    user: str = ""
    password: str = ""
    folder: str = "INBOX"
    tls: bool = True
    timeout: float = 30.0  # seconds for the server's answer to one command
    poll_seconds: float = 60.0  # how often a server without IDLE is asked for new mail

    def __post_init__(self) -> None:
        for name in ("host", "user", "password", "folder"):
            if re.search(r"[\x00\r\n]", getattr(self, name)):
                raise ValueError(f"the mailbox's {name} holds a line break or a NUL")

    @property
    def name(self) -> str:
        """The mailbox as stored with each message read from it: "user@host/folder"."""
        return f"{self.user}@{self.host}/{self.folder}"

    def __repr__(self) -> str:  # never the password, in a log line or a traceback
        return f"ImapMailbox({self.name}:{self.port}, tls={self.tls})"


@dataclass(frozen=True)
class Fetched:
    """One message as read: its place in the mailbox (UIDVALIDITY + UID name it for good,
    RFC 3501 2.3.1.1) and its bytes; ``truncated`` when it was larger than the reader
    reads (its size is ``size``)."""

    uidvalidity: int
    uid: int
    raw: bytes
    size: int = 0
    truncated: bool = False


@dataclass(frozen=True)
class ReadOutcome:
    handled: int  # handed over and marked seen
    failed: int  # the handler raised: left unseen, to be read again


class MailboxUnavailable(Exception):
    """The server could not be reached, went away, or did not answer in time; the next
    call connects again."""


class MailboxLoginRefused(MailboxUnavailable):
    """The server refused the user or the password, or has no such folder: the settings
    need fixing (retrying alone will not help, so it is said loudly)."""


Handle = Callable[[Fetched], Awaitable[None]]


def _quoted(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _text(line: Any) -> str:
    return bytes(line).decode("utf-8", "replace") if isinstance(line, bytes | bytearray) else ""


def search_uids(lines: list[Any]) -> list[int]:
    """The UIDs of a SEARCH answer as aioimaplib gives it ("* SEARCH 4 7" as b"4 7", then
    the tagged "Search completed"), sorted."""
    uids: set[int] = set()
    for line in lines[:-1]:
        found = _SEARCH.match(bytes(line)) if isinstance(line, bytes | bytearray) else None
        if found:
            uids.update(int(u) for u in found.group(1).split())
    return sorted(uids)


def fetched_messages(lines: list[Any], uidvalidity: int) -> list[Fetched]:
    """The messages of a FETCH answer as aioimaplib gives it: per message a line "4 FETCH
    (UID 7 RFC822.SIZE 900 BODY[]<0> {900}", the literal's bytes, then the rest of the
    line (")", or " UID 7)" from a server that puts the UID last). Lines of a flag change
    the server tells of meanwhile ("5 FETCH (FLAGS (\\Seen))") carry no literal: skipped."""
    found: list[Fetched] = []
    i = 0
    while i < len(lines):
        line = lines[i]
        i += 1
        if not isinstance(line, bytes) or not _FETCH.match(line):
            continue
        head = line
        literal: bytes | None = None
        if _LITERAL.search(line) and i < len(lines):
            literal = bytes(lines[i])
            i += 1
            if i < len(lines) and isinstance(lines[i], bytes) and not _FETCH.match(lines[i]):
                head += b" " + lines[i]
                i += 1
        uid, size = _UID.search(head), _SIZE.search(head)
        if uid is None or literal is None:
            continue
        total = int(size.group(1)) if size else len(literal)
        found.append(Fetched(uidvalidity, int(uid.group(1)), literal, total, total > len(literal)))
    return found


class MailboxReader:
    """One connection to one mailbox's folder, made on first use and again after it
    dropped. Not for concurrent use: one reader per mailbox, one task reading it."""

    def __init__(
        self,
        mailbox: ImapMailbox,
        *,
        batch: int = BATCH,
        max_bytes: int = MAX_MESSAGE_BYTES,
        use_idle: bool = True,
    ) -> None:
        self.mailbox = mailbox
        self.batch = batch
        self.max_bytes = max_bytes
        self.use_idle = use_idle  # False: poll even a server offering IDLE (one that hangs in it)
        self.uidvalidity: int | None = None  # of the folder, once selected
        self._client: Any = None  # aioimaplib.IMAP4 (untyped)
        self._lost = asyncio.Event()
        self._next_uid = 1  # no message below it arrived since we last looked
        self._idling = False
        self._polling = False

    @property
    def idling(self) -> bool:
        """The server has taken our IDLE: it tells us of new mail as it comes."""
        return self._idling

    @property
    def polling(self) -> bool:
        """Waiting for mail by asking every ``poll_seconds`` (no IDLE)."""
        return self._polling

    # ---- the connection ---------------------------------------------------------------

    async def _connect(self) -> None:
        mailbox = self.mailbox
        lost = asyncio.Event()
        self._lost = lost
        client = aioimaplib.IMAP4(
            host=mailbox.host,
            port=mailbox.port,
            timeout=mailbox.timeout,
            conn_lost_cb=lambda _exc: lost.set(),
            ssl_context=ssl.create_default_context() if mailbox.tls else None,
        )
        self._client = client
        try:
            await self._call(client.wait_hello_from_server())
            login = await self._call(client.login(mailbox.user, mailbox.password))
            if login.result != "OK":
                raise MailboxLoginRefused(
                    f"{mailbox!r} refused the login of {mailbox.user!r}: "
                    f"{_text(login.lines[-1] if login.lines else b'')}"
                )
            selected = await self._call(client.select(_quoted(mailbox.folder)))
            if selected.result != "OK":
                raise MailboxLoginRefused(
                    f"{mailbox!r} has no folder {mailbox.folder!r}: "
                    f"{_text(selected.lines[-1] if selected.lines else b'')}"
                )
        except BaseException:
            self._drop()
            raise
        said = b" ".join(bytes(x) for x in selected.lines if isinstance(x, bytes | bytearray))
        validity = _UIDVALIDITY.search(said)
        uidnext = _UIDNEXT.search(said)
        uidvalidity = int(validity.group(1)) if validity else 0
        if self.uidvalidity is not None and uidvalidity != self.uidvalidity:
            # The folder was recreated: its UIDs name other messages now. Those read again
            # are known by their Message-ID.
            log.warning(
                "mailbox_uidvalidity_changed",
                mailbox=mailbox.name,
                was=self.uidvalidity,
                now=uidvalidity,
            )
        self.uidvalidity = uidvalidity
        self._next_uid = int(uidnext.group(1)) if uidnext else 1

    def _drop(self) -> None:
        client, self._client = self._client, None
        if client is not None:
            transport = getattr(client.protocol, "transport", None)
            if transport is not None:
                transport.close()

    async def _ensure(self) -> bool:
        """Connected and the folder selected; True when that took a new connection."""
        if self._client is not None and not self._lost.is_set():
            return False
        self._drop()
        await self._connect()
        return True

    async def _call(self, awaitable: Awaitable[T]) -> T:
        """One exchange with the server, given up when the connection drops (aioimaplib
        would wait for its timeout) or the server does not answer in time."""
        task = asyncio.ensure_future(awaitable)
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait(
                {task, lost},
                timeout=self.mailbox.timeout + 5,
                return_when=asyncio.FIRST_COMPLETED,
            )
        except asyncio.CancelledError:
            task.cancel()  # the loop is stopping: no exchange is left running
            raise
        finally:
            lost.cancel()
        if task not in done:
            task.cancel()
            self._drop()
            what = "went away" if lost in done else "did not answer in time"
            raise MailboxUnavailable(f"{self.mailbox!r} {what}")
        try:
            return task.result()
        except MailboxUnavailable:
            raise
        except (OSError, TimeoutError, aioimaplib.AioImapException, ValueError) as exc:
            self._drop()
            raise MailboxUnavailable(f"{self.mailbox!r}: {type(exc).__name__}: {exc}") from exc

    async def _ok(self, awaitable: Coroutine[Any, Any, Any], what: str) -> Any:
        response = await self._call(awaitable)
        if response.result != "OK":
            self._drop()
            raise MailboxUnavailable(f"{self.mailbox!r} refused {what}: {response.lines!r:.300}")
        return response

    async def close(self) -> None:
        """Logged out (briefly: a server away is not waited for) and disconnected."""
        client = self._client
        if client is not None and not self._lost.is_set():
            with contextlib.suppress(Exception):
                if client.has_pending_idle():
                    client.idle_done()
                async with asyncio.timeout(2):
                    await client.logout()
        self._drop()

    # ---- reading ----------------------------------------------------------------------

    async def _unseen(self) -> list[int]:
        # NOOP first: Dovecot takes mail delivered since the last command into the
        # session's view at a NOOP, not at a SEARCH, which would miss it.
        await self._ok(self._client.noop(), "NOOP")
        response = await self._ok(self._client.uid_search("UNSEEN", charset=None), "SEARCH")
        return search_uids(response.lines)

    async def _fetch(self, uids: list[int]) -> list[Fetched]:
        parts = f"(UID RFC822.SIZE BODY.PEEK[]<0.{self.max_bytes}>)"
        response = await self._ok(
            self._client.uid("fetch", ",".join(map(str, uids)), parts), "FETCH"
        )
        assert self.uidvalidity is not None
        fetched = {f.uid: f for f in fetched_messages(response.lines, self.uidvalidity)}
        return [fetched[u] for u in uids if u in fetched]

    async def read_new(self, handle: Handle) -> ReadOutcome:
        """Every unseen message, oldest first, handed to ``handle`` and then marked \\Seen;
        one ``handle`` raised on stays unseen (logged) and the others go on."""
        await self._ensure()
        uids = await self._unseen()
        if uids:
            self._next_uid = max(self._next_uid, uids[-1] + 1)
        handled = failed = 0
        for start in range(0, len(uids), self.batch):
            for message in await self._fetch(uids[start : start + self.batch]):
                if message.truncated:
                    log.warning(
                        "mail_too_large",
                        mailbox=self.mailbox.name,
                        uid=message.uid,
                        size=message.size,
                        read=len(message.raw),
                    )
                try:
                    await handle(message)
                except Exception:
                    failed += 1
                    log.exception("mail_not_handled", mailbox=self.mailbox.name, uid=message.uid)
                    continue
                await self._ok(
                    self._client.uid("store", str(message.uid), "+FLAGS.SILENT", r"(\Seen)"),
                    "STORE",
                )
                handled += 1
        if handled or failed:
            log.info("mail_read", mailbox=self.mailbox.name, handled=handled, failed=failed)
        return ReadOutcome(handled, failed)

    # ---- waiting ----------------------------------------------------------------------

    async def _arrived(self) -> bool:
        """Unseen mail came since we last looked (all unseen UIDs, filtered here: not "UID
        SEARCH UID n:*", whose "*" is read before the new mail is taken in)."""
        found = [u for u in await self._unseen() if u >= self._next_uid]
        if found:
            self._next_uid = found[-1] + 1
        return bool(found)

    async def wait_for_mail(self, seconds: float) -> bool:
        """Returns once new mail may be there (True) or after ``seconds`` (False).
        A fresh connection is True at once: mail may have come while there was none."""
        if await self._ensure() or await self._arrived():
            return True
        deadline = time.monotonic() + seconds
        client = self._client
        if not (self.use_idle and client.has_capability("IDLE")):
            self._polling = True
            try:
                while (left := deadline - time.monotonic()) > 0:
                    await asyncio.sleep(min(self.mailbox.poll_seconds, left))
                    if await self._ensure() or await self._arrived():
                        return True
                return False
            finally:
                self._polling = False
        # aioimaplib ends IDLE itself after its own timeout; ours ends it first.
        idle = await self._call(client.idle_start(timeout=seconds + 60))
        arrived = False
        self._idling = True
        try:
            while (left := deadline - time.monotonic()) > 0:
                pushed = await self._pushed(client, left)
                if pushed is None or pushed == aioimaplib.STOP_WAIT_SERVER_PUSH:
                    break
                arrived = self._news(pushed)
                if arrived:
                    break
        finally:
            self._idling = False
            if self._client is client and client.has_pending_idle():
                client.idle_done()
                with contextlib.suppress(MailboxUnavailable):
                    await self._call(_within(idle, self.mailbox.timeout))
        if self._client is None:
            raise MailboxUnavailable(f"{self.mailbox!r} went away while waiting for mail")
        # Pushes that came between our DONE and the server's answer.
        while not client.protocol.idle_queue.empty():
            arrived = self._news(client.protocol.idle_queue.get_nowait()) or arrived
        return arrived

    async def _pushed(self, client: Any, seconds: float) -> Any:
        """What the server pushed during IDLE, None after ``seconds`` of quiet."""
        get = asyncio.ensure_future(client.protocol.idle_queue.get())
        lost = asyncio.ensure_future(self._lost.wait())
        try:
            done, _ = await asyncio.wait(
                {get, lost}, timeout=seconds, return_when=asyncio.FIRST_COMPLETED
            )
        finally:
            lost.cancel()
            if not get.done():
                get.cancel()  # an item put meanwhile stays in the queue
        if get in done:
            return get.result()
        if lost in done:
            self._drop()
            raise MailboxUnavailable(f"{self.mailbox!r} went away while waiting for mail")
        return None

    def _news(self, pushed: Any) -> bool:
        """Whether the server's pushed lines say new mail came ("* 4 EXISTS"); "* BYE" is
        the server going away."""
        lines = [bytes(x) for x in pushed if isinstance(x, bytes | bytearray)]
        if any(x.upper().startswith(b"BYE") for x in lines):
            self._drop()
            raise MailboxUnavailable(f"{self.mailbox!r} said goodbye: {lines!r:.200}")
        return any(x.upper().endswith(b" EXISTS") for x in lines)


Retry = Callable[[int], float]
DEFAULT_RETRY: Retry = functools.partial(backoff, first=1.0, cap=60.0)


async def _within(awaitable: Awaitable[T], seconds: float) -> T:
    async with asyncio.timeout(seconds):
        return await awaitable


async def _pause(seconds: float, stop: asyncio.Event) -> None:
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(seconds):
            await stop.wait()


async def run_mailbox(
    reader: MailboxReader,
    handle: Handle,
    *,
    stop: asyncio.Event,
    retry: Retry = DEFAULT_RETRY,
    idle_seconds: float = 25 * 60,
) -> None:
    """Reads ``reader``'s mailbox until ``stop`` is set: what is new, then waits for more
    (IDLE, renewed before the 30 minutes after which a server may drop an idle client).
    While the server is away or a message's handling failed it waits ``retry(attempt)``
    seconds and reads again (a failed message is read again then, not when mail comes)."""
    name = reader.mailbox.name
    attempt = 0
    try:
        while not stop.is_set():
            try:
                outcome = await reader.read_new(handle)
                if outcome.failed:
                    attempt += 1
                    await _pause(retry(attempt), stop)
                    continue
                if attempt:
                    log.info("mailbox_reading_again", mailbox=name, after_attempts=attempt)
                attempt = 0
                waiting = asyncio.ensure_future(reader.wait_for_mail(idle_seconds))
                stopping = asyncio.ensure_future(stop.wait())
                try:
                    await asyncio.wait({waiting, stopping}, return_when=asyncio.FIRST_COMPLETED)
                finally:
                    stopping.cancel()
                    if not waiting.done():
                        waiting.cancel()
                        with contextlib.suppress(asyncio.CancelledError, MailboxUnavailable):
                            await waiting
                if waiting.done() and not waiting.cancelled():
                    waiting.result()  # its MailboxUnavailable, to the handler below
            except MailboxUnavailable as exc:
                attempt += 1
                wait = retry(attempt)
                if isinstance(exc, MailboxLoginRefused):
                    log.error("mailbox_login_refused", mailbox=name, error=str(exc), retry_in=wait)
                else:
                    log.warning("mailbox_unavailable", mailbox=name, error=str(exc), retry_in=wait)
                await _pause(wait, stop)
            except Exception:  # a bug of ours or the server's: keep reading, loudly
                attempt += 1
                log.exception("mailbox_reading_failed", mailbox=name)
                await _pause(retry(attempt), stop)
    finally:
        await reader.close()
