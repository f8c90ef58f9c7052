"""The notices' pure rules (core/notices.py): the contact policy's channel, address and time
for each client (preference, opt-outs, DNC, quiet hours on the client's clock across midnight
and the summer-time change, the frequency cap, no offer by message after an offer call the
same day), the templates' merge (fields checked, HTML escaped), the reports applied forward
only whatever their order, the retries, the birthdays of 29 February."""

from __future__ import annotations

from datetime import date, datetime, time, timedelta
from itertools import permutations
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.notices import (
    FINAL,
    GIVE_UP_AFTER,
    MAX_TEXT,
    OFFER_TOPIC,
    SHIPPED,
    Channel,
    Contact,
    NoticeKind,
    NoticeRequestError,
    NoticeState,
    Plan,
    Policy,
    Recipient,
    Skip,
    Template,
    TemplateError,
    after_report,
    birthday_dates,
    check_supervisor_notice,
    merge_values,
    next_allowed,
    notice_key,
    plan,
    render,
    retry_at,
)

ZONE = ZoneInfo("Europe/Sarajevo")
POLICY = Policy()
ALL = (Channel.SMS, Channel.VIBER, Channel.EMAIL, Channel.LETTER)


def local(text: str, zone: ZoneInfo = ZONE) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=zone)


def someone(**kw: object) -> Recipient:
    base: dict[str, object] = {
        "client_id": 7,
        "language": "bs",
        "zone": None,
        "phone": "+38761000111",
        "email": "a@x.org",
        "postal_address": "Titova 1, Sarajevo",
        "preferred": None,
    }
    return Recipient(**{**base, **kw})  # type: ignore[arg-type]


NOON = local("2026-12-02T12:00:00")


def test_the_kinds_order_the_preference_and_what_closes_a_channel() -> None:
    assert plan(NoticeKind.BIRTHDAY, someone(), NOON, ALL, POLICY) == Plan(
        Channel.VIBER, "+38761000111", NOON
    )
    assert plan(NoticeKind.OFFER, someone(), NOON, ALL, POLICY) == Plan(
        Channel.EMAIL, "a@x.org", NOON
    )
    preferring = someone(preferred=Channel.LETTER)
    assert plan(NoticeKind.OFFER, preferring, NOON, ALL, POLICY).channel == Channel.LETTER  # type: ignore[union-attr]
    # Only e-mail configured; opted out of it: the opt-out is the reason.
    only_mail = (Channel.EMAIL,)
    out = someone(opted_out=frozenset({Channel.EMAIL}))
    assert plan(NoticeKind.BIRTHDAY, out, NOON, only_mail, POLICY) == Skip("opted_out")
    assert plan(NoticeKind.BIRTHDAY, someone(email=None), NOON, only_mail, POLICY) == Skip(
        "no_address"
    )
    # A number on the DNC list gets no SMS or Viber; e-mail still goes.
    dnc = someone(do_not_call=True)
    assert plan(NoticeKind.BIRTHDAY, dnc, NOON, ALL, POLICY).channel == Channel.EMAIL  # type: ignore[union-attr]
    assert plan(NoticeKind.BIRTHDAY, dnc, NOON, (Channel.SMS,), POLICY) == Skip("no_address")
    # A supervisor's channel, and no other.
    asked = plan(NoticeKind.OFFER, someone(), NOON, ALL, POLICY, channel=Channel.SMS)
    assert asked == Plan(Channel.SMS, "+38761000111", NOON)
    assert plan(NoticeKind.OFFER, someone(phone=None), NOON, ALL, POLICY, channel=Channel.SMS) == (
        Skip("no_address")
    )
    assert plan(NoticeKind.OFFER, someone(), NOON, (), POLICY) == Skip("no_channel")


