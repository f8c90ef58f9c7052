"""What a manual outbound call reads and writes beside its call row: the number on a
client's record, a callback task being dialled (marked attempted, or done once answered), the
client a dialled number belongs to, and the do-not-call list."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.tables import Callback, CallbackStatus, CallEvent, ClientPhone, DoNotCall


@dataclass(frozen=True)
class CallbackTask:
    id: int
    number: str
    client_id: int | None
    queue: str | None
    status: CallbackStatus


class OutboundStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def client_number(self, client_id: int) -> str | None:
        """The client's first phone on record (None: no such client, or no phone)."""
        async with self.sessions() as session:
            return await session.scalar(
                select(ClientPhone.number)
                .where(ClientPhone.client_id == client_id)
                .order_by(ClientPhone.id)
                .limit(1)
            )

    async def client_of(self, number: str) -> int | None:
        """The client whose record holds ``number`` (E.164); the oldest when several do."""
        async with self.sessions() as session:
            return await session.scalar(
                select(ClientPhone.client_id)
                .where(ClientPhone.number == number)
                .order_by(ClientPhone.client_id)
                .limit(1)
            )

    async def callback(self, callback_id: int) -> CallbackTask | None:
        async with self.sessions() as session:
            row = await session.get(Callback, callback_id)
            if row is None:
                return None
            return CallbackTask(row.id, row.number, row.client_id, row.queue, row.status)

    async def callback_dialled(
        self, callback_id: int, call_id: str, *, reached: bool, at: datetime
    ) -> None:
        """One more attempt at the task, with this call; done when the client was reached
        (an open task stays open otherwise, for the next attempt)."""
        async with self.sessions() as session, session.begin():
            row = await session.get(Callback, callback_id, with_for_update=True)
            if row is None:
                return
            row.attempts += 1
            if reached and row.status is CallbackStatus.OPEN:
                row.status = CallbackStatus.DONE
            session.add(
                CallEvent(
                    call_id=call_id,
                    at=at,
                    kind="callback_dialled",
                    data={"callback_id": callback_id, "reached": reached},
                )
            )

    async def do_not_call(self) -> dict[str, datetime | None]:
        async with self.sessions() as session:
            rows = await session.execute(select(DoNotCall.number, DoNotCall.expires_at))
            return {number: expires for number, expires in rows}
