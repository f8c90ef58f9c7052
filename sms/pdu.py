"""SMPP 3.4 PDUs as bytes (struct-packed): the header, the bodies an ESME sends (bind,
submit_sm, the responses it owes) and the ones it reads (bind and submit_sm responses,
deliver_sm). Only the fields Centrala uses have names; the rest are written as SMPP's
defaults."""

from __future__ import annotations

import struct
from dataclasses import dataclass, field

HEADER = struct.Struct(">IIII")  # command_length, command_id, command_status, sequence_number
MAX_PDU = 70_000  # a deliver_sm with a 64 KiB message_payload, and the rest

GENERIC_NACK = 0x80000000
BIND_TRANSCEIVER = 0x00000009
SUBMIT_SM = 0x00000004
DELIVER_SM = 0x00000005
UNBIND = 0x00000006
ENQUIRE_LINK = 0x00000015
RESPONSE = 0x80000000  # the bit a response's command_id adds to its request's

ESME_ROK = 0x00
ESME_RINVMSGLEN = 0x01
ESME_RINVCMDID = 0x03
ESME_RINVBNDSTS = 0x04
ESME_RSYSERR = 0x08
ESME_RINVDSTADR = 0x0B
ESME_RBINDFAIL = 0x0D
ESME_RINVPASWD = 0x0E
ESME_RINVSYSID = 0x0F
ESME_RMSGQFUL = 0x14
ESME_RSUBMITFAIL = 0x45
ESME_RTHROTTLED = 0x58
ESME_RX_T_APPN = 0x64

STATUS_NAMES = {
    0x00: "ESME_ROK",
    0x01: "ESME_RINVMSGLEN",
    0x02: "ESME_RINVCMDLEN",
    0x03: "ESME_RINVCMDID",
    0x04: "ESME_RINVBNDSTS",
    0x05: "ESME_RALYBND",
    0x08: "ESME_RSYSERR",
    0x0A: "ESME_RINVSRCADR",
    0x0B: "ESME_RINVDSTADR",
    0x0C: "ESME_RINVMSGID",
    0x0D: "ESME_RBINDFAIL",
    0x0E: "ESME_RINVPASWD",
    0x0F: "ESME_RINVSYSID",
    0x14: "ESME_RMSGQFUL",
    0x33: "ESME_RINVNUMDESTS",
    0x45: "ESME_RSUBMITFAIL",
    0x48: "ESME_RINVSRCTON",
    0x50: "ESME_RINVDSTTON",
    0x58: "ESME_RTHROTTLED",
    0x61: "ESME_RINVSCHED",
    0x62: "ESME_RINVEXPIRY",
    0x64: "ESME_RX_T_APPN",
    0x65: "ESME_RX_P_APPN",
    0x66: "ESME_RX_R_APPN",
    0xFF: "ESME_RUNKNOWNERR",
}
# The statuses after which the same message may well be taken later: the SMSC is busy or
# failing for a while, or we were not bound. Any other refusal is the message's own fault.
TEMPORARY = frozenset(
    {
        ESME_RINVBNDSTS,
        ESME_RSYSERR,
        ESME_RMSGQFUL,
        ESME_RSUBMITFAIL,
        ESME_RTHROTTLED,
        ESME_RX_T_APPN,
    }
)

ESM_UDHI = 0x40  # esm_class: the short_message starts with a user data header
ESM_RECEIPT = 0x04  # esm_class of a deliver_sm: an SMSC delivery receipt
ESM_TYPE_MASK = 0x3C

TON_UNKNOWN, TON_INTERNATIONAL, TON_ALPHANUMERIC = 0, 1, 5
NPI_UNKNOWN, NPI_ISDN = 0, 1

TLV_RECEIPTED_MESSAGE_ID = 0x001E
TLV_MESSAGE_STATE = 0x0427
TLV_MESSAGE_PAYLOAD = 0x0424


def status_name(status: int) -> str:
    return STATUS_NAMES.get(status, f"status 0x{status:08X}")


