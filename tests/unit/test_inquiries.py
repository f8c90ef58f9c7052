"""The pure core of written inquiries (core.inquiries, issue 16): the states' machine,
escalation, classification and its rules document, SLA due times in business time (nights,
a weekend, a holiday, DST), e-mail facts and the contact form's checks."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from core.errors import DomainError
from core.inquiries import (
    DEFAULT_RULES,
    ESCALATED_KINDS,
    EscalationLevel,
    EscalationStep,
    InquiryChannel,
    InquiryError,
    InquiryEvent,
    InquiryKind,
    InquiryState,
    RulesError,
    SlaTargets,
    business_time,
    check_contact_form,
    check_rules,
    classify,
    due_at,
    escalation,
    fold,
    is_auto_reply,
    reply_subject,
    sla_status,
    split_reply,
    thread_key,
    transition,
)
from core.inquiries.model import NEXT
from core.inquiries.sla import _next_open
from dialplan.hours import next_open
from dialplan.model import Calendar

SARAJEVO = ZoneInfo("Europe/Sarajevo")
K, S, E = InquiryKind, InquiryState, InquiryEvent  # short names for the tables below
WORKDAYS = {d: ["08:00-16:00"] for d in ("mon", "tue", "wed", "thu", "fri")}
OFFICE = Calendar(timezone="Europe/Sarajevo", weekly=WORKDAYS)


def local(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=SARAJEVO)


# ---- the states' machine -------------------------------------------------------------------


def test_a_reply_waits_for_the_client_and_the_clients_answer_reopens() -> None:
    state = transition(S.NEW, E.ASSIGN)
    assert state is S.OPEN
    state = transition(state, E.REPLY)
    assert state is S.WAITING
    assert transition(state, E.CLIENT_MESSAGE) is S.OPEN
    assert transition(S.CLOSED, E.CLIENT_MESSAGE) is S.OPEN


@pytest.mark.parametrize(
    ("state", "event"),
    [(S.CLOSED, E.REPLY), (S.CLOSED, E.CLOSE), (S.CLOSED, E.ASSIGN), (S.NEW, E.REOPEN)],
)
def test_a_forbidden_move_is_refused_with_an_error_id(
    state: InquiryState, event: InquiryEvent
) -> None:
    with pytest.raises(InquiryError) as raised:
        transition(state, event)
    assert raised.value.error_id == "inquiry_state"
    assert raised.value.status == 409
    assert raised.value.details == {"state": str(state), "event": str(event)}


@given(st.lists(st.sampled_from(list(E)), max_size=30))
def test_any_sequence_of_events_stays_inside_the_table(events: list[InquiryEvent]) -> None:
    state = S.NEW
    for event in events:
        if (state, event) in NEXT:
            state = transition(state, event)
        else:
            with pytest.raises(InquiryError):
                transition(state, event)
    assert state in S
    # Closed is left only by the client writing or an agent reopening.
    assert {e for (s, e) in NEXT if s is S.CLOSED} == {E.CLIENT_MESSAGE, E.REOPEN}


# ---- escalation ----------------------------------------------------------------------------


def test_escalated_kinds_go_to_the_supervisor_then_the_manager() -> None:
    assert {K.COMPLAINT, K.DONATION_REQUEST, K.CREDIT_APPLICATION} == ESCALATED_KINDS
    assert escalation_of(K.COMPLAINT, "sup", "mgr") == (
        EscalationStep(EscalationLevel.SUPERVISOR, "sup"),
        EscalationStep(EscalationLevel.MANAGER, "mgr"),
    )
    assert escalation_of(K.CREDIT_APPLICATION, "sup", None) == (
        EscalationStep(EscalationLevel.SUPERVISOR, "sup"),
    )


def escalation_of(
    kind: InquiryKind,
    supervisor: str | None,
    manager: str | None,
    *,
    breached: bool = False,
    done: frozenset[EscalationLevel] = frozenset(),
) -> tuple[EscalationStep, ...]:
    return escalation(kind, supervisor=supervisor, manager=manager, breached=breached, done=done)


def test_escalation_already_done_is_not_repeated() -> None:
    steps = escalation_of(
        K.DONATION_REQUEST, "sup", "mgr", done=frozenset({EscalationLevel.SUPERVISOR})
    )
    assert steps == (EscalationStep(EscalationLevel.MANAGER, "mgr"),)


def test_a_general_question_escalates_only_when_late_and_only_to_the_supervisor() -> None:
    assert escalation_of(K.GENERAL_QUESTION, "sup", "mgr") == ()
    assert escalation_of(K.GENERAL_QUESTION, "sup", "mgr", breached=True) == (
        EscalationStep(EscalationLevel.SUPERVISOR, "sup"),
    )
    # No supervisor configured: the manager rather than nobody.
    assert escalation_of(K.COMPLAINT, None, "mgr") == (
        EscalationStep(EscalationLevel.MANAGER, "mgr"),
    )


# ---- classification ------------------------------------------------------------------------


def test_fold_takes_off_diacritics_and_case() -> None:
    assert fold("ŽALBA čćšđ Đurđa") == "zalba ccsdj djurdja"


@pytest.mark.parametrize(
    ("subject", "body", "kind", "keyword"),
    [
        ("Žalba na uslugu", "", K.COMPLAINT, "žalba"),
        ("zalba", "", K.COMPLAINT, "žalba"),  # written without diacritics
        ("", "Imam REKLAMACIJU na racun", K.COMPLAINT, "reklamaciju"),
        ("Zahtjev", "zahtjev za\nkredit", K.CREDIT_APPLICATION, "kredit"),
        ("Loan application", "", K.CREDIT_APPLICATION, "loan"),
        ("", "molim za donaciju", K.DONATION_REQUEST, "donaciju"),
        ("Promjena adrese", "", K.CHANGE_OF_DATA, "promjena adrese"),
        ("", "a complaint about my loan", K.COMPLAINT, "complaint"),  # the order decides
    ],
)
def test_keywords_classify(subject: str, body: str, kind: InquiryKind, keyword: str) -> None:
    got, match = classify(subject, body, "ana@example.ba", InquiryChannel.EMAIL)
    assert got is kind
    assert match.source == "keyword"
    assert match.rule == keyword


_PLAIN = str.maketrans("čćžšČĆŽŠ", "cczsCCZS")
_WORDS = ["Žalba", "žalbu", "kredit", "kreditna", "donaciju", "promjena", "adrese", "Ćao", "loan"]


@given(st.lists(st.sampled_from(_WORDS), max_size=8), st.sampled_from([" ", "\n", ", "]))
def test_case_and_diacritics_do_not_change_the_kind(words: list[str], glue: str) -> None:
    text = glue.join(words)
    kind, match = classify(text, "", None, InquiryChannel.EMAIL)
    assert classify(text.upper(), "", None, InquiryChannel.EMAIL) == (kind, match)
    assert classify("", text.translate(_PLAIN), None, InquiryChannel.EMAIL) == (kind, match)
    assert (kind is K.COMPLAINT) == any(w.lower() in ("žalba", "žalbu") for w in words)


def test_keywords_match_whole_words_only() -> None:
    # "kreditna kartica" is not "kredit"; "loaned" is not "loan".
    kind, match = classify("Kreditna kartica", "I loaned it", None, InquiryChannel.EMAIL)
    assert (kind, match.source) == (K.GENERAL_QUESTION, "default")


def test_sender_rules_come_first_then_channel_defaults() -> None:
    rules = check_rules(
        {
            "keywords": {"complaint": {"bs": ["žalba"]}},
            "senders": [{"pattern": "*@banka.ba", "kind": "credit_application"}],
            "channels": {"facebook": "donation_request"},
        }
    )
    kind, match = classify("žalba", "", "Ured@Banka.BA", InquiryChannel.EMAIL, rules)
    assert (kind, match.source, match.rule) == (K.CREDIT_APPLICATION, "sender", "*@banka.ba")
    kind, match = classify("hello", "", None, InquiryChannel.FACEBOOK, rules)
    assert (kind, match.source) == (K.DONATION_REQUEST, "channel")
    kind, match = classify("hello", "", None, InquiryChannel.EMAIL, rules)
    assert (kind, match.source) == (K.GENERAL_QUESTION, "default")


def test_the_rules_order_decides_between_kinds() -> None:
    doc = {
        "keywords": {"complaint": {"en": ["complaint"]}, "credit_application": {"en": ["loan"]}},
        "order": ["credit_application", "complaint"],
    }
    assert classify("complaint about a loan", "", None, InquiryChannel.EMAIL, check_rules(doc))[
        0
    ] is (K.CREDIT_APPLICATION)


@pytest.mark.parametrize(
    ("doc", "error_id", "path"),
    [
        ([], "rules_shape", "rules"),
        ({"colour": 1}, "rules_unknown_key", "colour"),
        ({"order": ["complaint", "gripe"]}, "rules_unknown_kind", "order[1]"),
        ({"order": ["complaint", "complaint"]}, "rules_duplicate", "order[1]"),
        (
            {"keywords": {"complaint": {"bs": ["žalba", ""]}}},
            "rules_shape",
            "keywords.complaint.bs[1]",
        ),
        (
            {"keywords": {"complaint": {"bs": ["x" * 101]}}},
            "rules_too_long",
            "keywords.complaint.bs[0]",
        ),
        (
            {"keywords": {"complaint": {"bs": ["w"] * 201}}},
            "rules_too_many",
            "keywords.complaint.bs",
        ),
        ({"keywords": {"complaint": {"bs": ["!!"]}}}, "rules_keyword", "keywords.complaint.bs[0]"),
        ({"keywords": {"complaint": {"Bosnian": ["x"]}}}, "rules_language", "keywords.complaint"),
        ({"senders": [{"pattern": "*", "kind": "complaint"}]}, "rules_pattern", "senders[0]"),
        (
            {"senders": [{"pattern": "a@b", "kind": "nope"}]},
            "rules_unknown_kind",
            "senders[0].kind",
        ),
        ({"channels": {"fax": "complaint"}}, "rules_unknown_channel", "channels.fax"),
    ],
)
def test_a_wrong_rules_document_names_the_place(doc: object, error_id: str, path: str) -> None:
    with pytest.raises(RulesError) as raised:
        check_rules(doc)
    assert isinstance(raised.value, DomainError)
    assert raised.value.error_id == error_id
    assert raised.value.details == {"path": path}
    assert raised.value.status == 422


def test_the_shipped_rules_survive_their_own_check() -> None:
    doc = {
        "order": [str(k) for k in DEFAULT_RULES.order],
        "keywords": {
            str(k): {lang: list(words) for lang, words in langs.items()}
            for k, langs in DEFAULT_RULES.keywords.items()
        },
    }
    rules = check_rules(doc)
    assert rules.order == DEFAULT_RULES.order
    assert rules.keywords == DEFAULT_RULES.keywords


# ---- SLA in business time ------------------------------------------------------------------


def test_due_across_a_weekend() -> None:
    # Friday 15:30 + 4 business hours: 30 minutes on Friday, 3.5 hours on Monday.
    due = due_at(local(2027, 3, 5, 15, 30), 4 * 60, OFFICE)
    assert due == local(2027, 3, 8, 11, 30).astimezone(UTC)


def test_due_across_a_weekend_and_a_holiday() -> None:
    with_holiday = Calendar(
        timezone="Europe/Sarajevo", weekly=WORKDAYS, holidays=[date(2027, 3, 8)]
    )
    due = due_at(local(2027, 3, 5, 15, 30), 4 * 60, with_holiday)
    assert due == local(2027, 3, 9, 11, 30).astimezone(UTC)


def test_arrival_at_night_starts_the_clock_at_the_opening() -> None:
    assert due_at(local(2027, 3, 9, 22, 0), 60, OFFICE) == local(2027, 3, 10, 9, 0).astimezone(UTC)
    assert due_at(local(2027, 3, 9, 22, 0), 0, OFFICE) == local(2027, 3, 10, 8, 0).astimezone(UTC)


def test_due_across_the_spring_dst_change() -> None:
    # 28 March 2027: 02:00 CET jumps to 03:00 CEST. Open 01:00-05:00 that Sunday: an hour
    # before the jump and two after it, three in all.
    sunday = Calendar(timezone="Europe/Sarajevo", weekly={"sun": ["01:00-05:00"]})
    start = local(2027, 3, 28, 0, 0)
    assert due_at(start, 180, sunday) == local(2027, 3, 28, 5, 0).astimezone(UTC)
    assert business_time(start, local(2027, 3, 28, 6, 0), sunday) == timedelta(hours=3)


def test_due_across_the_autumn_dst_change_on_an_always_open_calendar() -> None:
    # 31 October 2027: 03:00 CEST falls back to 02:00 CET; 24 hours open is 24 real hours.
    always = Calendar(
        timezone="Europe/Sarajevo",
        weekly={d: ["00:00-24:00"] for d in ("mon", "tue", "wed", "thu", "fri", "sat", "sun")},
    )
    start = local(2027, 10, 30, 12, 0)
    assert due_at(start, 24 * 60, always) == start.astimezone(UTC) + timedelta(hours=24)
    assert due_at(start, 60, None) == start.astimezone(UTC) + timedelta(hours=1)


@settings(max_examples=60, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(2027, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    ),
    st.integers(min_value=1, max_value=5 * 8 * 60),
)
def test_the_time_until_due_is_exactly_the_target(start: datetime, minutes: int) -> None:
    due = due_at(start, minutes, OFFICE)
    assert due is not None
    assert business_time(start, due, OFFICE) == timedelta(minutes=minutes)
    # And not a moment earlier. (Not "the minute before due is business time": a start a
    # microsecond past a whole minute can fill the day to a microsecond past its close, and
    # be due a microsecond after the next opening.)
    assert business_time(start, due - timedelta(microseconds=1), OFFICE) < timedelta(
        minutes=minutes
    )


ODD = Calendar(
    timezone="Europe/Sarajevo",
    weekly={"sat": ["01:30-02:30", "20:00-24:00"], "sun": ["00:00-02:30", "02:45-03:15"]},
    holidays=[date(2027, 10, 2)],
)


@settings(max_examples=60, deadline=None)
@given(
    st.datetimes(
        min_value=datetime(2027, 1, 1), max_value=datetime(2027, 12, 31), timezones=st.just(UTC)
    )
)
@example(datetime(2027, 3, 27, 23, 0, tzinfo=UTC))  # the spring night
@example(datetime(2027, 3, 28, 1, 0, tzinfo=UTC))
@example(datetime(2027, 10, 30, 23, 30, tzinfo=UTC))  # the autumn night
@example(datetime(2027, 10, 31, 1, 20, tzinfo=UTC))
@example(datetime(2027, 10, 1, 12, 0, tzinfo=UTC))  # the day before the holiday
def test_the_walks_openings_agree_with_dialplan_hours(at: datetime) -> None:
    # sla keeps its own windowed search for speed; it must find what next_open finds,
    # across midnight ("24:00" then "00:00"), a holiday and both DST nights.
    assert _next_open(ODD, at) == next_open(ODD, at)


def test_a_stretch_across_midnight_is_one_stretch() -> None:
    start = local(2027, 6, 5, 20, 0)  # Saturday 20:00-24:00, then Sunday 00:00-02:30
    assert due_at(start, 6 * 60, ODD) == local(2027, 6, 6, 2, 0).astimezone(UTC)
    assert business_time(start, local(2027, 6, 6, 12, 0), ODD) == timedelta(minutes=6.5 * 60 + 30)


TARGETS = SlaTargets(first_response_minutes=60, resolution_minutes=8 * 60)


def test_waiting_for_the_client_stops_the_clock() -> None:
    arrived = local(2027, 3, 8, 9, 0)  # Monday
    history = [
        (arrived, S.NEW),
        (local(2027, 3, 8, 9, 30), S.WAITING),  # answered after 30 minutes
        (local(2027, 3, 9, 9, 0), S.OPEN),  # the client answers on Tuesday
    ]
    status = sla_status(
        history,
        local(2027, 3, 9, 10, 0),
        OFFICE,
        TARGETS,
        first_response_at=local(2027, 3, 8, 9, 30),
    )
    assert status.first_response_due is None  # met
    assert status.first_response_used == timedelta(minutes=30)
    assert status.resolution_used == timedelta(minutes=90)
    # 30 minutes on Monday: 7.5 h remain from Tuesday 09:00, 7 h of it on Tuesday.
    assert status.resolution_due == local(2027, 3, 10, 8, 30).astimezone(UTC)
    assert not status.breached
    assert not status.near_breach


def test_while_waiting_there_is_no_due_time_and_no_breach() -> None:
    history = [(local(2027, 3, 8, 9, 0), S.NEW), (local(2027, 3, 8, 9, 10), S.WAITING)]
    status = sla_status(
        history,
        local(2027, 3, 20, 9, 0),
        OFFICE,
        TARGETS,
        first_response_at=local(2027, 3, 8, 9, 10),
    )
    assert (status.first_response_due, status.resolution_due) == (None, None)
    assert status.resolution_used == timedelta(minutes=10)
    assert not status.breached


def test_a_closed_inquiry_has_no_due_time_and_the_future_is_not_the_state() -> None:
    arrived = local(2027, 3, 8, 9, 0)
    closed = [(arrived, S.NEW), (local(2027, 3, 8, 9, 20), S.CLOSED)]
    status = sla_status(closed, local(2027, 3, 8, 12, 0), OFFICE, TARGETS)
    assert (status.first_response_due, status.resolution_due) == (None, None)
    assert status.resolution_used == timedelta(minutes=20)
    # Closed at 09:20 by a clock ahead of ours: at 09:10 it still runs.
    early = sla_status(closed, local(2027, 3, 8, 9, 10), OFFICE, TARGETS)
    # Seven hours on Monday, the eighth on Tuesday morning.
    assert early.resolution_due == local(2027, 3, 9, 9, 0).astimezone(UTC)
    with pytest.raises(ValueError, match="after now"):
        sla_status(closed, local(2027, 3, 8, 8, 0), OFFICE, TARGETS)


def test_near_breach_at_80_percent_then_breach() -> None:
    history = [(local(2027, 3, 8, 9, 0), S.NEW)]
    near = sla_status(history, local(2027, 3, 8, 9, 48), OFFICE, TARGETS)
    assert near.first_response_due == local(2027, 3, 8, 10, 0).astimezone(UTC)
    assert (near.near_breach, near.breached) == (True, False)
    early = sla_status(history, local(2027, 3, 8, 9, 47), OFFICE, TARGETS)
    assert (early.near_breach, early.breached) == (False, False)
    late = sla_status(history, local(2027, 3, 8, 10, 1), OFFICE, TARGETS)
    assert (late.near_breach, late.breached) == (False, True)
    assert late.first_response_due == near.first_response_due  # late by a minute, shown


def test_a_target_run_out_before_the_client_waited_keeps_its_past_due_time() -> None:
    history = [
        (local(2027, 3, 8, 9, 0), S.NEW),
        (local(2027, 3, 8, 11, 0), S.WAITING),  # two hours: the hour target ran out at 10:00
        (local(2027, 3, 9, 9, 0), S.OPEN),
    ]
    status = sla_status(history, local(2027, 3, 9, 9, 30), OFFICE, TARGETS)
    assert status.first_response_due == local(2027, 3, 8, 10, 0).astimezone(UTC)
    assert status.first_response_used == timedelta(minutes=150)
    assert status.breached


def test_a_late_first_answer_stays_a_breach_and_the_night_does_not_count() -> None:
    history = [(local(2027, 3, 8, 15, 30), S.NEW), (local(2027, 3, 9, 8, 45), S.WAITING)]
    answered = local(2027, 3, 9, 8, 45)  # 30 + 45 business minutes: late
    status = sla_status(
        history, local(2027, 3, 9, 12, 0), OFFICE, TARGETS, first_response_at=answered
    )
    assert status.first_response_used == timedelta(minutes=75)
    assert status.breached
    on_time = sla_status(
        [*history[:1], (local(2027, 3, 9, 8, 20), S.WAITING)],
        local(2027, 3, 9, 12, 0),
        OFFICE,
        TARGETS,
        first_response_at=local(2027, 3, 9, 8, 20),
    )
    assert not on_time.breached


# ---- e-mail facts --------------------------------------------------------------------------

PLAIN = {"From": "Ana <ana@example.ba>", "Subject": "Pitanje", "Content-Type": "text/plain"}


@pytest.mark.parametrize(
    "extra",
    [
        {"Auto-Submitted": "auto-replied"},
        {"Auto-Submitted": "auto-generated; owner-email=x@y"},
        {"X-Autoreply": "yes"},
        {"X-Autorespond": "vacation"},
        {"Precedence": "bulk"},
        {"Precedence": "auto_reply"},
        {"X-Auto-Response-Suppress": "All"},
        {"Content-Type": 'multipart/report; report-type="delivery-status"; boundary=x'},
        {"From": "Mail Delivery System <MAILER-DAEMON@mx.example.ba>"},
        {"From": "postmaster@example.ba"},
        {"Return-Path": "<>"},
    ],
)
def test_auto_replies_and_bounces_are_recognised(extra: dict[str, str]) -> None:
    assert not is_auto_reply(PLAIN)
    assert is_auto_reply({**PLAIN, **extra})
    assert is_auto_reply(list({**PLAIN, **extra}.items()))  # headers as pairs, too


def test_auto_submitted_no_is_a_person() -> None:
    assert not is_auto_reply({**PLAIN, "auto-submitted": "No", "Precedence": "list"})


def test_thread_key_prefers_message_ids_then_the_token() -> None:
    key = thread_key(
        {
            "In-Reply-To": "<b@x>",
            "References": "<a@x> <b@x>\r\n <c@x>",
            "Subject": "Re: Pitanje [#INQ-41]",
        }
    )
    assert key.message_ids == ("b@x", "c@x", "a@x")
    assert key.inquiry_id == 41
    assert thread_key({"To": "Centrala <info+inq77@fondacija.ba>"}, "Hi").inquiry_id == 77
    assert thread_key({"To": "info@fondacija.ba"}, "Hi") == type(key)((), None)


def test_reply_subject_adds_the_token_once() -> None:
    once = reply_subject("Pitanje o kreditu", 12)
    assert once == "Re: Pitanje o kreditu [#INQ-12]"
    assert reply_subject(once, 12) == once
    assert reply_subject("RE: Odg: Re: pitanje [#INQ-9]", 12) == "Re: pitanje [#INQ-12]"
    assert reply_subject("a\r\nBcc: x@y", 1) == "Re: a Bcc: x@y [#INQ-1]"
    assert reply_subject(None, 3) == "Re: [#INQ-3]"
    assert len(reply_subject("x" * 1000, 3)) <= 250


@given(st.text(max_size=300), st.integers(min_value=1, max_value=10**12 - 1))
def test_reply_subject_is_idempotent_one_line_and_bounded(subject: str, inquiry_id: int) -> None:
    once = reply_subject(subject, inquiry_id)
    assert reply_subject(once, inquiry_id) == once
    assert once.count(f"[#INQ-{inquiry_id}]") == 1
    assert "\n" not in once and "\r" not in once and len(once) <= 250
    assert thread_key({}, once).inquiry_id == inquiry_id


@pytest.mark.parametrize(
    "quote",
    [
        "On Mon, 8 Mar 2027 at 10:00, Centrala <info@fondacija.ba> wrote:\n> Poštovana,",
        "On Mon, 8 Mar 2027 at 10:00, Centrala\n<info@fondacija.ba> wrote:\n> Poštovana,",
        "Dana 8. 3. 2027. u 10:00, Centrala je napisao/la:\n> Poštovana,",
        "> Poštovana,\n> hvala",
        "-----Original Message-----\nFrom: Centrala\nSent: Monday\nSubject: x",
        "From: Centrala <info@fondacija.ba>\nSent: Monday, March 8, 2027\nTo: Ana\n\nPoštovana,",
        "________________________________\nFrom: Centrala\nSent: Monday",
    ],
)
def test_split_reply_sets_the_quote_apart(quote: str) -> None:
    reply = split_reply(f"Hvala, to je to.\n\n{quote}")
    assert reply.new == "Hvala, to je to."
    assert reply.quoted.startswith(quote.split("\n")[0])
    assert reply.signature == ""


@given(
    st.lists(
        st.sampled_from(["text", "", "> q", "-- ", "sig", "On x wrote:", "From: a", "Sent: b"]),
        max_size=12,
    )
)
def test_split_reply_loses_no_line(lines: list[str]) -> None:
    reply = split_reply("\n".join(lines))
    kept = "\n".join((reply.new, reply.signature, reply.quoted)).split("\n")
    content = [line for line in lines if line.strip() and line != "-- "]
    assert sorted(content) == sorted(
        k for k in kept if k.strip() and k != "-- " and k in content
    ) or all(line in kept for line in content)
    assert all(line in kept for line in content)


def test_split_reply_sets_the_signature_apart() -> None:
    reply = split_reply("Nova adresa: Ulica 1\r\n-- \r\nAna Anić\r\n061 123 456\r\n\r\n> old")
    assert reply.new == "Nova adresa: Ulica 1"
    assert reply.signature == "Ana Anić\n061 123 456"
    assert reply.quoted == "> old"
    # "From:" in running text without the headers below it is not a quote.
    text = "From: my experience, the office was closed.\nThanks"
    assert split_reply(text).new == text


# ---- the contact form ----------------------------------------------------------------------

GOOD = {"name": "Ana Anić", "email": "ana@example.ba", "phone": "061 123 456", "message": "Pozdrav"}
NOW = 1_800_000_000.0


def test_a_good_form_is_cleaned() -> None:
    check = check_contact_form(GOOD, NOW - 30, NOW)
    assert check.spam is None and check.errors == ()
    assert check.form is not None
    assert (check.form.name, check.form.phone) == ("Ana Anić", "+38761123456")


@pytest.mark.parametrize(
    ("fields", "rendered_at", "reason"),
    [
        ({**GOOD, "website": "http://spam"}, NOW - 30, "honeypot"),
        (GOOD, NOW - 1, "too_fast"),
        (GOOD, None, "no_render_time"),
    ],
)
def test_spam_is_told_apart(fields: dict[str, str], rendered_at: float | None, reason: str) -> None:
    check = check_contact_form(fields, rendered_at, NOW)
    assert (check.spam, check.form, check.errors) == (reason, None, ())


@pytest.mark.parametrize(
    ("change", "field", "error_id"),
    [
        ({"name": ""}, "name", "required"),
        ({"name": "x" * 101}, "name", "too_long"),
        ({"email": "ana@"}, "email", "invalid_email"),
        ({"email": "ana@example.ba\nBcc: x@y"}, "email", "invalid_email"),
        ({"phone": "call me"}, "phone", "invalid_phone"),
        ({"email": "", "phone": ""}, "email", "contact_required"),
        ({"message": "  "}, "message", "required"),
        ({"message": "x" * 5001}, "message", "too_long"),
        ({"message": "a\x00b"}, "message", "invalid_characters"),
    ],
)
def test_a_wrong_field_is_named(change: dict[str, str], field: str, error_id: str) -> None:
    check = check_contact_form({**GOOD, **change}, NOW - 30, NOW)
    assert check.form is None and check.spam is None
    assert [(e.field, e.error_id) for e in check.errors] == [(field, error_id)]


def test_an_old_page_is_sent_again_and_the_limits_are_inclusive() -> None:
    old = check_contact_form(GOOD, NOW - 2 * 24 * 3600, NOW)
    assert [e.error_id for e in old.errors] == ["form_expired"]
    edge = {**GOOD, "name": "x" * 100, "message": "y" * 5000, "phone": ""}
    assert check_contact_form(edge, NOW - 3, NOW).form is not None
