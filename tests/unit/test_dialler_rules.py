"""The agent dialler's pure rules (core.dialler): what an attempt's end and a disposition do
to a contact, the abandonment rate with AMD's false positives, inbound-first blending, the
2-second deadline and the settings' limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from pydantic import ValidationError

from core.dialler import (
    ABANDON_BLOCK_HOURS,
    AbandonCount,
    AgentCampaignSettings,
    AgentDisposition,
    after_dial,
    after_disposition,
    connect_deadline,
    identification_prompt,
    outbound_allowed,
)
from core.surveys.campaign import ClientFacts, Contact, ContactStatus, Outcome
from models.dialler import worst_rolling

NOW = datetime(2026, 12, 1, 10, 0, tzinfo=UTC)


def contact(**kw: object) -> Contact:
    return Contact(7, ClientFacts(client_id=3, number="+38761000111"), **kw)  # type: ignore[arg-type]


def settings(**kw: object) -> AgentCampaignSettings:
    return AgentCampaignSettings(queue="sales", **kw)  # type: ignore[arg-type]


def test_connected_is_done_and_sets_nothing_else_off() -> None:
    after, then = after_dial(contact(), 1, Outcome.CONNECTED, NOW, settings().rules, "c1")
    assert after.status is ContactStatus.DONE and after.attempts == 1
    assert after.last_outcome == "connected"
    assert then.callback_due is None and then.do_not_call_until is None


def test_abandoned_blocks_the_number_72_hours_and_leaves_a_callback_task() -> None:
    after, then = after_dial(contact(), 1, Outcome.ABANDONED, NOW, settings().rules, "c1")
    assert after.status is ContactStatus.DONE and after.last_outcome == "abandoned"
    assert then.do_not_call_until == NOW + timedelta(hours=ABANDON_BLOCK_HOURS)
    assert then.callback_due == then.do_not_call_until and then.callback_agent is None
    assert not then.do_not_call_forever


def test_an_attempt_applied_twice_changes_nothing_and_sets_nothing_off_again() -> None:
    once, _ = after_dial(contact(), 1, Outcome.ABANDONED, NOW, settings().rules, "c1")
    again, then = after_dial(once, 1, Outcome.ABANDONED, NOW, settings().rules, "c1")
    assert again is once and then.callback_due is None


def test_busy_is_retried_by_the_campaign_rules() -> None:
    after, then = after_dial(contact(), 1, Outcome.BUSY, NOW, settings().rules)
    assert after.status is ContactStatus.PENDING and after.next_attempt_at is not None
    assert after.next_attempt_at > NOW and then.callback_due is None


@pytest.mark.parametrize(
    ("disposition", "status", "forever", "agent"),
    [
        (AgentDisposition.SALE, ContactStatus.PENDING, False, None),
        (AgentDisposition.WRONG_NUMBER, ContactStatus.INVALID, False, None),
        (AgentDisposition.DO_NOT_CALL, ContactStatus.SKIPPED, True, None),
        (AgentDisposition.CALLBACK_PERSONAL, ContactStatus.PENDING, False, "ana"),
        (AgentDisposition.CALLBACK_QUEUE, ContactStatus.PENDING, False, None),
    ],
)
def test_dispositions(
    disposition: AgentDisposition, status: ContactStatus, forever: bool, agent: str | None
) -> None:
    due = NOW + timedelta(days=1)
    after, then = after_disposition(contact(), disposition, "ana", due)
    assert after.status is status and after.last_outcome == disposition.value
    assert then.do_not_call_forever is forever
    if "callback" in disposition.value:
        assert then.callback_due == due and then.callback_agent == agent
    else:
        assert then.callback_due is None


def test_a_call_back_needs_its_time() -> None:
    with pytest.raises(ValueError, match="time"):
        after_disposition(contact(), AgentDisposition.CALLBACK_QUEUE, "ana", None)


def test_abandonment_rate_counts_amd_false_positives_as_abandoned() -> None:
    assert AbandonCount().rate() is None
    assert AbandonCount(live=100, abandoned=2).rate() == 0.02
    # 50 machine verdicts, 10% of them people: 5 more live answers, all 5 abandoned.
    assert AbandonCount(live=95, abandoned=2, machines=50).rate(0.1) == pytest.approx(7 / 100)


def test_inbound_first_blending_and_the_two_second_deadline() -> None:
    s = settings(blend_waiting=1)
    assert outbound_allowed(0, s) and outbound_allowed(1, s) and not outbound_allowed(2, s)
    assert not outbound_allowed(1, settings())
    assert connect_deadline(100.0, s) == 101.8  # the message starts within the 2 s


def test_settings_hold_the_law_and_the_campaign_apart() -> None:
    with pytest.raises(ValidationError):
        settings(ring_seconds=10)  # a person needs time to reach the phone
    with pytest.raises(ValidationError):
        settings(abandon_cap_percent=12)
    with pytest.raises(ValidationError):
        settings(caller_id="anonymous")
    with pytest.raises(ValidationError):
        settings(identification={"en": "sound:x"})  # no default
    flow = {"": "sound:flow-bs", "bs": "sound:flow-bs", "en": "sound:flow-en"}
    s = settings(identification={"": "sound:id", "en": "sound:id-en"})
    assert identification_prompt(s, "en", flow) == "sound:id-en"
    assert identification_prompt(s, "de", flow) == "sound:id" == identification_prompt(s, None, {})
    assert identification_prompt(settings(), "en", flow) == "sound:flow-en"
    assert identification_prompt(settings(), "de", flow) == "sound:flow-bs"
    assert identification_prompt(settings(), "en", {}) is None
    assert settings().abandon_cap == 0.03


def test_worst_rolling_window() -> None:
    t = NOW
    answers = [
        (t, False),
        (t + timedelta(hours=1), True),
        (t + timedelta(hours=2), False),
        (t + timedelta(hours=30), False),
        (t + timedelta(hours=31), False),
    ]
    assert worst_rolling([]) is None
    assert worst_rolling(answers) == pytest.approx(1 / 2)  # the first two answers alone
    assert worst_rolling(answers, timedelta(days=2)) == pytest.approx(1 / 2)
    assert worst_rolling(answers[2:]) == 0.0
