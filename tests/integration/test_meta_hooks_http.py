"""The Facebook / Instagram webhook over HTTP (web/meta_hooks.py, wired as `serve` wires it:
centrala.meta_inbox.meta_routes behind the app's error and body-deadline middlewares and
its body cap), on aiohttp's test server: the verification handshake answered or refused;
a notification Meta signed reaches the callback as its parsed messages (Messenger and
Instagram), one of reads alone reaches it not at all; a wrong, missing or other body's
signature is 403 and the callback is never called, even with a body that is not JSON; a
body over 1 MB is 413 (declared or chunked); malformed JSON under a good signature is 400;
a callback that fails is 500, and the redelivery then goes through."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from centrala.meta_inbox import meta_routes
from centrala.service import MAX_BODY_BYTES
from centrala.settings import Settings
from core.inquiries.meta import MetaMessage, parse_webhook, signature
from tests import meta_payloads as P
from web.errors import errors
from web.meta_hooks import MAX_BODY, PATH
from web.server import body_deadline


class Inbox:
    """The callback the inquiries' use case will be: what it was handed, and a switch to
    make it fail as a database away would."""

    def __init__(self) -> None:
        self.calls: list[list[MetaMessage]] = []
        self.failing = False

    async def __call__(self, messages: Sequence[MetaMessage]) -> None:
        if self.failing:
            raise RuntimeError("the database is away")
        self.calls.append(list(messages))


@pytest.fixture
async def hook(tmp_path: Any) -> AsyncIterator[tuple[TestClient[Any, Any], Inbox]]:
    settings = Settings(
        data_dir=tmp_path, meta_app_secret=P.APP_SECRET, meta_verify_token=P.VERIFY_TOKEN
    )
    inbox = Inbox()
    app = web.Application(middlewares=[errors, body_deadline(10)], client_max_size=MAX_BODY_BYTES)
    app.router.add_routes(meta_routes(settings, inbox))
    client: TestClient[Any, Any] = TestClient(TestServer(app))
    await client.start_server()
    try:
        yield client, inbox
    finally:
        await client.close()


HUB = {"hub.mode": "subscribe", "hub.verify_token": P.VERIFY_TOKEN, "hub.challenge": "1158201444"}


async def test_the_handshake_echoes_the_challenge(hook: tuple[TestClient[Any, Any], Inbox]) -> None:
    client, _ = hook
    resp = await client.get(PATH, params=HUB)
    assert resp.status == 200 and resp.content_type == "text/plain"
    assert await resp.text() == "1158201444"


@pytest.mark.parametrize(
    "params",
    [{**HUB, "hub.verify_token": "guess"}, {**HUB, "hub.mode": "unsubscribe"}, {}],
    ids=["wrong_token", "wrong_mode", "nothing"],
)
async def test_the_handshake_refused(
    hook: tuple[TestClient[Any, Any], Inbox], params: dict[str, str]
) -> None:
    client, _ = hook
    resp = await client.get(PATH, params=params)
    assert resp.status == 403
    assert (await resp.json())["error_id"] == "bad_verify_token"


async def test_a_signed_notification_reaches_the_callback(
    hook: tuple[TestClient[Any, Any], Inbox],
) -> None:
    client, inbox = hook
    payload = P.page(P.TEXT, P.READ, P.ATTACHMENTS, P.ECHO, P.DELIVERY)
    body, headers = P.signed(payload)
    resp = await client.post(PATH, data=body, headers=headers)
    assert resp.status == 200 and await resp.text() == "EVENT_RECEIVED"
    assert inbox.calls == [parse_webhook(payload)]
    (got,) = inbox.calls
    assert [(m.text[:9], m.is_echo, len(m.attachments)) for m in got] == [
        ("Dobar dan", False, 0),
        ("", False, 4),
        ("Poštovani", True, 0),
    ]


async def test_an_instagram_notification_too(hook: tuple[TestClient[Any, Any], Inbox]) -> None:
    client, inbox = hook
    body, headers = P.signed(P.instagram(P.IG_TEXT, P.IG_SEEN, P.IG_SHARE))
    resp = await client.post(PATH, data=body, headers=headers)
    assert resp.status == 200
    ((text, share),) = inbox.calls
    assert (text.platform, text.sender_id, text.text) == (
        "instagram",
        P.IGSID,
        "Radno vrijeme subotom?",
    )
    assert [a.type for a in share.attachments] == ["ig_post", "story_mention"]


async def test_nothing_to_hand_on_calls_nothing(hook: tuple[TestClient[Any, Any], Inbox]) -> None:
    client, inbox = hook
    for payload in (P.page(P.READ, P.DELIVERY), P.IG_COMMENT):
        body, headers = P.signed(payload)
        resp = await client.post(PATH, data=body, headers=headers)
        assert resp.status == 200 and await resp.text() == "EVENT_RECEIVED"
    assert inbox.calls == []


def wrong_signatures() -> list[tuple[bytes, dict[str, str]]]:
    body, headers = P.signed(P.page(P.TEXT))
    other_secret = P.signed(P.page(P.TEXT), secret="not-our-secret")
    other_body = P.raw(P.page(P.REPLY_TO))
    plain = {"Content-Type": "application/json"}
    return [
        other_secret,
        (body, plain),  # none at all
        (other_body, headers),  # a signature of another body
        (body, {**plain, "X-Hub-Signature-256": "sha256=00"}),
        (body, {**plain, "X-Hub-Signature": "sha1=" + "0" * 40}),  # the old header only
        (b"{not json", {**plain, "X-Hub-Signature-256": signature(b"guess", b"{not json")}),
    ]


@pytest.mark.parametrize(
    ("body", "headers"),
    wrong_signatures(),
    ids=["other_secret", "missing", "other_body", "malformed", "sha1_only", "not_json"],
)
async def test_a_wrong_signature_is_refused_and_nothing_is_handed_on(
    hook: tuple[TestClient[Any, Any], Inbox], body: bytes, headers: dict[str, str]
) -> None:
    client, inbox = hook
    resp = await client.post(PATH, data=body, headers=headers)
    assert resp.status == 403
    assert (await resp.json())["error_id"] == "bad_signature"
    assert inbox.calls == []


async def test_a_body_over_the_cap_is_refused(hook: tuple[TestClient[Any, Any], Inbox]) -> None:
    client, inbox = hook
    event = {**P.TEXT, "message": {"mid": "m_big", "text": "x" * (MAX_BODY + 10)}}
    body, headers = P.signed(P.page(event))
    resp = await client.post(PATH, data=body, headers=headers)
    assert resp.status == 413
    assert (await resp.json())["error_id"] == "payload_too_large"

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
        for i in range(0, len(body), 65536):
            yield body[i : i + 65536]

    resp = await client.post(PATH, data=chunks(), headers=headers)
    assert resp.status == 413
    assert inbox.calls == []


@pytest.mark.parametrize(
    ("body", "at"),
    [
        (b'{"object": "page", "entry": [', None),
        (b"\xff\xfe not utf-8", None),
        (b'{"object": "page", "entry": {}}', "entry"),
        (
            P.raw(P.page({**P.TEXT, "message": {"text": "no mid"}})),
            "entry[0].messaging[0].message.mid",
        ),
    ],
    ids=["truncated", "not_utf8", "entry_not_a_list", "no_mid"],
)
async def test_malformed_json_under_a_good_signature_is_400(
    hook: tuple[TestClient[Any, Any], Inbox], body: bytes, at: str | None
) -> None:
    client, inbox = hook
    headers = {"X-Hub-Signature-256": signature(P.APP_SECRET.encode(), body)}
    resp = await client.post(PATH, data=body, headers=headers)
    assert resp.status == 400
    answer = await resp.json()
    assert answer["error_id"] == "bad_payload"
    assert answer["details"].get("at") == at
    assert inbox.calls == []


async def test_a_failing_callback_is_500_and_the_redelivery_goes_through(
    hook: tuple[TestClient[Any, Any], Inbox],
) -> None:
    client, inbox = hook
    body, headers = P.signed(P.page(P.TEXT))
    inbox.failing = True
    resp = await client.post(PATH, data=body, headers=headers)
    assert resp.status == 500
    assert (await resp.json())["error_id"] == "not_stored"
    inbox.failing = False
    resp = await client.post(PATH, data=body, headers=headers)
    assert resp.status == 200
    assert [m.mid for m in inbox.calls[0]] == ["mid.1457764197618:41d102a3e1ae206a38"]
