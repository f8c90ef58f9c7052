"""Fixtures for tests against the real Asterisk 22 and a real `centrala serve`.

Asterisk is started once per session by the project's own `centrala pbx up` (the same
command operators use); if it cannot start, every test here fails, none is skipped.
`centrala serve` runs as a real subprocess, once per database backend. Test callers are
Local channels originated through ARI into our test app, so the test holds the caller's leg.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import pytest
from sqlalchemy import select

from ari_app.ami import AMIClient
from ari_app.ari import ARIClient, ARIError, ARINotFound, Event
from centrala.settings import Settings
from core.media import prompt_of
from models.tables import Call, CallEvent
from tests.conftest import Database, make_database
from tests.integration import live
from tests.support import free_port as _free_port
from tests.support import wait_until

TEST_APP = "centrala-test"
INFO_NUMBER = "0800100200"

# The test install also gets the simulated agents' and clients' phones (tests/asterisk/*.conf);
# set for the whole session, so a `pbx down/up` inside a test keeps them.
os.environ.setdefault(
    "CENTRALA_PBX_EXTRA_CONFIG_DIR", str(Path(__file__).resolve().parent.parent / "asterisk")
)
# `pbx up` and each `serve` have data directories of their own: give them one FastAGI secret.
os.environ.setdefault("CENTRALA_AGI_SECRET", f"integration-{uuid.uuid4().hex}")


def _centrala(*args: str, env: dict[str, str] | None = None, timeout: float = 300) -> str:
    proc = subprocess.run(
        [sys.executable, "-m", "centrala.cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=timeout,
        check=False,
    )
    if proc.returncode != 0:
        pytest.fail(f"centrala {' '.join(args)} failed ({proc.returncode}):\n{proc.stderr}")
    return proc.stdout


def kill_ari_websocket(settings: Settings, local_port: int) -> None:
    """Destroy `serve`'s ARI WebSocket in the kernel (`module reload res_ari.so` does not close
    it): Asterisk's events for the app go nowhere until it reconnects."""
    ari = urlsplit(settings.ari_url)
    killed = subprocess.run(
        ["ss", "-K", "-t", "src", f"127.0.0.1:{local_port}", "dst", f"{ari.hostname}:{ari.port}"],
        capture_output=True,
        text=True,
        check=True,
    )
    assert f":{local_port}" in killed.stdout, killed.stdout


@dataclass
class PBX:
    settings: Settings

    def up(self) -> dict[str, Any]:
        return dict(json.loads(_centrala("pbx", "up").strip().splitlines()[-1]))

    def down(self) -> None:
        _centrala("pbx", "down")

    def cli(self, command: str) -> str:
        return _centrala("pbx", "cli", command)


@pytest.fixture(scope="session")
def pbx() -> Iterator[PBX]:
    pbx = PBX(Settings())
    status = pbx.up()
    assert status["ari"] is True, status
    assert str(status["version"]).startswith("22."), status
    yield pbx
    pbx.down()


@pytest.fixture(scope="module")
async def ami(pbx: PBX) -> AsyncIterator[AMIClient]:
    """An AMI client of the PBX, for a module's tests to steer the simulated phones."""
    s = pbx.settings
    client = AMIClient(s.ami_host, s.ami_port, s.ami_user, s.ami_secret)
    await client.start()
    await client.wait_connected(10)
    yield client
    await client.stop()


