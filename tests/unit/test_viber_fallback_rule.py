"""Viber's fallback to SMS, its pure rule (core/notices.py): which Viber messages get their
SMS (refused, undeliverable, expired, silent past the wait; not delivered ones, not those
still in their time, never another channel's), and the SMS's channel, address and time under
the contact policy (no SMS to a client opted out of SMS or on the DNC list, or without an
SMS provider; the quiet hours; neither the frequency cap nor "contacted today", since the SMS
replaces a message already allowed)."""

from __future__ import annotations

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from core.notices import (
    Channel,
    Contact,
    NoticeKind,
    NoticeState,
    Plan,
    Policy,
    Recipient,
    Skip,
    fallback_key,
    fallback_plan,
    needs_fallback,
)
from tests.unit.test_notice_policy import someone

ZONE = ZoneInfo("Europe/Sarajevo")
SENT = datetime(2026, 12, 2, 10, 0, tzinfo=ZONE)
WAIT = timedelta(seconds=660)
BOTH = (Channel.SMS, Channel.VIBER)
NUMBER = "+387660770091"


def client(**kw: object) -> Recipient:
    """A client who prefers Viber, with a number and nothing else."""
    base: dict[str, object] = {"phone": NUMBER, "email": None, "postal_address": None}
    return someone(**{"preferred": Channel.VIBER, **base, **kw})


@pytest.mark.parametrize(
    ("state", "at", "expected"),
    [
        (NoticeState.FAILED, SENT, True),  # refused at sending, undeliverable, rejected
        (NoticeState.EXPIRED, SENT, True),  # the provider's EXPIRED report
        (NoticeState.DELIVERED, SENT + WAIT * 2, False),
        (NoticeState.SENT, SENT + WAIT - timedelta(seconds=1), False),  # still in its time
        (NoticeState.SENT, SENT + WAIT, True),  # silent: no report in time
        (NoticeState.QUEUED, SENT + WAIT * 2, False),  # waiting to be sent (provider down)
        (NoticeState.SENDING, SENT + WAIT * 2, False),
    ],
)
def test_which_viber_messages_fall_back(state: NoticeState, at: datetime, expected: bool) -> None:
    assert needs_fallback(Channel.VIBER, state, SENT, at, WAIT) is expected


def test_only_viber_falls_back() -> None:
    for channel in (Channel.SMS, Channel.EMAIL, Channel.LETTER):
        assert not needs_fallback(channel, NoticeState.FAILED, SENT, SENT + WAIT, WAIT)


def test_the_sms_goes_to_the_clients_number_at_once_outside_quiet_hours() -> None:
    decided = fallback_plan(NoticeKind.BIRTHDAY, client(), SENT, BOTH, Policy())
    assert decided == Plan(Channel.SMS, NUMBER, SENT)
    assert fallback_key("birthday:9:2026") == "birthday:9:2026:sms"


def test_a_silent_message_found_at_night_gets_its_sms_in_the_morning() -> None:
    night = datetime(2026, 12, 2, 21, 30, tzinfo=ZONE)
    decided = fallback_plan(NoticeKind.BIRTHDAY, client(), night, BOTH, Policy())
    assert decided == Plan(Channel.SMS, NUMBER, datetime(2026, 12, 3, 9, 0, tzinfo=ZONE))


@pytest.mark.parametrize(
    ("who", "configured", "reason"),
    [
        (client(opted_out=frozenset({Channel.SMS})), BOTH, "opted_out"),
        (client(do_not_call=True), BOTH, "no_address"),  # DNC: no SMS to the number
        (client(phone=None), BOTH, "no_address"),
        (client(), (Channel.VIBER,), "no_channel"),  # no SMS provider
    ],
)
def test_no_sms_when_the_policy_allows_none(
    who: Recipient, configured: tuple[Channel, ...], reason: str
) -> None:
    assert fallback_plan(NoticeKind.OFFICE_CHANGE, who, SENT, configured, Policy()) == Skip(reason)


def test_the_viber_message_itself_does_not_cap_its_sms() -> None:
    """The capped kinds: the Viber message (and two others) fill the cap, and an offer call
    today covered the topic: the SMS replaces the Viber message, so it still goes."""
    contacts = tuple(Contact(SENT - timedelta(hours=h), "viber", "offer") for h in range(3))
    decided = fallback_plan(NoticeKind.OFFER, client(contacts=contacts), SENT, BOTH, Policy())
    assert isinstance(decided, Plan) and decided.channel is Channel.SMS