def pack(command_id: int, sequence: int, body: bytes = b"", status: int = 0) -> bytes:
    return HEADER.pack(HEADER.size + len(body), command_id, status, sequence) + body


def cstring(value: str) -> bytes:
    return value.encode("ascii") + b"\0"


class Reader:
    """Reads a PDU body field by field; ValueError when it is shorter than its fields."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.at = 0

    def cstring(self) -> str:
        end = self.body.find(b"\0", self.at)
        if end < 0:
            raise ValueError("a C-octet string without its NUL")
        value = self.body[self.at : end].decode("latin-1")
        self.at = end + 1
        return value

    def octet(self) -> int:
        if self.at >= len(self.body):
            raise ValueError("PDU body too short")
        self.at += 1
        return self.body[self.at - 1]

    def octets(self, n: int) -> bytes:
        if self.at + n > len(self.body):
            raise ValueError("PDU body too short")
        self.at += n
        return self.body[self.at - n : self.at]

    def tlvs(self) -> dict[int, bytes]:
        found: dict[int, bytes] = {}
        while self.at + 4 <= len(self.body):
            tag, n = struct.unpack_from(">HH", self.body, self.at)
            self.at += 4
            found[tag] = self.octets(n)
        return found


def bind_transceiver(system_id: str, password: str, system_type: str = "") -> bytes:
    """The body of a bind_transceiver: SMPP 3.4, any address range."""
    return (
        cstring(system_id)
        + cstring(password)
        + cstring(system_type)
        + bytes([0x34, TON_UNKNOWN, NPI_UNKNOWN])
        + cstring("")
    )


def address(value: str) -> tuple[int, int, str]:
    """(TON, NPI, digits or name) of an E.164 number, a short number or an alphanumeric
    sender."""
    if value.startswith("+") and value[1:].isdigit():
        return TON_INTERNATIONAL, NPI_ISDN, value[1:]
    if value.isdigit():
        return TON_UNKNOWN, NPI_ISDN, value
    return TON_ALPHANUMERIC, NPI_UNKNOWN, value


@dataclass(frozen=True)
class ShortMessage:
    """The fields submit_sm and deliver_sm share (their bodies have the same layout)."""

    source: str
    destination: str
    esm_class: int
    data_coding: int
    short_message: bytes
    registered_delivery: int = 0
    source_ton: int = TON_UNKNOWN
    tlvs: dict[int, bytes] = field(default_factory=dict)

    def body(self) -> bytes:
        ston, snpi, source = address(self.source)
        dton, dnpi, destination = address(self.destination)
        return (
            cstring("")  # service_type: the SMSC's default
            + bytes([ston, snpi])
            + cstring(source)
            + bytes([dton, dnpi])
            + cstring(destination)
            + bytes([self.esm_class, 0, 0])  # protocol_id, priority_flag
            + cstring("")  # schedule_delivery_time: now
            + cstring("")  # validity_period: the SMSC's default
            + bytes([self.registered_delivery, 0, self.data_coding, 0, len(self.short_message)])
            + self.short_message
        )

    @classmethod
    def parse(cls, body: bytes) -> ShortMessage:
        r = Reader(body)
        r.cstring()  # service_type
        ston, _snpi, source = r.octet(), r.octet(), r.cstring()
        r.octet(), r.octet()
        destination = r.cstring()
        esm_class = r.octet()
        r.octet(), r.octet()  # protocol_id, priority_flag
        r.cstring(), r.cstring()  # schedule_delivery_time, validity_period
        registered_delivery = r.octet()
        r.octet()  # replace_if_present_flag
        data_coding = r.octet()
        r.octet()  # sm_default_msg_id
        short_message = r.octets(r.octet())
        tlvs = r.tlvs()
        if not short_message and TLV_MESSAGE_PAYLOAD in tlvs:
            short_message = tlvs[TLV_MESSAGE_PAYLOAD]
        if ston == TON_INTERNATIONAL and source.isdigit():
            source = "+" + source
        return cls(
            source,
            destination,
            esm_class,
            data_coding,
            short_message,
            registered_delivery,
            ston,
            tlvs,
        )