@dataclass
class Server:
    """A running `centrala serve`, the database it writes, and its JSON log."""

    url: str
    db: Database
    log_path: Path
    proc: subprocess.Popen[bytes]
    data_dir: Path
    env: dict[str, str] = field(default_factory=dict)

    def spawn(self) -> None:
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "centrala.cli", "serve"],
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
            )

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM, and its exit code; a `serve` that does not stop in ``timeout`` is killed
        and the test fails with what it still waited on (its ``stop_slow`` lines)."""
        self.proc.terminate()
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            text = self.log_path.read_text()
            slow = [line for line in text.splitlines() if "stop_slow" in line]
            raise AssertionError(
                f"serve did not stop within {timeout:g} s; waiting on:\n"
                + "\n".join(slow or [text[-3000:]])
            ) from None

    async def crash_and_restart(self) -> None:
        """Kill `centrala serve` (SIGKILL: nothing is tidied up) and start it again on the
        same database, as after a crash; returns once it is ready."""
        await self.restart(signal.SIGKILL)

    async def restart(self, sig: signal.Signals) -> int:
        """Stop `centrala serve` with ``sig`` (SIGKILL: a crash; SIGTERM: a deploy) and start
        it again on the same database; returns the old process's exit code once the new one
        is ready (it has adopted what was live)."""
        self.proc.send_signal(sig)
        code = await asyncio.to_thread(self.proc.wait, 20)
        self.spawn()
        await self.wait_ready()
        return code

    async def restart_stopped(self, between: Callable[[], Awaitable[None]]) -> int:
        """Stop `centrala serve` (SIGTERM), do ``between`` (e.g. stop the database), start it
        again; returns the old process's exit code once the new one is ready."""
        self.proc.send_signal(signal.SIGTERM)
        code = await asyncio.to_thread(self.proc.wait, 20)
        await between()
        self.spawn()
        await self.wait_ready()
        return code

    async def status(self) -> tuple[int, dict[str, Any]]:
        async with (
            aiohttp.ClientSession() as http,
            http.get(self.url + "/status", timeout=aiohttp.ClientTimeout(total=3)) as resp,
        ):
            return resp.status, await resp.json()

    async def wait_ready(self, timeout: float = 30, min_connects: int = 1) -> dict[str, Any]:
        async def ready() -> dict[str, Any] | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"centrala serve exited:\n{self.log_path.read_text()}")
            try:
                code, body = await self.status()
            except (TimeoutError, aiohttp.ClientError):
                return None
            return body if code == 200 and body["ari"]["connects"] >= min_connects else None

        body: dict[str, Any] = await wait_until(
            ready, timeout=timeout, interval=0.1, message="centrala serve ready"
        )
        return body

    async def wait_cdr_past(self, at: datetime, timeout: float = 30) -> None:
        """Until a pass over Asterisk's CDR has taken every call that ended before ``at``
        (a call that got no row by then is in the table as reconciled)."""

        async def past() -> bool:
            _, body = await self.status()
            until = body["cdr"]["taken_until"]
            return until is not None and datetime.fromisoformat(until) > at

        await wait_until(past, timeout=timeout, message=f"a CDR pass past {at}")

    async def rows_for_channel(self, channel_id: str) -> list[Call]:
        async with self.db.sessions() as session:
            return list(await session.scalars(select(Call).where(Call.channel_id == channel_id)))

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for line in self.log_path.read_text().splitlines():
            try:
                lines.append(json.loads(line))
            except ValueError:
                continue
        return lines

    async def call_row(self, **where: Any) -> Call:
        async with self.db.sessions() as session:
            stmt = select(Call).filter_by(**where)
            return (await session.scalars(stmt)).one()

    async def wait_closed(self, channel_id: str, timeout: float = 15) -> Call:
        """The call row once its record is closed (ended_at set)."""

        async def closed() -> Call | None:
            async with self.db.sessions() as session:
                call = await session.scalar(select(Call).where(Call.channel_id == channel_id))
            return call if call is not None and call.ended_at is not None else None

        return await wait_until(
            closed, timeout=timeout, message=f"a closed call row for channel {channel_id}"
        )

    async def event_kinds(self, call_id: str) -> list[str]:
        async with self.db.sessions() as session:
            rows = await session.scalars(
                select(CallEvent.kind).where(CallEvent.call_id == call_id).order_by(CallEvent.id)
            )
            return list(rows)


@pytest.fixture(scope="session", params=["sqlite", "postgresql"])
async def server(
    request: pytest.FixtureRequest, pbx: PBX, tmp_path_factory: pytest.TempPathFactory
) -> AsyncIterator[Server]:
    """`centrala serve` on one database backend (the PostgreSQL one in its own database)."""
    backend = str(request.param)
    shared = live.servers.get(backend)
    if shared is not None:  # the other fixture instance's (see live.py)
        shared.users += 1
        try:
            yield shared.value
        finally:
            await _release_server(backend, shared)
        return
    for other, running in list(live.servers.items()):
        await _stop_and_check(other, running.value)
    tmp = tmp_path_factory.mktemp(f"serve-{backend}")
    db = await make_database(backend, tmp, suffix="_calls")
    srv = start_serve(db, tmp)
    shared = live.servers[backend] = live.Shared(srv)
    try:
        await srv.wait_ready()
        yield srv
    finally:
        await _release_server(backend, shared)


