"""What the notices report reads (``core.notice_report``): the messages created in
[since, until) and the opt-outs recorded then, streamed in chunks of ``CHUNK`` rows by id.
Plain reads. Imports ``core`` and ``models``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.notice_report import NoticeFacts, OptOutFacts
from models.tables import ContactOptOut, Notice

Sessions = async_sessionmaker[AsyncSession]
CHUNK = 5000


async def notices(
    sessions: Sessions,
    since: datetime,
    until: datetime,
    kind: str | None = None,
    channel: str | None = None,
) -> AsyncIterator[NoticeFacts]:
    query = select(
        Notice.id,
        Notice.created_at,
        Notice.kind,
        Notice.channel,
        Notice.state,
        Notice.sent_at.is_not(None),
        Notice.fallback_of.is_not(None),
    ).where(Notice.created_at >= since, Notice.created_at < until)
    if kind is not None:
        query = query.where(Notice.kind == kind)
    if channel is not None:
        query = query.where(Notice.channel == channel)
    after = 0
    while True:
        async with sessions() as session:
            rows = list(
                await session.execute(
                    query.where(Notice.id > after).order_by(Notice.id).limit(CHUNK)
                )
            )
        for _, created_at, kind_, channel_, state, sent, fallback in rows:
            yield NoticeFacts(created_at, kind_, channel_, state, bool(sent), bool(fallback))
        if len(rows) < CHUNK:
            return
        after = rows[-1][0]


async def opt_outs(
    sessions: Sessions, since: datetime, until: datetime, channel: str | None = None
) -> list[OptOutFacts]:
    query = select(ContactOptOut.at, ContactOptOut.channel, ContactOptOut.source).where(
        ContactOptOut.at >= since, ContactOptOut.at < until
    )
    if channel is not None:
        query = query.where(ContactOptOut.channel == channel)
    async with sessions() as session:
        return [OptOutFacts(at, ch, source) for at, ch, source in await session.execute(query)]
