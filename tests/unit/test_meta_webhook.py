"""The Facebook / Instagram inbox's pure facts (core.inquiries.meta): the webhook's
signature on the raw body (hypothesis: any body signed verifies, any change or other
secret does not), the verification handshake, Meta's documented notifications read as
messages (Messenger and Instagram: text, attachments, echoes flagged, postbacks; reads,
deliveries, reactions, edits, handovers, standby, comments and unsent messages left out),
malformed ones refused with where (and no other exception for any JSON at all), the
24-hour window, and a long reply cut for Messenger and Instagram."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
from hypothesis import assume, example, given
from hypothesis import strategies as st

from core.errors import DomainError
from core.inquiries.meta import (
    HUMAN_AGENT_WINDOW,
    INSTAGRAM_TEXT_LIMIT,
    MESSENGER_TEXT_LIMIT,
    STANDARD_WINDOW,
    Attachment,
    MetaMessage,
    MetaPayloadError,
    handshake,
    may_reply,
    parse_webhook,
    reply_deadline,
    signature,
    text_parts,
    verify_signature,
)
from core.inquiries.model import InquiryChannel
from tests import meta_payloads as P

FB, IG = InquiryChannel.FACEBOOK, InquiryChannel.INSTAGRAM
SECRET = P.APP_SECRET.encode()


# ---- signature --------------------------------------------------------------------------


def test_metas_signature_of_the_raw_body_verifies() -> None:
    body, headers = P.signed(P.page(P.TEXT))
    assert b"\\u0160" in body  # "Š" as Meta sends it, escaped: the bytes signed
    assert verify_signature(SECRET, body, headers["X-Hub-Signature-256"])
    # The same JSON written again (unescaped) is other bytes: its signature is not this.
    rewritten = json.dumps(json.loads(body), ensure_ascii=False).encode()
    assert not verify_signature(SECRET, rewritten, headers["X-Hub-Signature-256"])


@pytest.mark.parametrize(
    "header",
    [
        None,
        "",
        "sha256=",
        "sha1=" + "0" * 40,  # the old X-Hub-Signature's algorithm
        "sha256=" + "0" * 64,
        "sha256=" + "g" * 64,
        "sha256=" + "0" * 63,
        "SHA256=" + "0" * 64,
        "sha256= " + "0" * 64,
    ],
)
def test_a_missing_or_malformed_signature_is_refused(header: str | None) -> None:
    assert not verify_signature(SECRET, b"{}", header)


def test_uppercase_hex_is_the_same_signature_and_an_empty_secret_verifies_nothing() -> None:
    body = P.raw(P.page(P.TEXT))
    good = signature(SECRET, body)
    assert verify_signature(SECRET, body, "sha256=" + good.removeprefix("sha256=").upper())
    assert not verify_signature(b"", body, signature(b"", body))


@given(secret=st.binary(min_size=1, max_size=64), body=st.binary(max_size=2048), data=st.data())
def test_any_change_to_the_body_or_the_secret_fails_the_signature(
    secret: bytes, body: bytes, data: st.DataObject
) -> None:
    header = signature(secret, body)
    assert verify_signature(secret, body, header)
    if body:
        i = data.draw(st.integers(0, len(body) - 1))
        bit = data.draw(st.integers(0, 7))
        changed = body[:i] + bytes([body[i] ^ (1 << bit)]) + body[i + 1 :]
        assert not verify_signature(secret, changed, header)
    other = data.draw(st.binary(min_size=1, max_size=64))
    assume(other != secret)
    assert not verify_signature(other, body, header)


# ---- handshake --------------------------------------------------------------------------


def hub(mode: str = "subscribe", token: str = P.VERIFY_TOKEN, challenge: str = "1158201444"):
    return {"hub.mode": mode, "hub.verify_token": token, "hub.challenge": challenge}


def test_the_handshake_echoes_the_challenge() -> None:
    assert handshake(hub(), P.VERIFY_TOKEN) == "1158201444"


@pytest.mark.parametrize(
    ("params", "token"),
    [
        (hub(token="wrong"), P.VERIFY_TOKEN),
        (hub(mode="unsubscribe"), P.VERIFY_TOKEN),
        (hub(challenge=""), P.VERIFY_TOKEN),
        (hub(challenge="<script>alert(1)</script> x"), P.VERIFY_TOKEN),
        (hub(challenge="9" * 257), P.VERIFY_TOKEN),
        ({"hub.mode": "subscribe", "hub.challenge": "1"}, P.VERIFY_TOKEN),
        (hub(token="\udcff"), P.VERIFY_TOKEN),  # bytes that were not UTF-8
        (hub(token=""), ""),  # no token configured: nothing matches it
        ({}, P.VERIFY_TOKEN),
    ],
)
def test_the_handshake_refuses_what_is_not_ours(params: dict[str, str], token: str) -> None:
    assert handshake(params, token) is None


# ---- Messenger ------------------------------------------------------------------------


def ms(value: int) -> datetime:
    return datetime.fromtimestamp(value / 1000, UTC)


def test_a_messenger_text_message() -> None:
    (m,) = parse_webhook(P.page(P.TEXT))
    assert m == MetaMessage(
        platform=FB,
        page_id=P.PAGE,
        sender_id=P.PSID,
        recipient_id=P.PAGE,
        mid="mid.1457764197618:41d102a3e1ae206a38",
        text="Dobar dan, zanima me kredit za stan. Šta mi treba?",
        attachments=(),
        timestamp=ms(1458692752478),
    )
    assert m.timestamp.tzinfo is UTC and m.client_id == P.PSID and not m.is_echo


def test_attachments_keep_their_type_and_link() -> None:
    (m,) = parse_webhook(P.page(P.ATTACHMENTS))
    assert m.text == ""
    assert m.attachments == (
        Attachment("image", "https://scontent.xx.fbcdn.net/v/t1/a.jpg"),
        Attachment("file", "https://cdn.fbsbx.com/v/t59/uplatnica.pdf"),
        Attachment("sticker", "https://scontent.xx.fbcdn.net/s.png"),
        Attachment("fallback", None),
    )
    assert m.attachments[0].type == "image"


def test_an_echo_is_flagged_and_its_client_is_the_recipient() -> None:
    (m,) = parse_webhook(P.page(P.ECHO))
    assert m.is_echo and m.sender_id == P.PAGE and m.client_id == P.PSID
    assert m.text == "Poštovani, pošaljite nam broj lične karte."


def test_a_postback_is_the_buttons_title_with_its_payload() -> None:
    first, old = parse_webhook(P.page(P.POSTBACK, P.OLD_POSTBACK))
    assert (first.text, first.postback, first.mid[:4]) == ("Započni", "GET_STARTED", "m_AG")
    assert first.timestamp == ms(1527459824000)
    # An old postback has no mid: one made of who and when, the same when delivered again.
    assert old.mid == f"postback-{P.PSID}-1527459825000"
    assert parse_webhook(P.page(P.OLD_POSTBACK))[0].mid == old.mid


@pytest.mark.parametrize(
    "event",
    [P.READ, P.DELIVERY, P.REACTION, P.EDIT, P.HANDOVER, P.CHAT_PLUGIN_GUEST],
    ids=["read", "delivery", "reaction", "edit", "handover", "chat_plugin_guest"],
)
def test_events_that_are_no_message_are_left_out(event: dict[str, Any]) -> None:
    assert parse_webhook(P.page(event)) == []
    # ... also among messages, which keep their order
    got = parse_webhook(P.page(P.TEXT, event, P.REPLY_TO))
    assert [m.mid for m in got] == [P.TEXT["message"]["mid"], P.REPLY_TO["message"]["mid"]]


def test_standby_is_another_apps_thread() -> None:
    assert parse_webhook(P.notification("page", P.PAGE, P.TEXT, key="standby")) == []


def test_a_batch_of_entries_keeps_every_message_in_order() -> None:
    payload = P.page(P.TEXT, P.READ, P.ATTACHMENTS)
    payload["entry"].append({"id": "99", "time": 1, "messaging": [P.ECHO]})
    got = parse_webhook(payload)
    assert [(m.page_id, m.mid) for m in got] == [
        (P.PAGE, "mid.1457764197618:41d102a3e1ae206a38"),
        (P.PAGE, "mid.$cAAJdkrCd2ORnva8ErFhjGm0X_Q_c"),
        ("99", "mid.1457764197618:41d102a3e1ae206a99"),
    ]


def test_seconds_from_the_dashboards_test_and_numeric_ids_are_taken() -> None:
    event = {
        "sender": {"id": 6054916631250711},
        "recipient": {"id": P.PAGE},
        "timestamp": "1527459824",
        "message": {"mid": "m_1", "text": "test"},
    }
    (m,) = parse_webhook(P.page(event))
    assert m.sender_id == P.PSID and m.timestamp == datetime(2018, 5, 27, 22, 23, 44, tzinfo=UTC)


# ---- Instagram ------------------------------------------------------------------------


def test_an_instagram_message() -> None:
    (m,) = parse_webhook(P.instagram(P.IG_TEXT))
    assert (m.platform, m.page_id, m.sender_id, m.recipient_id) == (
        IG,
        P.IG_ACCOUNT,
        P.IGSID,
        P.IG_ACCOUNT,
    )
    assert m.text == "Radno vrijeme subotom?" and m.timestamp == ms(1761287294014)


def test_instagram_shares_story_mentions_echoes_and_unsupported_content() -> None:
    share, echo, unsupported = parse_webhook(
        P.instagram(P.IG_SHARE, P.IG_ECHO, P.IG_SEEN, P.IG_REACTION, P.IG_DELETED, P.IG_UNSUPPORTED)
    )
    assert [a.type for a in share.attachments] == ["ig_post", "story_mention"]
    assert share.attachments[0].url is not None and share.attachments[0].url.startswith("https://")
    assert echo.is_echo and echo.client_id == P.IGSID and echo.platform is IG
    assert unsupported.unsupported and unsupported.text == "" and not unsupported.attachments


def test_instagram_comments_and_other_objects_are_no_inbox_messages() -> None:
    assert parse_webhook(P.IG_COMMENT) == []
    assert parse_webhook({"object": "whatsapp_business_account", "entry": "anything"}) == []
    assert parse_webhook({"object": "page", "entry": []}) == []


# ---- malformed ------------------------------------------------------------------------


def with_event(**message: Any) -> dict[str, Any]:
    event = json.loads(json.dumps(P.TEXT))
    for key, value in message.items():
        if value is None:
            event["message"].pop(key, None)
        else:
            event["message"][key] = value
    return P.page(event)


def event_without(key: str) -> dict[str, Any]:
    event = json.loads(json.dumps(P.TEXT))
    del event[key]
    return P.page(event)


@pytest.mark.parametrize(
    ("payload", "at"),
    [
        ([], "$"),
        ("page", "$"),
        ({"entry": []}, "object"),
        ({"object": "page"}, "entry"),
        ({"object": "page", "entry": {}}, "entry"),
        ({"object": "page", "entry": [1]}, "entry[0]"),
        ({"object": "page", "entry": [{"messaging": []}]}, "entry[0].id"),
        ({"object": "page", "entry": [{"id": "1", "messaging": {}}]}, "entry[0].messaging"),
        ({"object": "page", "entry": [{"id": "1", "messaging": ["x"]}]}, "entry[0].messaging[0]"),
        (event_without("sender"), "entry[0].messaging[0].sender.id"),
        (event_without("recipient"), "entry[0].messaging[0].recipient.id"),
        (event_without("timestamp"), "entry[0].messaging[0].timestamp"),
        (P.page({**P.TEXT, "timestamp": "yesterday"}), "entry[0].messaging[0].timestamp"),
        (P.page({**P.TEXT, "timestamp": True}), "entry[0].messaging[0].timestamp"),
        (P.page({**P.TEXT, "timestamp": 10**20}), "entry[0].messaging[0].timestamp"),
        (P.page({**P.TEXT, "message": "hi"}), "entry[0].messaging[0].message"),
        (with_event(mid=None), "entry[0].messaging[0].message.mid"),
        (with_event(mid=""), "entry[0].messaging[0].message.mid"),
        (with_event(text=5), "entry[0].messaging[0].message.text"),
        (with_event(attachments={}), "entry[0].messaging[0].message.attachments"),
        (with_event(attachments=[{"payload": {}}]), "entry[0].messaging[0].message.attachments[0]"),
        (P.page({**P.POSTBACK, "postback": {"title": 1}}), "entry[0].messaging[0].postback.title"),
    ],
)
def test_a_malformed_notification_says_where(payload: object, at: str) -> None:
    with pytest.raises(MetaPayloadError) as caught:
        parse_webhook(payload)
    assert caught.value.error_id == "bad_payload" and caught.value.status == 400
    assert caught.value.details == {"at": at}
    assert isinstance(caught.value, DomainError)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(
            st.sampled_from(
                [
                    "object",
                    "entry",
                    "id",
                    "messaging",
                    "sender",
                    "recipient",
                    "timestamp",
                    "message",
                    "postback",
                    "mid",
                    "text",
                    "attachments",
                    "type",
                    "payload",
                    "url",
                    "is_echo",
                    "read",
                    "x",
                ]
            ),
            inner,
            max_size=5,
        )
    ),
    max_leaves=30,
)


@given(
    obj=st.sampled_from(["page", "instagram"]),
    entry=json_values,
)
@example(obj="page", entry=[{"id": "1", "messaging": [{"message": {}}]}])
def test_no_json_at_all_raises_anything_but_bad_payload(obj: str, entry: object) -> None:
    try:
        found = parse_webhook({"object": obj, "entry": entry})
    except MetaPayloadError:
        return
    assert all(isinstance(m, MetaMessage) and m.mid for m in found)


# ---- the window ---------------------------------------------------------------------


NOON = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)


def test_the_standard_window_is_24_hours_from_the_last_message() -> None:
    assert may_reply(NOON, NOON + timedelta(hours=23, minutes=59, seconds=59))
    assert not may_reply(NOON, NOON + timedelta(hours=24))
    assert not may_reply(None, NOON)
    assert may_reply(NOON + timedelta(seconds=5), NOON)  # their clock a little ahead of ours
    sarajevo = timezone(timedelta(hours=1))
    assert may_reply(NOON, datetime(2026, 12, 3, 12, 59, tzinfo=sarajevo))  # 11:59 UTC
    assert reply_deadline(NOON) == NOON + STANDARD_WINDOW
    assert timedelta(days=7) == HUMAN_AGENT_WINDOW  # documented, never applied
    assert not may_reply(NOON, NOON + timedelta(days=2))
    with pytest.raises(ValueError):
        may_reply(datetime(2026, 12, 2, 12), NOON)


# ---- a long reply ---------------------------------------------------------------------


def test_a_short_reply_is_one_message_as_it_is() -> None:
    assert text_parts("  Poštovani,\n\nodgovor.  ") == ("Poštovani,\n\nodgovor.",)


def test_a_long_reply_is_cut_at_a_paragraph_then_at_spaces() -> None:
    first = "Prvi pasus. " * 100  # 1200 characters
    second = "Drugi pasus. " * 100
    parts = text_parts(first.strip() + "\n\n" + second.strip())
    assert parts == (first.strip(), second.strip())
    words = ("riječ " * 500).strip()  # 2999 characters
    parts = text_parts(words)
    assert [len(p) for p in parts] == [1997, 1001]
    assert all(not p.startswith(" ") and not p.endswith(" ") for p in parts)
    assert " ".join(parts) == words


def test_a_word_longer_than_a_message_is_cut_where_the_limit_falls() -> None:
    assert text_parts("x" * 4500) == ("x" * 2000, "x" * 2000, "x" * 500)


def test_messenger_counts_an_emoji_twice_and_instagram_counts_bytes() -> None:
    assert [len(p) for p in text_parts("😀" * 1500)] == [1000, 500]
    assert text_parts("č" * 600, IG) == ("č" * 500, "č" * 100)  # 2 bytes each
    assert len(text_parts("a" * 1000, IG)) == 1 and len(text_parts("a" * 1001, IG)) == 2


def test_a_blank_reply_is_refused() -> None:
    with pytest.raises(DomainError) as caught:
        text_parts(" \n ")
    assert caught.value.error_id == "empty_reply"


alphabet = st.sampled_from([*"ab čž😀\n\t", "  ", "\n\n", "word"])


@given(
    text=st.lists(alphabet, min_size=1, max_size=400).map("".join),
    platform=st.sampled_from([FB, IG]),
    limit=st.integers(4, 60),
)
@example(text="a" * 10, platform=FB, limit=4)
def test_every_part_fits_and_nothing_but_whitespace_at_the_cuts_is_lost(
    text: str, platform: InquiryChannel, limit: int
) -> None:
    assume(text.strip())
    parts = text_parts(text, platform, limit)
    cost = (
        (lambda s: len(s.encode("utf-16-le")) // 2)
        if platform is FB
        else (lambda s: len(s.encode()))
    )
    assert all(p and p == p.strip() and cost(p) <= limit for p in parts)
    squeeze = "".join(text.split())
    assert "".join("".join(p.split()) for p in parts) == squeeze  # order kept, none lost
    if cost(text.strip()) <= limit:
        assert parts == (text.strip(),)


def test_the_limits_are_metas() -> None:
    assert (MESSENGER_TEXT_LIMIT, INSTAGRAM_TEXT_LIMIT) == (2000, 1000)
