"""The agents' answers to written inquiries (and Centrala's receipts) leave by the channel
each came in (usecases.inquiries.send_answers with centrala.inquiring's senders), on SQLite and
PostgreSQL: by e-mail through a real SMTP server (from the mailbox the client wrote to, our
token in the subject, In-Reply-To and References the client's message: their answer to it
threads back into the same inquiry), to Facebook through the Graph API's stand-in (a closed
reply window refused for good, with why); an SMTP server that is down gets it later, none
lost; and a `serve` that died mid-send leaves the answer to the next after the lease."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from centrala.inquiring import answer_senders
from centrala.settings import Settings
from core.enums import AgentRole
from models import inquiries as store
from models.inquiries import Arrival, add_receipt
from models.tables import Agent
from tests.conftest import Database
from tests.mailserver import MailServer
from tests.metaprovider import MetaProvider
from tests.support import running
from usecases.inquiries import InquirySetup, receive, reply, send_answers

SETUP = InquirySetup()


@pytest.fixture(autouse=True)
async def agent(database: Database) -> None:
    async with database.sessions() as session, session.begin():
        session.add(Agent(id="ana", name="Ana", role=AgentRole.AGENT))


@pytest.fixture
async def provider(tmp_path: Path) -> AsyncIterator[MetaProvider]:
    async with running(MetaProvider(tmp_path / "meta")) as server:
        yield server


def settings(
    tmp_path: Path, smtp: MailServer | None = None, meta: MetaProvider | None = None
) -> Settings:
    extra: dict[str, object] = {}
    if smtp is not None:
        extra.update(smtp_host="127.0.0.1", smtp_port=smtp.port, smtp_security="none")
    if meta is not None:
        extra.update(
            meta_app_secret=meta.app_secret, meta_verify_token="verify-token",
            meta_page_token=meta.page_token, meta_graph_url=meta.url,
        )  # fmt: skip
    return Settings(data_dir=tmp_path, smtp_from="centrala@fondacija.ba", **extra)  # type: ignore[arg-type]


def mail(n: int, **overrides: object) -> Arrival:
    values: dict[str, object] = {
        "channel": "email",
        "source_key": f"imap:info:1:{n}",
        "sender": "amra@example.ba",
        "sender_name": "Amra Mehić",
        "subject": "Radno vrijeme",
        "text": "Kada radite subotom?",
        "at": datetime.now(UTC) - timedelta(minutes=10 - n),
        "sender_email": "amra@example.ba",
        "message_id": f"amra-{n}@example.ba",
        "reply_from": "info@fondacija.ba",
    }
    return Arrival(**{**values, **overrides})  # type: ignore[arg-type]


async def test_an_answer_by_email_threads_the_clients_next_mail_back(
    database: Database, tmp_path: Path
) -> None:
    first = await receive(database.sessions, SETUP, mail(1))
    inquiry_id = first.inquiry_id
    assert inquiry_id is not None
    await reply(database.sessions, inquiry_id, "ana", "Subotom od 9 do 13.", datetime.now(UTC))
    async with running(MailServer(tmp_path / "smtp")) as smtp:
        senders = answer_senders(settings(tmp_path, smtp=smtp))
        done = await send_answers(database.sessions, senders, lambda: datetime.now(UTC))
        assert (done.sent, done.retried, done.failed) == (1, 0, 0)
        (sent,) = smtp.messages()
    assert sent["From"] == "info@fondacija.ba" and sent["To"] == "amra@example.ba"
    assert sent["Subject"] == f"Re: Radno vrijeme [#INQ-{inquiry_id}]"
    assert sent["In-Reply-To"] == "<amra-1@example.ba>"
    assert sent.get_payload(decode=True).decode().startswith("Subotom od 9 do 13.")
    assert sent["Auto-Submitted"] is None  # a person's answer
    ours = str(sent["Message-ID"]).strip("<>")

    # Amra answers ours: her mail names it, and lands in the same inquiry.
    back = await receive(
        database.sessions, SETUP,
        mail(2, subject=f"Re: Radno vrijeme [#INQ-{inquiry_id}]", text="Hvala!", answers=(ours,),
             at=datetime.now(UTC)),
    )  # fmt: skip
    assert (back.inquiry_id, back.state) == (inquiry_id, "open")
    thread = await store.thread(database.sessions, inquiry_id)
    assert thread is not None
    assert [(m.direction, m.send_state) for m in thread.messages] == [
        ("in", None), ("out", "sent"), ("in", None),
    ]  # fmt: skip


async def test_a_mail_server_down_gets_the_answer_later_and_a_dead_sender_is_taken_over(
    database: Database, tmp_path: Path
) -> None:
    first = await receive(database.sessions, SETUP, mail(1))
    inquiry_id = first.inquiry_id or 0
    await reply(database.sessions, inquiry_id, "ana", "Odgovor.", datetime.now(UTC))
    smtp = MailServer(tmp_path / "smtp")  # not started: down
    senders = answer_senders(settings(tmp_path, smtp=smtp))
    now = datetime.now(UTC)
    done = await send_answers(database.sessions, senders, lambda: now)
    assert (done.sent, done.retried) == (0, 1)
    thread = await store.thread(database.sessions, inquiry_id)
    assert thread is not None and thread.messages[1].send_state == "queued"
    assert thread.messages[1].error  # why, for the desk
    # A `serve` claims it and dies before it is sent: the next takes it over after the lease.
    later = now + timedelta(hours=1)
    (claimed,) = await store.claim_answers(database.sessions, later, 10, timedelta(minutes=5))
    assert claimed.attempts == 2
    assert await store.claim_answers(database.sessions, later, 10, timedelta(minutes=5)) == []
    async with running(smtp):
        after_lease = later + timedelta(minutes=6)
        done = await send_answers(database.sessions, senders, lambda: after_lease)
        assert done.sent == 1 and len(smtp.messages()) == 1


async def test_facebook_answers_go_through_the_graph_api_inside_the_window(
    database: Database, tmp_path: Path, provider: MetaProvider
) -> None:
    now = datetime.now(UTC)
    person = "600000000001"  # the stand-in takes it
    late = "600000000009"
    opened = []
    for sender, at in ((person, now - timedelta(hours=1)), (late, now - timedelta(hours=30))):
        received = await receive(
            database.sessions, SETUP,
            Arrival(channel="facebook", source_key=f"meta:m-{sender}", sender=sender,
                    sender_name="", subject="Pitanje", text="Imate li kredite?", at=at,
                    reply_from="682498302938465"),
        )  # fmt: skip
        opened.append(received.inquiry_id or 0)
        await reply(database.sessions, opened[-1], "ana", "Imamo, javite se.", now)
    senders = answer_senders(settings(tmp_path, meta=provider))
    done = await send_answers(database.sessions, senders, lambda: now)
    assert (done.sent, done.failed) == (1, 1)
    (asked,) = provider.messages()
    body = asked["body"]
    assert body["recipient"] == {"id": person} and body["message"]["text"] == "Imamo, javite se."
    thread = await store.thread(database.sessions, opened[1])
    assert thread is not None
    assert thread.messages[1].send_state == "failed"
    assert "24-hour reply window" in (thread.messages[1].error or "")


async def test_a_receipt_leaves_marked_as_a_machines(database: Database, tmp_path: Path) -> None:
    first = await receive(database.sessions, SETUP, mail(1, channel="web_form", message_id=None))
    await add_receipt(
        database.sessions, first.inquiry_id or 0, "Primili smo Vašu poruku", "Hvala.",
        datetime.now(UTC),
    )  # fmt: skip
    async with running(MailServer(tmp_path / "smtp")) as smtp:
        senders = answer_senders(settings(tmp_path, smtp=smtp))
        assert (await send_answers(database.sessions, senders, lambda: datetime.now(UTC))).sent == 1
        (sent,) = smtp.messages()
    assert sent["Auto-Submitted"] == "auto-replied" and sent["To"] == "amra@example.ba"
    thread = await store.thread(database.sessions, first.inquiry_id or 0)
    assert thread is not None and thread.inquiry.first_response_at is None
