"""The procedural calls' pure rules (core.procedures): which tasks the facts call for, the
re-check at dial time, the purpose and script per kind; and the dormant segment
(core.surveys.campaign) that the sales calls use, without changing the surveys' segments."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from pydantic import ValidationError

from core.csvrows import InvalidValue
from core.procedures import (
    SCRIPTS,
    DocumentFacts,
    LoanFacts,
    PaymentFacts,
    ProcedureKind,
    ProcedureRules,
    TaskFacts,
    TaskNeed,
    document_needs,
    loan_needs,
    payment_needs,
    purpose_of,
    recheck,
    same_person,
    screenpop_purpose,
    script_for,
)
from core.surveys.campaign import ClientFacts, Segment, SegmentRules, counted_segment, segments_of
from core.surveys.contacts import parse_segment

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)
RULES = ProcedureRules()
K = ProcedureKind


def ago(days: float) -> datetime:
    return NOW - timedelta(days=days)


UNKNOWN = PaymentFacts(
    payment_id=1, external_id="P1", amount=Decimal("50.00"), paid_at=ago(3), matched=False,
    payer_name="Neko Treći", payer_number="+38761999000",
)  # fmt: skip
OWN = PaymentFacts(
    payment_id=2, external_id="P2", amount=Decimal("100.00"), paid_at=ago(3), matched=True,
    payer_name="HODZIC  Amra", loan_id=10, loan_client_id=7, loan_client_name="Amra Hodžić",
)  # fmt: skip
LOAN = LoanFacts(
    loan_id=10, external_id="L10", client_id=7, opened_at=ago(200), closed_at=None,
    amount=Decimal("1000.00"),
)  # fmt: skip


# ---- payments -------------------------------------------------------------------------------


def test_an_unmatched_payment_asks_the_payer_on_their_number() -> None:
    assert payment_needs(UNKNOWN, NOW, RULES) == [
        TaskNeed(K.UNKNOWN_PAYMENT, "payment:P1", None, "+38761999000", payment_id=1)
    ]


def test_an_unmatched_payment_from_a_known_client_without_a_number_asks_that_client() -> None:
    payment = replace(UNKNOWN, payer_number=None, payer_client_id=5)
    assert payment_needs(payment, NOW, RULES) == [
        TaskNeed(K.UNKNOWN_PAYMENT, "payment:P1", 5, None, payment_id=1)
    ]


def test_an_unmatched_payment_with_nobody_to_ask_or_too_old_calls_for_nothing() -> None:
    assert payment_needs(replace(UNKNOWN, payer_number=None), NOW, RULES) == []
    assert payment_needs(replace(UNKNOWN, paid_at=ago(61)), NOW, RULES) == []
    assert payment_needs(replace(UNKNOWN, paid_at=NOW + timedelta(hours=1)), NOW, RULES) == []
    assert payment_needs(replace(UNKNOWN, paid_at=ago(61)), NOW, RULES.model_copy(
        update={"payment_days": 90})) != []  # fmt: skip


def test_the_clients_own_payment_is_no_task_whatever_the_case_accents_and_word_order() -> None:
    assert payment_needs(OWN, NOW, RULES) == []
    assert same_person("hodžić amra", "Amra Hodzic")
    assert same_person("Đorđe Đukić", "DJUKIC dorde") is False  # Đ is D, not DJ
    assert same_person("Dorde Dukic", "Đorđe Đukić")
    assert not same_person("", "")
    assert not same_person("Amra", "Amra Hodžić")


def test_a_payment_by_someone_else_asks_the_loans_client() -> None:
    by_name = replace(OWN, payer_name="Mirza Hodžić")
    want = [TaskNeed(K.THIRD_PARTY_PAYMENT, "payment:P2", 7, None, payment_id=2, loan_id=10)]
    assert payment_needs(by_name, NOW, RULES) == want
    # The file names the payer as another client: that decides, not the name.
    assert payment_needs(replace(OWN, payer_client_id=8), NOW, RULES) == want
    assert payment_needs(replace(by_name, payer_client_id=7), NOW, RULES) == []


# ---- loans ----------------------------------------------------------------------------------


def test_payments_over_the_loans_amount_are_an_overpayment() -> None:
    over = replace(LOAN, paid=Decimal("1001.00"))
    assert [n.kind for n in loan_needs(over, NOW, RULES)] == [K.OVERPAYMENT]
    assert loan_needs(replace(LOAN, paid=Decimal("1000.99")), NOW, RULES) == []
    assert loan_needs(replace(over, amount=None), NOW, RULES) == []
    (need,) = loan_needs(over, NOW, RULES)
    assert (need.cause_key, need.client_id, need.loan_id) == ("loan:L10", 7, 10)


def test_a_loan_repaid_in_a_lump_shortly_before_closing_is_an_early_repayment() -> None:
    closed = replace(
        LOAN, closed_at=ago(5), payments=((ago(100), Decimal("100.00")), (ago(8), Decimal("600")))
    )
    assert [n.kind for n in loan_needs(closed, NOW, RULES)] == [K.EARLY_REPAYMENT]
    # Instalments only, the lump too long before closing, or closed too long ago: no.
    small = replace(closed, payments=((ago(6), Decimal("499.99")),))
    assert loan_needs(small, NOW, RULES) == []
    early = replace(closed, payments=((ago(13), Decimal("900")),))
    assert loan_needs(early, NOW, RULES) == []
    assert loan_needs(replace(closed, closed_at=ago(31)), NOW, RULES) == []


def test_an_open_loan_is_monitored_once_in_its_window_after_disbursement() -> None:
    def kinds(opened_days_ago: float) -> list[ProcedureKind]:
        return [n.kind for n in loan_needs(replace(LOAN, opened_at=ago(opened_days_ago)), NOW,
                                           RULES)]  # fmt: skip

    assert kinds(29.9) == []
    assert kinds(30) == [K.LOAN_MONITORING]
    assert kinds(43.9) == [K.LOAN_MONITORING]
    assert kinds(44) == []
    closed = replace(LOAN, opened_at=ago(35), closed_at=ago(1))
    assert loan_needs(closed, NOW, RULES) == []


# ---- documents ------------------------------------------------------------------------------


def test_a_document_expiring_within_the_days_is_a_task_keyed_by_its_date() -> None:
    doc = DocumentFacts(7, "C-7", date(2026, 12, 31))
    assert document_needs(doc, NOW, RULES) == [
        TaskNeed(K.DOCUMENT_EXPIRY, "document:C-7:2026-12-31", 7)
    ]
    assert document_needs(replace(doc, document_expiry=date(2026, 12, 1)), NOW, RULES) != []
    assert document_needs(replace(doc, document_expiry=date(2027, 1, 1)), NOW, RULES) == []
    assert document_needs(replace(doc, document_expiry=date(2026, 11, 30)), NOW, RULES) == []
    assert document_needs(replace(doc, document_expiry=None), NOW, RULES) == []


# ---- the re-check at dial time --------------------------------------------------------------


def task(kind: ProcedureKind, cause: str = "payment:P1") -> TaskFacts:
    return TaskFacts(kind, cause)


def test_an_unknown_payment_matched_since_is_not_called() -> None:
    t = task(K.UNKNOWN_PAYMENT)
    assert recheck(t, UNKNOWN, NOW) is None
    assert recheck(t, replace(UNKNOWN, matched=True, loan_id=10), NOW) == "payment_matched"
    assert recheck(t, None, NOW) == "payment_removed"


def test_a_third_party_payment_stands_until_unmatched_or_the_payer_is_the_client() -> None:
    t = task(K.THIRD_PARTY_PAYMENT, "payment:P2")
    third = replace(OWN, payer_name="Mirza Hodžić")
    assert recheck(t, third, NOW) is None
    assert recheck(t, replace(third, matched=False), NOW) == "payment_unmatched"
    assert recheck(t, replace(third, payer_client_id=7), NOW) == "payer_is_client"


def test_loan_tasks_close_on_what_made_them_go_away() -> None:
    over = replace(LOAN, paid=Decimal("1200"))
    assert recheck(task(K.OVERPAYMENT, "loan:L10"), over, NOW) is None
    assert recheck(task(K.OVERPAYMENT, "loan:L10"), LOAN, NOW) == "no_longer_overpaid"
    closed = replace(LOAN, closed_at=ago(2))
    assert recheck(task(K.EARLY_REPAYMENT, "loan:L10"), closed, NOW) is None
    assert recheck(task(K.EARLY_REPAYMENT, "loan:L10"), LOAN, NOW) == "loan_reopened"
    assert recheck(task(K.LOAN_MONITORING, "loan:L10"), LOAN, NOW) is None
    assert recheck(task(K.LOAN_MONITORING, "loan:L10"), closed, NOW) == "loan_closed"
    # Closed only after `now` (a past `now` replays a past day): still open then.
    later = replace(LOAN, closed_at=NOW + timedelta(days=1))
    assert recheck(task(K.LOAN_MONITORING, "loan:L10"), later, NOW) is None
    assert recheck(task(K.LOAN_MONITORING, "loan:L10"), None, NOW) == "loan_removed"


def test_a_renewed_document_is_not_called_about() -> None:
    t = task(K.DOCUMENT_EXPIRY, "document:C-7:2026-12-31")
    doc = DocumentFacts(7, "C-7", date(2026, 12, 31))
    assert recheck(t, doc, NOW) is None
    assert recheck(t, replace(doc, document_expiry=date(2036, 12, 31)), NOW) == "document_renewed"
    assert recheck(t, replace(doc, document_expiry=date(2026, 12, 20)), NOW) == "document_changed"
    assert recheck(t, replace(doc, document_expiry=None), NOW) == "document_changed"
    assert recheck(t, None, NOW) == "client_removed"


def test_a_closed_task_keeps_its_reason() -> None:
    closed = TaskFacts(K.UNKNOWN_PAYMENT, "payment:P1", "closed", "called")
    assert recheck(closed, UNKNOWN, NOW) == "called"


# ---- what the agent sees --------------------------------------------------------------------


def test_every_kind_has_a_purpose_and_a_script_in_english_and_bosnian() -> None:
    for kind in ProcedureKind:
        assert purpose_of(kind)
        assert set(SCRIPTS[kind]) == {"en", "bs"}
        assert all(len(text) < 300 for text in SCRIPTS[kind].values())


def test_the_script_is_in_the_clients_language_else_english() -> None:
    kind = K.DOCUMENT_EXPIRY
    assert script_for(kind, "bs") == SCRIPTS[kind]["bs"]
    assert script_for(kind, "sr-Latn") == script_for(kind, "hr") == SCRIPTS[kind]["bs"]
    assert script_for(kind, "ro") == script_for(kind, None) == SCRIPTS[kind]["en"]


def test_the_screenpop_part_of_a_contacts_purpose() -> None:
    assert screenpop_purpose("overpayment", "en") == {
        "kind": "overpayment",
        "purpose": purpose_of(K.OVERPAYMENT),
        "script": SCRIPTS[K.OVERPAYMENT]["en"],
    }
    assert screenpop_purpose(None, "en") is None
    assert screenpop_purpose("sales_call", "en") is None


def test_rules_are_strict() -> None:
    with pytest.raises(ValidationError):
        ProcedureRules.model_validate({"document_dayz": 10})
    with pytest.raises(ValidationError):
        ProcedureRules(early_repayment_share=0)


# ---- the dormant segment --------------------------------------------------------------------

DORMANT = ClientFacts(
    client_id=1, number="+38761000001", first_loan_at=ago(900), open_loans=1,
    last_loan_closed_at=ago(600), last_activity_at=ago(200),
)  # fmt: skip


def test_no_loan_activity_for_the_dormant_days_is_dormant() -> None:
    rules = SegmentRules()
    assert segments_of(DORMANT, NOW, rules) == {Segment.ACTIVE, Segment.DORMANT}
    assert Segment.DORMANT not in segments_of(
        replace(DORMANT, last_activity_at=ago(181)), NOW, rules
    )
    assert Segment.DORMANT in segments_of(
        replace(DORMANT, last_activity_at=ago(100)), NOW, SegmentRules(dormant_days=90)
    )
    # Facts without activity (a survey's, or no loans): never dormant.
    assert Segment.DORMANT not in segments_of(replace(DORMANT, last_activity_at=None), NOW, rules)


def test_a_dormant_client_is_counted_dormant_only_when_a_campaign_wants_that() -> None:
    rules = SegmentRules()
    lapsed = replace(DORMANT, open_loans=0, last_loan_closed_at=ago(100))
    assert counted_segment(lapsed, NOW, SegmentRules(dormant_days=90)) is None
    assert counted_segment(lapsed, NOW, SegmentRules(dormant_days=90), {Segment.DORMANT}) == (
        Segment.DORMANT
    )
    assert counted_segment(DORMANT, NOW, rules) is Segment.ACTIVE
    assert counted_segment(DORMANT, NOW, rules, {Segment.DORMANT}) is Segment.DORMANT


def test_a_survey_contact_list_takes_only_the_survey_segments() -> None:
    assert parse_segment("Inactive") is Segment.INACTIVE
    with pytest.raises(InvalidValue, match=r"expected one of: new, active, inactive$"):
        parse_segment("dormant")
