"""The SMS gateway (sms/smpp.py) against a real SMSC in its own process on loopback
(tests/smsc.py, SMPP 3.4): what goes out on the wire for Bosnian and plain texts, long and
short; the delivery receipt and a client's STOP coming back; the SMSC down, back, refusing;
a wrong password. No Asterisk, no database."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from core import sms as core_sms
from sms.smpp import Sent, SmppGateway, Smsc, SmscLoginRefused, SmsNotSent
from tests.smsc import SmscProcess
from tests.support import running, wait_until

CLIENT = "+38761123456"


class Inbox:
    """What the gateway's callbacks were given."""

    def __init__(self) -> None:
        self.reports: list[tuple[str, str, datetime, str | None]] = []
        self.replies: list[tuple[str, str, datetime]] = []

    async def on_report(
        self, provider_id: str, state: str, at: datetime, error: str | None
    ) -> None:
        self.reports.append((provider_id, state, at, error))

    async def on_reply(self, sender: str, text: str, at: datetime) -> None:
        self.replies.append((sender, text, at))


@pytest.fixture
async def smsc(tmp_path: Path) -> AsyncIterator[SmscProcess]:
    async with running(SmscProcess(tmp_path / "smsc")) as server:
        yield server


def account(server: SmscProcess, **overrides: Any) -> Smsc:
    fields: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": server.port,
        "system_id": server.system_id,
        "password": server.password,
        "source_address": "Centrala",
        "timeout": 5.0,
        "reconnect_first": 0.1,
        "reconnect_max": 0.5,
    }
    return Smsc(**{**fields, **overrides})


@pytest.fixture
async def inbox() -> Inbox:
    return Inbox()


@pytest.fixture
async def gateway(smsc: SmscProcess, inbox: Inbox) -> AsyncIterator[SmppGateway]:
    gw = SmppGateway(account(smsc), inbox.on_report, inbox.on_reply)
    await gw.start()
    assert gw.bound
    yield gw
    await gw.stop()


async def test_a_bosnian_message_of_two_parts_goes_as_two_ucs2_pdus(
    smsc: SmscProcess, gateway: SmppGateway, inbox: Inbox
) -> None:
    text = ("Poštovani, Vaš zahtjev za kredit je odobren. Molimo dođite u naš ured. " * 2)[:120]
    assert core_sms.count(text) == ("ucs2", 2)
    sent = await gateway.send(CLIENT, text, "outbox-1")
    assert sent.parts == 2 and len(sent.provider_ids) == 2
    got = smsc.submitted()
    assert len(got) == 2
    udhs = [bytes.fromhex(p["udh"]) for p in got]
    assert [u[:3] for u in udhs] == [bytes([5, 0, 3])] * 2
    assert udhs[0][3] == udhs[1][3]  # one concatenation reference
    assert [(u[4], u[5]) for u in udhs] == [(2, 1), (2, 2)]
    assert {(p["data_coding"], p["esm_class"]) for p in got} == {(8, 0x40)}
    assert {(p["destination"], p["dest_ton"], p["dest_npi"]) for p in got} == {
        ("38761123456", 1, 1)
    }
    assert {(p["source"], p["source_ton"]) for p in got} == {("Centrala", 5)}
    assert "".join(bytes.fromhex(p["payload"]).decode("utf-16-be") for p in got) == text
    assert [p["message_id"] for p in got] == list(sent.provider_ids)
    assert sent.provider_id == got[0]["message_id"]
    # The receipt is asked for on the first part only, and names the provider id.
    assert [p["registered_delivery"] for p in got] == [1, 0]
    await wait_until(lambda: inbox.reports, message="the delivery receipt")
    provider_id, state, at, error = inbox.reports[0]
    assert (provider_id, state, error) == (sent.provider_id, "delivered", None)
    assert abs((at - datetime.now(UTC)).total_seconds()) < 120
    await wait_until(
        lambda: [a["status"] for a in smsc.acks()] == [0], message="the receipt acknowledged"
    )


