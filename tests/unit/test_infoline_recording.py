"""The info line drives the recording (ari_app/recording.py) on a fake ARI and a fake AMI that
keeps the actions it is sent: MixMonitor when the notice ends, the mute while an agent pauses
it, StopMixMonitor in a queue that is not recorded, and a call that goes on unrecorded when
AMI is away. The real Asterisk's side is tests/integration/test_recording.py."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml

from ari_app.agents import AgentDesk
from ari_app.ami import AMINotConnected, Message
from ari_app.infoline import InfolineApp
from ari_app.recording import CallRecorder
from ari_app.testing import FakeARI
from core.acd import ACD
from core.errors import CallControlError
from core.recording import RecordingError
from dialplan.validate import load_flow
from models.calllog import CallLog
from models.crm import CRM
from models.flows import apply_flow
from models.recordings import RecordingRow, RecordingStore
from tests.conftest import make_database
from tests.unit.test_infoline_app import APP, Line, shipped_flow_open_always
from usecases.recordings import RecordingKeeper
from web.recordings import RecordingFiles

PBX_DIR = "/var/spool/asterisk/monitor/centrala"
SETTLE = 20.0  # seconds the fake ARI's events may take on a loaded machine (a whole suite)


async def dial(line: Line, channel_id: str, keys: str = "") -> None:
    """As Line.call, with more time to settle."""
    line.ari.stasis_start(
        channel_id, [f"linked-{channel_id}"], caller=("Test", "061 999 001"), exten="0800100200"
    )
    await line.ari.settle(SETTLE)
    if keys:
        line.ari.dtmf(channel_id, keys)
        await line.ari.settle(SETTLE)
    await line.calllog.flush()


class FakeAMI:
    def __init__(self) -> None:
        self.sent: list[tuple[str, dict[str, str]]] = []
        self.away = False

    async def action(self, name: str, fields: dict[str, str] | None = None) -> Message:
        if self.away:
            raise AMINotConnected("not connected")
        self.sent.append((name, dict(fields or {})))
        return Message([("Response", "Success")])

    def names(self) -> list[str]:
        return [name for name, _ in self.sent]


async def make_line(
    tmp_path: Path, edit: Callable[[dict[str, Any]], None] | None = None
) -> tuple[Line, FakeAMI, RecordingStore]:
    db = await make_database("sqlite", tmp_path)
    data = yaml.safe_load(shipped_flow_open_always())
    if edit is not None:
        edit(data)
    await apply_flow(db.sessions, load_flow(yaml.safe_dump(data), "flow.yaml"))
    calllog = CallLog(db.sessions, "BA")
    crm = CRM(db.sessions)
    ari = FakeARI([APP])
    acd = ACD()
    desk = AgentDesk(ari, crm, acd, APP)
    ami = FakeAMI()
    store = RecordingStore(db.sessions, calllog)
    recorder = CallRecorder(ami, store, calllog, pbx_dir=PBX_DIR)  # type: ignore[arg-type]
    app = InfolineApp(ari, calllog, crm, desk, acd, name=APP, region="BA", recorder=recorder)
    ari.on_event(app.on_event)
    ari.on_connect(app.reconcile)
    await ari.start()
    await ari.settle()
    return Line(ari, app, desk, calllog, db), ami, store


@pytest.fixture
async def recorded(tmp_path: Path) -> AsyncIterator[tuple[Line, FakeAMI, RecordingStore]]:
    line, ami, store = await make_line(tmp_path)
    try:
        yield line, ami, store
    finally:
        await close(line)


async def close(line: Line) -> None:
    await line.ari.settle()
    await line.desk.close()
    await line.ari.stop()
    await line.calllog.aclose()
    await line.db.engine.dispose()


async def test_the_notice_starts_mixmonitor_and_the_agent_pauses_and_resumes_it(
    recorded: tuple[Line, FakeAMI, RecordingStore],
) -> None:
    line, ami, store = recorded
    endpoint = await line.login("ana", ["new_clients"])
    line.ari.stasis_start("c1", ["linked-c1"], caller=("Test", "061 999 001"), exten="0800100200")
    await line.ari.settle(SETTLE)
    await line.calllog.flush()
    assert ami.sent == []  # the notice plays: nothing recorded yet
    line.ari.dtmf("c1", "0")  # skips it
    await line.ari.settle(SETTLE)
    await line.calllog.flush()
    row = await line.row("c1")
    assert ami.sent == [
        ("MixMonitor", {"Channel": "c1", "File": f"{PBX_DIR}/{row.id}.wav", "Options": ""})
    ]
    (recording,) = await store.for_call(row.id)
    assert recording.file == f"{row.id}.wav" and recording.ended_at is None

    with pytest.raises(CallControlError, match="not with an agent"):
        await line.app.control(row.id, "pause_recording", "ana")  # in the queue still
    line.ari.pick_up(line.agent_leg(endpoint))
    await line.ari.settle(SETTLE)
    await line.calllog.flush()
    await line.app.control(row.id, "pause_recording", "ana")
    with pytest.raises(RecordingError) as twice:
        await line.app.control(row.id, "pause_recording", "ana")
    assert twice.value.error_id == "recording_paused_already"
    await line.app.control(row.id, "resume_recording", "ana")
    await line.ari.settle(SETTLE)
    await line.calllog.flush()
    mutes = [f for name, f in ami.sent if name == "MixMonitorMute"]
    assert [(m["Channel"], m["Direction"], m["State"]) for m in mutes] == [
        ("c1", "both", "1"),
        ("c1", "both", "0"),
    ]
    (recording,) = await store.for_call(row.id)
    assert [(s["by"], s["until"] is not None) for s in recording.paused] == [("ana", True)]
    kinds = [k for k, _ in await line.events(row.id) if k.startswith("recording_")]
    assert kinds == ["recording_started", "recording_paused", "recording_resumed"]


async def test_a_queue_that_is_not_recorded_stops_the_recording(tmp_path: Path) -> None:
    def unrecorded_new_clients(data: dict[str, Any]) -> None:
        data["queues"]["new_clients"]["record"] = False

    line, ami, _ = await make_line(tmp_path, unrecorded_new_clients)
    try:
        await dial(line, "c1", keys="0")
        row = await line.row("c1")
        assert ami.names() == ["MixMonitor", "StopMixMonitor"]
        assert ("recording_stopped", {}) in await line.events(row.id)
        with pytest.raises(CallControlError):
            await line.app.control(row.id, "pause_recording", "ana")  # not connected anyway
    finally:
        await close(line)


async def test_a_queue_may_record_a_flow_that_does_not(tmp_path: Path) -> None:
    def queue_records_only(data: dict[str, Any]) -> None:
        del data["recording"]
        data["queues"]["new_clients"]["record"] = True

    line, ami, _ = await make_line(tmp_path, queue_records_only)
    try:
        await dial(line, "c1")
        assert ami.sent == []
        line.ari.dtmf("c1", "0")
        await line.ari.settle(SETTLE)
        await line.calllog.flush()
        assert ami.names() == ["MixMonitor"]  # on entering the queue
    finally:
        await close(line)


async def test_with_ami_away_the_call_goes_on_unrecorded_and_says_so(
    recorded: tuple[Line, FakeAMI, RecordingStore],
) -> None:
    line, ami, store = recorded
    ami.away = True
    await dial(line, "c1", keys="0")
    row = await line.row("c1")
    assert await store.for_call(row.id) == []
    failed = await line.events(row.id, "recording_failed")
    assert len(failed) == 1 and "not connected" in failed[0][1]["error"]
    assert await line.events(row.id, "queued")  # the caller went on to the queue


class AwayStore:
    """The recordings' rows while the database is away: reads fail, writes are journaled."""

    def __init__(self) -> None:
        self.written: list[tuple[str, dict[str, Any]]] = []

    async def for_call(self, call_id: str) -> list[Any]:
        raise ConnectionRefusedError("database away")

    async def open_stretches(self, call_id: str) -> Any:
        raise ConnectionRefusedError("database away")

    async def write(self, action: str, call_id: str, at: Any, **data: Any) -> None:
        self.written.append((action, data))


