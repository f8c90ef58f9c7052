"""Callback tasks: the one place a callback is created, whoever asks for it (the info line's
caller in the IVR or the queue, a detractor's survey follow-up, an agent's disposition or
scheduled callback). Each caller adds it inside its own transaction, with the event that
tells the call's trail why."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from models.tables import Callback, CallbackStatus, CallEvent


def add_callback(
    session: AsyncSession,
    *,
    call_id: str | None,
    client_id: int | None,
    number: str,
    reason: str,
    queue: str | None,
    assigned_agent_id: str | None,
    due_at: datetime,
    event: str | None = None,
    event_data: dict[str, Any] | None = None,
    at: datetime | None = None,
) -> Callback:
    """An open callback task, added to ``session`` (the caller commits); with ``event``, the
    call's trail gets that event at ``at`` with ``event_data``."""
    callback = Callback(
        call_id=call_id,
        client_id=client_id,
        number=number,
        reason=reason,
        queue=queue,
        assigned_agent_id=assigned_agent_id,
        due_at=due_at,
        status=CallbackStatus.OPEN,
    )
    session.add(callback)
    if event is not None and call_id is not None:
        session.add(
            CallEvent(
                call_id=call_id,
                at=at or datetime.now(due_at.tzinfo),
                kind=event,
                data=event_data or {},
            )
        )
    return callback