def without_asterisk() -> dict[str, str]:
    """The settings of a `serve` that runs without Asterisk: closed ports, not the shared
    PBX's (a test of what serve does besides calls)."""
    closed = str(_free_port())
    return {
        "CENTRALA_ARI_URL": f"http://127.0.0.1:{closed}/ari",
        "CENTRALA_AMI_PORT": closed,
        "CENTRALA_AGI_PORT": str(_free_port()),
    }


def start_serve(db: Database, tmp: Path, *, spawn: bool = True, **overrides: str | None) -> Server:
    """Start `centrala serve` on ``db`` (its data and log in ``tmp``; ``spawn`` False: only
    ready to, with ``Server.spawn``). Survey campaigns dial the simulated clients of
    tests/asterisk ([test-clients]) and tick fast. ``overrides``: environment variables to set
    (None: to unset)."""
    port = _free_port()
    log_path = tmp / "serve.log"
    # In production `serve` shares its data directory with `pbx up`, which synthesised the
    # shipped prompts there: start from them, so a publish makes only the texts it changes.
    made = Settings().data_dir / "sounds"
    if made.is_dir() and not (tmp / "sounds").exists():
        shutil.copytree(made, tmp / "sounds")
    env = {
        **os.environ,
        "CENTRALA_DATABASE_URL": db.url,
        "CENTRALA_WEB_PORT": str(port),
        "CENTRALA_LOG_FORMAT": "json",
        "CENTRALA_LOG_LEVEL": "DEBUG",
        "CENTRALA_DATA_DIR": str(tmp),
        "CENTRALA_OUTBOUND_DIAL": "Local/{number}@test-clients",
        "CENTRALA_CAMPAIGN_TICK_SECONDS": "0.25",
        # Reconciled from Asterisk's CDR often: every test's calls are checked for rows
        # made twice, and the calls placed while serve is down show up soon.
        "CENTRALA_CDR_RECONCILE_SECONDS": "1",
        "CENTRALA_CDR_GRACE_SECONDS": "3",
        # The recordings' keeper looks for recordings past the retention period every second.
        "CENTRALA_RECORDING_SWEEP_SECONDS": "1",
        # Callback tasks are fed to the dialler by the tests that want it (one queue at a
        # time): other tests' tasks are never dialled into their agents.
        "CENTRALA_CALLBACKS_FEED_SECONDS": "0",
        # Versions scheduled a few seconds ahead go live within a second of their time.
        "CENTRALA_SCHEDULED_PUBLISH_SECONDS": "1",
        # Written inquiries go to the free agents of their queues within half a second.
        "CENTRALA_INQUIRIES_CHECK_SECONDS": "0.5",
    }
    for key, value in overrides.items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    srv = Server(f"http://127.0.0.1:{port}", db, log_path, None, tmp, env)  # type: ignore[arg-type]
    if spawn:
        srv.spawn()
    return srv


async def _release_server(backend: str, shared: live.Shared) -> None:
    shared.users -= 1
    if shared.users == 0 and live.servers.get(backend) is shared:
        await _stop_and_check(backend, shared.value)


async def _stop_and_check(backend: str, srv: Server) -> None:
    live.servers.pop(backend, None)
    code = live.stop_server(srv.proc)
    await srv.db.engine.dispose()
    assert code == 0, f"centrala serve exited with {code}:\n{srv.log_path.read_text()[-3000:]}"


@dataclass
class CallerLeg:
    """The caller's leg (Local;1) of a call into the PBX, held by the test app. The test app
    also subscribes to the far end (Local;2, the channel the app under test handles), so its
    events (the prompts' PlaybackStarted, …) are there to wait on."""

    id: str
    ari: ARIClient
    seen: list[Event] = field(default_factory=list)  # events of this leg
    far_seen: list[Event] = field(default_factory=list)  # events of the far end

    @property
    def far_end(self) -> str:
        # The Local channel's other half, the one that runs the dialplan we test.
        return f"{self.id};2"

    async def wait_for(
        self,
        kind: str,
        timeout: float = 15,
        *,
        where: Callable[[Event], bool] | None = None,
        far: bool = False,
        after: int = 0,
    ) -> Event:
        """The first event ``kind`` on this leg (``far``: on the far end) matching ``where``,
        among those seen from index ``after`` on."""
        events = self.far_seen if far else self.seen

        def found() -> Event | None:
            return next(
                (e for e in events[after:] if e["type"] == kind and (where is None or where(e))),
                None,
            )

        side = self.far_end if far else self.id
        return await wait_until(found, timeout=timeout, message=f"{kind} on {side}")

    async def prompt_started(self, prompt: str, timeout: float = 15, after: int = 0) -> Event:
        """The far end starts playing ``prompt`` (a flow's prompt name, or a sound's): the
        caller hears it from now on."""

        def plays(event: Event) -> bool:
            uri = str(event["playback"].get("media_uri", ""))
            return prompt_of(uri.rsplit("/", 1)[-1].removeprefix("sound:")) == prompt

        return await self.wait_for("PlaybackStarted", timeout, where=plays, far=True, after=after)

    async def hangup(self) -> None:
        with contextlib.suppress(ARINotFound):
            await self.ari.hangup(self.id)

    async def dtmf(self, digits: str) -> None:
        await self.ari.send_dtmf(self.id, digits)


