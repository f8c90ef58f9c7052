"""What every Stasis app does with a call's event, in one place: find the channel it is about,
and run the app's step for it with the call's ids on every log line, so that a channel gone
meanwhile ends the step quietly and any other failure hangs the caller up cleanly instead of
leaving them in silence. The info line and the dialler both dispatch through it."""

from __future__ import annotations

import contextlib
from collections.abc import Awaitable

import structlog

from ari_app.ari import ARIClient, ARIError, ARINotFound, Event, event_key

log = structlog.get_logger(__name__)


def event_channel(event: Event) -> str:
    """The channel an event is about: its channel, the peer dialled, or the target of its
    playback or recording ("" for a bridge's or the app's own events). The same key the ARI
    client orders the event by, so a call's events reach it one at a time."""
    key = event_key(event)
    return key.removeprefix("channel:") if key.startswith("channel:") else ""


async def run_call_step(
    ari: ARIClient,
    step: Awaitable[None],
    *,
    call_id: str,
    channel_id: str,
    event_type: str,
    failure: str = "call_handling_failed",
) -> bool:
    """Run one step of a call; False when it failed (the caller is then hung up)."""
    structlog.contextvars.bind_contextvars(call_id=call_id, channel_id=channel_id)
    try:
        await step
    except ARINotFound:
        log.info("channel_gone", event_type=event_type)
    except Exception:
        log.exception(failure, event_type=event_type)
        # Never leave a caller in silence: hang up cleanly, the record closes.
        with contextlib.suppress(ARIError):
            await ari.hangup(channel_id)
        return False
    return True
