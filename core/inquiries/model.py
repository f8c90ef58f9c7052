"""The names of written inquiries, the states' machine and escalation."""

from __future__ import annotations

import enum
from collections.abc import Collection, Mapping
from dataclasses import dataclass

from core.errors import DomainError


class InquiryKind(enum.StrEnum):
    """The kinds the job descriptions name; an agent may change the one classification gave."""

    COMPLAINT = "complaint"
    DONATION_REQUEST = "donation_request"
    CREDIT_APPLICATION = "credit_application"
    GENERAL_QUESTION = "general_question"
    CHANGE_OF_DATA = "change_of_data"


class InquiryState(enum.StrEnum):
    NEW = "new"  # arrived, nobody has taken it
    OPEN = "open"  # an agent works on it
    WAITING = "waiting"  # answered, waiting for the client: the SLA clock stops
    CLOSED = "closed"


class InquiryChannel(enum.StrEnum):
    EMAIL = "email"
    WEB_FORM = "web_form"
    FACEBOOK = "facebook"
    INSTAGRAM = "instagram"


class MessageDirection(enum.StrEnum):
    IN = "in"  # from the client
    OUT = "out"  # to the client, by the channel the inquiry came in
    NOTE = "note"  # internal, never sent


class InquiryEvent(enum.StrEnum):
    ASSIGN = "assign"  # an agent takes it (or the ACD gives it)
    CLIENT_MESSAGE = "client_message"  # the client wrote (again)
    REPLY = "reply"  # an agent answered the client
    WAIT = "wait"  # an agent marks it waiting for the client without a written answer
    CLOSE = "close"
    REOPEN = "reopen"  # an agent reopens a closed inquiry


class InquiryError(DomainError):
    def __init__(self, error_id: str, message: str, status: int = 409, **details: object) -> None:
        super().__init__(message, error_id=error_id, status=status, details=dict(details))


_S, _E = InquiryState, InquiryEvent
# The allowed moves; anything else is refused (409) rather than ignored, so a desk acting on
# a stale view learns it. A note changes no state and is not an event here.
NEXT: Mapping[tuple[InquiryState, InquiryEvent], InquiryState] = {
    (_S.NEW, _E.ASSIGN): _S.OPEN,
    (_S.OPEN, _E.ASSIGN): _S.OPEN,  # reassigned
    (_S.WAITING, _E.ASSIGN): _S.WAITING,  # a new owner, still waiting for the client
    (_S.NEW, _E.CLIENT_MESSAGE): _S.NEW,
    (_S.OPEN, _E.CLIENT_MESSAGE): _S.OPEN,
    (_S.WAITING, _E.CLIENT_MESSAGE): _S.OPEN,  # the client answered: the clock runs again
    # A client writing into a closed thread reopens it: their answer must not be lost in a
    # closed inquiry nobody looks at.
    (_S.CLOSED, _E.CLIENT_MESSAGE): _S.OPEN,
    (_S.NEW, _E.REPLY): _S.WAITING,
    (_S.OPEN, _E.REPLY): _S.WAITING,
    (_S.WAITING, _E.REPLY): _S.WAITING,  # a second answer before the client's
    (_S.OPEN, _E.WAIT): _S.WAITING,
    (_S.NEW, _E.CLOSE): _S.CLOSED,  # spam, a duplicate
    (_S.OPEN, _E.CLOSE): _S.CLOSED,
    (_S.WAITING, _E.CLOSE): _S.CLOSED,
    (_S.CLOSED, _E.REOPEN): _S.OPEN,
}


def transition(state: InquiryState, event: InquiryEvent) -> InquiryState:
    """The state after ``event``; ``InquiryError("inquiry_state")`` when it is not allowed
    (replying to a closed inquiry, closing it twice)."""
    try:
        return NEXT[(state, event)]
    except KeyError:
        raise InquiryError(
            "inquiry_state",
            f"an inquiry that is {state} cannot {event}",
            state=str(state),
            event=str(event),
        ) from None


# ---- escalation --------------------------------------------------------------------------

# The kinds the supervisor must see at once (seed 000 item 4).
ESCALATED_KINDS = frozenset(
    {InquiryKind.COMPLAINT, InquiryKind.DONATION_REQUEST, InquiryKind.CREDIT_APPLICATION}
)


class EscalationLevel(enum.StrEnum):
    SUPERVISOR = "supervisor"
    MANAGER = "manager"  # the client's responsible manager


@dataclass(frozen=True)
class EscalationStep:
    level: EscalationLevel
    to: str  # the user (login) to notify: a notice on their desk and an e-mail


def escalation(
    kind: InquiryKind,
    *,
    supervisor: str | None,
    manager: str | None = None,
    breached: bool = False,
    done: Collection[EscalationLevel] = (),
) -> tuple[EscalationStep, ...]:
    """Whom to notify, in order, leaving out the levels already ``done`` (the record of
    escalations), so running it again after a restart notifies nobody twice.

    The escalated kinds go to the supervisor first, then to the client's responsible manager
    when the client has one. Any other kind escalates only when its SLA is ``breached``, and
    then only to the supervisor: a late general question is the call centre's business, not
    the manager's. No supervisor configured: straight to the manager (never silently
    nobody, when somebody exists)."""
    if kind not in ESCALATED_KINDS and not breached:
        return ()
    steps: list[EscalationStep] = []
    if supervisor:
        steps.append(EscalationStep(EscalationLevel.SUPERVISOR, supervisor))
    if manager and (kind in ESCALATED_KINDS or not supervisor):
        steps.append(EscalationStep(EscalationLevel.MANAGER, manager))
    return tuple(s for s in steps if s.level not in done)
