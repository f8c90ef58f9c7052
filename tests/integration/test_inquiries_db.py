"""Written inquiries in the database (models/inquiries.py, usecases/inquiries.py) on SQLite
and PostgreSQL: a client's e-mail opens an inquiry linked to them, classified by the rules
and escalated to the supervisor and their manager on the record; the same message read
again (its source key, its Message-ID) is stored once; an answer threads back by the
Message-IDs it names, or by our token only from the inquiry's own sender; the states move
as the agents and the client act (a closed inquiry the client writes to is open again, a
move not allowed is refused with nothing written); attachments are kept with their message;
and the SLA is read from the log."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from core.desk.screenpop import build_screenpop
from core.enums import AgentRole
from core.inquiries import EscalationLevel, InquiryError, InquiryKind, InquiryState
from dialplan.validate import load_flow
from models import inquiries as store
from models.flows import apply_flow
from models.inquiries import Arrival, Attachment
from models.tables import Agent, Client, ClientPhone
from tests.conftest import Database
from usecases.inquiries import (
    InquirySetup,
    assign,
    close,
    escalate_breaches,
    late,
    note,
    queue_calendars,
    receive,
    reclassify,
    reply,
    sla_of,
)
from web.store import DeskStore

AT = datetime(2026, 12, 2, 9, 0, tzinfo=UTC)
FLOW = Path(__file__).resolve().parents[2] / "dialplan" / "infoline.yaml"
SETUP = InquirySetup(supervisor="iq-sup", queue="general")


async def seed(db: Database) -> dict[str, int]:
    async with db.sessions() as session, session.begin():
        session.add_all(
            [
                Agent(id="iq-sup", name="Supervisor", role=AgentRole.SUPERVISOR),
                Agent(id="iq-man", name="Manager", role=AgentRole.MANAGER),
                Agent(id="iq-ana", name="Agent Ana", role=AgentRole.AGENT),
            ]
        )
        await session.flush()
        mira = Client(
            external_id="iq-mira", name="Mira Hodžić", email="Mira@Example.ba",
            assigned_manager_id="iq-man",
        )  # fmt: skip
        tarik = Client(external_id="iq-tarik", name="Tarik Begić")
        session.add_all([mira, tarik])
        await session.flush()
        session.add(ClientPhone(client_id=tarik.id, number="+38761222333"))
        return {"mira": mira.id, "tarik": tarik.id}


def mail(n: int, **overrides: Any) -> Arrival:
    values: dict[str, Any] = {
        "channel": "email",
        "source_key": f"imap:inbox:7:{n}",
        "sender": "mira@example.ba",
        "sender_name": "Mira Hodžić",
        "subject": "Žalba na rad poslovnice",
        "text": "Imam žalbu: niko mi se nije javio.",
        "at": AT + timedelta(minutes=n),
        "sender_email": "mira@example.ba",
        "message_id": f"m{n}@example.ba",
        "reply_from": "info@fondacija.ba",
    }
    return Arrival(**{**values, **overrides})


async def test_a_clients_mail_opens_an_escalated_inquiry_stored_once(database: Database) -> None:
    ids = await seed(database)
    pdf = Attachment("ugovor.pdf", "application/pdf", b"%PDF-1.7 ...")
    first = await receive(database.sessions, SETUP, mail(1, attachments=(pdf,)))
    assert first.created and first.inquiry_id is not None and first.state == "new"
    assert [(s.level, s.to) for s in first.escalated] == [
        (EscalationLevel.SUPERVISOR, "iq-sup"),
        (EscalationLevel.MANAGER, "iq-man"),  # Mira's responsible manager
    ]
    again = await receive(database.sessions, SETUP, mail(1, attachments=(pdf,)))
    assert again.duplicate and again.inquiry_id is None
    moved = await receive(database.sessions, SETUP, mail(1, source_key="imap:inbox:8:1"))
    assert moved.duplicate  # a new UIDVALIDITY, the same Message-ID: the same message

    thread = await store.thread(database.sessions, first.inquiry_id)
    assert thread is not None
    inquiry = thread.inquiry
    assert (inquiry.client_id, inquiry.kind, inquiry.kind_by) == (ids["mira"], "complaint", "rules")
    assert (inquiry.queue, inquiry.priority, inquiry.reply_from) == (
        "general",
        1,
        "info@fondacija.ba",
    )
    assert [m.text for m in thread.messages] == ["Imam žalbu: niko mi se nije javio."]
    ((_, name, ctype, size),) = thread.attachments[thread.messages[0].id]
    assert (name, ctype, size) == ("ugovor.pdf", "application/pdf", len(pdf.content))
    assert thread.escalations_done() == {EscalationLevel.SUPERVISOR, EscalationLevel.MANAGER}
    assert thread.log[0].data["why"] == {"source": "keyword", "rule": "žalba", "language": "bs"}

    # On the desk, the client's record lists the inquiry beside the calls and notices.
    found = await DeskStore(database.sessions).client_rows(ids["mira"])
    assert found is not None
    record = build_screenpop(found, "record", AT.date())
    assert [(i["id"], i["channel"], i["kind"], i["state"]) for i in record["inquiries"]] == [
        (first.inquiry_id, "email", "complaint", "new")
    ]


async def test_answers_thread_back_and_the_states_follow_the_agents_and_the_client(
    database: Database,
) -> None:
    await seed(database)
    first = await receive(database.sessions, SETUP, mail(1, subject="Pitanje", text="Kada radite?"))
    inquiry_id = first.inquiry_id
    assert inquiry_id is not None and first.escalated == ()  # a question: nobody notified
    await assign(database.sessions, inquiry_id, "iq-ana", "iq-ana", AT + timedelta(minutes=5))
    answered = await reply(
        database.sessions, inquiry_id, "iq-ana", "Od 8 do 16.", AT + timedelta(minutes=30)
    )
    assert answered.state == "waiting" and answered.first_response_at == AT + timedelta(minutes=30)

    # The client answers ours: by the Message-IDs it names, the newest first.
    back = await receive(
        database.sessions, SETUP,
        mail(40, subject="Re: Pitanje", text="Hvala!", answers=("unknown@x", "m1@example.ba")),
    )  # fmt: skip
    assert (back.created, back.inquiry_id, back.state) == (False, inquiry_id, "open")
    await close(database.sessions, inquiry_id, "iq-ana", AT + timedelta(minutes=50))
    with pytest.raises(InquiryError) as refused:  # closed twice: refused, nothing written
        await close(database.sessions, inquiry_id, "iq-ana", AT + timedelta(minutes=51))
    assert refused.value.error_id == "inquiry_state" and refused.value.status == 409

    # Our token in the subject threads it, from the inquiry's own sender only.
    token = f"Re: Pitanje [#INQ-{inquiry_id}]"
    reopened = await receive(
        database.sessions, SETUP, mail(60, subject=token, text="Još nešto.", inquiry_id=inquiry_id)
    )
    assert (reopened.inquiry_id, reopened.state) == (inquiry_id, "open")  # closed: open again
    stranger = await receive(
        database.sessions, SETUP,
        mail(70, subject=token, sender="eve@evil.example", sender_email="eve@evil.example",
             inquiry_id=inquiry_id),
    )  # fmt: skip
    assert stranger.created and stranger.inquiry_id != inquiry_id

    await note(
        database.sessions, inquiry_id, "iq-ana", "Pozvati je sutra.", AT + timedelta(hours=2)
    )
    await reclassify(
        database.sessions, inquiry_id, "iq-ana", InquiryKind.CHANGE_OF_DATA, AT + timedelta(hours=2)
    )
    thread = await store.thread(database.sessions, inquiry_id)
    assert thread is not None
    assert [(m.direction, m.text) for m in thread.messages] == [
        ("in", "Kada radite?"),
        ("out", "Od 8 do 16."),
        ("in", "Hvala!"),
        ("in", "Još nešto."),
        ("note", "Pozvati je sutra."),
    ]
    assert thread.messages[1].subject == f"Re: Pitanje [#INQ-{inquiry_id}]"
    assert thread.messages[1].send_state == "queued"
    assert (thread.inquiry.kind, thread.inquiry.kind_by) == ("change_of_data", "iq-ana")
    assert [state for _, state in thread.history()] == [
        InquiryState.NEW, InquiryState.OPEN, InquiryState.WAITING, InquiryState.OPEN,
        InquiryState.CLOSED, InquiryState.OPEN,
    ]  # fmt: skip
    # No calendar: every minute counts. It came at 9:01, the first answer at 9:30: in 8 h.
    sla = sla_of(thread, AT + timedelta(hours=3), SETUP)
    assert sla.first_response_due is None and not sla.breached
    assert sla.first_response_used == timedelta(minutes=29)
    assert sla.resolution_due is not None  # open again: its clock runs


async def test_a_stranger_and_a_phone_from_the_form(database: Database) -> None:
    ids = await seed(database)
    unknown = await receive(
        database.sessions, SETUP,
        mail(1, sender="nobody@x.org", sender_email="nobody@x.org", subject="Info", text="Zdravo"),
    )  # fmt: skip
    thread = await store.thread(database.sessions, unknown.inquiry_id or 0)
    assert thread is not None and thread.inquiry.client_id is None
    assert thread.inquiry.kind == "general_question"
    by_phone = await receive(
        database.sessions, SETUP,
        mail(2, channel="web_form", source_key="form:abc", sender="+38761222333",
             sender_email=None, sender_phone="+38761222333", message_id=None,
             subject="Kontakt", text="Treba mi kredit od 3000 KM."),
    )  # fmt: skip
    thread = await store.thread(database.sessions, by_phone.inquiry_id or 0)
    assert thread is not None and thread.inquiry.client_id == ids["tarik"]
    assert thread.inquiry.kind == "credit_application"
    assert await store.backlog(database.sessions) == {
        ("general_question", "new"): 1,
        ("credit_application", "new"): 1,
    }


async def test_the_status_command_prints_the_backlog_and_the_late_ones(
    database: Database, tmp_path: Path
) -> None:
    await seed(database)
    now = datetime.now(UTC)
    complaint = await receive(database.sessions, SETUP, mail(1, at=now - timedelta(hours=5)))
    question = await receive(
        database.sessions, SETUP,
        mail(2, subject="Pitanje", text="Kada radite?", at=now - timedelta(hours=7)),
    )  # fmt: skip
    await receive(
        database.sessions, SETUP,
        mail(3, subject="Info", text="Adresa?", at=now - timedelta(hours=1)),
    )  # fmt: skip
    done = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "centrala.cli", "inquiries", "status"],
        env={**os.environ, "CENTRALA_DATABASE_URL": database.url,
             "CENTRALA_DATA_DIR": str(tmp_path)},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[:2] == [f"{'complaint':20} {'new':8} 1", f"{'general_question':20} {'new':8} 2"]
    # The complaint's first answer was due in 4 h (no calendar: every hour counts); the
    # question's in 8 h, 7 of them gone; the third is in time.
    assert lines[2].startswith(f"BREACHED #INQ-{complaint.inquiry_id} complaint new owner=-")
    assert lines[3].startswith(f"near     #INQ-{question.inquiry_id} general_question new")
    assert len(lines) == 4


async def test_the_sla_counts_the_queues_opening_hours_and_a_breach_escalates(
    database: Database,
) -> None:
    """The live flow's calendar of the queue (the shipped infoline: 08:00-16:00 on working
    days, Sarajevo): a question that came on Friday at 15:00 has used one of its eight
    business hours by Friday's close, is near its due time on Monday afternoon (due at
    15:00, not on Saturday) and late on Tuesday; the breach goes to the supervisor, once."""
    await seed(database)
    await apply_flow(database.sessions, load_flow(FLOW.read_text(), str(FLOW)), "tests")
    setup = InquirySetup(supervisor="iq-sup", queue="general")
    setup.calendars.update(await queue_calendars(database.sessions))
    assert "general" in setup.calendars
    friday = datetime(2026, 11, 27, 14, tzinfo=UTC)  # 15:00 in Sarajevo
    asked = await receive(
        database.sessions, setup,
        mail(1, subject="Pitanje", text="Kada radite?", at=friday),
    )  # fmt: skip
    assert asked.escalated == ()
    saturday = datetime(2026, 11, 28, 12, tzinfo=UTC)
    assert await late(database.sessions, setup, saturday) == []  # one business hour of eight
    monday = datetime(2026, 11, 30, 13, tzinfo=UTC)  # 14:00: seven hours used
    (near,) = await late(database.sessions, setup, monday)
    assert near.sla.near_breach and not near.sla.breached
    assert near.sla.first_response_due == datetime(2026, 11, 30, 14, tzinfo=UTC)  # 15:00 there
    tuesday = datetime(2026, 12, 1, 8, tzinfo=UTC)
    overdue = await late(database.sessions, setup, tuesday)
    assert [x.sla.breached for x in overdue] == [True]
    assert await escalate_breaches(database.sessions, setup, overdue, tuesday) == 1
    again = await late(database.sessions, setup, tuesday)
    assert await escalate_breaches(database.sessions, setup, again, tuesday) == 0  # once
    thread = await store.thread(database.sessions, asked.inquiry_id or 0)
    assert thread is not None and thread.escalations_done() == {EscalationLevel.SUPERVISOR}
