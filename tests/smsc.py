"""A real SMSC for the tests: an SMPP 3.4 server of our own (asyncio, struct-packed PDUs) run
as its own process on a free loopback port, as ``tests/mailserver.py`` runs aiosmtpd.

It binds transceivers that give its system_id and password (else ESME_RINVPASWD), answers
enquire_link and unbind, takes each submit_sm with a fresh message id and records it as a line
of ``submitted.jsonl`` (source, destination with their TON, data_coding, esm_class, UDH and
payload in hex), then sends a delivery receipt when one was asked for. What it does per
destination number is in ``answers.json``, read at each submit so a test changes it while the
SMSC runs: ``{"+38761...": {"receipt": "UNDELIV" | null, "status": 88, "tlvs": true}}``
(default: a DELIVRD receipt as text, status 0). Its control port takes one JSON line, ``{"mo":
{"from": "+387...", "text": "STOP"}}``, and sends that message from a phone to the bound ESMEs
(concatenated when long). The answers the ESME gives to each deliver_sm are in ``acks.jsonl``.
``stop`` and ``start`` again make an SMSC that is down, then back; ``pause`` and ``resume`` one
that hangs with its connections open.

    python -m tests.smsc --port P --control-port C --dir D --system-id ID --password PW
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import json
import signal
import socket
import struct
import sys
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from core import sms as core_sms
from tests.support import ServerProcess, free_port

HEADER = struct.Struct(">IIII")
BIND_TRANSCEIVER, SUBMIT_SM, DELIVER_SM, UNBIND, ENQUIRE_LINK = 0x09, 0x04, 0x05, 0x06, 0x15
RESP = 0x80000000
ESME_RINVPASWD, ESME_RINVBNDSTS, ESME_RINVCMDID = 0x0E, 0x04, 0x03


def _cstrings(body: bytes, at: int, n: int) -> tuple[list[str], int]:
    out = []
    for _ in range(n):
        end = body.index(b"\0", at)
        out.append(body[at:end].decode("latin-1"))
        at = end + 1
    return out, at


def parse_submit(body: bytes) -> dict[str, Any]:
    """The fields of a submit_sm (the layout SMPP 3.4 section 4.4.1 gives)."""
    (_service,), at = _cstrings(body, 0, 1)
    source_ton, source_npi = body[at], body[at + 1]
    (source,), at = _cstrings(body, at + 2, 1)
    dest_ton, dest_npi = body[at], body[at + 1]
    (destination,), at = _cstrings(body, at + 2, 1)
    esm_class = body[at]
    _, at = _cstrings(body, at + 3, 2)  # after protocol_id, priority_flag: the two times
    registered_delivery, data_coding, sm_length = body[at], body[at + 2], body[at + 4]
    short_message = body[at + 5 : at + 5 + sm_length]
    udh = b""
    if esm_class & 0x40:
        udh = short_message[: short_message[0] + 1]
    return {
        "source": source,
        "source_ton": source_ton,
        "source_npi": source_npi,
        "destination": destination,
        "dest_ton": dest_ton,
        "dest_npi": dest_npi,
        "esm_class": esm_class,
        "registered_delivery": registered_delivery,
        "data_coding": data_coding,
        "udh": udh.hex(),
        "payload": short_message[len(udh) :].hex(),
    }


def deliver_sm(
    source: str, destination: str, esm_class: int, data_coding: int, message: bytes, tlvs: bytes
) -> bytes:
    def addr(value: str) -> bytes:
        if value.startswith("+"):
            return bytes([1, 1]) + value[1:].encode() + b"\0"
        return bytes([5, 0]) + value.encode() + b"\0"

    return (
        b"\0"
        + addr(source)
        + addr(destination)
        + bytes([esm_class, 0, 0])
        + b"\0\0"
        + bytes([0, 0, data_coding, 0, len(message)])
        + message
        + tlvs
    )


class Smsc:
    def __init__(self, directory: Path, system_id: str, password: str) -> None:
        self.directory = directory
        self.system_id = system_id
        self.password = password
        self.sessions: set[Session] = set()

    def answer(self, destination: str) -> dict[str, Any]:
        path = self.directory / "answers.json"
        answers = json.loads(path.read_text()) if path.exists() else {}
        return dict(answers.get(destination, {}))

    def record(self, name: str, entry: dict[str, Any]) -> None:
        with open(self.directory / name, "a") as f:
            f.write(json.dumps(entry) + "\n")

    async def mo(self, sender: str, text: str) -> None:
        enc = core_sms.encoding(text)
        payloads = core_sms.parts(text)
        for session in list(self.sessions):
            for seq, payload in enumerate(payloads, 1):
                esm_class, message = 0, payload
                if len(payloads) > 1:
                    esm_class, message = 0x40, core_sms.udh(7, len(payloads), seq) + payload
                session.request(
                    DELIVER_SM,
                    deliver_sm(
                        sender, "Centrala", esm_class, core_sms.DATA_CODING[enc], message, b""
                    ),
                )


class Session:
    sequence = itertools.count(1)

    def __init__(self, smsc: Smsc, writer: asyncio.StreamWriter) -> None:
        self.smsc = smsc
        self.writer = writer
        self.bound = False
        self.sent: dict[int, str] = {}  # our deliver_sm's sequence: what it carried

    def send(self, command_id: int, status: int, sequence: int, body: bytes = b"") -> None:
        self.writer.write(HEADER.pack(HEADER.size + len(body), command_id, status, sequence) + body)

    def request(self, command_id: int, body: bytes, what: str = "mo") -> None:
        sequence = next(self.sequence)
        self.sent[sequence] = what
        self.send(command_id, 0, sequence, body)

    async def run(self, reader: asyncio.StreamReader) -> None:
        while True:
            header = await reader.readexactly(HEADER.size)
            length, command_id, status, sequence = HEADER.unpack(header)
            body = await reader.readexactly(length - HEADER.size)
            if command_id == BIND_TRANSCEIVER:
                (system_id, password), _ = _cstrings(body, 0, 2)
                if (system_id, password) != (self.smsc.system_id, self.smsc.password):
                    self.send(BIND_TRANSCEIVER | RESP, ESME_RINVPASWD, sequence)
                    await self.writer.drain()
                    return
                self.bound = True
                self.smsc.sessions.add(self)
                self.send(BIND_TRANSCEIVER | RESP, 0, sequence, b"TestSMSC\0")
            elif not self.bound:
                self.send(command_id | RESP, ESME_RINVBNDSTS, sequence)
            elif command_id == SUBMIT_SM:
                self.submitted(sequence, body)
            elif command_id == ENQUIRE_LINK:
                self.send(ENQUIRE_LINK | RESP, 0, sequence)
            elif command_id == UNBIND:
                self.send(UNBIND | RESP, 0, sequence)
                await self.writer.drain()
                return
            elif command_id == DELIVER_SM | RESP:
                what = self.sent.pop(sequence, "?")
                self.smsc.record("acks.jsonl", {"what": what, "status": status})
            elif not command_id & RESP:
                self.send(0x80000000, ESME_RINVCMDID, sequence)

    def submitted(self, sequence: int, body: bytes) -> None:
        fields = parse_submit(body)
        number = fields["destination"]
        if fields["dest_ton"] == 1:  # international: E.164 without its +
            number = "+" + number
        answer = self.smsc.answer(number)
        status = int(answer.get("status", 0))
        message_id = uuid.uuid4().hex[:12] if status == 0 else ""
        self.smsc.record("submitted.jsonl", {**fields, "message_id": message_id, "status": status})
        self.send(SUBMIT_SM | RESP, status, sequence, message_id.encode() + b"\0")
        stat = answer.get("receipt", "DELIVRD")
        if status or not fields["registered_delivery"] & 1 or stat is None:
            return
        now = datetime.now(UTC).strftime("%y%m%d%H%M")
        text = (
            f"id:{message_id} sub:001 dlvrd:{'001' if stat == 'DELIVRD' else '000'} "
            f"submit date:{now} done date:{now} stat:{stat} "
            f"err:{'000' if stat == 'DELIVRD' else '001'} text:"
        )
        tlvs = b""
        if answer.get("tlvs"):
            state = {"DELIVRD": 2, "EXPIRED": 3, "UNDELIV": 5, "REJECTD": 8}[stat]
            tlvs = struct.pack(">HH", 0x001E, len(message_id) + 1) + message_id.encode() + b"\0"
            tlvs += struct.pack(">HHB", 0x0427, 1, state)
            text = ""  # only the TLVs say it
        body = deliver_sm(number, fields["source"], 0x04, 0, text.encode(), tlvs)
        self.request(DELIVER_SM, body, f"receipt {message_id}")


async def serve(args: argparse.Namespace) -> None:
    smsc = Smsc(Path(args.dir), args.system_id, args.password)

    async def esme(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        session = Session(smsc, writer)
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            await session.run(reader)
        smsc.sessions.discard(session)
        writer.close()

    async def control(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        order = json.loads(await reader.readline())
        if "mo" in order:
            await smsc.mo(order["mo"]["from"], order["mo"]["text"])
        writer.write(json.dumps({"sessions": len(smsc.sessions)}).encode() + b"\n")
        await writer.drain()
        writer.close()

    servers = [
        await asyncio.start_server(esme, "127.0.0.1", args.port),
        await asyncio.start_server(control, "127.0.0.1", args.control_port),
    ]
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    for server in servers:
        server.close()


class SmscProcess(ServerProcess):
    """The test's handle on the SMSC process: start, stop, what it took, orders to it."""

    def __init__(
        self, directory: Path, system_id: str = "centrala", password: str = "s3cret"
    ) -> None:
        self.directory = directory
        self.system_id = system_id
        self.password = password
        self.port = free_port()
        self.control_port = free_port()
        argv = [sys.executable, "-m", "tests.smsc", "--port", str(self.port),
                "--control-port", str(self.control_port), "--dir", str(directory),
                "--system-id", system_id, "--password", password]  # fmt: skip
        super().__init__(argv, self.control_port, directory / "smsc.log", "the SMSC")

    def env(self) -> dict[str, str]:
        """The settings that send SMS through this SMSC."""
        return {
            "CENTRALA_SMS_SMPP_HOST": "127.0.0.1",
            "CENTRALA_SMS_SMPP_PORT": str(self.port),
            "CENTRALA_SMS_SMPP_SYSTEM_ID": self.system_id,
            "CENTRALA_SMS_SMPP_PASSWORD": self.password,
        }

    def pause(self) -> None:
        """An SMSC that hangs: its connections stay open, nothing is answered (SIGSTOP)."""
        assert self.proc is not None
        self.proc.send_signal(signal.SIGSTOP)

    def resume(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGCONT)

    def submitted(self) -> list[dict[str, Any]]:
        """Every submit_sm taken (or refused), oldest first."""
        path = self.directory / "submitted.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def acks(self) -> list[dict[str, Any]]:
        path = self.directory / "acks.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def answer(self, destination: str, **how: Any) -> None:
        """How the SMSC answers messages to ``destination`` from now on."""
        path = self.directory / "answers.json"
        answers = json.loads(path.read_text()) if path.exists() else {}
        answers[destination] = how
        path.write_text(json.dumps(answers))

    def order(self, order: dict[str, Any]) -> dict[str, Any]:
        with socket.create_connection(("127.0.0.1", self.control_port), timeout=10) as s:
            s.sendall(json.dumps(order).encode() + b"\n")
            return dict(json.loads(s.makefile().readline()))

    def mo(self, sender: str, text: str) -> None:
        """A phone's message to the bound ESMEs."""
        self.order({"mo": {"from": sender, "text": text}})

    def sessions(self) -> int:
        return int(self.order({})["sessions"])


def main() -> None:
    parser = argparse.ArgumentParser(description="the tests' SMPP 3.4 SMSC")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--control-port", type=int, required=True)
    parser.add_argument("--dir", required=True)
    parser.add_argument("--system-id", required=True)
    parser.add_argument("--password", required=True)
    asyncio.run(serve(parser.parse_args()))


if __name__ == "__main__":
    main()
