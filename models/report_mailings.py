"""The morning reports' e-mails log (``ReportMailing``, one row per local day): the newest day
mailed, claiming a day to send (one instance at a time: the day is the key, a stale claim is
taken over), and what became of the sending. The rules (when, how often again) are
``core.report_mail``'s. Imports models.tables and core."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.report_mail import CLAIM_LEASE
from models.tables import ReportMailing

Sessions = async_sessionmaker[AsyncSession]


async def newest_day(sessions: Sessions) -> date | None:
    """The newest day with a sending, whatever became of it."""
    async with sessions() as session:
        found: date | None = await session.scalar(select(func.max(ReportMailing.day)))
        return found


async def to_retry(sessions: Sessions, now: datetime) -> list[date]:
    """Days whose failed sending is due again, or whose claim's `serve` died, oldest first."""
    async with sessions() as session:
        days = await session.scalars(
            select(ReportMailing.day)
            .where(
                or_(
                    (ReportMailing.state == "failed") & (ReportMailing.next_attempt_at <= now),
                    (ReportMailing.state == "sending")
                    & (ReportMailing.claimed_at < now - CLAIM_LEASE),
                )
            )
            .order_by(ReportMailing.day)
        )
        return list(days)


async def _insert(sessions: Sessions, row: ReportMailing) -> bool:
    """Whether ``row`` was inserted (False: its day has one). Writes first and reads nothing,
    so two instances on SQLite queue on its lock instead of failing on a stale snapshot."""
    try:
        async with sessions() as session, session.begin():
            session.add(row)
        return True
    except IntegrityError:
        return False


async def claim(sessions: Sessions, day: date, now: datetime, recipients: str) -> int | None:
    """``day`` claimed for sending by this instance: its attempt's number; None when it is
    sent, given up, not due again yet, or being sent by another instance. One conditional
    write: of two instances at once, the second finds the row no longer claimable."""
    fresh = ReportMailing(
        day=day, state="sending", attempts=1, claimed_at=now, recipients=recipients
    )
    if await _insert(sessions, fresh):
        return 1
    claimable = (ReportMailing.day == day) & or_(
        (ReportMailing.state == "failed")
        & (ReportMailing.next_attempt_at.is_(None) | (ReportMailing.next_attempt_at <= now)),
        (ReportMailing.state == "sending")
        & (ReportMailing.claimed_at.is_(None) | (ReportMailing.claimed_at < now - CLAIM_LEASE)),
    )
    async with sessions() as session, session.begin():
        attempt: int | None = await session.scalar(
            update(ReportMailing)
            .where(claimable)
            .values(
                state="sending",
                claimed_at=now,
                recipients=recipients,
                attempts=ReportMailing.attempts + 1,
            )
            .returning(ReportMailing.attempts)
        )
        return attempt


async def finish(
    sessions: Sessions,
    day: date,
    now: datetime,
    *,
    error: str | None = None,
    next_attempt_at: datetime | None = None,
) -> None:
    """The claimed sending's end: sent (``error`` None), failed to be tried again at
    ``next_attempt_at``, or given up (failed with no next attempt)."""
    if error is None:
        values: dict[str, object] = {
            "state": "sent",
            "sent_at": now,
            "last_error": None,
            "next_attempt_at": None,
        }
    else:
        values = {
            "state": "failed" if next_attempt_at is not None else "given_up",
            "last_error": error[:500],
            "next_attempt_at": next_attempt_at,
        }
    async with sessions() as session, session.begin():
        await session.execute(
            update(ReportMailing).where(ReportMailing.day == day).values(**values)
        )


async def record_sent(sessions: Sessions, day: date, now: datetime, recipients: str) -> None:
    """An operator's sending of ``day`` to the list (`centrala reports mail`): logged as sent,
    so the morning's does not mail it again."""
    sent = {"state": "sent", "sent_at": now, "recipients": recipients, "last_error": None}
    if await _insert(sessions, ReportMailing(day=day, attempts=1, **sent)):
        return
    async with sessions() as session, session.begin():
        await session.execute(
            update(ReportMailing)
            .where(ReportMailing.day == day)
            .values(**sent, next_attempt_at=None, attempts=ReportMailing.attempts + 1)
        )


async def mailing(sessions: Sessions, day: date) -> ReportMailing | None:
    async with sessions() as session:
        return await session.get(ReportMailing, day)