async def test_a_plain_message_is_one_gsm7_pdu(smsc: SmscProcess, gateway: SmppGateway) -> None:
    text = "Sretan rodjendan! Vasa Fondacija {ime} - 20% popusta, kod [ABC]; €5"
    sent = await gateway.send(CLIENT, text, "outbox-2")
    assert sent == Sent(sent.provider_id, 1, (sent.provider_id,))
    (pdu,) = smsc.submitted()
    assert (pdu["data_coding"], pdu["esm_class"], pdu["udh"]) == (0, 0, "")
    payload = bytes.fromhex(pdu["payload"])
    assert core_sms.decode(payload, "gsm7") == text
    assert payload.count(0x1B) == 5  # { } [ ] € escaped, each its own pair


async def test_receipts_of_failures_and_from_tlvs(
    smsc: SmscProcess, gateway: SmppGateway, inbox: Inbox
) -> None:
    smsc.answer("+38761000001", receipt="UNDELIV")
    smsc.answer("+38761000002", receipt="EXPIRED", tlvs=True)
    smsc.answer("+38761000003", receipt=None)
    failed = await gateway.send("+38761000001", "Obavijest", "o-1")
    expired = await gateway.send("+38761000002", "Obavijest", "o-2")
    silent = await gateway.send("+38761000003", "Obavijest", "o-3")
    await wait_until(lambda: len(inbox.reports) >= 2, message="two receipts")
    by_id = {r[0]: r for r in inbox.reports}
    assert by_id[failed.provider_id][1:2] == ("failed",)
    assert by_id[failed.provider_id][3] == "UNDELIV err:001"
    assert by_id[expired.provider_id][1] == "expired"
    assert silent.provider_id not in by_id
    assert len(smsc.submitted()) == 3


async def test_a_stop_from_a_phone_reaches_on_reply(
    smsc: SmscProcess, gateway: SmppGateway, inbox: Inbox
) -> None:
    smsc.mo(CLIENT, "STOP")
    await wait_until(lambda: inbox.replies, message="the reply")
    sender, text, at = inbox.replies[0]
    assert (sender, text) == (CLIENT, "STOP")
    assert at.tzinfo is not None
    long_reply = "Ne želim više poruka, hvala. " * 4  # 116 UCS-2 units: 2 parts
    smsc.mo(CLIENT, long_reply)
    await wait_until(lambda: len(inbox.replies) == 2, message="the long reply")
    assert inbox.replies[1][1] == long_reply
    await wait_until(
        lambda: [a["status"] for a in smsc.acks()] == [0, 0, 0],  # STOP, then the two parts
        message="every part acknowledged",
    )


async def test_refusals_say_whether_to_try_again(smsc: SmscProcess, gateway: SmppGateway) -> None:
    smsc.answer("+38761000009", status=0x58)  # ESME_RTHROTTLED
    smsc.answer("+38761000008", status=0x0B)  # ESME_RINVDSTADR
    with pytest.raises(SmsNotSent) as busy:
        await gateway.send("+38761000009", "Obavijest", "o-9")
    assert busy.value.retry and "ESME_RTHROTTLED" in busy.value.reason
    with pytest.raises(SmsNotSent) as invalid:
        await gateway.send("+38761000008", "Obavijest", "o-8")
    assert not invalid.value.retry and "ESME_RINVDSTADR" in invalid.value.reason
    with pytest.raises(SmsNotSent) as not_e164:
        await gateway.send("061 123 456", "Obavijest", "o-7")
    assert not not_e164.value.retry
    with pytest.raises(SmsNotSent) as too_long:
        await gateway.send(CLIENT, "č" * 67 * 11, "o-6")
    assert not too_long.value.retry and "at most 10" in too_long.value.reason
    assert len(smsc.submitted()) == 2  # neither of the last two reached the SMSC


