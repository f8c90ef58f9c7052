"""The SMS gateway: an ESME bound as a transceiver to the SMSC of the settings over SMPP 3.4.

``send`` submits the parts ``core.sms`` computes (UCS-2 or GSM 7-bit, a UDH on each part of
a long message) and returns once the SMSC has taken every part, or raises ``SmsNotSent``
saying whether the outbox should try again. The SMSC's delivery receipts go to
``on_report`` and messages from phones (a client's "STOP") to ``on_reply``; a deliver_sm is
acknowledged only after its callback returned, so one the callback failed on is sent again
by the SMSC. A dropped or refused connection is bound again with back-off; enquire_link
notices a silent one.

Written on asyncio here rather than with aiosmpplib (0.7.4): its sending is a queue whose
outcome arrives in hooks, not a result to await per message; it splits long texts itself,
counting characters rather than septets (an escape pair such as € counted once) and cutting
UCS-2 by bytes (a surrogate pair split); and its password is capped at 8 characters by a
check we could not relax. The protocol Centrala needs is a few PDUs (``pdu``)."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime, tzinfo

import structlog

from core import sms as core_sms
from sms import pdu

log = structlog.get_logger(__name__)

OnReport = Callable[[str, core_sms.ReportState, datetime, str | None], Awaitable[None]]
OnReply = Callable[[str, str, datetime], Awaitable[None]]

E164 = re.compile(r"^\+[1-9][0-9]{6,14}$")
# How long a stop waits for the receipts and replies being handled.
CALLBACKS_STOP_SECONDS = 5.0


class SmsNotSent(Exception):
    """The SMSC did not take the message: ``retry`` when it may later (unreachable, busy, not
    bound), not when it refused the message itself (an invalid destination, too long)."""

    def __init__(self, retry: bool, reason: str) -> None:
        super().__init__(f"{reason} ({'try again later' if retry else 'not to be retried'})")
        self.retry = retry
        self.reason = reason


class SmscLoginRefused(Exception):
    """The SMSC refused our system_id or password (or the bind itself)."""


@dataclass(frozen=True)
class Sent:
    """What the SMSC gave for a message: its id of the first part (which the delivery
    receipt names), every part's id, and the number of parts."""

    provider_id: str
    parts: int
    provider_ids: tuple[str, ...] = ()


@dataclass(frozen=True)
class Smsc:
    """Where and how to bind: the settings' CENTRALA_SMS_* fields."""

    host: str
    port: int = 2775
    system_id: str = ""
    password: str = ""
    system_type: str = ""
    source_address: str = "Centrala"
    max_parts: int = core_sms.MAX_PARTS
    timeout: float = 10.0  # a response's longest wait
    enquire_link_interval: float = 30.0
    reconnect_first: float = 1.0  # back-off after a drop: doubling from this ...
    reconnect_max: float = 30.0  # ... up to this
    receipt_zone: tzinfo = UTC  # the SMSC's clock, in which its receipts' dates are written

    def __repr__(self) -> str:  # never the password, in a log line or a traceback
        return f"Smsc({self.host}:{self.port}, system_id={self.system_id!r})"


