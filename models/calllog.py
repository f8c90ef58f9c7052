"""The call log: every call is a row from its first event to its last, with an event trail.

Idempotent by construction: a call is keyed by the Asterisk channel that opened it, so a
duplicated StasisStart or AGI request finds the same row, and closing twice changes nothing.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import Table, bindparam, insert, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.ivr import recorded_path
from core.phones import normalise
from models.tables import Call, CallEvent, Client, ClientPhone, Direction

MAX_TEXT = 200


def now() -> datetime:
    return datetime.now(UTC)


def clean_text(value: str | None, limit: int = MAX_TEXT) -> str | None:
    """Caller names and numbers are attacker-controlled: keep printable characters only."""
    if value is None:
        return None
    kept = "".join(ch for ch in value if ch.isprintable())[:limit]
    return kept or None


def _first_id(clients: list[Client]) -> int | None:
    return clients[0].id if clients else None


@dataclass(frozen=True)
class OpenedCall:
    id: str
    client_id: int | None
    caller_e164: str | None
    new: bool
    client: Client | None = None  # the matched client's row (detached): name, routing facts


async def last_event_data(session: AsyncSession, call_id: str, kind: str) -> dict[str, Any] | None:
    """The data of the call's latest event of ``kind`` (e.g. "routed", "language")."""
    return await session.scalar(
        select(CallEvent.data)
        .where(CallEvent.call_id == call_id, CallEvent.kind == kind)
        .order_by(CallEvent.id.desc())
        .limit(1)
    )


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
    ) -> None:
        self.sessions = sessions
        self.region = region
        # The event trail is written behind, many calls' events in one transaction: a call
        # makes a dozen events and one transaction each cost more CPU than the call itself.
        # Anything that updates the call row flushes first, so the trail's order holds.
        self.write_behind_seconds = write_behind_seconds
        self._pending: list[dict[str, Any]] = []
        # Live calls' latest state (core.livestate), written behind with the events: a
        # restarted process adopts the call from it. None clears it.
        self._states: dict[str, dict[str, Any] | None] = {}
        self._flusher: asyncio.Task[None] | None = None
        self._flush_lock = asyncio.Lock()

    async def find_client(self, session: AsyncSession, e164: str | None) -> list[Client]:
        if not e164:
            return []
        rows = await session.scalars(
            select(Client)
            .join(ClientPhone, ClientPhone.client_id == Client.id)
            .where(ClientPhone.number == e164)
            .order_by(Client.id)
        )
        return list(rows.unique())

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
    ) -> OpenedCall:
        """Open the call's record (once per channel). The client is ``client_id`` when the
        caller knows it (a campaign calling a client), else looked up by the caller's number."""
        e164 = normalise(caller_number, self.region)
        async with self.sessions() as session:
            existing = await session.scalar(select(Call).where(Call.channel_id == channel_id))
            if existing is not None:
                return await self._opened(session, existing, e164, new=False)
            clients = [] if client_id is not None else await self.find_client(session, e164)
            call = Call(
                channel_id=channel_id,
                linkedid=clean_text(linkedid, 64),
                direction=direction,
                handler=handler,
                caller_number=clean_text(caller_number, 64),
                caller_name=clean_text(caller_name),
                called_number=clean_text(called_number, 64),
                client_id=client_id if client_id is not None else _first_id(clients),
                started_at=started_at,
                ivr_path=[],
                flow_version=flow_version,
                survey_id=survey_id,
            )
            session.add(call)
            try:
                await session.flush()
                session.add(
                    CallEvent(
                        call_id=call.id,
                        at=started_at,
                        kind="opened",
                        data={
                            "handler": handler,
                            "caller_e164": e164,
                            "client_ids": [c.id for c in clients],
                        },
                    )
                )
                await session.commit()
            except IntegrityError:
                # The same channel opened concurrently (a duplicated event): use that row.
                await session.rollback()
                existing = await session.scalar(select(Call).where(Call.channel_id == channel_id))
                if existing is None:
                    raise
                return await self._opened(session, existing, e164, new=False)
            return OpenedCall(
                call.id, call.client_id, e164, new=True, client=clients[0] if clients else None
            )

    async def _opened(
        self, session: AsyncSession, call: Call, e164: str | None, *, new: bool
    ) -> OpenedCall:
        client = None if call.client_id is None else await session.get(Client, call.client_id)
        return OpenedCall(call.id, call.client_id, e164, new, client)

    async def event(self, call_id: str, kind: str, at: datetime | None = None, **data: Any) -> None:
        self._pending.append({"call_id": call_id, "at": at or now(), "kind": kind, "data": data})
        if self._flusher is None or self._flusher.done():
            self._flusher = asyncio.create_task(self._flush_soon())

    def set_state(self, call_id: str, state: dict[str, Any] | None) -> None:
        """Keep where the live call is (written behind: the latest state wins)."""
        self._states[call_id] = state
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
        async with self._flush_lock:
            if not self._pending and not self._states:
                return
            batch, self._pending = self._pending, []
            states, self._states = self._states, {}
            async with self.sessions() as session:
                if batch:
                    await session.execute(insert(CallEvent), batch)
                if states:
                    calls = cast(Table, Call.__table__)
                    # Only a live row: a closed call's state stays cleared.
                    await session.execute(
                        update(calls)
                        .where(calls.c.id == bindparam("state_call"), calls.c.ended_at.is_(None))
                        .values(live_state=bindparam("state")),
                        [{"state_call": k, "state": v} for k, v in states.items()],
                    )
                await session.commit()

    async def aclose(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
        await self.flush()

    async def answered(self, call_id: str, at: datetime) -> None:
        await self.flush()
        async with self.sessions() as session:
            await session.execute(
                update(Call)
                .where(Call.id == call_id, Call.answered_at.is_(None))
                .values(answered_at=at)
            )
            session.add(CallEvent(call_id=call_id, at=at, kind="answered", data={}))
            await session.commit()

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
        was closed already."""
        if "ivr_path" in values:
            values["ivr_path"] = recorded_path(values["ivr_path"])
        await self.flush()
        async with self.sessions() as session:
            result = await session.execute(
                update(Call)
                .where(Call.id == call_id, Call.ended_at.is_(None))
                .values(
                    ended_at=at,
                    hangup_cause=cause,
                    hangup_cause_text=clean_text(cause_text, 80),
                    outcome=outcome,
                    live_state=None,
                    **values,
                )
            )
            closed = bool(getattr(result, "rowcount", 0))
            if closed:
                session.add(
                    CallEvent(
                        call_id=call_id,
                        at=at,
                        kind="closed",
                        data={"cause": cause, "cause_text": cause_text, "outcome": outcome},
                    )
                )
            await session.commit()
            return closed

    async def state(self, call_id: str) -> CallState | None:
        """How far a call got, as stored (for a call that ended while we were away)."""
        await self.flush()
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

    async def live_calls(self, handler: str) -> list[LiveRow]:
        """Calls not yet closed, with what a restarted app needs to adopt them."""
        await self.flush()
        async with self.sessions() as session:
            rows = await session.scalars(
                select(Call).where(Call.handler == handler, Call.ended_at.is_(None))
            )
            return [
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

    async def open_calls(self, handler: str) -> list[tuple[str, str]]:
        """(call id, channel id) of calls not yet closed: what a restarted app must adopt."""
        async with self.sessions() as session:
            rows = await session.execute(
                select(Call.id, Call.channel_id).where(
                    Call.handler == handler, Call.ended_at.is_(None)
                )
            )
            return [(r[0], r[1]) for r in rows]
