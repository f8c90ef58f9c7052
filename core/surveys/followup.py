"""Detractor follow-up: an unhappy respondent (NPS 0-6) gets a call from a person. Pure: the
adapter turns the ``CallbackTask`` into a ``callbacks`` row."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta

from core.surveys.campaign import ClientFacts
from core.surveys.interpreter import Answer
from core.surveys.model import NPSQuestion, Survey, YesNoQuestion
from core.surveys.nps import is_detractor
from dialplan.hours import next_open
from dialplan.model import Calendar

REASON = "nps_detractor"


@dataclass(frozen=True)
class CallbackTask:
    """A ``callbacks`` row to create: for the client's own manager when they have one (queue
    None), else for the campaign's queue. ``note`` (the score, the voice comment) goes into
    the client's history (``interactions``), where the manager reads it before calling."""

    client_id: int | None
    number: str
    reason: str
    assigned_agent_id: str | None
    queue: str | None
    due_at: datetime
    note: str


def permission_question(survey: Survey, name: str | None) -> str | None:
    """``name`` when the survey asks it as a yes/no ("may we call you back?"), else None."""
    if name is not None and isinstance(survey.questions.get(name), YesNoQuestion):
        return name
    return None


def follow_up_for(
    answers: Iterable[Answer],
    client: ClientFacts,
    *,
    survey: Survey,
    queue: str,
    now: datetime,
    permission_question: str | None = None,
    delay: timedelta = timedelta(0),
    calendar: Calendar | None = None,
) -> CallbackTask | None:
    """The follow-up a survey's answers call for, or None.

    A detractor (0-6 on the survey's NPS question) gets a callback, unless they answered "no"
    to ``permission_question`` (a yes/no "may we call you back?"): we do not call back someone
    who asked us not to. Not answering it is not a no. ``due_at``: ``now + delay``, moved to
    when ``calendar`` (the queue's hours) next opens."""
    nps_keys = {k for k, q in survey.questions.items() if isinstance(q, NPSQuestion)}
    if permission_question is not None and not isinstance(
        survey.questions.get(permission_question), YesNoQuestion
    ):
        raise ValueError(f"{permission_question!r} is not a yes/no question of {survey.name!r}")
    given = {a.question_key: a for a in answers}
    scores = [given[k].value_int for k in sorted(nps_keys) if k in given]
    score = next((s for s in scores if s is not None), None)
    if score is None or not is_detractor(score):
        return None
    if permission_question is not None:
        permission = given.get(permission_question)
        if permission is not None and permission.value_int == 0:
            return None
    comments = [a.recording for a in given.values() if a.recording is not None]
    note = f"NPS {score} in survey {survey.name}"
    if comments:
        note += f"; voice comment: {', '.join(comments)}"
    due = now + delay
    due = next_open(calendar, due) or due
    manager = client.assigned_manager
    return CallbackTask(
        client_id=client.client_id,
        number=client.number,
        reason=REASON,
        assigned_agent_id=manager,
        queue=None if manager else queue,
        due_at=due,
        note=note,
    )