class SmppGateway:
    def __init__(self, smsc: Smsc, on_report: OnReport, on_reply: OnReply) -> None:
        self.smsc = smsc
        self.on_report = on_report
        self.on_reply = on_reply
        self.last_error: str | None = None  # why we are not bound, for the operator
        self._bound = asyncio.Event()
        self._writer: asyncio.StreamWriter | None = None
        self._pending: dict[int, asyncio.Future[tuple[int, bytes]]] = {}
        self._sequence = itertools.count(random.randrange(1, 1 << 20))
        # The concatenation reference: 8 bits, rotating, so that a phone tells two long
        # messages to the same number apart.
        self._reference = itertools.cycle(range(256))
        for _ in range(random.randrange(256)):
            next(self._reference)
        self._incoming: dict[tuple[str, int], dict[int, str]] = {}  # MO parts awaited
        self._keeper: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = False
        self._last_heard = 0.0  # the loop's clock when the SMSC last sent anything

    @property
    def bound(self) -> bool:
        return self._bound.is_set()

    async def start(self) -> None:
        """Binds and keeps the binding. SmscLoginRefused at once when the SMSC refuses our
        credentials; an SMSC that cannot be reached is tried again in the background (sends
        meanwhile raise SmsNotSent with retry)."""
        self._stopping = False
        first: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._keeper = asyncio.create_task(self._keep_bound(first))
        try:
            await first
        except SmscLoginRefused:
            await self.stop()
            raise

    async def stop(self) -> None:
        self._stopping = True
        if self._writer is not None and self.bound:
            with contextlib.suppress(Exception):
                async with asyncio.timeout(min(2, self.smsc.timeout)):
                    await self._request(pdu.UNBIND, b"")
        if self._keeper is not None:
            self._keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._keeper
            self._keeper = None
        # The receipts and replies being handled finish first: one cancelled in the middle of
        # its database write can leave the database waiting on a connection that is closing
        # (seen as a `serve` that never stopped). One that takes longer is cut short: its
        # deliver_sm stays unanswered, and the SMSC sends it again.
        if self._tasks:
            _, late = await asyncio.wait(set(self._tasks), timeout=CALLBACKS_STOP_SECONDS)
            for task in late:
                task.cancel()
            await asyncio.gather(*late, return_exceptions=True)
        self._close()

    async def send(self, to: str, text: str, reference: str) -> Sent:
        """Submits ``text`` to the E.164 number ``to``; ``reference`` (the outbox's id) names
        the message in the log."""
        if not E164.match(to):
            raise SmsNotSent(False, f"invalid destination {to!r}: an E.164 number is needed")
        try:
            payloads = core_sms.parts(text, self.smsc.max_parts)
        except core_sms.SmsTooLong as exc:
            raise SmsNotSent(False, str(exc)) from exc
        enc = core_sms.encoding(text)
        data_coding = core_sms.DATA_CODING[enc]
        total = len(payloads)
        ref = next(self._reference)
        ids: list[str] = []
        for seq, payload in enumerate(payloads, 1):
            esm_class = 0
            if total > 1:
                payload = core_sms.udh(ref, total, seq) + payload
                esm_class = pdu.ESM_UDHI
            message = pdu.ShortMessage(
                source=self.smsc.source_address,
                destination=to,
                esm_class=esm_class,
                data_coding=data_coding,
                short_message=payload,
                # The receipt of the first part stands for the message (its id is the
                # provider id); one per part would name ids the outbox never saw.
                registered_delivery=1 if seq == 1 else 0,
            )
            # A message partly taken and then sent again whole: the phone shows the parts it
            # got of the first try apart, never a wrong text (the references differ).
            status, body = await self._submit(message, f"{reference} part {seq}/{total}")
            if status != pdu.ESME_ROK:
                retry = status in pdu.TEMPORARY
                raise SmsNotSent(
                    retry, f"the SMSC refused part {seq}/{total}: {pdu.status_name(status)}"
                )
            ids.append(pdu.Reader(body).cstring() if body else "")
        log.info("sms_sent", reference=reference, parts=total, provider_ids=ids)
        return Sent(ids[0], total, tuple(ids))

    async def _submit(self, message: pdu.ShortMessage, what: str) -> tuple[int, bytes]:
        if not self.bound:
            raise SmsNotSent(True, f"not bound to the SMSC ({self.last_error or 'connecting'})")
        try:
            async with asyncio.timeout(self.smsc.timeout):
                return await self._request(pdu.SUBMIT_SM, message.body())
        except TimeoutError as exc:
            # The SMSC may have taken it: sent again, the client may get it twice; lost
            # never.
            raise SmsNotSent(True, f"no answer from the SMSC to {what}") from exc
        except OSError as exc:  # ConnectionError among them: the connection dropped
            raise SmsNotSent(True, f"the SMSC's connection dropped: {exc!r}") from exc

    async def _request(self, command_id: int, body: bytes) -> tuple[int, bytes]:
        """Sends a request and awaits its response: (command_status, body)."""
        writer = self._writer
        if writer is None:
            raise ConnectionError("not connected")
        sequence = next(self._sequence) & 0x7FFFFFFF
        future: asyncio.Future[tuple[int, bytes]] = asyncio.get_running_loop().create_future()
        self._pending[sequence] = future
        try:
            writer.write(pdu.pack(command_id, sequence, body))
            await writer.drain()
            return await future
        finally:
            self._pending.pop(sequence, None)

    async def _keep_bound(self, first: asyncio.Future[None]) -> None:
        wait = self.smsc.reconnect_first
        while not self._stopping:
            try:
                reader = await self._bind()
            except SmscLoginRefused as exc:
                self.last_error = str(exc)
                if not first.done():
                    first.set_exception(exc)
                    return
                log.error("sms_login_refused", error=str(exc))
            except (OSError, TimeoutError, EOFError, ValueError) as exc:
                self.last_error = f"cannot reach the SMSC {self.smsc!r}: {exc!r}"
                log.warning("sms_smsc_unreachable", error=self.last_error, retry_in=wait)
            except Exception as exc:  # a bug of ours or the SMSC's: keep trying, loudly
                self.last_error = f"binding failed: {exc!r}"
                log.exception("sms_bind_failed")
            else:
                wait = self.smsc.reconnect_first
                self.last_error = None
                self._bound.set()
                if not first.done():
                    first.set_result(None)
                try:
                    await self._serve(reader)
                except (OSError, EOFError, ValueError, TimeoutError) as exc:
                    self.last_error = f"the SMSC's connection dropped: {exc!r}"
                    log.warning("sms_connection_dropped", error=self.last_error)
                except Exception as exc:
                    self.last_error = f"the SMSC's connection failed: {exc!r}"
                    log.exception("sms_connection_failed")
            self._close()
            if not first.done():
                first.set_result(None)
            # Back-off between attempts (not a synchronisation): the first after a drop soon,
            # then doubling, so an SMSC that keeps dropping us is not hammered.
            await asyncio.sleep(wait)
            wait = min(wait * 2, self.smsc.reconnect_max)

    async def _bind(self) -> asyncio.StreamReader:
        s = self.smsc
        async with asyncio.timeout(s.timeout):
            reader, writer = await asyncio.open_connection(s.host, s.port, limit=pdu.MAX_PDU)
        self._writer = writer
        sequence = next(self._sequence) & 0x7FFFFFFF
        writer.write(
            pdu.pack(
                pdu.BIND_TRANSCEIVER,
                sequence,
                pdu.bind_transceiver(s.system_id, s.password, s.system_type),
            )
        )
        await writer.drain()
        async with asyncio.timeout(s.timeout):
            command_id, status, _seq, _body = await _read(reader)
        if command_id != pdu.BIND_TRANSCEIVER | pdu.RESPONSE:
            raise ConnectionError(f"the SMSC answered the bind with command 0x{command_id:08X}")
        if status in (pdu.ESME_RINVPASWD, pdu.ESME_RINVSYSID, pdu.ESME_RBINDFAIL):
            raise SmscLoginRefused(
                f"the SMSC {s!r} refused the login: {pdu.status_name(status)} "
                "(check CENTRALA_SMS_SMPP_SYSTEM_ID and CENTRALA_SMS_SMPP_PASSWORD)"
            )
        if status != pdu.ESME_ROK:
            raise ConnectionError(f"the SMSC refused the bind: {pdu.status_name(status)}")
        log.info("sms_bound", smsc=repr(s))
        return reader

    async def _serve(self, reader: asyncio.StreamReader) -> None:
        """Reads the bound session's PDUs until it ends; enquire_link when it is quiet."""
        loop = asyncio.get_running_loop()
        self._last_heard = loop.time()
        keepalive = asyncio.create_task(self._keep_alive())
        try:
            while True:
                # No timeout around the read: cancelled between header and body, it would
                # lose the stream's framing. The keep-alive task watches the silence.
                command_id, status, sequence, body = await _read(reader)
                self._last_heard = loop.time()
                self._dispatch(command_id, status, sequence, body)
                if command_id == pdu.UNBIND | pdu.RESPONSE:
                    return
        finally:
            keepalive.cancel()

    async def _keep_alive(self) -> None:
        loop = asyncio.get_running_loop()
        interval = self.smsc.enquire_link_interval
        while True:
            await asyncio.sleep(interval)  # a timer between looks, not a synchronisation
            if loop.time() - self._last_heard >= interval:
                await self._enquire_link()

    def _dispatch(self, command_id: int, status: int, sequence: int, body: bytes) -> None:
        if command_id & pdu.RESPONSE:
            future = self._pending.get(sequence)
            if future is not None and not future.done():
                future.set_result((status, body))
        elif command_id == pdu.ENQUIRE_LINK:
            self._respond(pdu.ENQUIRE_LINK | pdu.RESPONSE, sequence)
        elif command_id == pdu.UNBIND:
            self._respond(pdu.UNBIND | pdu.RESPONSE, sequence)
            raise ConnectionError("the SMSC unbound")
        elif command_id == pdu.DELIVER_SM:
            self._spawn(self._delivered(sequence, body, self._writer))
        else:
            self._respond(pdu.GENERIC_NACK, sequence, status=pdu.ESME_RINVCMDID)

    async def _enquire_link(self) -> None:
        try:
            async with asyncio.timeout(self.smsc.timeout):
                await self._request(pdu.ENQUIRE_LINK, b"")
        except (TimeoutError, ConnectionError, OSError):
            log.warning("sms_enquire_link_unanswered")
            if self._writer is not None:
                self._writer.close()  # the reader sees the end and the keeper reconnects

    async def _delivered(
        self, sequence: int, body: bytes, writer: asyncio.StreamWriter | None
    ) -> None:
        """A deliver_sm: a receipt to ``on_report`` or a phone's message to ``on_reply``;
        acknowledged once handled, or refused (temporarily) for the SMSC to send it again."""
        status = pdu.ESME_ROK
        try:
            message = pdu.ShortMessage.parse(body)
            if message.esm_class & pdu.ESM_TYPE_MASK == pdu.ESM_RECEIPT:
                await self._receipt(message)
            else:
                await self._reply(message)
        except ValueError:
            log.exception("sms_deliver_sm_unreadable")
            status = pdu.ESME_RINVMSGLEN
        except Exception:
            log.exception("sms_deliver_sm_failed")  # refused: the SMSC sends it again
            status = pdu.ESME_RX_T_APPN
        # On the connection it came by: after a reconnect the SMSC sends it again anyway.
        if writer is not None and not writer.is_closing():
            writer.write(pdu.pack(pdu.DELIVER_SM | pdu.RESPONSE, sequence, pdu.cstring(""), status))

    async def _receipt(self, message: pdu.ShortMessage) -> None:
        text = message.short_message.decode("latin-1")
        receipt = core_sms.parse_receipt(text, self.smsc.receipt_zone)
        provider_id = message.tlvs.get(pdu.TLV_RECEIPTED_MESSAGE_ID, b"").rstrip(b"\0")
        state_tlv = message.tlvs.get(pdu.TLV_MESSAGE_STATE)
        if provider_id and state_tlv:  # the TLVs, where the SMSC sends them, over the text
            stat = core_sms.MESSAGE_STATES.get(state_tlv[0], "UNKNOWN")
            state = core_sms.receipt_state(stat)
            done = receipt.done if receipt else None
            error = receipt.error if receipt else (None if state == "delivered" else stat)
            receipt = core_sms.Receipt(provider_id.decode("latin-1"), state, done, error)
        if receipt is None:
            raise ValueError(f"a receipt we cannot read: {text!r}")
        if receipt.state is None:
            return  # not final yet: the final one follows
        at = receipt.done or datetime.now(UTC)
        await self.on_report(receipt.provider_id, receipt.state, at, receipt.error)

    async def _reply(self, message: pdu.ShortMessage) -> None:
        enc = core_sms.ENCODING_OF_DATA_CODING.get(message.data_coding, "gsm7")
        at = datetime.now(UTC)
        if not message.esm_class & pdu.ESM_UDHI:
            await self.on_reply(message.source, core_sms.decode(message.short_message, enc), at)
            return
        header, payload = core_sms.split_udh(message.short_message)
        if len(header) < 6 or header[1] != 0x00:
            # Not an 8-bit concatenation header: the text alone.
            await self.on_reply(message.source, core_sms.decode(payload, enc), at)
            return
        ref, total, seq = header[3], header[4], header[5]
        key = (message.source, ref)
        got = self._incoming.setdefault(key, {})
        got[seq] = core_sms.decode(payload, enc)
        if len(got) == total:
            del self._incoming[key]
            await self.on_reply(message.source, "".join(got[i] for i in sorted(got)), at)

    def _respond(self, command_id: int, sequence: int, body: bytes = b"", status: int = 0) -> None:
        if self._writer is not None and not self._writer.is_closing():
            self._writer.write(pdu.pack(command_id, sequence, body, status))

    def _spawn(self, coroutine: Awaitable[None]) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def _close(self) -> None:
        self._bound.clear()
        for future in self._pending.values():
            if not future.done():
                future.set_exception(ConnectionError("the connection to the SMSC closed"))
        if self._writer is not None:
            self._writer.close()
            self._writer = None


async def _read(reader: asyncio.StreamReader) -> tuple[int, int, int, bytes]:
    """The next PDU: (command_id, command_status, sequence_number, body)."""
    header = await reader.readexactly(pdu.HEADER.size)
    length, command_id, status, sequence = pdu.HEADER.unpack(header)
    if not pdu.HEADER.size <= length <= pdu.MAX_PDU:
        raise ValueError(f"a PDU of {length} bytes")
    body = await reader.readexactly(length - pdu.HEADER.size)
    return command_id, status, sequence, body
