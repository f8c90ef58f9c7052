"""A call's course once it rings: answered, it goes through Asterisk's AMD; a machine is hung
up on or hears a short message; a person is surveyed by ``core.surveys.interpreter``, whose
actions (prompts, recordings, answers, the end) are carried out here; the hang-up gives the
attempt its outcome."""

from __future__ import annotations

import contextlib

import structlog

from ari_app.ari import ARINotFound, Event
from ari_app.campaigns.placing import Placing
from ari_app.campaigns.session import (
    AMD_CONTEXT,
    MACHINE_PLAYBACK,
    PERMISSION_QUESTION,
    SURVEY_OUTCOME,
    SurveyDial,
)
from ari_app.media import carry_out
from core.ivr import HangupCall
from core.media import prompt_media
from core.prompter import MediaAction, PlayPrompt
from core.surveys.campaign import Outcome, is_machine, unanswered_outcome
from core.surveys.dialphase import Phase
from core.surveys.interpreter import Record, SaveAnswer, SurveyAction, SurveyEnded
from models.calllog import now

log = structlog.get_logger(__name__)


class Surveying(Placing):
    async def _answered(self, s: SurveyDial) -> None:
        if s.phase is not Phase.RINGING:
            return
        s.answered_at = now()
        await self.calllog.answered(s.call_id, s.answered_at)
        if s.settings.amd:
            s.state.move(Phase.DETECTING)
            # AMD runs in the dialplan; the verdict comes back in a new StasisStart ("amd", ...).
            await self.ari.continue_in_dialplan(s.channel_id, AMD_CONTEXT, "s", 1)
        else:
            await self._start_survey(s)

    async def _amd_verdict(self, s: SurveyDial, status: str, cause: list[str]) -> None:
        if s.phase is not Phase.DETECTING:
            return
        await self.calllog.event(s.call_id, "amd", status=status, cause=",".join(cause))
        if not is_machine(status):
            await self._start_survey(s)
            return
        s.state.move(Phase.MACHINE)
        log.info("answering_machine", action=s.settings.machine_action)
        await self._apply(s, Outcome.MACHINE)
        if s.settings.machine_action == "message" and s.settings.machine_prompt:
            media = prompt_media(s.stored.survey, s.settings.machine_prompt, s.call.language)
            await self.calllog.event(s.call_id, "machine_message", media=media)
            await self.ari.play(s.channel_id, media, f"{s.channel_id}-{MACHINE_PLAYBACK}")
        else:
            await self.ari.hangup(s.channel_id)

    async def _start_survey(self, s: SurveyDial) -> None:
        s.state.move(Phase.SURVEY)
        await self.surveys.started(s.call_id, s.stored.id)
        await self._run(s, s.call.start())

    async def _destroyed(self, s: SurveyDial, cause: int | None, event: Event) -> None:
        if s.phase is Phase.ENDED:
            return
        if s.phase is Phase.SURVEY:
            await self._run(s, s.call.on_hangup())
        outcome = s.outcome
        if outcome is None:
            # Never reached the survey: unanswered, or gone while AMD listened (try again).
            outcome = (
                unanswered_outcome(cause, s.dial_status)
                if s.answered_at is None
                else Outcome.NO_ANSWER
            )
        await self._end(s, outcome, cause, event.get("cause_txt"))

    # ---- the survey's actions -------------------------------------------------------------

    async def _run(self, s: SurveyDial, actions: list[SurveyAction]) -> None:
        for action in actions:
            if isinstance(action, PlayPrompt) and s.phase is not Phase.SURVEY:
                continue  # the call has left the survey (hung up): nothing to play to
            if isinstance(action, MediaAction):
                await carry_out(self.ari, s.channel_id, s.timers, s.stored.survey, action)
            elif isinstance(action, Record):
                await self.ari.record(
                    s.channel_id,
                    action.name,
                    max_seconds=action.max_seconds,
                    silence_seconds=action.silence_seconds,
                    beep=action.beep,
                    terminate_on=action.terminate_on,
                )
            elif isinstance(action, SaveAnswer):
                await self.surveys.save_answer(
                    s.call_id, s.stored.id, s.client_id, action.answer, now()
                )
            elif isinstance(action, SurveyEnded):
                await self._survey_ended(s, action)
            elif isinstance(action, HangupCall):
                with contextlib.suppress(ARINotFound):
                    await self.ari.hangup(s.channel_id)

    async def _survey_ended(self, s: SurveyDial, ended: SurveyEnded) -> None:
        await self.surveys.ended(s.call_id, ended.status)
        await self._apply(s, SURVEY_OUTCOME[ended.status.value])
        await self.surveys.follow_up_detractor(
            s.call_id,
            s.stored.survey,
            s.call.answers,
            client_id=s.client_id,
            number=s.number,
            queue=s.settings.followup_queue,
            permission=PERMISSION_QUESTION,
            at=now(),
        )
