"""Infobip's Viber Business Messages API over aiohttp: ``POST {base}/viber/2/messages`` with
``Authorization: App <key>``, one message per request (sender, destination in international
form without "+", our own messageId, text content, a validity period, the delivery webhook),
and the delivery reports Infobip posts to that webhook (``{"results": [{"messageId",
"status": {"groupName"}, "error", "doneAt"}]}``), as Infobip's API reference gives them.

An answer 4xx (but 429) refuses the message for good (the fallback's business); 5xx, 429,
a connection that fails or an answer too slow: try again later. The pure parts
(``message_request``, ``taken``, ``parse_reports``, ``refusal``) are what the tests pin."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import aiohttp

from core.notices import NoticeState

PATH = "/viber/2/messages"
# A report's status group: the outbox's state (None: not final, such as PENDING).
GROUPS: Mapping[str, NoticeState] = {
    "DELIVERED": NoticeState.DELIVERED,
    "UNDELIVERABLE": NoticeState.FAILED,
    "REJECTED": NoticeState.FAILED,
    "EXPIRED": NoticeState.EXPIRED,
}


@dataclass(frozen=True)
class ViberAccount:
    base_url: str  # the account's own, e.g. https://xxxxx.api.infobip.com
    api_key: str
    sender: str  # the Viber business sender Infobip activated
    validity_seconds: int  # the provider drops an undelivered message after this
    notify_url: str | None  # our delivery webhook
    timeout: float = 10


class ViberNotSent(Exception):
    """The provider did not take the message: ``retry`` when it may later (down, busy), not
    when it refused the message itself."""

    def __init__(self, reason: str, *, retry: bool) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry


@dataclass(frozen=True)
class ViberReport:
    message_id: str
    state: NoticeState | None  # None: an intermediate report (PENDING), nothing to apply
    at: datetime | None  # doneAt; None: not given
    error: str | None


def provider_id(notice_id: int) -> str:
    """Our messageId for a notice: its id, marked so an SMSC's id never equals it."""
    return f"notice-{notice_id}"


def message_request(account: ViberAccount, message_id: str, to: str, text: str) -> dict[str, Any]:
    """The body of a send request for one text message. No failover is asked of the
    provider: the fallback to SMS is ours (core.notices.needs_fallback)."""
    message: dict[str, Any] = {
        "sender": account.sender,
        "destinations": [{"to": to.lstrip("+"), "messageId": message_id}],
        "content": {"type": "TEXT", "text": text},
        "options": {"validityPeriod": {"amount": account.validity_seconds, "timeUnit": "SECONDS"}},
    }
    if account.notify_url:
        message["webhooks"] = {
            "delivery": {"url": account.notify_url, "intermediateReport": False, "notify": True}
        }
    return {"messages": [message]}


def refusal(body: object) -> str:
    """What an error answer says: the API's ``description`` and ``violations``, or the older
    ``requestError.serviceException.text``."""
    if isinstance(body, dict):
        if isinstance(body.get("description"), str):
            parts = [str(body["description"])]
            for v in body.get("violations") or []:
                if isinstance(v, dict):
                    parts.append(f"{v.get('property')}: {v.get('violation')}")
            return "; ".join(parts)
        exception = (body.get("requestError") or {}).get("serviceException") or {}
        if isinstance(exception, dict) and exception.get("text"):
            return str(exception["text"])
    return "no reason given"


def _done_at(value: object) -> datetime | None:
    if not isinstance(value, str):
        return None
    for pattern in ("%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%dT%H:%M:%S%z"):
        try:
            return datetime.strptime(value, pattern)
        except ValueError:
            continue
    raise ValueError(f"doneAt is not a time: {value!r}")


def parse_reports(body: object) -> list[ViberReport]:
    """The delivery reports of a webhook's JSON body. ValueError: not that shape."""
    if not isinstance(body, dict) or not isinstance(body.get("results"), list):
        raise ValueError('expected {"results": [...]}')
    reports = []
    for i, result in enumerate(body["results"]):
        if not isinstance(result, dict) or not isinstance(result.get("messageId"), str):
            raise ValueError(f"results[{i}]: no messageId")
        status = result.get("status")
        if not isinstance(status, dict) or not isinstance(status.get("groupName"), str):
            raise ValueError(f"results[{i}]: no status.groupName")
        state = GROUPS.get(status["groupName"])
        error = result.get("error")
        said = None
        if state is not NoticeState.DELIVERED:
            described = [
                str(part)
                for part in (
                    status.get("name"),
                    error.get("name") if isinstance(error, dict) else None,
                    error.get("description") if isinstance(error, dict) else None,
                )
                if part
            ]
            said = ": ".join(described) or None
        reports.append(
            ViberReport(result["messageId"], state, _done_at(result.get("doneAt")), said)
        )
    return reports


async def send(account: ViberAccount, message_id: str, to: str, text: str) -> str:
    """Hands one message to Infobip; the messageId it took. Raises ViberNotSent."""
    url = account.base_url.rstrip("/") + PATH
    headers = {"Authorization": f"App {account.api_key}", "Accept": "application/json"}
    timeout = aiohttp.ClientTimeout(total=account.timeout)
    try:
        # A session per message: nothing to close when the sender is dropped (a command
        # that sends a few); the provider's keep-alive is not worth a lifetime to manage.
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.post(
                url, json=message_request(account, message_id, to, text), headers=headers
            ) as resp,
        ):
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = None
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise ViberNotSent(f"Infobip unreachable: {exc!r}", retry=True) from exc
    if status == 429 or status >= 500:
        raise ViberNotSent(f"Infobip answered {status}: {refusal(body)}", retry=True)
    if status >= 400:
        raise ViberNotSent(f"Infobip refused it ({status}): {refusal(body)}", retry=False)
    return taken(body)


def taken(body: object) -> str:
    """The messageId of a send's 2xx answer. Infobip may answer a destination it will not
    serve with status REJECTED there and then: refused for good. An answer with no id:
    try again (our messageId makes a repeat one message at Infobip)."""
    try:
        message = body["messages"][0]  # type: ignore[index]
        message_id = str(message["messageId"])
    except (TypeError, KeyError, IndexError) as exc:
        raise ViberNotSent(f"Infobip's answer has no messageId: {body!r:.200}", retry=True) from exc
    status = message.get("status") if isinstance(message, dict) else None
    if isinstance(status, dict) and status.get("groupName") == "REJECTED":
        said = status.get("description") or status.get("name") or "rejected"
        raise ViberNotSent(f"Infobip rejected it: {said}", retry=False)
    return message_id
