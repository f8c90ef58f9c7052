"""Replies through Meta's Send API (meta/graph.py) against the tests' own stand-in of the
Graph API (tests/metaprovider.py, its own process on loopback, checking the Page token and
its appsecret_proof): a reply taken is its message id, sent as a RESPONSE to the person's
id; the 24-hour window closed and the person unavailable are refused for good; a rate
limit (as 400 or 429), Meta's 500, an answer that never comes and a refused connection are
tried again later; a wrong token or app secret is refused for good, the token never in a
reason; a long reply goes as messages in order within Messenger's and Instagram's limits,
and one cut short by an error resumes where it stopped."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from core.inquiries.meta import text_parts
from core.inquiries.model import InquiryChannel
from meta.graph import MetaAccount, MetaSendError, send_text
from tests.metaprovider import MetaProvider
from tests.support import free_port, running

PERSON = "6054916631250711"  # scenario 1: taken


@pytest.fixture(scope="module")
async def provider(tmp_path_factory: pytest.TempPathFactory) -> AsyncIterator[MetaProvider]:
    async with running(MetaProvider(tmp_path_factory.mktemp("meta"))) as server:
        yield server


def account(provider: MetaProvider, **kw: object) -> MetaAccount:
    fields: dict[str, object] = {
        "page_token": provider.page_token,
        "graph_url": provider.url,
        "app_secret": provider.app_secret,
        **kw,
    }
    return MetaAccount(**fields)  # type: ignore[arg-type]


def to(provider: MetaProvider, recipient: str) -> list[dict[str, object]]:
    return [
        m
        for m in provider.messages()
        if (m.get("body") or {}).get("recipient", {}).get("id") == recipient
    ]  # type: ignore[union-attr]


async def test_a_reply_taken_is_its_message_id(provider: MetaProvider) -> None:
    message_id = await send_text(account(provider), PERSON, "Poštovani, hvala na poruci.")
    assert message_id.startswith("m_")
    (asked,) = to(provider, PERSON)
    assert asked["path"] == "/v21.0/me/messages" and "refused" not in asked
    assert asked["body"] == {
        "recipient": {"id": PERSON},
        "messaging_type": "RESPONSE",
        "message": {"text": "Poštovani, hvala na poruci."},
    }


async def test_the_window_closed_is_refused_for_good(provider: MetaProvider) -> None:
    with pytest.raises(MetaSendError) as caught:
        await send_text(account(provider), "1000000000000002", "Odgovor poslije dva dana.")
    assert not caught.value.retry and caught.value.window_closed
    assert caught.value.reason.startswith("outside the 24-hour window")


@pytest.mark.parametrize(
    ("recipient", "retry", "code"),
    [
        ("1000000000000003", True, 613),  # rate-limited, as HTTP 400
        ("1000000000000004", True, 4),  # 429
        ("1000000000000005", True, 2),  # 500
        ("1000000000000006", False, 551),  # the person unavailable
    ],
    ids=["rate_limit", "too_many", "meta_500", "unavailable"],
)
async def test_errors_say_whether_to_try_again(
    provider: MetaProvider, recipient: str, retry: bool, code: int
) -> None:
    with pytest.raises(MetaSendError) as caught:
        await send_text(account(provider), recipient, "Dobar dan.")
    assert (caught.value.retry, caught.value.code, caught.value.window_closed) == (
        retry,
        code,
        False,
    )
    assert caught.value.sent == ()


async def test_no_answer_in_time_and_no_connection_are_tried_again(provider: MetaProvider) -> None:
    with pytest.raises(MetaSendError) as caught:
        await send_text(account(provider, timeout=0.5), "1000000000000007", "Halo?")
    assert caught.value.retry and caught.value.reason.startswith("Meta unreachable")
    nobody = MetaAccount(page_token="t", graph_url=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(MetaSendError) as caught:
        await send_text(nobody, PERSON, "Halo?")
    assert caught.value.retry and "Cannot connect" in caught.value.reason


async def test_a_wrong_token_or_secret_is_refused_and_never_told(provider: MetaProvider) -> None:
    with pytest.raises(MetaSendError) as caught:
        await send_text(account(provider, page_token="EAAG-stolen-or-expired"), PERSON, "x")
    assert not caught.value.retry and caught.value.code == 190
    assert "token was refused" in caught.value.reason and "EAAG" not in caught.value.reason
    with pytest.raises(MetaSendError) as caught:
        await send_text(account(provider, app_secret="another-app"), PERSON, "x")
    assert not caught.value.retry and "appsecret_proof" in caught.value.reason
    for line in provider.messages():
        assert provider.page_token not in str(line)


async def test_a_long_reply_goes_as_messages_in_order(provider: MetaProvider) -> None:
    recipient = "2000000000000001"
    words = " ".join(f"riječ{i}" for i in range(600))  # 5289 characters
    first = await send_text(account(provider), recipient, words)
    texts = [str(m["text"]) for m in to(provider, recipient)]
    assert len(texts) == 3 and all(len(t) <= 2000 for t in texts)
    assert " ".join(texts) == words
    assert first.startswith("m_")


async def test_instagram_replies_are_cut_at_1000_bytes(provider: MetaProvider) -> None:
    recipient = "3000000000000001"
    text = "Poštovani, " + "čćžšđ " * 300  # 3312 bytes of UTF-8, 1811 characters
    await send_text(account(provider), recipient, text, platform=InquiryChannel.INSTAGRAM)
    texts = [str(m["text"]) for m in to(provider, recipient)]
    assert len(texts) == 4 and all(len(t.encode()) <= 1000 for t in texts)
    assert tuple(texts) == text_parts(text, InquiryChannel.INSTAGRAM)


async def test_a_reply_cut_short_resumes_where_it_stopped(provider: MetaProvider) -> None:
    recipient = "4000000000000008"  # its second message answered 500
    text = "a" * 4500
    with pytest.raises(MetaSendError) as caught:
        await send_text(account(provider), recipient, text)
    assert caught.value.retry and len(caught.value.sent) == 1
    await send_text(account(provider), recipient, text, skip=len(caught.value.sent))
    texts = [m["text"] for m in to(provider, recipient)]
    assert [len(t) for t in texts] == [2000, 2000, 2000, 500]  # type: ignore[arg-type]
    # The one answered 500 went again: each part reached the person once.
    assert texts[1] == texts[2]
