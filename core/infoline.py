"""The info line's decisions between the IVR's actions, pure: which keys a call takes, where a
caller goes when their queue is closed or they would rather be called back, and the callback
task a request makes (the number to call, when, why, for whom).

The Stasis adapter (``ari_app.infoline``) carries these out on live calls and the call
simulator (``core.simulation``) on imagined ones, so a simulated call takes the turns a real
one takes. May import the standard library, ``core`` and ``dialplan`` (like the rest of
``core``).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from core.ivr import RequestCallback
from core.phones import normalise
from core.routing import Caller, queue_calendar
from dialplan.hours import next_open
from dialplan.model import Flow, QueueDef

# The keys a caller's phone sends (RFC 4733 events 0-15); anything else on the wire is noise.
DTMF_KEYS = "0123456789*#ABCD"


def is_dtmf(digit: str) -> bool:
    return len(digit) == 1 and digit in DTMF_KEYS


@dataclass(frozen=True)
class CallbackOffer:
    """The caller is offered a callback: the IVR goes to ``node`` (the flow's callback node)
    after ``preamble`` plays; ``node`` None means the flow has none, so the call is hung up."""

    node: str | None
    preamble: tuple[str, ...] = ()


def after_hours_offer(flow: Flow) -> CallbackOffer:
    """The caller's queue is closed: "we are closed" (the flow's after-hours prompt), then the
    callback offer."""
    preamble = (flow.after_hours_prompt,) if flow.after_hours_prompt else ()
    return CallbackOffer(flow.after_hours_callback, preamble)


def callback_offer(flow: Flow) -> CallbackOffer:
    """The offer without a preamble: the caller left the queue with its callback key, or its
    maximum wait passed with nowhere to overflow."""
    return CallbackOffer(flow.after_hours_callback)


def leaves_queue_for_callback(flow: Flow, digit: str) -> bool:
    """A key pressed while waiting in a queue: the flow's callback key leaves the queue for a
    callback; any other key is ignored there."""
    return flow.queue_key_for_callback is not None and digit == flow.queue_key_for_callback


@dataclass(frozen=True)
class CallbackTask:
    """What a callback request writes (``models.callbacks``): call ``number`` from ``due_at``
    on, for ``reason`` (the call's outcome so far), in ``queue``, the client's own manager
    first."""

    number: str
    queue: str
    due_at: datetime
    reason: str
    assigned_agent_id: str | None


def callback_task(
    request: RequestCallback,
    *,
    flow: Flow,
    queues: dict[str, QueueDef],
    caller: Caller,
    caller_e164: str | None,
    caller_number: str | None,
    region: str,
    outcome: str | None,
    at: datetime,
) -> CallbackTask:
    """The task a callback request makes at ``at``: the number keyed (normalised; one that
    cannot be a number falls back to the caller's own), due when the queue next opens (now
    when it is open, or never opens within a year), for the outcome the call has so far
    (``callback_requested`` when nothing else happened)."""
    number = normalise(request.number, region) if request.number else None
    number = number or caller_e164 or (caller_number or "")
    calendar = queue_calendar(flow.calendars, queues.get(request.queue))
    due = next_open(calendar, at) or at
    return CallbackTask(
        number=number,
        queue=request.queue,
        due_at=due,
        reason=outcome or "callback_requested",
        assigned_agent_id=caller.assigned_manager,
    )
