"""The SMS settings (CENTRALA_SMS_*: SMPP's length limits, the sender's form, the SMSC's zone)
and the PDU layout of sms/pdu.py (addresses' TON/NPI, submit_sm and deliver_sm bodies)."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from centrala.settings import Settings
from sms import pdu


def test_the_defaults_send_no_sms() -> None:
    s = Settings()
    assert s.sms_smpp_host is None
    assert (s.sms_smpp_port, s.sms_max_parts, s.sms_source_address) == (2775, 10, "Centrala")


@pytest.mark.parametrize(
    "bad",
    [
        {"sms_smpp_password": "nine-char"},  # SMPP 3.4: 8 at most
        {"sms_smpp_system_id": "s" * 16},
        {"sms_source_address": "Twelve chars"},  # alphanumeric senders: 11 at most
        {"sms_source_address": "+3876112345678901"},
        {"sms_max_parts": 0},
        {"sms_smsc_time_zone": "Europe/Nowhere"},
    ],
)
def test_what_an_smsc_would_refuse_is_refused_at_start(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("sender", ["Fondacija", "+38761123456", "1234", "Moj Ured"])
def test_senders_taken(sender: str) -> None:
    assert Settings(sms_source_address=sender).sms_source_address == sender


def test_addresses() -> None:
    assert pdu.address("+38761123456") == (pdu.TON_INTERNATIONAL, pdu.NPI_ISDN, "38761123456")
    assert pdu.address("1234") == (pdu.TON_UNKNOWN, pdu.NPI_ISDN, "1234")
    assert pdu.address("Centrala") == (pdu.TON_ALPHANUMERIC, pdu.NPI_UNKNOWN, "Centrala")


def test_a_short_message_body_reads_back() -> None:
    message = pdu.ShortMessage(
        source="+38761123456",
        destination="Centrala",
        esm_class=pdu.ESM_UDHI,
        data_coding=8,
        short_message=bytes([5, 0, 3, 9, 2, 1]) + "Hvala".encode("utf-16-be"),
        registered_delivery=1,
    )
    back = pdu.ShortMessage.parse(message.body())
    assert back == pdu.ShortMessage(**{**message.__dict__, "source_ton": pdu.TON_INTERNATIONAL})
    whole = pdu.pack(pdu.SUBMIT_SM, 7, message.body())
    assert pdu.HEADER.unpack(whole[:16]) == (len(whole), pdu.SUBMIT_SM, 0, 7)


def test_a_message_payload_tlv_stands_for_an_empty_short_message() -> None:
    body = pdu.ShortMessage("+38761123456", "Centrala", 0, 0, b"").body()
    body += b"\x04\x24\x00\x04STOP"
    assert pdu.ShortMessage.parse(body).short_message == b"STOP"


def test_a_truncated_body_is_a_value_error() -> None:
    body = pdu.ShortMessage("+38761123456", "Centrala", 0, 0, b"STOP").body()
    with pytest.raises(ValueError):
        pdu.ShortMessage.parse(body[:-2])
