"""Calls Asterisk saw while Centrala was away, reconciled from its CDR file: the record
format (hostile numbers cannot forge a record), which records are info-line callers, the
file's cursor, and the rows made through the call log (once, in order with the journal)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from ari_app.cdr import CdrFile, CdrReconciler
from core.cdrs import (
    UNSERVED,
    CdrFormatError,
    callers_to_record,
    channels,
    parse_record,
    split_records,
)
from models.calllog import CallLog, OpenedCall
from models.db import create_engine, session_factory
from models.journal import WriteJournal
from models.tables import Call, CallEvent, Client, ClientPhone, Direction
from tests.unit.test_call_journal import Switch
from tests.unit.test_infoline_app import template_db

__all__ = ["template_db"]

NUMBER = "0800100200"
T0 = datetime(2026, 11, 30, 9, 0, tzinfo=UTC)


def q(value: str) -> str:
    return '"' + value.replace('"', '""') + '"'


def line(
    uniqueid: str,
    *,
    src: str = "+38761111222",
    dst: str = NUMBER,
    context: str = "from-trunk",
    channel: str | None = None,
    start: datetime = T0,
    answer: datetime | None = T0,
    seconds: float = 12.5,
    disposition: str = "ANSWERED",
    app: str = "Playback",
) -> str:
    fields = [
        uniqueid,
        uniqueid,
        channel or f"PJSIP/trunk-{uniqueid}",
        src,
        dst,
        context,
        app,
        disposition,
        f"{start.timestamp():.6f}",
        f"{answer.timestamp():.6f}" if answer else "0.000000",
        f"{(start + timedelta(seconds=seconds)).timestamp():.6f}",
    ]
    return ",".join(q(f) for f in fields) + "\n"


def test_a_record_is_parsed_with_its_times() -> None:
    ((text, end),) = split_records(line("1700.1").encode())
    record = parse_record(text)
    assert end == len(line("1700.1"))
    assert (record.uniqueid, record.src, record.dst, record.context) == (
        "1700.1",
        "+38761111222",
        NUMBER,
        "from-trunk",
    )
    assert record.start == T0 and record.answer == T0
    assert record.end == T0 + timedelta(seconds=12.5)


def test_an_unanswered_call_has_no_answer_time() -> None:
    ((text, _),) = split_records(line("1700.2", answer=None, disposition="NO ANSWER").encode())
    assert parse_record(text).answer is None


def test_a_number_with_a_line_feed_and_quotes_cannot_forge_a_record() -> None:
    forged = line("6666.6")
    hostile = line("1700.3", src=f'12"3\n{forged.strip()}\n')
    data = (hostile + line("1700.4")).encode()
    records = [parse_record(text) for text, _ in split_records(data)]
    assert [r.uniqueid for r in records] == ["1700.3", "1700.4"]
    assert records[0].src.startswith('12"3\n')


def test_a_record_still_being_written_is_left_for_the_next_read() -> None:
    data = (line("1700.5") + line("1700.6")[:-20]).encode()
    found = split_records(data)
    assert [parse_record(t).uniqueid for t, _ in found] == ["1700.5"]
    assert found[-1][1] == len(line("1700.5"))


@pytest.mark.parametrize(
    "text",
    [
        '"1","2","3"',  # too few fields
        line("1700.7").strip().replace('"ANSWERED"', '"ANSWERED","x"'),  # too many
        line("1700.8").strip().replace(f"{T0.timestamp():.6f}", "yesterday", 1),
        line("").strip(),  # no uniqueid
        line("1700.9").strip().replace(f"{T0.timestamp():.6f}", "99999999999", 1),
    ],
)
def test_what_is_not_one_of_our_records_is_refused(text: str) -> None:
    with pytest.raises(CdrFormatError):
        parse_record(text)


def test_only_callers_of_the_info_line_are_recorded() -> None:
    records = [
        parse_record(t)
        for t, _ in split_records(
            (
                line("1.1")  # a caller from the trunk: yes
                + line("1.2", context="infoline-agi")  # the FastAGI entry: yes
                + line("1.3", dst="0800999999")  # an unallocated number: no
                + line("1.4", context="")  # an agent's leg we originated: no
                + line("1.5", channel="Local/0800100200@from-trunk-00000001;1")  # far end: no
                + line("1.6", channel="Local/0800100200@from-trunk-00000001;2")  # caller: yes
                # A number's entry point: from-trunk sends it on to the info line's context.
                + line("1.7", context="centrala-infoline")  # yes
            ).encode()
        )
    ]
    chosen = callers_to_record(channels(records).values(), [NUMBER])
    assert [c.channel_id for c in chosen] == ["1.1", "1.2", "1.6", "1.7"]


def test_a_channel_bridged_twice_is_one_call_from_its_first_start_to_its_last_end() -> None:
    first = parse_record(split_records(line("2.1", seconds=10).encode())[0][0])
    later = T0 + timedelta(seconds=10)
    second = parse_record(
        split_records(line("2.1", start=later, answer=later + timedelta(seconds=2)).encode())[0][0]
    )
    (call,) = channels([first, second]).values()
    assert call.started_at == T0
    assert call.answered_at == T0
    assert call.ended_at == later + timedelta(seconds=12.5)


async def test_the_cursor_reads_only_what_is_new(tmp_path: Path) -> None:
    path = tmp_path / "centrala.csv"
    cdr = CdrFile(path, tmp_path / "cursor.json")

    async def read(reader: CdrFile = cdr) -> list[str]:
        found = await reader.read_new()
        assert found is not None
        await reader.done(found.cursor)
        return [r.uniqueid for r, _ in found.records]

    assert await cdr.read_new() is None  # no file yet: said, not an error
    path.write_text(line("3.1") + line("3.2"))
    assert await read() == ["3.1", "3.2"]
    with path.open("a") as f:
        f.write(line("3.3") + line("3.4")[:10])  # the last one half written
    assert await read() == ["3.3"]
    with path.open("a") as f:
        f.write(line("3.4")[10:])
    assert await read() == ["3.4"]
    assert await read() == []
    # A restart keeps the cursor (a new reader on the same files).
    assert await read(CdrFile(path, tmp_path / "cursor.json")) == []
    assert oct(os.stat(tmp_path / "cursor.json").st_mode & 0o777) == "0o600"
    # A fresh install on a file with history starts at its end.
    fresh = CdrFile(path, tmp_path / "fresh-cursor.json")
    assert await read(fresh) == []
    with path.open("a") as f:
        f.write(line("3.6"))
    assert await read(fresh) == ["3.6"]
    # Rotated: a new file under the same name is read from its start.
    path.rename(tmp_path / "old.csv")
    path.write_text(line("3.5"))
    assert await read() == ["3.5"]


@pytest.fixture
async def reconciler(
    template_db: Path, tmp_path: Path
) -> AsyncIterator[tuple[CdrReconciler, CallLog, Switch, Path]]:
    shutil.copy(template_db, tmp_path / "centrala.db")
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'centrala.db'}")
    switch = Switch(session_factory(engine))
    calllog = CallLog(
        switch.factory(), "BA", journal=WriteJournal(tmp_path / "journal" / "calls.jsonl")
    )
    path = tmp_path / "centrala.csv"  # no file yet: what Asterisk writes later is read whole
    rec = CdrReconciler(CdrFile(path, tmp_path / "cursor.json"), calllog, [NUMBER])
    assert await rec.record_unseen() == 0  # serve's first look
    try:
        yield rec, calllog, switch, path
    finally:
        switch.down = False
        await calllog.aclose()
        await engine.dispose()


async def open_by_stasis(calllog: CallLog, channel_id: str) -> OpenedCall:
    """A call this process opened itself (as the Stasis app does at StasisStart)."""
    return await calllog.open_call(
        channel_id=channel_id,
        linkedid=channel_id,
        direction=Direction.INBOUND,
        handler="ari",
        caller_number="061111222",
        caller_name=None,
        called_number=NUMBER,
        started_at=T0,
    )


async def _rows(switch: Switch) -> dict[str, Call]:
    async with switch.real() as session:
        return {c.channel_id: c for c in await session.scalars(select(Call))}


async def test_calls_never_seen_become_closed_rows_once_with_the_client_found(
    reconciler: tuple[CdrReconciler, CallLog, Switch, Path],
) -> None:
    rec, calllog, switch, path = reconciler
    async with switch.real() as session:
        client = Client(external_id="C-1", name="Ana Client")
        session.add(client)
        await session.flush()
        session.add(ClientPhone(client_id=client.id, number="+38761111222"))
        await session.commit()
        client_id = client.id
    # A call this process opened (it has a row): its record changes nothing.
    seen = await open_by_stasis(calllog, "4.1")
    path.write_text(
        line("4.1")
        + line("4.2", answer=None, disposition="NO ANSWER", seconds=3)
        + line("4.3", src="+38762000000", start=T0 + timedelta(seconds=5))
    )
    later = T0 + timedelta(minutes=5)
    assert await rec.record_unseen(later) == 2
    assert await rec.record_unseen(later) == 0  # the cursor moved on
    # A crash before the cursor was saved: the re-read makes no second row.
    cursor = path.parent / "cursor.json"
    cursor.write_text(json.dumps({"inode": path.stat().st_ino, "offset": 0}))
    assert await rec.record_unseen(later) == 0

    rows = await _rows(switch)
    assert set(rows) == {"4.1", "4.2", "4.3"}
    assert rows["4.1"].id == seen.id and rows["4.1"].handler == "ari"
    unanswered = rows["4.2"]
    assert (unanswered.handler, unanswered.outcome) == ("pbx", UNSERVED)
    assert unanswered.started_at.replace(tzinfo=UTC) == T0
    assert unanswered.answered_at is None
    assert unanswered.ended_at is not None
    assert unanswered.ended_at.replace(tzinfo=UTC) == T0 + timedelta(seconds=3)
    assert unanswered.client_id == client_id  # the CRM knows who called
    assert rows["4.3"].client_id is None
    assert rows["4.3"].answered_at is not None
    async with switch.real() as session:
        events = list(
            await session.scalars(select(CallEvent).where(CallEvent.call_id == unanswered.id))
        )
    assert [(e.kind, e.data["source"], e.data["disposition"]) for e in events] == [
        ("reconciled", "cdr", "NO ANSWER")
    ]


async def test_a_record_younger_than_the_grace_waits_for_the_next_pass(
    reconciler: tuple[CdrReconciler, CallLog, Switch, Path],
) -> None:
    rec, _, switch, path = reconciler
    path.write_text(line("5.1") + line("5.2", start=T0 + timedelta(minutes=1)))
    # 5.1 ended 12.5 s after T0, 5.2 a minute later: only the first is old enough.
    assert await rec.record_unseen(T0 + timedelta(seconds=40)) == 1
    assert set(await _rows(switch)) == {"5.1"}
    assert await rec.record_unseen(T0 + timedelta(minutes=5)) == 1
    assert set(await _rows(switch)) == {"5.1", "5.2"}


async def test_with_the_database_down_records_are_journaled_after_the_calls_opened_before(
    reconciler: tuple[CdrReconciler, CallLog, Switch, Path],
) -> None:
    rec, calllog, switch, path = reconciler
    switch.down = True
    # Opened into the journal during the outage; its record must not make a second row.
    opened = await open_by_stasis(calllog, "6.1")
    path.write_text(line("6.1") + line("6.2"))
    assert await rec.record_unseen(T0 + timedelta(minutes=5)) == 0  # journaled
    switch.down = False
    assert await calllog.drain()
    rows = await _rows(switch)
    assert set(rows) == {"6.1", "6.2"}
    assert rows["6.1"].id == opened.id and rows["6.1"].handler == "ari"
    assert rows["6.2"].outcome == UNSERVED


async def test_ended_calls_remember_what_a_pass_already_took(
    reconciler: tuple[CdrReconciler, CallLog, Switch, Path],
) -> None:
    rec, _, _, path = reconciler
    path.write_text(line("7.1", seconds=30))
    assert await rec.record_unseen(T0 + timedelta(minutes=5)) == 1
    ended = await rec.ended_calls()
    assert ended["7.1"].ended_at == T0 + timedelta(seconds=30)