class TrailLog:
    def __init__(self) -> None:
        self.events: list[str] = []

    async def event(self, call_id: str, kind: str, at: Any = None, **data: Any) -> None:
        self.events.append(kind)


async def test_an_adopted_call_is_recorded_with_the_database_away_never_over_a_file() -> None:
    ami, store = FakeAMI(), AwayStore()
    recorder = CallRecorder(ami, store, TrailLog(), pbx_dir=PBX_DIR)  # type: ignore[arg-type]
    assert await recorder.start("call-1", "c1", adopted=True)
    ((name, fields),) = ami.sent
    assert name == "MixMonitor"
    # Its rows unreadable: a file name of its own, so an earlier recording is never overwritten.
    assert fields["File"].startswith(f"{PBX_DIR}/call-1-") and fields["File"].endswith(".wav")
    assert store.written[0][0] == "start"
    assert await recorder.start("call-1", "c1", adopted=True)  # known now: nothing twice
    assert len(ami.sent) == 1
    recorder.running.clear()  # as after another restart: only the rows would know
    with pytest.raises(RecordingError) as away:
        await recorder.pause("call-1", "c1", "ana")
    assert (away.value.error_id, away.value.status) == ("recording_unavailable", 503)


class KeptStore(AwayStore):
    """The recordings' rows as written (no recording for the call before)."""

    async def for_call(self, call_id: str) -> list[Any]:
        return []

    async def open_stretches(self, call_id: str) -> Any:
        return None


async def test_a_site_nodes_recording_is_kept_as_that_nodes_and_read_from_its_directory(
    tmp_path: Path,
) -> None:
    """A caller on another node of the site is recorded through that node's AMI, into its
    own spool; the row names the node, so the keeper and the desk read the file there."""
    ami, store = FakeAMI(), KeptStore()
    recorder = CallRecorder(ami, store, TrailLog(), pbx_dir=PBX_DIR, node="pbx2")  # type: ignore[arg-type]
    assert await recorder.start("call-2", "pbx2-1.5")
    ((_, fields),) = ami.sent
    assert fields["File"] == f"{PBX_DIR}/call-2.wav"  # where that node's Asterisk writes it
    ((action, data),) = store.written
    assert (action, data["file"]) == ("start", "pbx2/call-2.wav")

    own, other = tmp_path / "pbx1", tmp_path / "pbx2"
    row = RecordingRow(1, "call-2", data["file"], "wav", datetime.now(UTC), None, None, None,
                       None, [], None)  # fmt: skip
    keeper = RecordingKeeper(store, own, retention_days=90, node_dirs={"pbx2": other})  # type: ignore[arg-type]
    files = RecordingFiles(store, own, {"pbx2": other})  # type: ignore[arg-type]
    assert keeper.path(row) == files.path(row) == other / "call-2.wav"
    ours = RecordingRow(2, "call-3", "call-3.wav", "wav", datetime.now(UTC), None, None, None,
                        None, [], None)  # fmt: skip
    assert keeper.path(ours) == files.path(ours) == own / "call-3.wav"
    # A node this instance does not read is not a way out of the directory.
    odd = RecordingRow(3, "call-4", "../../etc/passwd", "wav", datetime.now(UTC), None, None,
                       None, None, [], None)  # fmt: skip
    assert keeper.path(odd) == own / "passwd"
