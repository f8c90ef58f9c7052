"""Over 500 lines: one ordered write path (the trail, the row, the journal while the database
is away) whose parts share one lock and one queue; other modules' write kinds are registered
here (``register``: agents' sessions, survey answers, dispositions, ...) and the open calls
kept beside the database are models/livecalls.py. Next to split: the drain and replay.

The call log: every call is a row from its first event to its last, with an event trail.

Idempotent by construction: a call is keyed by the Asterisk channel that opened it, so a
duplicated StasisStart or AGI request finds the same row, and closing twice changes nothing.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from typing import Any, cast

import structlog
from sqlalchemy import ColumnElement, Table, bindparam, insert, select, true, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.cdrs import UNSERVED, UNSERVED_TEXT, PbxCall
from core.cluster import channel_node
from core.ivr import recorded_path
from core.outage import DbHealth, Outage
from core.phones import normalise
from models import livecalls
from models.callbacks import add_callback
from models.db import is_outage
from models.journal import WriteJournal
from models.tables import Call, Callback, CallEvent, Client, ClientPhone, Direction

log = structlog.get_logger(__name__)

MAX_TEXT = 200

# A write kind another module owns (agents' sessions, survey answers, ...): applied to the
# database in order with the calls' writes, journaled with them while it is away. With
# ``replay`` (from the journal) it checks what is already there and writes nothing twice.
Applier = Callable[[AsyncSession, dict[str, Any], bool], Awaitable[Any]]


def now() -> datetime:
    return datetime.now(UTC)


def clean_text(value: str | None, limit: int = MAX_TEXT) -> str | None:
    """Caller names and numbers are attacker-controlled: keep printable characters only."""
    if value is None:
        return None
    kept = "".join(ch for ch in value if ch.isprintable())[:limit]
    return kept or None


async def find_clients(session: AsyncSession, numbers: set[str]) -> dict[str, list[Client]]:
    """The clients with each of ``numbers`` (E.164) among their phones, in id order: a call
    from a number is the first one's (the call simulator reads callers the same way)."""
    if not numbers:
        return {}
    rows = await session.execute(
        select(ClientPhone.number, Client)
        .join(Client, ClientPhone.client_id == Client.id)
        .where(ClientPhone.number.in_(sorted(numbers)))
        .order_by(Client.id)
    )
    found: dict[str, list[Client]] = {}
    for number, client in rows:
        clients = found.setdefault(number, [])
        if client not in clients:
            clients.append(client)
    return found


def _first_id(clients: list[Client]) -> int | None:
    return clients[0].id if clients else None


@dataclass(frozen=True)
class OpenedCall:
    id: str
    client_id: int | None
    caller_e164: str | None
    new: bool
    client: Client | None = None  # the matched client's row (detached): name, routing facts


async def _event_present(session: AsyncSession, event: dict[str, Any]) -> bool:
    found = await session.scalar(
        select(CallEvent.id)
        .where(
            CallEvent.call_id == event["call_id"],
            CallEvent.kind == event["kind"],
            CallEvent.at == event["at"],
        )
        .limit(1)
    )
    return found is not None


async def last_event_data(session: AsyncSession, call_id: str, kind: str) -> dict[str, Any] | None:
    """The data of the call's latest event of ``kind`` (e.g. "routed", "language")."""
    return await session.scalar(
        select(CallEvent.data)
        .where(CallEvent.call_id == call_id, CallEvent.kind == kind)
        .order_by(CallEvent.id.desc())
        .limit(1)
    )


# The writes that wait in the queue (the trail, live states, row updates, answers): written
# many calls at a time, a statement per kind of write instead of one per write.
BATCHED = frozenset({"flush", "answered", "update"})


