"""Webhook notifications as Meta documents them (Messenger Platform's webhook events
reference: ``messages``, ``message_echoes``, ``message_reads``, ``message_deliveries``,
``message_reactions``, ``messaging_postbacks``, ``standby``; Instagram Platform's webhook
examples: object ``instagram``, echoes within ``messages``, ``messaging_seen``, reactions,
unsent and unsupported messages, shares and story mentions), with our test ids, and the
signed body as Meta sends it: compact JSON with non-ASCII escaped as ``\\uXXXX``."""

from __future__ import annotations

import json
from typing import Any

from core.inquiries.meta import signature

PAGE = "682498302938465"
PSID = "6054916631250711"
IG_ACCOUNT = "17841405822304914"
IGSID = "1535148674817116"
APP_SECRET = "test-app-secret-0123456789abcdef"
VERIFY_TOKEN = "centrala-verify-token"


def notification(
    obj: str, account: str, *events: dict[str, Any], key: str = "messaging"
) -> dict[str, Any]:
    return {"object": obj, "entry": [{"id": account, "time": 1458692752478, key: list(events)}]}


def page(*events: dict[str, Any]) -> dict[str, Any]:
    return notification("page", PAGE, *events)


def instagram(*events: dict[str, Any]) -> dict[str, Any]:
    return notification("instagram", IG_ACCOUNT, *events)


def from_person(
    body: dict[str, Any], *, ts: int = 1458692752478, ig: bool = False
) -> dict[str, Any]:
    person, account = (IGSID, IG_ACCOUNT) if ig else (PSID, PAGE)
    return {"sender": {"id": person}, "recipient": {"id": account}, "timestamp": ts, **body}


def to_person(body: dict[str, Any], *, ts: int = 1457764197627, ig: bool = False) -> dict[str, Any]:
    person, account = (IGSID, IG_ACCOUNT) if ig else (PSID, PAGE)
    return {"sender": {"id": account}, "recipient": {"id": person}, "timestamp": ts, **body}


# ---- Messenger ------------------------------------------------------------------------

TEXT = from_person(
    {
        "message": {
            "mid": "mid.1457764197618:41d102a3e1ae206a38",
            "text": "Dobar dan, zanima me kredit za stan. Šta mi treba?",
            "quick_reply": {"payload": "<DEVELOPER_DEFINED_PAYLOAD>"},
        }
    }
)
REPLY_TO = from_person(
    {
        "message": {
            "mid": "m_1457764197618:41d102a3e1ae206a38",
            "text": "hello, world!",
            "reply_to": {"mid": "m_1fTq8oLumEyIp3Q2MR-aY7IfLZDamVrALniheU", "is_self_reply": False},
        }
    },
    ts=1458692752479,
)
ATTACHMENTS = from_person(
    {
        "message": {
            "mid": "mid.$cAAJdkrCd2ORnva8ErFhjGm0X_Q_c",
            "attachments": [
                {"type": "image", "payload": {"url": "https://scontent.xx.fbcdn.net/v/t1/a.jpg"}},
                {"type": "file", "payload": {"url": "https://cdn.fbsbx.com/v/t59/uplatnica.pdf"}},
                # The sticker transition: a sticker comes as both types for a while.
                {
                    "type": "sticker",
                    "payload": {
                        "url": "https://scontent.xx.fbcdn.net/s.png",
                        "sticker_id": 369239263222822,
                    },
                },
                {"type": "fallback", "title": "Link", "URL": "https://example.org"},
            ],
        }
    },
    ts=1518479195308,
)
ECHO = to_person(
    {
        "message": {
            "is_echo": True,
            "app_id": 1517776481860111,
            "metadata": "<DEVELOPER_DEFINED_METADATA_STRING>",
            "mid": "mid.1457764197618:41d102a3e1ae206a99",
            "text": "Poštovani, pošaljite nam broj lične karte.",
        }
    }
)
READ = from_person({"read": {"watermark": 1458668856253}}, ts=1458668856463)
# The documented delivery has no timestamp at all: nothing of it is read.
DELIVERY = {
    "sender": {"id": PSID},
    "recipient": {"id": PAGE},
    "delivery": {"mids": ["mid.1458668856218:ed81099e15d3f4f233"], "watermark": 1458668856253},
}
REACTION = from_person(
    {
        "reaction": {
            "reaction": "love",
            "emoji": "\u2764\ufe0f",
            "action": "react",
            "mid": "mid.1457764197618:41d102a3e1ae206a99",
        }
    }
)
POSTBACK = from_person(
    {
        "postback": {
            "mid": "m_AG5Hz2Uq7tuwNEhXfYYKj8mJEM_QPpz5jdCK48PnKAjSdjfipqxqMvK8ma6AC8",
            "title": "Započni",
            "payload": "GET_STARTED",
        }
    },
    ts=1527459824000,
)
OLD_POSTBACK = from_person(
    {"postback": {"title": "Kontakt", "payload": "CONTACT"}}, ts=1527459825000
)
EDIT = from_person({"message_edit": {"mid": "m_edited", "text": "ispravka", "num_edit": 1}})
HANDOVER = from_person({"pass_thread_control": {"new_owner_app_id": "123456789", "metadata": "x"}})
CHAT_PLUGIN_GUEST = {
    "sender": {"user_ref": "USER-REF-ID"},
    "recipient": {"id": PAGE},
    "timestamp": 1527459824000,
    "message": {"mid": "m_guest", "text": "hi"},
}

