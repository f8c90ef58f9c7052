"""What a survey call writes, shared by the outbound campaign (ARI) and the post-call survey
(FastAGI): each answer the moment it is given, the survey's final state on the call row, and
the detractor's follow-up callback. Every write is idempotent per call, so a replayed event or
a resumed call never stores an answer or a task twice."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any, Protocol

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from core.routing import queue_calendar
from core.surveys.campaign import ClientFacts
from core.surveys.followup import CallbackTask, follow_up_for, permission_question
from core.surveys.interpreter import Answer, SurveyStatus
from core.surveys.model import Survey
from dialplan.model import Calendar
from models.callbacks import add_callback
from models.calllog import last_event_data
from models.crm import CRM, nothing
from models.db import is_outage
from models.flows import active_flow
from models.surveys import StoredSurvey, active_survey
from models.tables import (
    Call,
    Callback,
    Client,
    Interaction,
    SurveyAnswer,
)

log = structlog.get_logger(__name__)


@dataclass(frozen=True)
class Respondent:
    """Who takes a post-call survey: the call they just had, as its row tells."""

    call_id: str
    client_id: int | None
    caller_number: str | None  # as Asterisk gave it
    language: str | None  # the language of the call (chosen in the IVR), else the client's
    survey_status: str | None  # a final one: this call was surveyed already


class SurveyWriter(Protocol):
    """The call log's ordered writes (journaled while the database is away)."""

    def register(self, kind: str, applier: Any) -> None: ...
    async def write(self, ops: list[dict[str, Any]]) -> Any: ...
    async def settle(self) -> None: ...
    def live_facts(self, call_id: str) -> dict[str, Any] | None: ...


class SurveyLog:
    """``calllog``: every write goes through its ordered queue, after the call's pending
    trail and journaled with it while the database is away (an answer keyed during an
    outage is kept and drained once). Without it (tools, tests) each write is its own
    transaction after ``before_write``."""

    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        before_write: Callable[[], Awaitable[None]] = nothing,
        *,
        calllog: SurveyWriter | None = None,
        crm: CRM | None = None,
    ) -> None:
        self.sessions = sessions
        # The call log's pending events go first, so the trail never trails the row.
        self.before_write = before_write
        self.calllog = calllog
        self.crm = crm or CRM(sessions)
        if calllog is not None:
            calllog.register("survey", apply_survey_write)

    async def _write(self, op: dict[str, Any]) -> Any:
        if self.calllog is not None:
            return await self.calllog.write([{"op": "survey", **op}])
        await self.before_write()
        async with self.sessions() as session, session.begin():
            return await apply_survey_write(session, op, False)

    async def started(self, call_id: str, survey_id: int) -> None:
        """The call asks survey version ``survey_id`` (counted in response rates even when
        nobody answers anything)."""
        await self._write(
            {
                "action": "started",
                "call_id": call_id,
                "survey_id": survey_id,
                "status": SurveyStatus.IN_PROGRESS.value,
            }
        )

    async def save_answer(
        self, call_id: str, survey_id: int, client_id: int | None, answer: Answer, at: datetime
    ) -> bool:
        """Store one answer; False when this call already answered that question (True when
        journaled: the drain stores it once)."""
        result = await self._write(
            {
                "action": "answer",
                "call_id": call_id,
                "survey_id": survey_id,
                "client_id": client_id,
                "question_key": answer.question_key,
                "value_int": answer.value_int,
                "value_text": answer.value_text,
                "recording": answer.recording,
                "answered_at": at,
            }
        )
        return result is not False

    async def answers(self, call_id: str) -> list[Answer]:
        async with self.sessions() as session:
            rows = await session.scalars(
                select(SurveyAnswer)
                .where(SurveyAnswer.call_id == call_id)
                .order_by(SurveyAnswer.id)
            )
            return [Answer(r.question_key, r.value_int, r.value_text, r.recording) for r in rows]

    async def respondent(self, call_id: str) -> Respondent | None:
        """The call ``call_id`` as a survey respondent; None when there is no such call.
        With the database away: the call as the call log's own writes know it (a call of
        this process, live: the caller was just sent here from it)."""
        try:
            if self.calllog is not None:
                await self.calllog.settle()  # its row may still be in the journal
            async with self.sessions() as session:
                call = await session.get(Call, call_id)
                if call is None:
                    return None
                chosen = await last_event_data(session, call_id, "language")
                client = (
                    None if call.client_id is None else await session.get(Client, call.client_id)
                )
        except Exception as exc:
            if not is_outage(exc) or self.calllog is None:
                raise
            facts = self.calllog.live_facts(call_id)
            if facts is None:
                raise
            state = facts.get("state") or {}
            log.warning("survey_respondent_from_memory")
            return Respondent(
                call_id=call_id,
                client_id=facts.get("client_id"),
                caller_number=facts.get("caller_number"),
                language=state.get("language") or None,
                survey_status=facts.get("survey_status"),
            )
        language = (chosen or {}).get("language") or (client.language if client else None)
        return Respondent(
            call_id=call.id,
            client_id=call.client_id,
            caller_number=call.caller_number,
            language=language,
            survey_status=call.survey_status,
        )

    async def active(self, name: str) -> StoredSurvey | None:
        """The active version of survey ``name``; with the database away, the one last
        read (kept in the snapshot file, for a process started during the outage)."""
        snapshot = self.crm.snapshot
        try:
            stored = await active_survey(self.sessions, name)
        except Exception as exc:
            if not is_outage(exc):
                raise
            kept = snapshot.survey(name)
            return None if kept is None else StoredSurvey(kept.id, kept.version, kept.survey)
        if stored is not None:
            snapshot.set_survey(name, stored.id, stored.version, stored.survey)
            await snapshot.save()
        return stored

    async def ended(self, call_id: str, status: SurveyStatus) -> None:
        """The survey's final state on the call row (a final state is never overwritten)."""
        await self._write({"action": "ended", "call_id": call_id, "status": status.value})

    async def queue_hours(self, queue: str, flow_name: str = "infoline") -> Calendar | None:
        """A follow-up queue's hours as the info line reads them (live queue settings, the
        active flow's calendars): a callback is due when they open. None: always open."""
        try:
            active = await active_flow(self.sessions, flow_name)
        except Exception as exc:
            if not is_outage(exc):
                raise
            active = self.crm.snapshot.flow(flow_name)
        calendars = active[1].calendars if active is not None else {}
        return queue_calendar(calendars, (await self.crm.queues()).get(queue))

    async def client_facts(self, client_id: int | None, number: str) -> ClientFacts:
        """What the follow-up rule needs about the respondent. With the database away, the
        client's manager is unknown: the callback goes to the queue."""
        if client_id is None:
            return ClientFacts(client_id=None, number=number)
        try:
            async with self.sessions() as session:
                client = await session.get(Client, client_id)
        except Exception as exc:
            if not is_outage(exc):
                raise
            return ClientFacts(client_id=client_id, number=number)
        if client is None:
            return ClientFacts(client_id=None, number=number)
        return ClientFacts(
            client_id=client.id,
            number=number,
            assigned_manager=client.assigned_manager_id,
            language=client.language,
        )

    async def follow_up_detractor(
        self,
        call_id: str,
        survey: Survey,
        answers: Sequence[Answer],
        *,
        client_id: int | None,
        number: str,
        queue: str,
        permission: str | None,
        at: datetime,
        flow_name: str = "infoline",
    ) -> int | None:
        """The follow-up a finished survey's answers call for (``core.surveys.followup``), for the
        client's manager or ``queue``, due when that queue opens; ``permission``: the yes/no
        question whose "no" means do not call back. Returns the callback's id; None when no
        callback is due, nobody could be called, or the call has one already."""
        facts = await self.client_facts(client_id, number)
        task = follow_up_for(
            answers,
            facts,
            survey=survey,
            queue=queue,
            now=at,
            permission_question=permission_question(survey, permission),
            calendar=await self.queue_hours(queue, flow_name),
        )
        if task is None:
            return None
        if not task.number and task.client_id is None:
            log.warning("follow_up_without_number")  # anonymous and unknown: nobody to call
            return None
        callback_id = await self.follow_up(call_id, task, at)
        if callback_id is not None:
            log.info(
                "follow_up_created",
                callback_id=callback_id,
                assigned_agent_id=task.assigned_agent_id,
                queue=task.queue,
            )
        return callback_id

    async def follow_up(self, call_id: str, task: CallbackTask, at: datetime) -> int | None:
        """Create the detractor's callback (once per call) and put the score in the client's
        history, where the manager reads it before calling. Returns the callback id, None when
        this call already has one (or it was journaled: the drain creates it once)."""
        result = await self._write(
            {"action": "follow_up", "call_id": call_id, "task": asdict(task), "at": at}
        )
        return result if isinstance(result, int) else None


