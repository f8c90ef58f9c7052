"""Infobip's Viber API as viber/infobip.py speaks it: the send request's shape (sender,
destination without "+", our messageId, TEXT content, the validity period in seconds, the
delivery webhook, no failover asked of the provider), the delivery reports' JSON to the
outbox's states (DELIVERED, UNDELIVERABLE and REJECTED failed, EXPIRED, PENDING nothing),
their times with Infobip's offsets, malformed reports refused, the error answers' reasons,
and the account from the settings."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from centrala.noticing import notice_setup, viber_account
from centrala.settings import Settings
from core.notices import Channel, NoticeState
from viber.infobip import (
    ViberAccount,
    ViberNotSent,
    message_request,
    parse_reports,
    provider_id,
    refusal,
    taken,
)

ACCOUNT = ViberAccount(
    base_url="https://xyz.api.infobip.com",
    api_key="k",
    sender="Fondacija",
    validity_seconds=600,
    notify_url="https://cc.example.org/hooks/viber/t0k3n",
)


def test_the_send_request() -> None:
    body = message_request(ACCOUNT, provider_id(17), "+387660770011", "Sretan rođendan!")
    assert body == {
        "messages": [
            {
                "sender": "Fondacija",
                "destinations": [{"to": "387660770011", "messageId": "notice-17"}],
                "content": {"type": "TEXT", "text": "Sretan rođendan!"},
                "options": {"validityPeriod": {"amount": 600, "timeUnit": "SECONDS"}},
                "webhooks": {
                    "delivery": {
                        "url": "https://cc.example.org/hooks/viber/t0k3n",
                        "intermediateReport": False,
                        "notify": True,
                    }
                },
            }
        ]
    }
    assert "failover" not in str(body).lower()


def test_no_webhook_without_a_notify_url() -> None:
    account = ViberAccount("https://x", "k", "S", 60, None)
    (message,) = message_request(account, "notice-1", "387660770011", "t")["messages"]
    assert "webhooks" not in message


def result(group: str, **kw: object) -> dict[str, object]:
    return {
        "bulkId": "b",
        "messageId": "notice-5",
        "to": "387660770013",
        "doneAt": "2019-04-09T16:01:56.494-0300",
        "status": {"groupId": 3, "groupName": group, "id": 5, "name": f"{group}_X"},
        "error": {"id": 27, "name": "EC_ABSENT_SUBSCRIBER", "description": "Not a Viber user"},
        **kw,
    }


@pytest.mark.parametrize(
    ("group", "state"),
    [
        ("DELIVERED", NoticeState.DELIVERED),
        ("UNDELIVERABLE", NoticeState.FAILED),
        ("REJECTED", NoticeState.FAILED),
        ("EXPIRED", NoticeState.EXPIRED),
        ("PENDING", None),
    ],
)
def test_reports_to_states(group: str, state: NoticeState | None) -> None:
    (report,) = parse_reports({"results": [result(group)]})
    assert (report.message_id, report.state) == ("notice-5", state)
    assert report.at == datetime(2019, 4, 9, 19, 1, 56, 494000, tzinfo=UTC)
    assert report.at.utcoffset() == timedelta(hours=-3)
    if state is NoticeState.DELIVERED:
        assert report.error is None
    else:
        assert report.error == f"{group}_X: EC_ABSENT_SUBSCRIBER: Not a Viber user"


def test_report_times_in_their_forms() -> None:
    whole = result("DELIVERED", doneAt="2026-12-02T09:00:00+0100")
    untimed = result("DELIVERED", doneAt=None)
    first, second = parse_reports({"results": [whole, untimed]})
    assert first.at == datetime(2026, 12, 2, 9, 0, tzinfo=timezone(timedelta(hours=1)))
    assert second.at is None


@pytest.mark.parametrize(
    ("body", "says"),
    [
        ([], "results"),
        ({"results": {}}, "results"),
        ({"results": [{"status": {"groupName": "DELIVERED"}}]}, "results[0]: no messageId"),
        ({"results": [{"messageId": "m"}]}, "results[0]: no status.groupName"),
        ({"results": [result("DELIVERED", doneAt="yesterday")]}, "doneAt"),
    ],
)
def test_malformed_reports_are_refused(body: object, says: str) -> None:
    with pytest.raises(ValueError, match=says.replace("[", r"\[").replace("]", r"\]")):
        parse_reports(body)


def test_refusals_say_why() -> None:
    new = {
        "errorCode": "E400",
        "description": "Request cannot be processed.",
        "violations": [{"property": "messages[0].sender", "violation": "must not be blank"}],
    }
    assert refusal(new) == "Request cannot be processed.; messages[0].sender: must not be blank"
    old = {"requestError": {"serviceException": {"messageId": "UNAUTHORIZED", "text": "Bad key"}}}
    assert refusal(old) == "Bad key"
    assert refusal(None) == "no reason given"


def test_the_account_from_the_settings(tmp_path: Path) -> None:
    """Base URL and key together or not at all; the webhook is the public URL and the hook's
    path with the token; no token, no webhook; our wait is the validity and the grace."""
    common: dict[str, Any] = {"data_dir": tmp_path, "public_url": "https://cc.example.org/"}
    assert viber_account(Settings(**common)) is None
    with pytest.raises(ValidationError, match="go together"):
        Settings(**common, viber_base_url="https://xyz.api.infobip.com")
    with pytest.raises(ValidationError):
        Settings(**common, viber_validity_seconds=10)  # Viber's least is 30 s
    viber = {"viber_base_url": "https://xyz.api.infobip.com", "viber_api_key": "k"}
    s = Settings(**common, **viber, viber_callback_token="t0k3n-0123456789abcdef")
    account = viber_account(s)
    assert account is not None
    assert account.notify_url == "https://cc.example.org/hooks/viber/t0k3n-0123456789abcdef"
    assert (account.validity_seconds, account.sender) == (600, "Centrala")
    assert Channel.VIBER in notice_setup(s).senders
    assert notice_setup(s).fallback_after == timedelta(seconds=660)
    assert viber_account(Settings(**common, **viber)).notify_url is None  # type: ignore[union-attr]


def test_a_send_answer_taken_or_rejected_there_and_then() -> None:
    pending = {"groupId": 1, "groupName": "PENDING", "id": 26, "name": "PENDING_ACCEPTED"}
    answer = {"bulkId": "b", "messages": [{"messageId": "notice-3", "status": pending}]}
    assert taken(answer) == "notice-3"
    rejected = {"groupName": "REJECTED", "name": "REJECTED_DESTINATION_NOT_REGISTERED"}
    with pytest.raises(ViberNotSent) as refused:
        taken({"messages": [{"messageId": "notice-3", "status": rejected}]})
    assert not refused.value.retry and "NOT_REGISTERED" in refused.value.reason
    with pytest.raises(ViberNotSent) as odd:
        taken({"bulkId": "b"})
    assert odd.value.retry