class Callers:
    """Places test calls: Local/NUMBER@CONTEXT, the caller's leg in our test app."""

    def __init__(self, ari: ARIClient) -> None:
        self.ari = ari
        self.calls: dict[str, CallerLeg] = {}
        ari.on_event(self._on_event)

    async def _on_event(self, event: Event) -> None:
        channel = event.get("channel") or {}
        channel_id = str(channel.get("id", ""))
        if "playback" in event:
            channel_id = str(event["playback"].get("target_uri", "")).removeprefix("channel:")
        call = self.calls.get(channel_id.removesuffix(";2"))
        if call is None:
            return
        (call.far_seen if channel_id == call.far_end else call.seen).append(event)

    async def place(
        self, number: str = INFO_NUMBER, *, context: str = "from-trunk", caller_id: str = ""
    ) -> CallerLeg:
        call = CallerLeg(f"test-{uuid.uuid4().hex[:16]}", self.ari)
        self.calls[call.id] = call
        await self.ari.originate(
            f"Local/{number}@{context}",
            channel_id=call.id,
            app=TEST_APP,
            caller_id=caller_id or None,
        )
        # At once, before the far end has had time to do much: its events are ours too.
        with contextlib.suppress(ARIError):  # a far end gone already (a call that failed)
            await self.ari.subscribe(TEST_APP, f"channel:{call.far_end}")
        return call


@pytest.fixture(scope="session")
async def callers(pbx: PBX) -> AsyncIterator[Callers]:
    if live.callers:  # the other fixture instance's (see live.py)
        shared = live.callers[0]
        shared.users += 1
    else:
        s = pbx.settings
        ari = ARIClient(s.ari_url, s.ari_user, s.ari_password, [TEST_APP])
        await ari.start()
        await ari.wait_connected(10)
        shared = live.Shared(Callers(ari))
        live.callers.append(shared)
    yield shared.value
    shared.users -= 1
    if shared.users == 0:
        live.callers.remove(shared)
        await shared.value.ari.stop()


@pytest.fixture(autouse=True)
async def no_leftovers(request: pytest.FixtureRequest) -> AsyncIterator[None]:
    """Like Asterisk's testsuite: after each test, no channel or bridge is left behind. And
    the shared `centrala serve` is running: one a test killed and did not start again (it
    failed half-way) is started again here, so the tests after it are not failed by it."""
    yield
    died = await _serve_left_running(request)
    if "callers" not in request.fixturenames:
        assert died is None, died
        return
    ari: ARIClient = request.getfixturevalue("callers").ari
    channels: list[Any] = []
    bridges: list[Any] = []

    async def all_gone() -> bool:
        nonlocal channels, bridges
        await ari.wait_connected(15)
        channels, bridges = await ari.channels(), await ari.bridges()
        return not channels and not bridges

    try:
        await wait_until(all_gone, timeout=10, interval=0.1, message="no leftovers")
    except AssertionError:
        pass
    else:
        assert died is None, died
        return
    for ch in channels:
        with contextlib.suppress(ARINotFound):  # its other half's hang-up took it too
            await ari.hangup(ch["id"])
    raise AssertionError(
        f"left behind: channels {[c['name'] for c in channels]}, {bridges=}"
        + (f"; {died}" if died else "")
    )


async def _serve_left_running(request: pytest.FixtureRequest) -> str | None:
    """None when the test's shared `centrala serve` runs (or the test has none); else start it
    again and say how it had ended."""
    if "server" not in request.fixturenames:
        return None
    srv: Server = request.getfixturevalue("server")
    code = srv.proc.poll()
    if code is None:
        return None
    srv.spawn()
    await srv.wait_ready()
    return f"the test left centrala serve dead (exit code {code}); started again"