async def apply_survey_write(session: AsyncSession, op: dict[str, Any], replay: bool) -> Any:
    """One write of a survey call (in the caller's transaction). Each is idempotent per
    call: an answer once per question, a final state never overwritten, one follow-up per
    call and reason; so the journal's replay stores nothing twice."""
    action, call_id = op["action"], op["call_id"]
    if action == "started":
        await session.execute(
            update(Call)
            .where(Call.id == call_id)
            .values(survey_id=op["survey_id"], survey_status=SurveyStatus.IN_PROGRESS.value)
        )
        return None
    if action == "answer":
        present = await session.scalar(
            select(SurveyAnswer.id).where(
                SurveyAnswer.call_id == call_id, SurveyAnswer.question_key == op["question_key"]
            )
        )
        if present is not None:
            return False
        session.add(
            SurveyAnswer(
                survey_id=op["survey_id"],
                call_id=call_id,
                client_id=op["client_id"],
                question_key=op["question_key"],
                value_int=op["value_int"],
                value_text=op["value_text"],
                recording=op["recording"],
                answered_at=op["answered_at"],
            )
        )
        await session.flush()
        return True
    if action == "ended":
        await session.execute(
            update(Call)
            .where(
                Call.id == call_id,
                (Call.survey_status.is_(None))
                | (Call.survey_status == SurveyStatus.IN_PROGRESS.value),
            )
            .values(survey_status=op["status"])
        )
        return None
    if action == "follow_up":
        task = CallbackTask(**op["task"])
        existing = await session.scalar(
            select(Callback.id).where(Callback.call_id == call_id, Callback.reason == task.reason)
        )
        if existing is not None:
            return None
        callback = add_callback(
            session,
            call_id=call_id,
            client_id=task.client_id,
            number=task.number,
            reason=task.reason,
            queue=task.queue,
            assigned_agent_id=task.assigned_agent_id,
            due_at=task.due_at,
            event="follow_up_created",
            event_data={
                "reason": task.reason,
                "assigned_agent_id": task.assigned_agent_id,
                "queue": task.queue,
                "due_at": task.due_at.isoformat(),
            },
            at=op["at"],
        )
        if task.client_id is not None:
            session.add(
                Interaction(
                    client_id=task.client_id,
                    call_id=call_id,
                    channel="survey",
                    category=task.reason,
                    note=task.note,
                )
            )
        await session.flush()
        return int(callback.id)
    raise ValueError(f"unknown survey write {action!r}")
