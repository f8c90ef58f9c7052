"""The desk's web state (``DeskWeb``) for a test's small aiohttp app: the store, the
session cookie and the session rows on the test's database, and none of the live parts (ACD,
agents' phones, the info line), which such routes do not reach."""

from __future__ import annotations

from datetime import timedelta
from typing import Any, cast

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from models.web_sessions import WebSessionStore
from web.auth import Sessions
from web.http import DeskWeb
from web.store import DeskStore


def offline_desk_web(db: async_sessionmaker[AsyncSession], secret: str) -> DeskWeb:
    return DeskWeb(
        store=DeskStore(db),
        sessions=Sessions(secret, 3600),
        notifier=cast(Any, None),
        acd=cast(Any, None),
        desk=cast(Any, None),
        infoline=cast(Any, None),
        region="BA",
        disposition_required=True,
        web_sessions=WebSessionStore(db, timedelta(hours=1)),
    )