# ---- Instagram ------------------------------------------------------------------------

IG_TEXT = from_person(
    {
        "message": {
            "mid": "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx",
            "text": "Radno vrijeme subotom?",
        }
    },
    ts=1761287294014,
    ig=True,
)
IG_SHARE = from_person(
    {
        "message": {
            "mid": "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQy",
            "attachments": [
                {
                    "type": "ig_post",
                    "payload": {
                        "ig_post_media_id": "18139494541428835",
                        "title": "Build a workspace that attracts talent",
                        "url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=18139494541428835",
                    },
                },
                {
                    "type": "story_mention",
                    "payload": {"url": "https://lookaside.fbsbx.com/ig_messaging_cdn/?asset_id=1"},
                },
            ],
        }
    },
    ts=1761287294015,
    ig=True,
)
IG_ECHO = to_person(
    {
        "message": {
            "mid": "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQz",
            "text": "Subotom od 9 do 13.",
            "is_echo": True,
        }
    },
    ts=1761287294016,
    ig=True,
)
IG_SEEN = from_person({"read": {"mid": "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQz"}}, ig=True)
IG_REACTION = from_person(
    {
        "reaction": {
            "mid": "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQz",
            "action": "react",
            "reaction": "love",
            "emoji": "\u2764",
        }
    },
    ig=True,
)
IG_DELETED = from_person(
    {"message": {"mid": "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQx", "is_deleted": True}}, ig=True
)
IG_UNSUPPORTED = from_person(
    {"message": {"mid": "aWdfZAG1faXRlbToxOklHTWVzc2FnZAUlEOjE3ODQ0", "is_unsupported": True}},
    ts=1761287294017,
    ig=True,
)
IG_COMMENT = {
    "object": "instagram",
    "entry": [
        {
            "id": IG_ACCOUNT,
            "time": 1761287298065,
            "changes": [
                {
                    "field": "comments",
                    "value": {
                        "id": "17865799348089039",
                        "from": {"id": IGSID, "username": "klijent"},
                        "text": "Cijena?",
                        "media": {"id": "123", "media_product_type": "FEED"},
                    },
                }
            ],
        }
    ],
}


def raw(payload: object) -> bytes:
    """The body as Meta sends it: compact, non-ASCII escaped (what its signature covers)."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def signed(payload: object, secret: str = APP_SECRET) -> tuple[bytes, dict[str, str]]:
    """The body and the headers of a notification Meta signed with ``secret``."""
    body = raw(payload)
    return body, {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": signature(secret.encode(), body),
    }
