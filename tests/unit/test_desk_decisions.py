"""The agent desktop's pure decisions: who may do what, the session cookie, the screen-pop's
content from database rows, the forms, the audit diff and the wallboard's figures."""

from __future__ import annotations

import contextlib
import time
from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from core.desk.forms import (
    CallFigure,
    FormError,
    changes,
    check_client,
    check_disposition,
    day_figures,
    may_become_available,
    wallboard,
)
from core.desk.screenpop import PopRows, address_as, build_screenpop, document_state
from core.enums import ClientType
from models.tables import Agent, Call, Callback, Client, Interaction, SurveyAnswer
from web.auth import (
    Action,
    Sessions,
    User,
    check_new_password,
    hash_password,
    may,
    may_control_call,
    verify_password,
)

NOW = datetime(2026, 11, 23, 12, 0, tzinfo=UTC)
TODAY = NOW.date()


def test_agents_use_the_desk_but_only_supervisors_and_admins_see_the_wallboard() -> None:
    assert may("agent", Action.USE_DESK) and not may("agent", Action.VIEW_WALLBOARD)
    assert may("supervisor", Action.VIEW_WALLBOARD) and may("admin", Action.VIEW_WALLBOARD)
    assert not may("nobody", Action.USE_DESK)


def test_an_agent_controls_only_their_own_call_a_supervisor_any() -> None:
    anna, sup = User("anna", "agent", "n1"), User("sam", "supervisor", "n2")
    assert may_control_call(anna, "anna")
    assert not may_control_call(anna, "bob")
    assert not may_control_call(anna, None)
    assert may_control_call(sup, "bob")


def test_passwords_are_argon2_hashes_and_verify() -> None:
    h = hash_password("correct horse")
    assert h.startswith("$argon2id$")
    assert verify_password(h, "correct horse")
    assert not verify_password(h, "wrong horse")
    assert not verify_password(None, "anything")  # imported agents have no password
    assert not verify_password("not-a-hash", "x")
    assert check_new_password("short") is not None
    assert check_new_password("long enough") is None
    assert check_new_password("line\nbreak!") is not None


def test_session_cookie_carries_only_a_signed_session_id() -> None:
    sessions = Sessions("secret", 3600)
    cookie = sessions.cookie("sid-1")
    assert sessions.session_id(cookie) == "sid-1"
    assert sessions.session_id(cookie[:-2] + "xx") is None
    assert Sessions("other-secret", 3600).session_id(cookie) is None
    assert sessions.session_id(None) is None
    assert sessions.session_id("x" * 10_000) is None


def test_an_expired_session_cookie_reads_as_nobody(monkeypatch: pytest.MonkeyPatch) -> None:
    sessions = Sessions("secret", 60)
    cookie = sessions.cookie("sid-1")
    later = time.time() + 120
    monkeypatch.setattr(time, "time", lambda: later)
    assert sessions.session_id(cookie) is None


def test_csrf_token_is_bound_to_the_session() -> None:
    sessions = Sessions("secret", 3600)
    assert sessions.csrf_ok("n1", sessions.csrf_token("n1"))
    assert not sessions.csrf_ok("n2", sessions.csrf_token("n1"))
    assert not sessions.csrf_ok("n1", None)


def _call(**kw: object) -> Call:
    base: dict[str, object] = {
        "id": "c1",
        "caller_number": "+38761000201",
        "caller_name": "Amra",
        "queue": "finance",
        "ivr_path": ["notice", "main_menu:2", "my_loan"],
    }
    return Call(**{**base, **kw})


def test_known_caller_pop_has_greeting_manager_alerts_history_and_placeholders() -> None:
    client = Client(
        id=7,
        external_id="x7",
        name="Amra Hodžić",
        language="bs",
        client_type=ClientType.KEY,
        overdue_debt=True,
        document_expiry=TODAY + timedelta(days=5),
        birthday=date(1980, TODAY.month, TODAY.day),
    )
    rows = PopRows(
        call=_call(),
        client=client,
        phones=["+38761000201"],
        manager=Agent(id="m1", name="Mirza"),
        callbacks=[Callback(id=3, due_at=NOW, reason="contract", number="+38761000201")],
        interactions=[Interaction(created_at=NOW, category="sales", note="asked", agent_id="a")],
        calls=[Call(id="c0", started_at=NOW, outcome="answered", disposition="sales/resolved")],
        survey_answers=[
            SurveyAnswer(answered_at=NOW, question_key="nps", value_int=9),
            SurveyAnswer(answered_at=NOW, question_key="comment", value_int=None),
        ],
        intent="my_loan",
    )
    pop = build_screenpop(rows, "offered", TODAY)
    assert pop["known"] and pop["stage"] == "offered" and pop["intent"] == "my_loan"
    c = pop["client"]
    assert c["address_as"] == "Dobar dan, Amra Hodžić"
    assert c["manager"] == {"id": "m1", "name": "Mirza"}
    assert set(c["alerts"]) == {"overdue_debt", "document_expiring", "key_client", "birthday_today"}
    assert pop["callbacks"][0]["reason"] == "contract"
    assert pop["history"][0]["disposition"] == "sales/resolved"
    assert pop["nps"] == [{"at": NOW.isoformat(), "question": "nps", "score": 9}]
    assert pop["placeholders"]["loans_and_balances"] == "not_in_schema"
    assert pop["ivr_path"][-1] == "my_loan"


