"""The desk's news about one agent is handled in the order it came (an "offered" screen pop
that finished after "connected" left the desk showing an incoming call the agent was already
on), while other agents' news is not held up."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Any, cast

from core.acd import ACD
from tests.support import wait_until
from web.notifier import Notifier
from web.ports import AgentCommands
from web.store import DeskStore


@dataclass(frozen=True)
class News:
    kind: str
    call_id: str
    agent_id: str
    at: float = 0.0
    facts: dict[str, object] | None = None  # web.ports.DeskNotice has them


async def test_an_agents_news_is_handled_in_order_and_others_are_not_held_up() -> None:
    notifier = Notifier(
        cast(DeskStore, None), ACD(), cast(AgentCommands, None), disposition_required=False
    )
    release = asyncio.Event()
    handled: list[tuple[str, str]] = []

    async def handle(news: Any) -> None:
        if news.kind == "offered":
            await release.wait()  # its rows are slow to read
        handled.append((news.agent_id, news.kind))

    notifier._handle = handle  # type: ignore[method-assign]
    notifier.on_notice(News("offered", "c1", "anna"))
    notifier.on_notice(News("connected", "c1", "anna"))
    notifier.on_notice(News("connected", "c2", "ben"))
    await wait_until(lambda: ("ben", "connected") in handled, timeout=5)
    assert handled == [("ben", "connected")]  # anna's connected waits for her offered
    release.set()
    await wait_until(lambda: len(handled) == 3, timeout=5)
    assert handled == [("ben", "connected"), ("anna", "offered"), ("anna", "connected")]
    await wait_until(lambda: not notifier._last, timeout=5)  # nothing kept once handled
