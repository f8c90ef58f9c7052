"""Meta's Send API over aiohttp: ``POST {graph}/{version}/{page}/messages`` (``me``: the
Page the token is for) with the Page access token (and ``appsecret_proof``, the token's
HMAC-SHA256 under the app secret, which an app set to "Require App Secret" needs), a JSON
body ``{"recipient": {"id": PSID}, "messaging_type": "RESPONSE", "message": {"text"}}``,
answered ``{"recipient_id", "message_id"}``. The same Page token answers Instagram
messages of the Instagram account linked to the Page (the recipient an IGSID).

Errors come as ``{"error": {"message", "type", "code", "error_subcode", "is_transient",
"fbtrace_id"}}``, mostly with HTTP 400 whatever they mean, so the code decides: the
rate limits (4, 17, 32, 613, 341: application, user, Page, hourly calls), Meta's own
trouble (1, 2, ``is_transient``), 5xx, 429, a connection refused or an answer too slow are
tried again later (``retry``); the standard window closed (code 10, subcode 2018278 on
Messenger, 2534022 on Instagram: ``window_closed``), the person unavailable (551), a token
refused (190) and any other refusal are not. The pure parts (``message_request``,
``refusal``) are what the tests pin."""

from __future__ import annotations

import hashlib
import hmac
from dataclasses import dataclass
from typing import Any

import aiohttp

from core.inquiries.meta import text_parts
from core.inquiries.model import InquiryChannel

RETRY_CODES = frozenset({1, 2, 4, 17, 32, 341, 613})
WINDOW_CODE = 10
WINDOW_SUBCODES = frozenset({2018278, 2534022})  # Messenger's, Instagram's
TOKEN_CODE = 190


@dataclass(frozen=True)
class MetaAccount:
    page_token: str  # the Page access token (pages_messaging; instagram_manage_messages)
    graph_url: str = "https://graph.facebook.com"
    version: str = "v21.0"
    app_secret: str | None = None  # sends appsecret_proof when set
    page_id: str = "me"
    timeout: float = 10

    @property
    def messages_url(self) -> str:
        return f"{self.graph_url.rstrip('/')}/{self.version}/{self.page_id}/messages"

    def query(self) -> dict[str, str]:
        """The credentials, as Meta's examples pass them. They never go into a reason or a
        log line (an aiohttp error's text names the host, not the query)."""
        params = {"access_token": self.page_token}
        if self.app_secret:
            params["appsecret_proof"] = hmac.new(
                self.app_secret.encode(), self.page_token.encode(), hashlib.sha256
            ).hexdigest()
        return params


class MetaSendError(Exception):
    """Meta did not take a message: ``retry`` when it may later (down, busy, rate-limited),
    not when it refused the message itself (the window closed, the person unavailable, a
    bad token). A reply cut into parts that fails after some were taken lists their ids in
    ``sent``: ``send_text(..., skip=len(sent))`` sends the rest."""

    def __init__(
        self,
        reason: str,
        *,
        retry: bool,
        code: int | None = None,
        subcode: int | None = None,
        sent: tuple[str, ...] = (),
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.retry = retry
        self.code = code
        self.subcode = subcode
        self.sent = sent

    @property
    def window_closed(self) -> bool:
        """The person last wrote more than 24 hours ago: only they can reopen it."""
        return self.code == WINDOW_CODE and self.subcode in WINDOW_SUBCODES


def message_request(recipient_id: str, text: str) -> dict[str, Any]:
    """The body of one text reply (a standard message, within the window)."""
    return {
        "recipient": {"id": recipient_id},
        "messaging_type": "RESPONSE",
        "message": {"text": text},
    }


def refusal(status: int, body: object) -> MetaSendError:
    """What an answer that is not a success means."""
    error = body.get("error") if isinstance(body, dict) else None
    if not isinstance(error, dict):
        said = f"Meta answered {status} without an error object"
        return MetaSendError(said, retry=status == 429 or status >= 500)
    code = error.get("code") if isinstance(error.get("code"), int) else None
    subcode = error.get("error_subcode")
    subcode = subcode if isinstance(subcode, int) else None
    text = str(error.get("message") or "no message")[:200]
    said = f"Meta refused it ({status}, code {code}"
    said += f"/{subcode}" if subcode is not None else ""
    said += f"): {text}"
    if isinstance(error.get("fbtrace_id"), str):
        said += f" [fbtrace_id {error['fbtrace_id']}]"
    if code == WINDOW_CODE and subcode in WINDOW_SUBCODES:
        said = "outside the 24-hour window: the person must write again. " + said
    elif code == TOKEN_CODE:
        said = "the Page access token was refused. " + said
    retry = (
        status == 429
        or status >= 500
        or code in RETRY_CODES
        or (error.get("is_transient") is True and code != WINDOW_CODE)
    )
    return MetaSendError(said, retry=retry, code=code, subcode=subcode)


async def send_text(
    account: MetaAccount,
    recipient_id: str,
    text: str,
    *,
    platform: InquiryChannel = InquiryChannel.FACEBOOK,
    skip: int = 0,
) -> str:
    """Sends ``text`` to ``recipient_id`` (a PSID, or an IGSID on Instagram), in as many
    messages as the platform's limit needs (``core.inquiries.meta.text_parts``), in order,
    leaving out the first ``skip`` (taken by an earlier try); the first message's id.
    Raises MetaSendError."""
    parts = text_parts(text, platform)[skip:]
    if not parts:
        raise ValueError(f"nothing left to send after skipping {skip} parts")
    sent: list[str] = []
    timeout = aiohttp.ClientTimeout(total=account.timeout)
    # A session per reply: nothing to close when the sender is dropped; Meta's keep-alive
    # is not worth a lifetime to manage for a call centre's pace of replies.
    async with aiohttp.ClientSession(timeout=timeout) as http:
        for part in parts:
            try:
                sent.append(await _send_one(http, account, recipient_id, part))
            except MetaSendError as exc:
                exc.sent = tuple(sent)
                raise
    return sent[0]


async def _send_one(
    http: aiohttp.ClientSession, account: MetaAccount, recipient_id: str, text: str
) -> str:
    try:
        async with http.post(
            account.messages_url,
            params=account.query(),
            json=message_request(recipient_id, text),
        ) as resp:
            try:
                body = await resp.json(content_type=None)
            except ValueError:
                body = None
            status = resp.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        # Only a failed connection's text is kept (it names the host and port): others'
        # may quote the URL, whose query holds the token.
        said = type(exc).__name__
        if isinstance(exc, aiohttp.ClientConnectorError):
            said += f": {exc}"
        raise MetaSendError(f"Meta unreachable: {said}", retry=True) from exc
    if status >= 300:
        raise refusal(status, body)
    message_id = body.get("message_id") if isinstance(body, dict) else None
    if not isinstance(message_id, str) or not message_id:
        # Taken or not, nobody can tell: trying again may send it twice, not at all loses it.
        raise MetaSendError(f"Meta's answer has no message_id: {body!r:.200}", retry=True)
    return message_id
