"""Meta's Send API as meta/graph.py speaks it, without the network: the reply's body
(a standard RESPONSE message to the person's id), the credentials (the Page token and its
appsecret_proof), Meta's error answers sorted into try-again-later and refused-for-good
(the 24-hour window on Messenger and Instagram, rate limits whatever the HTTP status, a bad
token), and the settings: the webhook's pair together, routes only when configured."""

from __future__ import annotations

import hashlib
import hmac
from pathlib import Path

import pytest
from pydantic import ValidationError

from centrala.meta_inbox import meta_account, meta_routes
from centrala.settings import Settings
from meta.graph import MetaAccount, message_request, refusal


def test_the_reply_body() -> None:
    assert message_request("6054916631250711", "Poštovani,") == {
        "recipient": {"id": "6054916631250711"},
        "messaging_type": "RESPONSE",
        "message": {"text": "Poštovani,"},
    }


def test_the_url_and_the_credentials() -> None:
    account = MetaAccount(page_token="EAAG", graph_url="https://graph.facebook.com/")
    assert account.messages_url == "https://graph.facebook.com/v21.0/me/messages"
    assert account.query() == {"access_token": "EAAG"}
    proofed = MetaAccount(page_token="EAAG", app_secret="s3cret", version="v22.0", page_id="42")
    proof = hmac.new(b"s3cret", b"EAAG", hashlib.sha256).hexdigest()
    assert proofed.query() == {"access_token": "EAAG", "appsecret_proof": proof}
    assert proofed.messages_url == "https://graph.facebook.com/v22.0/42/messages"


def meta_error(code: int, subcode: int | None = None, **more: object) -> dict[str, object]:
    error: dict[str, object] = {"message": "m", "type": "OAuthException", "code": code}
    if subcode is not None:
        error["error_subcode"] = subcode
    return {"error": {**error, "fbtrace_id": "AbC", **more}}


@pytest.mark.parametrize(
    ("status", "body", "retry", "window"),
    [
        (400, meta_error(10, 2018278), False, True),  # Messenger: outside the window
        (403, meta_error(10, 2534022), False, True),  # Instagram's
        (400, meta_error(10), False, False),  # a permission refused
        (400, meta_error(551, 1545041), False, False),  # the person unavailable
        (400, meta_error(190), False, False),  # the token
        (400, meta_error(100), False, False),  # a bad parameter
        (400, meta_error(613), True, False),  # rate limits come as 400 ...
        (400, meta_error(4), True, False),
        (403, meta_error(32), True, False),
        (400, meta_error(17), True, False),
        (400, meta_error(2), True, False),  # "please retry"
        (400, meta_error(1200, is_transient=True), True, False),
        (429, meta_error(4), True, False),
        (500, meta_error(1), True, False),
        (503, None, True, False),
        (502, "<html>bad gateway</html>", True, False),
        (404, None, False, False),
    ],
)
def test_errors_sorted(status: int, body: object, retry: bool, window: bool) -> None:
    error = refusal(status, body)
    assert (error.retry, error.window_closed) == (retry, window)
    assert str(status) in error.reason


def test_a_refusal_says_what_meta_said() -> None:
    error = refusal(400, meta_error(10, 2018278))
    assert error.reason.startswith("outside the 24-hour window")
    assert "code 10/2018278" in error.reason and "fbtrace_id AbC" in error.reason
    assert (error.code, error.subcode) == (10, 2018278)
    assert "token was refused" in refusal(400, meta_error(190)).reason


def settings(tmp_path: Path, **meta: str) -> Settings:
    return Settings(data_dir=tmp_path, **meta)  # type: ignore[arg-type]


def test_the_webhook_needs_its_secret_and_token_together(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="go together"):
        settings(tmp_path, meta_app_secret="s")
    with pytest.raises(ValidationError, match="go together"):
        settings(tmp_path, meta_verify_token="t")
    with pytest.raises(ValidationError, match="CENTRALA_META_PAGE_TOKEN needs"):
        settings(tmp_path, meta_page_token="EAAG")
    with pytest.raises(ValidationError):
        settings(tmp_path, meta_app_secret="s", meta_verify_token="t", meta_graph_version="21")


def test_no_routes_and_no_account_unless_configured(tmp_path: Path) -> None:
    plain = settings(tmp_path)
    assert meta_routes(plain) == [] and meta_account(plain) is None
    inbox = settings(tmp_path, meta_app_secret="s", meta_verify_token="t")
    assert {(r.method, r.path) for r in meta_routes(inbox)} == {
        ("GET", "/webhooks/meta"),
        ("POST", "/webhooks/meta"),
    }
    assert meta_account(inbox) is None
    replying = settings(
        tmp_path,
        meta_app_secret="s",
        meta_verify_token="t",
        meta_page_token="EAAG",
        meta_graph_url="http://127.0.0.1:9",
    )
    assert meta_account(replying) == MetaAccount(
        page_token="EAAG", graph_url="http://127.0.0.1:9", version="v21.0", app_secret="s"
    )
