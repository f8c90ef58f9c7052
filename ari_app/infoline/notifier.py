"""News for the agent desktop about a call (offered, connected, ended, missed); a desktop's
problem never disturbs the call."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import structlog

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class DeskNotice:
    """A call was offered to an agent (their phone rings, or the caller is bridged into their
    nailed leg), connected, or left them. ``at`` is wall-clock time, so a browser's render
    time can be measured against it. ``facts``: what the screen-pop shows of the call that
    may not be written yet (its queue, IVR path and intent: written behind), so the desk
    need not wait for the call's trail to be written before it shows the call."""

    kind: str  # "offered" | "connected" | "ended" | "missed"
    call_id: str
    agent_id: str
    at: float
    facts: Mapping[str, Any] | None = None


@dataclass(frozen=True)
class QueueLeft:
    """A caller's wait in a queue ended: an agent answered, or the caller hung up first
    (abandoned). For the operators' metrics: no caller or call id, the queue only."""

    queue: str
    waited: float  # seconds since the caller first queued (an overflow keeps that time)
    answered: bool
    threshold: float | None  # the queue's maximum wait
    service_level: float | None = None  # the queue's service-level seconds (answered in time)


class DeskNotifier:
    def __init__(self) -> None:
        self.listeners: list[Callable[[DeskNotice], None]] = []

    def notify(
        self,
        kind: str,
        call_id: str,
        agent_id: str | None,
        facts: Mapping[str, Any] | None = None,
    ) -> None:
        if agent_id is None:
            return
        notice = DeskNotice(kind, call_id, agent_id, time.time(), facts)
        for listener in self.listeners:
            try:
                listener(notice)
            except Exception:  # a desktop problem must never disturb the call
                log.exception("desk_listener_failed")