def test_unknown_caller_pop_offers_a_new_client_form_with_the_number() -> None:
    pop = build_screenpop(PopRows(call=_call()), "connected", TODAY)
    assert not pop["known"] and "client" not in pop
    assert pop["new_client"] == {"phone": "+38761000201", "name": "Amra"}


def test_greeting_falls_back_to_english_and_documents_are_classified() -> None:
    assert address_as(" Ann Lee ", "en") == "Good day, Ann Lee"
    assert address_as("Ann", None) == "Good day, Ann"
    assert document_state(None, TODAY) == "unknown"
    assert document_state(TODAY - timedelta(days=1), TODAY) == "expired"
    assert document_state(TODAY + timedelta(days=30), TODAY) == "expiring"
    assert document_state(TODAY + timedelta(days=31), TODAY) == "valid"


def test_disposition_needs_category_and_outcome_and_a_follow_up_gets_a_due_date() -> None:
    d = check_disposition({"category": "sales", "outcome": "resolved", "note": " ok "}, NOW)
    assert (d.code, d.note, d.follow_up) == ("sales/resolved", "ok", None)
    d = check_disposition(
        {"category": "complaint", "outcome": "follow_up", "follow_up": "review"}, NOW
    )
    assert d.follow_up_due == NOW + timedelta(days=1)
    with pytest.raises(FormError) as err:
        check_disposition({"category": "gossip", "outcome": "resolved"}, NOW)
    assert err.value.field == "category"
    with pytest.raises(FormError):
        check_disposition({"category": "sales", "outcome": "follow_up"}, NOW)
    with pytest.raises(FormError):
        check_disposition({"category": "sales", "outcome": "resolved", "note": "x" * 2001}, NOW)
    with pytest.raises(FormError):
        check_disposition(
            {
                "category": "sales",
                "outcome": "resolved",
                "follow_up": "x",
                "follow_up_due": (NOW - timedelta(days=1)).isoformat(),
            },
            NOW,
        )


@given(st.dictionaries(st.text(max_size=12), st.one_of(st.none(), st.text(), st.integers())))
def test_disposition_check_never_crashes_on_any_input(data: dict[str, object]) -> None:
    with contextlib.suppress(FormError):
        check_disposition(data, NOW)


def test_client_form_normalises_phones_and_the_audit_lists_only_real_changes() -> None:
    fields = check_client(
        {"name": "Ann", "phones": "061 000 201; +38761000201"}, "BA", partial=False
    )
    assert fields == {"name": "Ann", "client_type": "new", "phones": ["+38761000201"]}
    with pytest.raises(FormError):
        check_client({"name": "Ann", "phones": "not a phone"}, "BA", partial=False)
    edit = check_client(
        {"name": "Ann", "language": "en", "document_expiry": "2027-01-31"}, "BA", partial=True
    )
    before = {"name": "Ann", "language": "bs", "document_expiry": None, "phones": ["+1"]}
    assert changes(before, edit) == [
        ("language", "bs", "en"),
        ("document_expiry", None, "2027-01-31"),
    ]


def test_a_pending_disposition_blocks_availability_only_when_required() -> None:
    assert not may_become_available("call-1", required=True)
    assert may_become_available("call-1", required=False)
    assert may_become_available(None, required=True)


def test_wallboard_counts_waiting_escalations_and_service_level() -> None:
    figures = day_figures(
        [
            CallFigure(True, 5.0, "answered", "general"),
            CallFigure(True, 40.0, "answered", "general"),
            CallFigure(False, None, "abandoned_in_queue", "general"),
            CallFigure(False, None, "abandoned_in_ivr", None),
        ]
    )
    assert figures["answered"] == 2 and figures["abandoned"] == 1
    assert figures["service_level"] == pytest.approx(33.3)
    assert day_figures([])["service_level"] is None
    board = wallboard(
        {
            "queues": {
                "general": {"waiting": 2, "longest_wait": 12.34, "available": 0},
                "supervisor": {"waiting": 1, "longest_wait": 3.0, "available": 1},
            },
            "agents": {
                "a": {
                    "name": "A",
                    "status": "paused",
                    "seconds_in_status": 61.2,
                    "pause_reason": "lunch",
                    "current_call": None,
                },
                "b": {
                    "name": "B",
                    "status": "logged_out",
                    "seconds_in_status": 1.0,
                    "pause_reason": None,
                    "current_call": None,
                },
            },
        },
        figures,
    )
    assert board["waiting"] == 3 and board["escalations_waiting"] == 1
    assert board["queues"][0]["longest_wait"] == 12.3
    assert board["agents"] == [
        {"id": "a", "name": "A", "status": "paused", "seconds": 61, "reason": "lunch"}
    ]
