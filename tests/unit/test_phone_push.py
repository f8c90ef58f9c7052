"""Agents' phones pushed into Asterisk from the database (ari_app/phones.py), on the fake ARI."""

from __future__ import annotations

import pytest

from ari_app.phones import PhonePusher
from ari_app.testing import FakeARI
from core.sip import phone_digest
from models.phones import Phone

REALM = "centrala"


def _phone(agent: str, realm: str = REALM) -> Phone:
    return Phone(agent, agent, realm, phone_digest(agent, realm, f"pw-{agent}"))


def _pusher(fake: FakeARI, phones: list[Phone]) -> PhonePusher:
    async def all_phones() -> list[Phone]:
        return list(phones)

    return PhonePusher(fake, all_phones, realm=REALM, codecs=["alaw", "ulaw"])


async def test_every_connect_pushes_every_phone_as_auth_aor_and_endpoint() -> None:
    fake = FakeARI()
    pusher = _pusher(fake, [_phone("101"), _phone("anna-7")])
    await pusher.reconcile()
    assert sorted(fake.config) == sorted(
        ("res_pjsip", kind, agent)
        for kind in ("auth", "aor", "endpoint")
        for agent in ("101", "anna-7")
    )
    auth = fake.config[("res_pjsip", "auth", "101")]
    assert auth["password_digest"] == phone_digest("101", REALM, "pw-101")
    assert "password" not in auth
    assert fake.config[("res_pjsip", "endpoint", "101")]["aors"] == "101"
    # The objects an endpoint names exist before it (Asterisk checks them as it loads).
    puts = [r.path.split("/")[-2] for r in fake.requests_to("PUT", "/asterisk/config")]
    assert puts[:3] == ["auth", "aor", "endpoint"]
    assert pusher.pushed == 2


async def test_a_restarted_asterisk_gets_them_again_at_the_reconnect() -> None:
    fake = FakeARI()
    pusher = _pusher(fake, [_phone("101")])
    fake.on_connect(pusher.reconcile)
    await fake.start()
    await fake.settle()
    assert ("res_pjsip", "endpoint", "101") in fake.config
    fake.config.clear()  # Asterisk restarted: its memory wizard is empty
    await fake.reconnect()
    await fake.settle()
    assert ("res_pjsip", "endpoint", "101") in fake.config


async def test_a_phone_made_under_another_realm_is_not_pushed() -> None:
    fake = FakeARI()
    pusher = _pusher(fake, [_phone("101", realm="old-realm"), _phone("102")])
    await pusher.reconcile()
    assert ("res_pjsip", "endpoint", "101") not in fake.config
    assert ("res_pjsip", "endpoint", "102") in fake.config
    assert pusher.pushed == 1


async def test_an_unreadable_database_pushes_nothing_and_raises_nothing() -> None:
    fake = FakeARI()

    async def broken() -> list[Phone]:
        raise OSError("database away")

    await PhonePusher(fake, broken, realm=REALM, codecs=["alaw"]).reconcile()
    assert fake.config == {}


async def test_removing_a_phone_deletes_its_endpoint_first_and_is_idempotent() -> None:
    fake = FakeARI()
    pusher = _pusher(fake, [_phone("101")])
    await pusher.reconcile()
    await pusher.remove("101")
    assert fake.config == {}
    deletes = [r.path.split("/")[-2] for r in fake.requests_to("DELETE", "/asterisk/config")]
    assert deletes == ["endpoint", "aor", "auth"]
    await pusher.remove("101")  # gone already: nothing to do, no error


@pytest.mark.parametrize("agent", ["101", "anna.k-7"])
async def test_a_reset_replaces_the_digest(agent: str) -> None:
    fake = FakeARI()
    pusher = _pusher(fake, [])
    await pusher.push(_phone(agent))
    new = Phone(agent, agent, REALM, phone_digest(agent, REALM, "another"))
    await pusher.push(new)
    assert fake.config[("res_pjsip", "auth", agent)]["password_digest"] == new.password_digest


async def test_sync_brings_in_what_others_made_reset_or_removed_and_nothing_else() -> None:
    fake = FakeARI()
    phones = [_phone("101"), _phone("102")]

    async def all_phones() -> list[Phone]:
        return list(phones)

    pusher = PhonePusher(fake, all_phones, realm=REALM, codecs=["alaw"])
    fake.on_connect(pusher.reconcile)
    await fake.start()
    await fake.settle()
    before = len(fake.requests_to("PUT", "/asterisk/config"))
    await pusher.sync()  # nothing changed: nothing sent
    assert len(fake.requests_to("PUT", "/asterisk/config")) == before
    # Another instance (for its node) resets 101's password, removes 102 and makes 103.
    phones[:] = [Phone("101", "101", REALM, phone_digest("101", REALM, "new")), _phone("103")]
    await pusher.sync()
    assert fake.config[("res_pjsip", "auth", "101")]["password_digest"] == phone_digest(
        "101", REALM, "new"
    )
    assert ("res_pjsip", "endpoint", "103") in fake.config
    assert not any(key[2] == "102" for key in fake.config)
    assert len(fake.requests_to("PUT", "/asterisk/config")) == before + 6  # 101 and 103 only


async def test_sync_waits_for_the_link_to_asterisk() -> None:
    fake = FakeARI()
    pusher = _pusher(fake, [_phone("101")])
    fake.disconnect()
    await pusher.sync()  # not connected: the connect's reconcile will push them
    assert fake.config == {}
    fake.on_connect(pusher.reconcile)
    await fake.reconnect()
    await fake.settle()
    assert ("res_pjsip", "endpoint", "101") in fake.config