async def test_the_smsc_down_then_back(
    smsc: SmscProcess, gateway: SmppGateway, inbox: Inbox
) -> None:
    smsc.stop()
    await wait_until(lambda: not gateway.bound, message="the gateway noticing the drop")
    with pytest.raises(SmsNotSent) as down:
        await gateway.send(CLIENT, "Obavijest", "o-10")
    assert down.value.retry
    await smsc.start()
    await wait_until(lambda: gateway.bound, timeout=20, message="the gateway bound again")
    sent = await gateway.send(CLIENT, "Obavijest", "o-10")
    assert [p["message_id"] for p in smsc.submitted()] == [sent.provider_id]
    await wait_until(
        lambda: [r[0] for r in inbox.reports] == [sent.provider_id], message="the receipt"
    )


async def test_a_hung_smsc_is_noticed_by_enquire_link(smsc: SmscProcess, inbox: Inbox) -> None:
    """The TCP connection stays up: only an unanswered enquire_link tells the SMSC is gone."""
    gw = SmppGateway(
        account(smsc, enquire_link_interval=0.3, timeout=1.0), inbox.on_report, inbox.on_reply
    )
    await gw.start()
    try:
        smsc.pause()
        try:
            await wait_until(lambda: not gw.bound, message="the hung SMSC noticed")
        finally:
            smsc.resume()
        await wait_until(lambda: gw.bound, timeout=20, message="bound again")
        assert (await gw.send(CLIENT, "Obavijest", "o-12")).parts == 1
    finally:
        await gw.stop()


async def test_an_smsc_unreachable_at_start_is_bound_once_it_is_up(
    tmp_path: Path, inbox: Inbox
) -> None:
    server = SmscProcess(tmp_path / "late")
    gw = SmppGateway(account(server), inbox.on_report, inbox.on_reply)
    await gw.start()  # does not raise: sends wait for the SMSC
    try:
        assert not gw.bound and gw.last_error and "cannot reach" in gw.last_error
        with pytest.raises(SmsNotSent) as down:
            await gw.send(CLIENT, "Obavijest", "o-11")
        assert down.value.retry and "not bound" in down.value.reason
        await server.start()
        await wait_until(lambda: gw.bound, timeout=20, message="bound once the SMSC is up")
        assert (await gw.send(CLIENT, "Obavijest", "o-11")).parts == 1
    finally:
        await gw.stop()
        server.stop()


async def test_a_wrong_password_is_a_clear_error(smsc: SmscProcess, inbox: Inbox) -> None:
    gw = SmppGateway(account(smsc, password="wrong"), inbox.on_report, inbox.on_reply)
    with pytest.raises(SmscLoginRefused, match=r"ESME_RINVPASWD.*CENTRALA_SMS_SMPP_PASSWORD"):
        await gw.start()
    assert not gw.bound
    assert "s3cret" not in repr(account(smsc)) and "wrong" not in repr(gw.smsc)


async def test_a_callback_that_fails_leaves_the_receipt_to_be_sent_again(
    smsc: SmscProcess,
) -> None:
    async def failing_report(*_: object) -> None:
        raise RuntimeError("the database is away")

    inbox = Inbox()
    gw = SmppGateway(account(smsc), failing_report, inbox.on_reply)
    await gw.start()
    try:
        await gw.send(CLIENT, "Obavijest", "o-13")
        await wait_until(lambda: smsc.acks(), message="the receipt answered")
        assert [a["status"] for a in smsc.acks()] == [0x64]  # ESME_RX_T_APPN: temporary
    finally:
        await gw.stop()


async def test_sends_at_once_each_get_their_own_id(
    smsc: SmscProcess, gateway: SmppGateway, inbox: Inbox
) -> None:
    numbers = [f"+3876100010{i}" for i in range(10)]
    sent = await asyncio.gather(
        *(gateway.send(n, f"Obavijest {n} " + "č" * 80, f"o-{n}") for n in numbers)
    )
    assert all(s.parts == 2 for s in sent)
    assert len({s.provider_id for s in sent}) == 10
    got = smsc.submitted()
    assert len(got) == 20
    references = {p["destination"]: bytes.fromhex(p["udh"])[3] for p in got}
    assert len(set(references.values())) == 10  # each message its own reference
    await wait_until(lambda: len(inbox.reports) == 10, message="ten receipts")
    assert {r[0] for r in inbox.reports} == {s.provider_id for s in sent}
