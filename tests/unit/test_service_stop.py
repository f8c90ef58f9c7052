"""A stopping `serve` stops its loops even when one swallows a cancel (Python 3.11's
``asyncio.wait_for`` in a library may), and says where its tasks wait when a stop is slow."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from centrala import service


async def test_a_loop_that_swallows_its_first_cancel_is_stopped(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(service, "CANCEL_AGAIN_SECONDS", 0.05)
    started = asyncio.Event()
    cancels = 0

    async def stubborn() -> None:
        nonlocal cancels
        started.set()
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                cancels += 1
                if cancels > 1:
                    raise
                # swallowed, as wait_for does when its awaitable has just finished

    task = asyncio.create_task(stubborn())
    await started.wait()
    await service.stopped(task)
    assert task.cancelled() and cancels == 2


async def test_a_failed_loop_still_says_why() -> None:
    async def failing() -> None:
        raise ValueError("broken")

    task = asyncio.create_task(failing())
    with contextlib.suppress(ValueError):
        await asyncio.shield(task)
    with pytest.raises(ValueError, match="broken"):
        await service.stopped(task)


async def test_where_a_task_waits_is_its_whole_chain() -> None:
    event, waiting = asyncio.Event(), asyncio.Event()

    async def inner() -> None:
        waiting.set()
        await event.wait()

    async def outer() -> None:
        await inner()

    task = asyncio.create_task(outer())
    await waiting.wait()  # the task is at its event's wait once this returns
    names = [where.rsplit(" ", 1)[1] for where in service._awaiting(task.get_coro())]
    assert names[:3] == ["outer", "inner", "wait"]
    event.set()
    await task
