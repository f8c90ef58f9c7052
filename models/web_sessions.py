"""Desktop log-ins kept in the database (``web_sessions``), so they can be ended from the
server side: a log-out, a password change, a demotion or a deactivation holds at once for
every open browser, and a restart of `serve` forgets none of them."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from sqlalchemy import Select, delete, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.tables import Agent, AgentRole, DeskLanguage, WebSession

# last_seen_at is written at most this often per session: a write per request would make
# every desk click a database write.
TOUCH_EVERY = timedelta(seconds=60)


@dataclass(frozen=True)
class LiveSession:
    id: str
    agent_id: str
    role: str  # read from ``agents`` now, never from the cookie
    language: str = DeskLanguage.BS.value  # of the agent's pages, read with the role


# While the database is away a session it confirmed this long before the outage began still
# counts, for the whole outage, so agents keep their desks (the calls go on from memory).
OUTAGE_GRACE = timedelta(minutes=15)
UNREACHABLE = (DBAPIError, OSError, TimeoutError)
MAX_KEPT = 10_000


class RevocationWriter(Protocol):
    """The call log's ordered writes: a log-out during an outage is journaled and reaches
    the database when it is back, so the cookie stays dead after a restart."""

    def register(self, kind: str, applier: Any) -> None: ...
    async def write(self, ops: list[dict[str, Any]]) -> Any: ...


class WebSessionStore:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        max_age: timedelta,
        writer: RevocationWriter | None = None,
    ) -> None:
        self.sessions = sessions
        self.max_age = max_age
        # Each session's last answer from the database, for an outage; a log-out here
        # removes it at once, even when the database cannot be told.
        self._confirmed: dict[str, tuple[LiveSession, datetime]] = {}
        # Logged out here: refused from now on, whatever the database still says (its
        # revocation may be in the journal until the database is back).
        self._revoked: dict[str, None] = {}
        self._away_since: datetime | None = None
        self.writer = writer
        if writer is not None:
            writer.register("web_session_revoke", apply_revoke)

    async def open(self, agent_id: str, now: datetime) -> str:
        session_id = secrets.token_urlsafe(32)
        async with self.sessions() as session, session.begin():
            session.add(
                WebSession(id=session_id, agent_id=agent_id, created_at=now, last_seen_at=now)
            )
        return session_id

    def _live_query(self, now: datetime) -> Select[WebSession, AgentRole, DeskLanguage]:
        return (
            select(WebSession, Agent.role, Agent.language)
            .join(Agent, Agent.id == WebSession.agent_id)
            .where(
                WebSession.revoked_at.is_(None),
                WebSession.created_at > now - self.max_age,
                Agent.active.is_(True),
            )
        )

    async def live(self, session_id: str, now: datetime) -> LiveSession | None:
        """The session if it is still live (not revoked, not expired, its agent active).
        With the database unreachable: the database's last answer of the past
        ``OUTAGE_GRACE``, else the error goes on."""
        if not 0 < len(session_id) <= 64 or session_id in self._revoked:
            return None
        try:
            live = await self._live(session_id, now)
        except UNREACHABLE:
            if self._away_since is None:
                self._away_since = now
            confirmed = self._confirmed.get(session_id)
            if confirmed is None or self._away_since - confirmed[1] > OUTAGE_GRACE:
                raise
            return confirmed[0]
        self._away_since = None
        if live is None:
            self._confirmed.pop(session_id, None)
        else:
            if len(self._confirmed) >= MAX_KEPT:  # bounded: the oldest answer goes
                del self._confirmed[next(iter(self._confirmed))]
            self._confirmed.pop(session_id, None)
            self._confirmed[session_id] = (live, now)
        return live

    async def _live(self, session_id: str, now: datetime) -> LiveSession | None:
        async with self.sessions() as session:
            row = (
                await session.execute(self._live_query(now).where(WebSession.id == session_id))
            ).first()
            if row is None:
                return None
            web_session, role, language = row
            if now - web_session.last_seen_at >= TOUCH_EVERY:
                web_session.last_seen_at = now
                await session.commit()
            return LiveSession(web_session.id, web_session.agent_id, str(role), str(language))

    async def live_roles(self, session_ids: Iterable[str], now: datetime) -> dict[str, str]:
        """Of ``session_ids``, the live ones and their agents' roles now."""
        ids = list(set(session_ids))
        if not ids:
            return {}
        async with self.sessions() as session:
            rows = await session.execute(self._live_query(now).where(WebSession.id.in_(ids)))
            return {web_session.id: str(role) for web_session, role, _language in rows}

    async def revoke(self, session_id: str, now: datetime) -> None:
        self._confirmed.pop(session_id, None)
        if len(self._revoked) >= MAX_KEPT:
            del self._revoked[next(iter(self._revoked))]
        self._revoked[session_id] = None
        op = {"op": "web_session_revoke", "id": session_id, "at": now}
        if self.writer is not None:
            await self.writer.write([op])
            return
        async with self.sessions() as session, session.begin():
            await apply_revoke(session, op, False)

    async def purge(self, now: datetime) -> int:
        """Forget sessions past their lifetime (revoked or not: their cookies are refused by
        age anyway), so the table holds the live ones and not every log-in ever made."""
        async with self.sessions() as session, session.begin():
            result = await session.execute(
                delete(WebSession).where(WebSession.created_at <= now - self.max_age)
            )
        return int(getattr(result, "rowcount", 0) or 0)


async def apply_revoke(session: AsyncSession, op: dict[str, Any], replay: bool) -> None:
    """A log-out (idempotent: a revoked session keeps its first revocation time)."""
    await session.execute(
        update(WebSession)
        .where(WebSession.id == op["id"], WebSession.revoked_at.is_(None))
        .values(revoked_at=op["at"])
    )


async def revoke_agent_sessions(session: AsyncSession, agent_id: str, now: datetime) -> None:
    """Every live log-in of ``agent_id`` ends (a password change): in the caller's transaction,
    so the new password and the revocation land together."""
    await session.execute(
        update(WebSession)
        .where(WebSession.agent_id == agent_id, WebSession.revoked_at.is_(None))
        .values(revoked_at=now)
    )