async def _write_batch(session: AsyncSession, ops: list[dict[str, Any]]) -> None:
    """``ops`` (of ``BATCHED`` kinds, in the order they were made) in a few statements: the
    events in one insert, in order (so the trail's ids keep it); each call's row updates
    merged in order (a later value of a column wins, as it would one by one); the answers
    (only a row not yet answered, as one by one); the latest live states of live rows.
    Within the one transaction the row updates and the events touch different tables, so
    their order between them changes nothing."""
    events: list[dict[str, Any]] = []
    answers: list[dict[str, Any]] = []
    updates: dict[str, dict[str, Any]] = {}
    states: dict[str, dict[str, Any] | None] = {}
    for op in ops:
        kind = op["op"]
        if kind == "flush":
            events += op["events"]
            states.update(op["states"])
        elif kind == "answered":
            call_id, at = op["call_id"], op["at"]
            answers.append({"a_call": call_id, "a_at": at})
            events.append({"call_id": call_id, "at": at, "kind": "answered", "data": {}})
        else:
            updates.setdefault(op["call_id"], {}).update(op["values"])
    calls = cast(Table, Call.__table__)
    if events:
        await session.execute(insert(CallEvent), events)
    if answers:
        await session.execute(
            update(calls)
            .where(calls.c.id == bindparam("a_call"), calls.c.answered_at.is_(None))
            .values(answered_at=bindparam("a_at")),
            answers,
        )
    by_columns: dict[tuple[str, ...], list[dict[str, Any]]] = {}
    for call_id, values in updates.items():
        columns = tuple(sorted(values))
        row = {f"u_{c}": values[c] for c in columns}
        by_columns.setdefault(columns, []).append({"u_call": call_id, **row})
    for columns, rows in by_columns.items():
        await session.execute(
            update(calls)
            .where(calls.c.id == bindparam("u_call"))
            .values({c: bindparam(f"u_{c}") for c in columns}),
            rows,
        )
    if states:
        # Only a live row: a closed call's state stays cleared.
        await session.execute(
            update(calls)
            .where(calls.c.id == bindparam("state_call"), calls.c.ended_at.is_(None))
            .values(live_state=bindparam("state")),
            [{"state_call": k, "state": v} for k, v in states.items()],
        )


def _opened_event(row: dict[str, Any], e164: str | None, clients: list[Client]) -> dict[str, Any]:
    return {
        "call_id": row["id"],
        "at": row["started_at"],
        "kind": "opened",
        "data": {
            "handler": row["handler"],
            "caller_e164": e164,
            "client_ids": [c.id for c in clients],
        },
    }


@dataclass(frozen=True)
class CallState:
    answered_at: datetime | None
    ended_at: datetime | None
    survey_status: str | None


@dataclass(frozen=True)
class LiveRow:
    call_id: str
    channel_id: str
    state: dict[str, Any] | None
    flow_version: int | None
    client_id: int | None
    caller_number: str | None
    queued_at: datetime | None
    connected_at: datetime | None