@pytest.mark.parametrize(
    ("now", "zone", "expected"),
    [
        ("2026-12-02T12:00:00", "Europe/Sarajevo", "2026-12-02T12:00:00"),
        ("2026-12-02T20:00:00", "Europe/Sarajevo", "2026-12-03T09:00:00"),
        ("2026-12-02T23:59:00", "Europe/Sarajevo", "2026-12-03T09:00:00"),
        ("2026-12-03T03:00:00", "Europe/Sarajevo", "2026-12-03T09:00:00"),
        ("2026-12-03T09:00:00", "Europe/Sarajevo", "2026-12-03T09:00:00"),
        # The client's clock, not ours: 12:00 in Sarajevo is 06:00 in New York.
        ("2026-12-02T12:00:00", "America/New_York", "2026-12-02T15:00:00"),
        # Summer time starts the night of 29 March 2026: nine on the new clock.
        ("2026-03-29T01:30:00", "Europe/Sarajevo", "2026-03-29T09:00:00"),
    ],
)
def test_quiet_hours_are_on_the_clients_clock(now: str, zone: str, expected: str) -> None:
    found = plan(NoticeKind.OFFER, someone(zone=zone), local(now), ALL, POLICY)
    assert isinstance(found, Plan)
    assert found.not_before == local(expected)


def test_no_quiet_hours_when_they_start_and_end_together() -> None:
    always = Policy(quiet_from=time(0, 0), quiet_until=time(0, 0))
    night = local("2026-12-02T03:00:00")
    assert next_allowed(night, ZONE, always) == night


@given(st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2035, 1, 1)))
def test_the_time_allowed_is_never_earlier_nor_quiet(naive: datetime) -> None:
    now = naive.replace(tzinfo=ZoneInfo("UTC"))
    allowed = next_allowed(now, ZONE, POLICY)
    assert allowed >= now
    clock = allowed.astimezone(ZONE).time()
    assert POLICY.quiet_until <= clock < POLICY.quiet_from
    assert allowed - now <= timedelta(hours=14)


def test_the_cap_counts_every_channel_and_calls_but_not_what_a_client_must_know() -> None:
    week = [
        Contact(NOON - timedelta(days=d), c) for d, c in ((1, "sms"), (2, "voice"), (3, "email"))
    ]
    capped = someone(contacts=tuple(week))
    assert plan(NoticeKind.OFFER, capped, NOON, ALL, POLICY) == Skip("frequency_cap")
    assert plan(NoticeKind.BIRTHDAY, capped, NOON, ALL, POLICY) == Skip("frequency_cap")
    assert isinstance(plan(NoticeKind.DOCUMENT_EXPIRY, capped, NOON, ALL, POLICY), Plan)
    older = someone(contacts=(*week[:2], Contact(NOON - timedelta(days=8), "email")))
    assert isinstance(plan(NoticeKind.OFFER, older, NOON, ALL, POLICY), Plan)


def test_an_offer_call_today_holds_back_the_offer_message() -> None:
    called = someone(contacts=(Contact(local("2026-12-02T09:30:00"), "voice", OFFER_TOPIC),))
    assert plan(NoticeKind.OFFER, called, NOON, ALL, POLICY, topic=OFFER_TOPIC) == Skip(
        "contacted_today"
    )
    tomorrow = NOON + timedelta(days=1)
    assert isinstance(
        plan(NoticeKind.OFFER, called, tomorrow, ALL, POLICY, topic=OFFER_TOPIC), Plan
    )


def test_reports_apply_once_each_in_any_order() -> None:
    reports = [NoticeState.SENT, NoticeState.DELIVERED, NoticeState.SENT, NoticeState.DELIVERED]
    for order in permutations(reports):
        state = NoticeState.SENDING
        for reported in order:
            state = after_report(state, reported)
        assert state is NoticeState.DELIVERED
    for final in FINAL:
        assert after_report(final, NoticeState.SENT) is final
        assert after_report(NoticeState.QUEUED, final) is final


