"""Working callback tasks, the pure rules (core.callbacks): what goes into a queue's campaign
and to whom, what each attempt's end and each disposition does to the task, and callbacks
coming before other outbound work."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from core.callbacks import (
    FEED_AHEAD,
    TaskStatus,
    callback_purpose,
    callback_screenpop,
    callback_settings,
    callbacks_first,
    campaign_name,
    offered_to,
    task_after,
    to_feed,
)
from core.dialler import AgentDisposition, CampaignKind, DiallerMode
from core.surveys.campaign import Contact, ContactStatus, Outcome, after_attempt

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def test_one_standing_progressive_campaign_per_queue() -> None:
    assert campaign_name("sales") == "callbacks-sales"
    s = callback_settings("sales")
    assert s.queue == "sales" and s.mode is DiallerMode.PROGRESSIVE
    # A callback is no survey: no frequency cap; retried sooner than a sales call.
    assert s.rules.survey_cap_days == 0
    assert s.rules.retries["no_answer"].delay_minutes == 30


def test_tasks_go_in_shortly_before_they_are_due() -> None:
    assert to_feed(NOW - timedelta(days=2), NOW)  # overdue: at once
    assert to_feed(NOW + FEED_AHEAD, NOW)
    assert not to_feed(NOW + FEED_AHEAD + timedelta(seconds=1), NOW)


def test_assigned_agent_else_the_clients_manager_in_the_queue_else_the_queue() -> None:
    members = {"amra", "bakir"}
    assert offered_to("zlata", "amra", members) == "zlata"  # assigned, whatever their queues
    assert offered_to(None, "amra", members) == "amra"
    assert offered_to(None, "dino", members) is None  # a manager of another queue: the queue's
    assert offered_to(None, None, members) is None
    assert offered_to("", None, members) is None


@dataclass(frozen=True)
class _C:
    name: str
    kind: CampaignKind


def test_callbacks_come_before_other_campaigns_keeping_their_order() -> None:
    campaigns = [
        _C("winback", CampaignKind.SALES),
        _C("callbacks-sales", CampaignKind.CALLBACKS),
        _C("leads", CampaignKind.LEADS),
        _C("callbacks-info", CampaignKind.CALLBACKS),
    ]
    assert [c.name for c in callbacks_first(campaigns)] == [
        "callbacks-sales",
        "callbacks-info",
        "winback",
        "leads",
    ]


def test_a_retry_keeps_the_task_open_with_its_next_time() -> None:
    later = NOW + timedelta(minutes=30)
    u = task_after(ContactStatus.PENDING, 1, "no_answer", later)
    assert u is not None and (u.status, u.attempts, u.last_outcome) == (
        TaskStatus.OPEN,
        1,
        "no_answer",
    )
    assert u.next_attempt_at == later and u.closed_reason is None


def test_an_attempt_under_way_changes_nothing() -> None:
    assert task_after(ContactStatus.DIALLING, 0, None, None) is None


def test_connected_waits_for_the_disposition_which_closes_it() -> None:
    u = task_after(ContactStatus.DONE, 1, "connected", None)
    assert u is not None and u.status is TaskStatus.OPEN and u.next_attempt_at is None
    done = task_after(ContactStatus.DONE, 1, "connected", None, AgentDisposition.INTERESTED)
    assert done is not None and done.status is TaskStatus.DONE
    assert done.closed_reason == done.last_outcome == "interested"
    # A new call-back time is a new task (made by the disposition): this one is done.
    again = task_after(ContactStatus.DONE, 1, "connected", None, AgentDisposition.CALLBACK_QUEUE)
    assert again is not None and again.status is TaskStatus.DONE


def test_wrong_number_and_do_not_call_cancel_it() -> None:
    for disposition, reason in (
        (AgentDisposition.WRONG_NUMBER, "wrong_number"),
        (AgentDisposition.DO_NOT_CALL, "do_not_call"),
    ):
        u = task_after(ContactStatus.INVALID, 1, "connected", None, disposition)
        assert u is not None and (u.status, u.closed_reason) == (TaskStatus.CANCELLED, reason)


def test_out_of_attempts_or_not_to_be_called_cancels_with_the_reason() -> None:
    u = task_after(ContactStatus.EXHAUSTED, 4, "no_answer", None)
    assert u is not None and (u.status, u.closed_reason) == (TaskStatus.CANCELLED, "max_attempts")
    u = task_after(ContactStatus.SKIPPED, 0, "do_not_call", None)
    assert u is not None and (u.status, u.closed_reason, u.attempts) == (
        TaskStatus.CANCELLED,
        "do_not_call",
        0,
    )
    u = task_after(ContactStatus.DONE, 1, "abandoned", None)
    assert u is not None and (u.status, u.closed_reason) == (TaskStatus.CANCELLED, "abandoned")


OUTCOMES = st.sampled_from(
    [Outcome.NO_ANSWER, Outcome.BUSY, Outcome.FAILED, Outcome.MACHINE, Outcome.CONNECTED]
)


@given(st.lists(OUTCOMES, min_size=1, max_size=12))
def test_the_task_follows_its_contact_through_any_run_of_attempts(
    outcomes: list[Outcome],
) -> None:
    """Whatever the attempts come to, the task counts them as the contact does, stays open
    exactly while the contact may still be dialled or awaits its disposition, and is never
    closed without a reason."""
    rules = callback_settings("sales").rules
    contact = Contact(1, "+38761000001")
    at = NOW
    for outcome in outcomes:
        if contact.status is not ContactStatus.PENDING:
            break
        attempt = contact.attempts + 1
        contact = after_attempt(contact, attempt, outcome, at, rules, f"call-{attempt}")
        u = task_after(
            contact.status, contact.attempts, contact.last_outcome, contact.next_attempt_at
        )
        assert u is not None and u.attempts == contact.attempts
        if u.status is TaskStatus.OPEN:
            assert contact.status is ContactStatus.PENDING or outcome is Outcome.CONNECTED
        else:
            assert u.closed_reason
        at = contact.next_attempt_at or at
    assert contact.attempts <= rules.max_attempts


def test_the_screen_pop_says_it_is_a_callback_and_why() -> None:
    purpose = callback_purpose("after_hours")
    shown = callback_screenpop(purpose, "bs")
    assert shown is not None and shown["kind"] == "callback"
    assert shown["purpose"] == "Povratni poziv: zvao/la van radnog vremena"
    shown = callback_screenpop(callback_purpose("agent scheduled"), None)
    assert shown is not None and shown["purpose"] == "Callback: agent scheduled"
    assert callback_screenpop("document_expiry", "en") is None
    assert callback_screenpop(None, "en") is None
    assert len(callback_purpose("x" * 100)) == 40