class CallLog:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        region: str,
        *,
        write_behind_seconds: float = 0.02,
        journal: WriteJournal | None = None,
        clock: Callable[[], float] = time.monotonic,
        node: str | None = None,
    ) -> None:
        self.sessions = sessions
        self.region = region
        # The Asterisk node this log's calls are on (several nodes): written on each call, and
        # only its calls are adopted here (another node's are not ours to close).
        self.node = node
        # Several nodes owned together (CENTRALA_SITE): every one of them; a call is on the
        # node its channel id names (core.cluster.channel_node), else on ``node``.
        self.nodes: tuple[str, ...] = ()
        # The event trail and the row's updates are written behind, many calls' writes in
        # one transaction: a call makes a dozen of them, and one transaction each cost more
        # CPU than the call itself. They wait here as ordered writes (consecutive events in
        # one "flush"), and whatever is written next (a close, an open's journal entry)
        # takes them first, so the order holds.
        self.write_behind_seconds = write_behind_seconds
        self._pending: list[dict[str, Any]] = []
        # Live calls' latest state (core.livestate), written behind with the events: a
        # restarted process adopts the call from it. None clears it.
        self._states: dict[str, dict[str, Any] | None] = {}
        self._flusher: asyncio.Task[None] | None = None
        # One lock orders every write, to the database or to the journal: the journal holds
        # writes in the order the calls made them, and nothing overtakes it while it drains.
        self._flush_lock = asyncio.Lock()
        # Without a journal a database error reaches the caller as before (tests, tools).
        self.journal = journal
        self.outage = Outage()
        self.clock = clock
        self._drainer: asyncio.Task[None] | None = None
        self._lookup_skip_said = False
        self._appliers: dict[str, Applier] = {}
        # Open calls as our own writes say (models.livecalls): adopted from when the
        # database cannot be read; the journal's first entry while it is away.
        self.live: dict[str, dict[str, Any]] = {}
        # Set once the database is ready for the journal (migrated, after a start without
        # it): until then nothing drains into it.
        self.schema_ready = asyncio.Event()
        self.schema_ready.set()
        # Calls a restart adopted from Asterisk alone (its row unreadable): the row the
        # database holds for that channel, found when the journal drains.
        self._remap: dict[str, str] = {}
        # Calls waiting for their row to be opened, with whoever awaits each.
        self._opening: list[tuple[dict[str, Any], str | None, asyncio.Future[OpenedCall]]] = []
        self._opener: asyncio.Task[None] | None = None
        # Told what was written, for the operators' metrics (web/metrics.py): a call closed
        # with its outcome (and how many rows), the seconds each database write took. A
        # listener's failure never disturbs the write.
        self.on_closed: list[Callable[[str, int], None]] = []
        self.on_written: list[Callable[[float], None]] = []

    @property
    def degraded(self) -> bool:
        """The database is away or the journal still holds writes for it."""
        return self.journal is not None and (
            self.journal.pending > 0 or self.outage.health is not DbHealth.UP
        )

    @property
    def journal_pending(self) -> int:
        return self.journal.pending if self.journal is not None else 0

    def register(self, kind: str, applier: Applier) -> None:
        """Another module's write kind (see ``Applier``)."""
        self._appliers[kind] = applier

    def start(self, *, database_down: bool = False) -> None:
        """Drain what a previous process journaled before anything new is written: until
        it is drained, new writes queue behind it in the journal. ``database_down``: it
        could not be reached at start; writes go to the journal from the first one."""
        if self.journal is not None and self.journal.pending:
            self.live = livecalls.rebuild(self.journal.read_now())
            self.outage.failed(self.clock())
            log.warning("journal_found_draining", pending=self.journal.pending)
            self._drain_later()
        elif database_down and self.journal is not None:
            self.outage.failed(self.clock())
            self._drain_later()

    async def find_clients(
        self, session: AsyncSession, numbers: set[str]
    ) -> dict[str, list[Client]]:
        """The clients with each of ``numbers`` among their phones, in id order."""
        return await find_clients(session, numbers)

    async def open_call(
        self,
        *,
        channel_id: str,
        linkedid: str | None,
        direction: Direction,
        handler: str,
        caller_number: str | None,
        caller_name: str | None,
        called_number: str | None,
        started_at: datetime,
        flow_version: int | None = None,
        client_id: int | None = None,
        survey_id: int | None = None,
        campaign_id: int | None = None,
        adopted: bool = False,
        node: str | None = None,
    ) -> OpenedCall:
        """Open the call's record (once per channel). The client is ``client_id`` when the
        caller knows it (a campaign calling a client), else looked up by the caller's number.
        With the database away the row goes to the journal under an id of ours and the
        caller is unknown (no lookup): the call is answered all the same. ``node``: the
        Asterisk node the channel is on (default: the one its id names, else ours)."""
        e164 = normalise(caller_number, self.region)
        row: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "channel_id": channel_id,
            "linkedid": clean_text(linkedid, 64),
            "direction": direction.value,
            "handler": handler,
            "caller_number": clean_text(caller_number, 64),
            "caller_name": clean_text(caller_name),
            "called_number": clean_text(called_number, 64),
            "client_id": client_id,
            "started_at": started_at,
            "ivr_path": [],
            "flow_version": flow_version,
            "survey_id": survey_id,
            "campaign_id": campaign_id,
            "node": node or self.node_of(channel_id),
        }
        if not self.degraded:
            try:
                opened = await self._open_in_db(row, e164)
            except Exception as exc:
                if self.journal is None or not is_outage(exc):
                    raise
                self._went_down(exc)
            else:
                if opened.new:  # kept beside the database too (models.livecalls)
                    row = {**row, "id": opened.id, "client_id": opened.client_id}
                    livecalls.apply(self.live, {"op": "open", "row": row})
                return opened
        if not self._lookup_skip_said:
            self._lookup_skip_said = True
            log.warning("caller_lookup_skipped_database_down")
        event = {
            "call_id": row["id"],
            "at": started_at,
            "kind": "opened",
            "data": {"handler": handler, "caller_e164": e164, "client_ids": [], "journaled": True},
        }
        op: dict[str, Any] = {"op": "open", "row": row, "event": event}
        if adopted:
            op["adopted"] = True  # its row may exist under another id: found at the drain
        await self._submit([op])
        return OpenedCall(row["id"], client_id, e164, new=True, client=None)

    async def _open_in_db(self, row: dict[str, Any], e164: str | None) -> OpenedCall:
        """The row and its `opened` event, written with the other calls arriving meanwhile
        in one transaction (50 callers at once each waited for their own before hearing the
        first prompt)."""
        future: asyncio.Future[OpenedCall] = asyncio.get_running_loop().create_future()
        self._opening.append((row, e164, future))
        if self._opener is None or self._opener.done():
            self._opener = asyncio.create_task(self._open_waiting())
        return await future

    async def _open_waiting(self) -> None:
        while self._opening:
            batch, self._opening = self._opening, []
            try:
                # Under the write lock: SQLite takes one writer at a time, and a write that
                # finds it busy sleeps in steps of up to 100 ms.
                async with self._flush_lock:
                    results = await self._open_together([(r, e) for r, e, _ in batch])
            except IntegrityError:
                # A channel already has its row (a duplicated or concurrent StasisStart):
                # each alone, so each gets its own answer.
                for row, e164, future in batch:
                    try:
                        async with self._flush_lock:
                            opened = await self._open_one(row, e164)
                    except Exception as exc:
                        if not future.done():
                            future.set_exception(exc)
                    else:
                        if not future.done():
                            future.set_result(opened)
                continue
            except asyncio.CancelledError:
                for _, _, future in batch:
                    future.cancel()
                raise
            except Exception as exc:
                for _, _, future in batch:
                    if not future.done():
                        future.set_exception(exc)
                continue
            for (_, _, future), opened in zip(batch, results, strict=True):
                if not future.done():
                    future.set_result(opened)

    async def _open_together(
        self, batch: list[tuple[dict[str, Any], str | None]]
    ) -> list[OpenedCall]:
        """The rows and their `opened` events in one transaction, with plain inserts (no
        unit of work); each caller looked up by number in one query."""
        async with self.sessions() as session:
            wanted = {e164 for row, e164 in batch if e164 and row["client_id"] is None}
            found = await self.find_clients(session, wanted)
            values: list[dict[str, Any]] = []
            events: list[dict[str, Any]] = []
            results: list[OpenedCall] = []
            for row, e164 in batch:
                client_id = row["client_id"]
                clients = [] if client_id is not None else found.get(e164 or "", [])
                if client_id is None:
                    client_id = _first_id(clients)
                values.append(
                    {**row, "direction": Direction(row["direction"]), "client_id": client_id}
                )
                events.append(_opened_event(row, e164, clients))
                results.append(
                    OpenedCall(
                        row["id"], client_id, e164, new=True, client=clients[0] if clients else None
                    )
                )
            try:
                await session.execute(insert(cast(Table, Call.__table__)), values)
                await session.execute(insert(CallEvent), events)
                await session.commit()
            except IntegrityError:
                await session.rollback()
                raise
            return results

    async def _open_one(self, row: dict[str, Any], e164: str | None) -> OpenedCall:
        """One row alone; a row this channel already has hits the unique key: that row is
        used."""
        channel_id = row["channel_id"]
        try:
            return (await self._open_together([(row, e164)]))[0]
        except IntegrityError:
            async with self.sessions() as session:
                existing = await session.scalar(select(Call).where(Call.channel_id == channel_id))
                if existing is None:
                    raise
                return await self._opened(session, existing, e164, new=False)

    async def _opened(
        self, session: AsyncSession, call: Call, e164: str | None, *, new: bool
    ) -> OpenedCall:
        client = None if call.client_id is None else await session.get(Client, call.client_id)
        return OpenedCall(call.id, call.client_id, e164, new, client)

    async def event(self, call_id: str, kind: str, at: datetime | None = None, **data: Any) -> None:
        item = {"call_id": call_id, "at": at or now(), "kind": kind, "data": data}
        last = self._pending[-1] if self._pending else None
        if last is not None and last["op"] == "flush":
            last["events"].append(item)
        else:
            self._pending.append({"op": "flush", "events": [item], "states": {}})
        self._write_soon()

    def _behind(self, op: dict[str, Any]) -> None:
        """A row write, in order with the trail, written with the next batch."""
        self._pending.append(op)
        self._write_soon()

    def set_state(self, call_id: str, state: dict[str, Any] | None) -> None:
        """Keep where the live call is (written behind: the latest state wins)."""
        self._states[call_id] = state
        self._write_soon()

    def _write_soon(self) -> None:
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon())

    async def _flush_soon(self) -> None:
        # Until nothing is left: what arrives while a batch is being written finds this task
        # still running and starts no other, so it must go in the next batch, not wait for
        # the next event (a call's last events waited for its hang-up).
        while True:
            await asyncio.sleep(self.write_behind_seconds)
            await self.flush()
            if not self._pending and not self._states:
                return

    async def flush(self) -> None:
        """Write the pending events now (in order, one transaction)."""
        await self._submit([])

    def _take_pending(self) -> list[dict[str, Any]]:
        """The writes waiting, in order; the live states (latest wins) after them."""
        if not self._pending and not self._states:
            return []
        ops, self._pending = self._pending, []
        states, self._states = self._states, {}
        if states:
            ops.append({"op": "flush", "events": [], "states": states})
        return ops

    async def _submit(self, ops: list[dict[str, Any]]) -> Any:
        """Write the pending trail, then ``ops``, in order: to the database, or to the
        journal while it is away. Returns the last op's result (None when journaled)."""
        async with self._flush_lock:
            taken = self._take_pending()
            ops = taken + ops
            if not ops:
                return None
            if self.journal is not None and self.degraded:
                await self._journal(ops)
                return None
            try:
                result = None
                started = time.perf_counter()
                async with self.sessions() as session:
                    # Ids of calls adopted from Asterisk alone go to their rows' ids.
                    ops = [_remapped(op, self._remap) for op in ops]
                    behind = 0
                    while behind < len(ops) and ops[behind]["op"] in BATCHED:
                        behind += 1
                    await _write_batch(session, ops[:behind])
                    for op in ops[behind:]:
                        result = await self._apply(session, op, replay=False)
                    await session.commit()
            except Exception as exc:
                if self.journal is None or not is_outage(exc):
                    self._put_back(taken)  # the trail is not lost with a refused write
                    raise
                self._went_down(exc)
                await self._journal(ops)
                return None
            self._tell(self.on_written, time.perf_counter() - started)
            for op in ops:
                livecalls.apply(self.live, op)
            return result

    @staticmethod
    def _tell(listeners: list[Callable[..., None]], *args: Any) -> None:
        for listener in listeners:
            try:
                listener(*args)
            except Exception:  # a metric's problem must never lose a call's write
                log.exception("calllog_listener_failed")

    def _put_back(self, taken: list[dict[str, Any]]) -> None:
        """A refused write loses nothing: the taken writes go back in front of those made
        since, and each live state taken unless a newer one was set meanwhile."""
        kept: list[dict[str, Any]] = []
        for op in taken:
            if op["op"] == "flush":
                for call_id, state in op["states"].items():
                    self._states.setdefault(call_id, state)
                if op["events"]:
                    kept.append({**op, "states": {}})
            else:
                kept.append(op)
        self._pending[:0] = kept
        if taken and (self._flusher is None or self._flusher.done()):
            self._flusher = asyncio.create_task(self._flush_soon())

    async def write(self, ops: list[dict[str, Any]]) -> Any:
        """Write ``ops`` (registered kinds) in order with the calls' writes: to the database,
        or to the journal while it is away. The last op's result; None when journaled."""
        return await self._submit(ops)

    async def _journal(self, ops: list[dict[str, Any]]) -> None:
        assert self.journal is not None
        if not self.journal.pending:
            # The journal starts: it opens with every call still open, so a process
            # restarted before the database is back adopts them from here.
            ops = [self._live_head(), *ops]
        await self.journal.append(ops)
        for op in ops:
            livecalls.apply(self.live, op)
        self._drain_later()

    def _live_head(self) -> dict[str, Any]:
        return {"op": "live", "rows": {k: dict(v) for k, v in self.live.items()}}

    def database_failed(self, exc: BaseException) -> None:
        """Another part found the database away: writes go to the journal from now on, and
        the drain's backoff tries it until it is back (said once, like any outage)."""
        if self.journal is None:
            return
        self._went_down(exc)
        self._drain_later()

    def _went_down(self, exc: BaseException) -> None:
        if self.outage.failed(self.clock()):
            log.error("database_down_journaling", error=str(exc)[:200])

    def _drain_later(self) -> None:
        if self._drainer is None or self._drainer.done():
            self._drainer = asyncio.create_task(self._drain_loop())

    async def _drain_loop(self) -> None:
        while True:
            await self.schema_ready.wait()
            if await self.drain():
                return
            # Backoff between tries (not a poll of a flag): the database gives no signal.
            await asyncio.sleep(max(0.05, self.outage.retry_at - self.clock()))

    async def drain(self) -> bool:
        """Write the journal into the database in order, each entry once (replaying is
        idempotent, so a crash mid-drain repeats nothing); True when it is empty."""
        if self.journal is None:
            return True
        if not self.schema_ready.is_set():
            return False
        async with self._flush_lock:
            entries = await self.journal.entries()
            if not entries:
                if self.outage.health is not DbHealth.UP:
                    try:  # nothing to write: is it back, though?
                        async with self.sessions() as session:
                            await session.execute(select(1))
                    except Exception as exc:
                        if not is_outage(exc):
                            raise
                        self._went_down(exc)
                        return False
                self.journal.pending = 0
                self._recovered(0)
                return True
            self.outage.draining()
            done = 0
            try:
                for entry in entries:
                    entry = _remapped(entry, self._remap)
                    async with self.sessions() as session:
                        try:
                            await self._apply(session, entry, replay=True)
                            await session.commit()
                        except Exception as exc:
                            if is_outage(exc):
                                raise
                            # A write the database refuses is said, not retried forever.
                            log.error(
                                "journal_entry_rejected",
                                seq=entry.get("seq"),
                                op=entry.get("op"),
                                error=str(exc)[:300],
                            )
                    done = int(entry["seq"])
            except Exception as exc:
                if not is_outage(exc):
                    raise
                if done:
                    # What is left starts again with the open calls (see models.livecalls).
                    await self.journal.clear(done, head=self._live_head())
                self._went_down(exc)
                return False
            await self.journal.clear(done)
            self._recovered(len(entries))
            return True

    def _recovered(self, drained: int) -> None:
        if self.outage.health is DbHealth.UP:
            return
        lasted = self.outage.recovered(self.clock())
        log.warning(
            "database_back",
            drained_writes=drained,
            outage_seconds=None if lasted is None else round(lasted, 1),
        )

    async def _apply(self, session: AsyncSession, op: dict[str, Any], *, replay: bool) -> Any:
        """One write. With ``replay`` (from the journal) it checks what is already there,
        so an entry written before a crash is not written twice."""
        kind = op["op"]
        calls = cast(Table, Call.__table__)
        if kind == "live":
            return None  # the open calls at the journal's head: for a restart, not a write
        if kind in self._appliers:
            return await self._appliers[kind](session, op, replay)
        if kind == "open":
            row = op["row"]
            if replay:
                present = await session.scalar(
                    select(Call.id).where(
                        (Call.id == row["id"]) | (Call.channel_id == row["channel_id"])
                    )
                )
                if present is not None and present != row["id"] and op.get("adopted"):
                    # Adopted from Asterisk alone while the row was unreadable: its later
                    # writes go to the row the channel has.
                    self._remap[row["id"]] = present
                    event = {**op["event"], "call_id": present, "kind": "adopted"}
                    if not await _event_present(session, event):
                        await session.execute(insert(CallEvent), [event])
                    return None
                if present is not None:
                    return None
            await session.execute(
                insert(calls), [{**row, "direction": Direction(row["direction"])}]
            )
            await session.execute(insert(CallEvent), [op["event"]])
            return None
        if kind == "flush":
            batch = op["events"]
            if replay:
                batch = [e for e in batch if not await _event_present(session, e)]
            if batch:
                await session.execute(insert(CallEvent), batch)
            states = op["states"]
            if states:
                # Only a live row: a closed call's state stays cleared.
                await session.execute(
                    update(calls)
                    .where(calls.c.id == bindparam("state_call"), calls.c.ended_at.is_(None))
                    .values(live_state=bindparam("state")),
                    [{"state_call": k, "state": v} for k, v in states.items()],
                )
            return None
        if kind == "answered":
            result = await session.execute(
                update(Call)
                .where(Call.id == op["call_id"], Call.answered_at.is_(None))
                .values(answered_at=op["at"])
            )
            if not replay or bool(getattr(result, "rowcount", 0)):
                session.add(CallEvent(call_id=op["call_id"], at=op["at"], kind="answered", data={}))
            return None
        if kind == "update":
            await session.execute(
                update(Call).where(Call.id == op["call_id"]).values(**op["values"])
            )
            return None
        if kind == "close":
            result = await session.execute(
                update(calls)
                .where(calls.c.id == op["call_id"], calls.c.ended_at.is_(None))
                .values(live_state=None, **op["values"])
            )
            closed = bool(getattr(result, "rowcount", 0))
            if closed:
                closing = {"call_id": op["call_id"], "at": op["at"], "kind": "closed"}
                await session.execute(insert(CallEvent), [{**closing, "data": op["event"]}])
            return closed
        if kind == "unseen":
            return await self._insert_unseen(session, op["calls"])
        if kind == "callback":
            values = op["values"]
            if replay:
                present = await session.scalar(
                    select(Callback.id).where(
                        Callback.call_id == values["call_id"],
                        Callback.number == values["number"],
                        Callback.due_at == values["due_at"],
                    )
                )
                if present is not None:
                    return None
            add_callback(session, **values)
            return None
        raise ValueError(f"unknown call-log write {kind!r}")

    async def record_unseen(self, calls: list[PbxCall]) -> int | None:
        """Calls Asterisk recorded that have no row (Centrala was away): a closed row each,
        in order with everything written before (so a call this process opened, even into
        the journal, is found and not made twice). Returns how many rows were made (None
        when journaled)."""
        if not calls:
            return 0
        result = await self._submit([{"op": "unseen", "calls": [asdict(c) for c in calls]}])
        if result:
            self._tell(self.on_closed, UNSERVED, int(result))
        return None if result is None else int(result)

    async def _insert_unseen(self, session: AsyncSession, calls: list[dict[str, Any]]) -> int:
        present = set(
            await session.scalars(
                select(Call.channel_id).where(Call.channel_id.in_([c["channel_id"] for c in calls]))
            )
        )
        numbers = {c["channel_id"]: normalise(c["caller_number"], self.region) for c in calls}
        found = await self.find_clients(session, {e for e in numbers.values() if e})
        made = 0
        for c in calls:
            if c["channel_id"] in present:
                continue
            present.add(c["channel_id"])
            e164 = numbers[c["channel_id"]]
            clients = found.get(e164 or "", [])
            call = Call(
                channel_id=c["channel_id"],
                linkedid=clean_text(c["linkedid"], 64),
                direction=Direction.INBOUND,
                handler="pbx",
                caller_number=clean_text(c["caller_number"], 64),
                called_number=clean_text(c["called_number"], 64),
                client_id=_first_id(clients),
                started_at=c["started_at"],
                answered_at=c["answered_at"],
                ended_at=c["ended_at"],
                hangup_cause_text=UNSERVED_TEXT,
                outcome=UNSERVED,
                node=self.node_of(c["channel_id"]),
                ivr_path=[],
            )
            session.add(call)
            await session.flush()
            data = {
                "source": "cdr",
                "disposition": c["disposition"],
                "last_app": c["last_app"],
                "context": c["context"],
                "caller_e164": e164,
                "client_ids": [x.id for x in clients],
            }
            session.add(CallEvent(call_id=call.id, at=c["ended_at"], kind="reconciled", data=data))
            log.warning("call_reconciled_from_cdr", call_id=call.id, channel_id=c["channel_id"])
            made += 1
        return made

    async def settle(self) -> None:
        """Everything said so far is in the database, as far as it can be: a read that
        adopts calls must see the rows the journal still holds (a database away still
        fails the read, as it would anyway)."""
        await self.flush()
        if self.degraded:
            await self.drain()

    _written = settle

    async def aclose(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        if self._drainer is not None:
            self._drainer.cancel()
        await self.flush()
        if self.degraded:
            await self.drain()  # whatever is left stays journaled for the next start

    async def answered(self, call_id: str, at: datetime) -> None:
        """The call was answered (written behind, in order with its trail)."""
        self._behind({"op": "answered", "call_id": call_id, "at": at})

    async def update(self, call_id: str, **values: Any) -> None:
        """Change the call's row (queue, agent, ...): written behind, in order with its
        trail; `flush` (or any read that adopts calls) writes it at once."""
        if "ivr_path" in values:
            values["ivr_path"] = recorded_path(values["ivr_path"])
        self._behind({"op": "update", "call_id": call_id, "values": values})

    async def callback(
        self,
        *,
        call_id: str,
        client_id: int | None,
        number: str,
        reason: str,
        queue: str | None,
        assigned_agent_id: str | None,
        due_at: datetime,
    ) -> None:
        """The caller asked to be called back: the task, with its event in the trail."""
        values = {
            "call_id": call_id,
            "client_id": client_id,
            "number": number,
            "reason": reason,
            "queue": queue,
            "assigned_agent_id": assigned_agent_id,
            "due_at": due_at,
            "event": "callback_requested",
            "event_data": {
                "number": number,
                "reason": reason,
                "queue": queue,
                "due_at": due_at.isoformat(),
            },
            "at": now(),
        }
        await self._submit([{"op": "callback", "values": values}])

    async def close(
        self,
        call_id: str,
        *,
        at: datetime,
        cause: int | None,
        cause_text: str | None,
        outcome: str,
        **values: Any,
    ) -> bool:
        """Close the call once (with any last ``values`` of the row); returns False when it
        was closed already. While the database is away it is journaled and taken as closed
        (the drain closes it only if it is still open)."""
        if "ivr_path" in values:
            values["ivr_path"] = recorded_path(values["ivr_path"])
        op = {
            "op": "close",
            "call_id": call_id,
            "at": at,
            "values": {
                "ended_at": at,
                "hangup_cause": cause,
                "hangup_cause_text": clean_text(cause_text, 80),
                "outcome": outcome,
                **values,
            },
            "event": {"cause": cause, "cause_text": cause_text, "outcome": outcome},
        }
        result = await self._submit([op])
        closed = True if result is None else bool(result)
        if closed:
            self._tell(self.on_closed, outcome, 1)
        return closed

    async def state(self, call_id: str) -> CallState | None:
        """How far a call got, as stored (for a call that ended while we were away)."""
        await self._written()
        async with self.sessions() as session:
            call = await session.get(Call, call_id)
            if call is None:
                return None
            return CallState(call.answered_at, call.ended_at, call.survey_status)

    async def client(self, client_id: int | None) -> Client | None:
        if client_id is None:
            return None
        async with self.sessions() as session:
            return await session.get(Client, client_id)

    def node_of(self, channel_id: str) -> str | None:
        """The node a call on ``channel_id`` is on: the one its id names, else ours."""
        return channel_node(channel_id, self.nodes) or self.node

    def _on(self, node: str | None, facts: dict[str, Any]) -> bool:
        if not self.nodes:
            return True
        on = facts.get("node") or self.node_of(str(facts.get("channel_id", "")))
        return bool(on == (node or self.node))

    async def live_calls(self, handler: str, node: str | None = None) -> list[LiveRow]:
        """Calls not yet closed on ``node`` (default: ours), with what a restarted app needs
        to adopt them. With the database away: as our own writes and the journal say
        (``self.live``)."""
        await self._written()
        try:
            async with self.sessions() as session:
                rows = list(
                    await session.scalars(
                        select(Call).where(
                            Call.handler == handler, Call.ended_at.is_(None), self._on_node(node)
                        )
                    )
                )
        except Exception as exc:
            if self.journal is None or not is_outage(exc):
                raise
            self._went_down(exc)
            log.warning("live_calls_from_journal", calls=len(self.live))
            return [
                _live_row(call_id, facts)
                for call_id, facts in self.live.items()
                if facts.get("handler") == handler and self._on(node, facts)
            ]
        found = [
            LiveRow(
                call_id=r.id,
                channel_id=r.channel_id,
                state=r.live_state,
                flow_version=r.flow_version,
                client_id=r.client_id,
                caller_number=r.caller_number,
                queued_at=r.queued_at,
                connected_at=r.connected_at,
            )
            for r in rows
        ]
        for r in rows:  # adopted: kept here from now on, like the calls we open
            self.live.setdefault(
                r.id,
                {
                    "channel_id": r.channel_id,
                    "node": r.node,
                    "handler": r.handler,
                    "flow_version": r.flow_version,
                    "client_id": r.client_id,
                    "caller_number": r.caller_number,
                    "queued_at": r.queued_at,
                    "connected_at": r.connected_at,
                    "state": r.live_state,
                    "survey_status": r.survey_status,
                },
            )
        return found

    def _on_node(self, node: str | None = None) -> ColumnElement[bool]:
        node = node or self.node
        return true() if node is None else Call.node == node

    def journaled_live(self, handler: str, node: str | None = None) -> list[LiveRow]:
        """Open calls of ``handler`` on ``node`` (default: ours) as our writes and the journal
        say, without reading the database (for an app that adopts while it is away)."""
        return [
            _live_row(call_id, facts)
            for call_id, facts in self.live.items()
            if facts.get("handler") == handler and self._on(node, facts)
        ]

    def live_facts(self, call_id: str) -> dict[str, Any] | None:
        """An open call's facts as our writes say (its row may be unreadable)."""
        return self.live.get(call_id)

    async def open_calls(self, handler: str, node: str | None = None) -> list[tuple[str, str]]:
        """(call id, channel id) of calls not yet closed: what a restarted app must adopt."""
        await self._written()
        async with self.sessions() as session:
            rows = await session.execute(
                select(Call.id, Call.channel_id).where(
                    Call.handler == handler, Call.ended_at.is_(None), self._on_node(node)
                )
            )
            return [(r[0], r[1]) for r in rows]


def _live_row(call_id: str, facts: dict[str, Any]) -> LiveRow:
    return LiveRow(
        call_id=call_id,
        channel_id=str(facts.get("channel_id")),
        state=facts.get("state"),
        flow_version=facts.get("flow_version"),
        client_id=facts.get("client_id"),
        caller_number=facts.get("caller_number"),
        queued_at=_as_time(facts.get("queued_at")),
        connected_at=_as_time(facts.get("connected_at")),
    )


def _as_time(value: Any) -> datetime | None:
    if isinstance(value, datetime):
        return value
    if isinstance(value, str):
        with contextlib.suppress(ValueError):
            return datetime.fromisoformat(value)
    return None


def _remapped(entry: dict[str, Any], remap: dict[str, str]) -> dict[str, Any]:
    """``entry`` with the call ids of calls adopted from Asterisk alone replaced by the ids
    of their rows (see ``_apply``'s open)."""
    if not remap:
        return entry

    def walk(value: Any) -> Any:
        if isinstance(value, dict):
            out: dict[str, Any] = {}
            for k, v in value.items():
                if k == "call_id" and isinstance(v, str):
                    out[k] = remap.get(v, v)
                elif k == "states" and isinstance(v, dict):
                    out[k] = {remap.get(c, c): s for c, s in v.items()}
                else:
                    out[k] = walk(v)
            return out
        if isinstance(value, list):
            return [walk(v) for v in value]
        return value

    walked: dict[str, Any] = walk(entry)
    if walked.get("op") == "open":
        walked["row"] = entry["row"]  # the open itself finds the remap
    return walked