def test_a_provider_down_is_tried_for_a_day_then_given_up() -> None:
    queued = local("2026-12-02T09:00:00")
    failed_at, attempts, waits = queued, 0, []
    while True:
        attempts += 1
        again = retry_at(attempts, failed_at, queued)
        if again is None:
            break
        waits.append(again - failed_at)
        failed_at = again
    assert waits[0] == timedelta(seconds=30)
    assert waits == sorted(waits)
    assert GIVE_UP_AFTER - timedelta(hours=1) < failed_at - queued <= GIVE_UP_AFTER


def test_templates_merge_known_fields_and_escape_html() -> None:
    merged = render(
        SHIPPED[(NoticeKind.DOCUMENT_EXPIRY, "bs")],
        merge_values("Ana <i>Kovač</i>", document_expiry=date(2027, 1, 5)),
    )
    assert merged.subject == "Vaš dokument ističe 05.01.2027"
    assert "Ana <i>Kovač</i>" in merged.text
    assert "Ana &lt;i&gt;Kovač&lt;/i&gt;" in merged.html and "<i>" not in merged.html
    with pytest.raises(TemplateError, match=r"unknown field \{password\}"):
        Template("x", "Dear {name}, your {password}")
    assert render(Template("{first_name}", "Hi"), merge_values("")).subject == ""
    for (kind, language), template in SHIPPED.items():
        assert render(template, merge_values("Ana Kovač")).text, (kind, language)
    assert {language for _, language in SHIPPED} == {"bs", "en"}
    assert {kind for kind, _ in SHIPPED} == set(NoticeKind)


def test_birthdays_of_29_february_are_greeted_on_the_28th_in_other_years() -> None:
    assert birthday_dates(date(2027, 2, 28)) == [(2, 28), (2, 29)]
    assert birthday_dates(date(2028, 2, 28)) == [(2, 28)]
    assert birthday_dates(date(2028, 2, 29)) == [(2, 29)]
    assert birthday_dates(date(2100, 2, 28)) == [(2, 28), (2, 29)]  # no leap day in 2100
    assert notice_key(NoticeKind.BIRTHDAY, 7, "2026") == "birthday:7:2026"


# ---- a supervisor's notice ---------------------------------------------------------------


def test_a_supervisors_notice_is_checked_before_anything_is_read() -> None:
    offer = check_supervisor_notice(
        "offer", " Kredit 5000 KM ", external_ids=[" k1", "k2", "k1", ""], channel="email"
    )
    assert offer.kind is NoticeKind.OFFER and offer.text == "Kredit 5000 KM"
    assert offer.external_ids == ("k1", "k2") and offer.channel is Channel.EMAIL
    assert (offer.product, offer.message, offer.topic) == ("Kredit 5000 KM", None, OFFER_TOPIC)
    news = check_supervisor_notice("office-change", "Nova adresa", segment="active")
    assert news.kind is NoticeKind.OFFICE_CHANGE and news.segment == "active"
    assert (news.product, news.message, news.topic, news.channel) == (
        None, "Nova adresa", None, None,
    )  # fmt: skip
    for kwargs, field in (
        ({"kind": "birthday", "text": "x", "segment": "new"}, "kind"),
        ({"kind": "offer", "text": None, "segment": "new"}, "product"),
        ({"kind": "announcement", "text": "  ", "segment": "new"}, "message"),
        ({"kind": "offer", "text": "x" * (MAX_TEXT + 1), "segment": "new"}, "product"),
        ({"kind": "offer", "text": "x"}, "clients"),
        ({"kind": "offer", "text": "x", "segment": "new", "external_ids": ["a"]}, "clients"),
        ({"kind": "offer", "text": "x", "external_ids": [" ", ""]}, "clients"),
        ({"kind": "offer", "text": "x", "segment": "vip"}, "segment"),
        ({"kind": "offer", "text": "x", "segment": "new", "channel": "fax"}, "channel"),
    ):
        with pytest.raises(NoticeRequestError) as raised:
            check_supervisor_notice(**kwargs)
        assert raised.value.field == field and raised.value.details == {"field": field}
        assert raised.value.error_id == "bad_notice" and raised.value.status == 400
