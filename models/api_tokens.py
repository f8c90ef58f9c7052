"""Per-user API tokens kept in the database (``api_tokens``): make one (its secret is shown
once, only its hash stays), list them, revoke one, and resolve a presented token to its agent
and that agent's role now. Thin: the token's format and the checks on a new one are
core.api_tokens. Imports core and models.tables only."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.api_tokens import (
    MAX_LIVE_PER_AGENT,
    check_expiry,
    check_name,
    looks_like_token,
    new_token,
    token_hash,
)
from models.tables import Agent, ApiToken

# last_used_at/_from are written at most this often per token: a write per request would
# make every API call a database write.
TOUCH_EVERY = timedelta(seconds=60)
MAX_ADDRESS = 64


class UnknownAgent(LookupError):
    pass


class TooManyTokens(Exception):
    """The agent holds ``MAX_LIVE_PER_AGENT`` live tokens already: one must go first."""


@dataclass(frozen=True)
class Resolved:
    token_id: int
    agent_id: str
    role: str  # read from ``agents`` now, never stored with the token


@dataclass(frozen=True)
class Created:
    row: TokenRow
    token: str  # the secret: shown once, here


@dataclass(frozen=True)
class TokenRow:
    """A token as the lists show it: never its secret nor its hash."""

    id: int
    public_id: str
    agent_id: str
    name: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    last_used_from: str | None

    def state(self, now: datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"

    def to_json(self, now: datetime) -> dict[str, Any]:
        def at(value: datetime | None) -> str | None:
            return None if value is None else value.isoformat()

        return {
            "id": self.id,
            "prefix": f"ctk_{self.public_id}",
            "agent_id": self.agent_id,
            "name": self.name,
            "state": self.state(now),
            "created_at": at(self.created_at),
            "created_by": self.created_by,
            "expires_at": at(self.expires_at),
            "revoked_at": at(self.revoked_at),
            "last_used_at": at(self.last_used_at),
            "last_used_from": self.last_used_from,
        }


def _row(token: ApiToken) -> TokenRow:
    return TokenRow(
        id=token.id,
        public_id=token.public_id,
        agent_id=token.agent_id,
        name=token.name,
        created_at=token.created_at,
        created_by=token.created_by,
        expires_at=token.expires_at,
        revoked_at=token.revoked_at,
        last_used_at=token.last_used_at,
        last_used_from=token.last_used_from,
    )


def _live(now: datetime) -> Any:
    return ApiToken.revoked_at.is_(None) & (
        ApiToken.expires_at.is_(None) | (ApiToken.expires_at > now)
    )


class ApiTokenStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions

    async def create(
        self,
        agent_id: str,
        name: object,
        expires_days: object,
        created_by: str,
        now: datetime,
    ) -> Created:
        """A new token for ``agent_id``. Raises TokenRequestError for a bad name or lifetime,
        TooManyTokens, or UnknownAgent for an agent not on file."""
        clean_name = check_name(name)
        expires_at = check_expiry(expires_days, now)
        made = new_token()
        async with self.sessions() as session, session.begin():
            # The row lock keeps two concurrent creates from both passing the count.
            agent = await session.get(Agent, agent_id, with_for_update=True)
            if agent is None:
                raise UnknownAgent(agent_id)
            live = await session.scalar(
                select(func.count())
                .select_from(ApiToken)
                .where(ApiToken.agent_id == agent_id, _live(now))
            )
            if (live or 0) >= MAX_LIVE_PER_AGENT:
                raise TooManyTokens(
                    f"{agent_id} holds {MAX_LIVE_PER_AGENT} live tokens already: revoke one"
                )
            token = ApiToken(
                public_id=made.public_id,
                token_hash=made.token_hash,
                agent_id=agent_id,
                name=clean_name,
                created_at=now,
                created_by=created_by[:64],
                expires_at=expires_at,
            )
            session.add(token)
            await session.flush()
            row = _row(token)
        return Created(row, made.token)

    async def list(self, agent_id: str | None = None) -> list[TokenRow]:
        """Every token (of ``agent_id``), the newest first."""
        query = select(ApiToken).order_by(ApiToken.created_at.desc(), ApiToken.id.desc())
        if agent_id is not None:
            query = query.where(ApiToken.agent_id == agent_id)
        async with self.sessions() as session:
            return [_row(t) for t in await session.scalars(query)]

    async def get(self, token_id: int) -> TokenRow | None:
        async with self.sessions() as session:
            token = await session.get(ApiToken, token_id)
            return None if token is None else _row(token)

    async def revoke(self, token_id: int, now: datetime) -> TokenRow | None:
        """Revoke it (idempotent: a revoked token keeps its first revocation time); None when
        there is no such token."""
        async with self.sessions() as session, session.begin():
            await session.execute(
                update(ApiToken)
                .where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
                .values(revoked_at=now)
            )
            token = await session.get(ApiToken, token_id, populate_existing=True)
            return None if token is None else _row(token)

    async def resolve(self, token: str, now: datetime, address: str | None) -> Resolved | None:
        """Whose ``token`` is, with their role now; None when it is unknown, revoked, expired
        or its agent inactive. Notes when and from where it was used, at most once a
        ``TOUCH_EVERY`` per token."""
        if not looks_like_token(token):
            return None
        async with self.sessions() as session:
            row = (
                await session.execute(
                    select(ApiToken, Agent.role)
                    .join(Agent, Agent.id == ApiToken.agent_id)
                    .where(
                        ApiToken.token_hash == token_hash(token),
                        _live(now),
                        Agent.active.is_(True),
                    )
                )
            ).first()
            if row is None:
                return None
            api_token, role = row
            if api_token.last_used_at is None or now - api_token.last_used_at >= TOUCH_EVERY:
                api_token.last_used_at = now
                api_token.last_used_from = (address or "?")[:MAX_ADDRESS]
                await session.commit()
            return Resolved(api_token.id, api_token.agent_id, str(role))
