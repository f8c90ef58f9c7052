"""The post-call survey over FastAGI: the pure ``SurveyCall`` (surveys/interpreter.py) driven
by AGI commands, after an info-line call.

How a caller gets here: the info line (ari_app/infoline.py) sets the channel variables
CENTRALA_SURVEY and CENTRALA_CALL_ID and sends the caller's channel with ARI ``continue`` to
the dialplan context ``centrala-postcall-survey``, which runs
``AGI(${CENTRALA_AGI}/survey,${CENTRALA_SURVEY},${CENTRALA_CALL_ID})`` on the same channel.

Where the answers go: on the info-line call's own row. The call id names the call the caller
just had; the survey is recorded on it (``calls.survey_id`` / ``survey_status``) and every
answer points at that call, its client and the survey version asked, so an NPS links to the
very call that was rated. No second ``calls`` row is opened (it would be keyed by the same
channel anyway). A call id that is missing, malformed or unknown, an unknown survey, or a call
surveyed already: a log line, a polite goodbye, nothing stored.

AGI is synchronous, the interpreter event-driven; ``SurveyDriver`` joins them: it carries out
the actions in order, waits on the one blocking action left (a prompt, a timer, a recording),
and feeds its result back as the event. A ``SurveyChannel`` does the waiting; the AGI one is
``AGISurveyChannel``, tests use a scripted fake.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import structlog

from agi.protocol import AGIError, AGIHangup, AGIReply, AGIRequest, AGITimeout
from agi.server import AGISession
from core.ivr import HangupCall
from core.media import prompt_media
from core.phones import normalise
from core.prompter import CancelTimer, PlayPrompt, StartTimer, StopPlayback
from core.surveys.interpreter import (
    FINAL,
    Answer,
    Record,
    SaveAnswer,
    SurveyAction,
    SurveyCall,
    SurveyEnded,
    SurveyStatus,
)
from core.surveys.model import Survey
from dialplan.model import NAME
from models.calllog import CallLog, now
from models.db import is_outage
from models.surveys import StoredSurvey
from usecases.surveying import Respondent, SurveyLog

log = structlog.get_logger(__name__)

DIGITS = "0123456789*#"  # every key interrupts a prompt and counts as the answer
# ARI's stored recordings: a comment recorded here is served by GET /recordings/stored/<name>.
RECORDING_DIR = "/var/spool/asterisk/recording"
SAMPLE_RATE = 8000  # RECORD FILE's endpos counts samples; wav is 8 kHz
# res_agi keeps the last second of the silence that ended a recording (it rewinds s - 1 s).
SILENCE_KEPT_SECONDS = 1.0
MIN_SPEECH_SECONDS = 0.5  # less is a cough or the tail of the beep: nothing was said
PLAY_TIMEOUT = 180.0  # STREAM FILE returns when the prompt ends; a prompt is never this long
SURVEY_NAME = re.compile(NAME)
CALL_ID = re.compile(r"[A-Za-z0-9_-]{1,64}")  # our calls.id (a uuid); also a file name part

Blocking = PlayPrompt | StartTimer | Record


class SurveyRefused(Exception):
    """The survey cannot run for this request; the message says why (for the log)."""


# ---- the channel: what AGI waits on ---------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    seconds: float  # what the respondent said; 0 when nothing
    hung_up: bool  # they hung up while recording (what they said is kept)


class SurveyChannel(Protocol):
    """A respondent's channel, synchronous: each call returns when it is done. Every method
    raises AGIHangup when the caller is gone."""

    async def play(self, media: str) -> str | None:
        """Play ``media``; the key that interrupted it, None when it played to its end."""

    async def wait_digit(self, seconds: float) -> str | None:
        """The key pressed within ``seconds``, None when none was."""

    async def record(self, record: Record) -> Recorded: ...

    async def hangup(self) -> None: ...


def stream_file(media: str, recording_dir: str = RECORDING_DIR) -> str | None:
    """The STREAM FILE argument for a prompt's media URI; None when AGI cannot play it."""
    scheme, _, name = media.partition(":")
    if not name:
        return None
    if scheme == "sound":
        return name
    if scheme == "recording":
        return f"{recording_dir}/{name}"
    return None


def _digit(reply: AGIReply) -> str | None:
    # STREAM FILE and WAIT FOR DIGIT answer the key as its ASCII code, 0 for none.
    code = reply.int_result
    if code is None or code <= 0:
        return None
    key = chr(code)
    return key if key in DIGITS else None


def recorded(reply: AGIReply, record: Record) -> Recorded:
    """What RECORD FILE's reply says was recorded: ``(dtmf)``, ``(timeout)`` (silence or the
    limit), ``(hangup)``, ``(randomerror)`` (the beep was cut: a key or the hang-up),
    ``(writefile)`` (Asterisk cannot write the file). ``endpos`` is the length in samples."""
    if reply.data == "writefile":
        log.error("survey_recording_not_written", name=record.name)
        return Recorded(0.0, hung_up=False)
    hung_up = reply.data in ("hangup", "waitfor") or (reply.data == "randomerror" and reply.failed)
    try:
        seconds = int(reply.extra.get("endpos", "0")) / SAMPLE_RATE
    except ValueError:
        seconds = 0.0
    if reply.data == "timeout" and seconds < record.max_seconds - SILENCE_KEPT_SECONDS:
        seconds -= SILENCE_KEPT_SECONDS  # ended on silence, not at the limit
    return Recorded(seconds if seconds >= MIN_SPEECH_SECONDS else 0.0, hung_up)


class AGISurveyChannel:
    """The survey's channel over one FastAGI session."""

    def __init__(self, session: AGISession, recording_dir: str = RECORDING_DIR) -> None:
        self.session = session
        self.recording_dir = recording_dir

    async def play(self, media: str) -> str | None:
        file = stream_file(media, self.recording_dir)
        if file is None:
            log.warning("survey_media_not_playable", media=media)
            return None
        reply = await self.session.command("STREAM", "FILE", file, DIGITS, timeout=PLAY_TIMEOUT)
        if reply.failed:
            # A missing file (the survey goes on, as after ARI's PlaybackFailed), or the
            # caller gone, which the next command tells.
            log.warning("survey_prompt_failed", file=file)
            return None
        return _digit(reply)

    async def wait_digit(self, seconds: float) -> str | None:
        ms = max(1, round(seconds * 1000))
        reply = await self.session.command("WAIT", "FOR", "DIGIT", str(ms), timeout=seconds + 10)
        if reply.failed:
            raise AGIHangup("WAIT FOR DIGIT failed: the channel is gone")
        return _digit(reply)

    async def record(self, record: Record) -> Recorded:
        words = [
            "RECORD",
            "FILE",
            f"{self.recording_dir}/{record.name}",
            "wav",
            record.terminate_on,
            str(record.max_seconds * 1000),
            *(["BEEP"] if record.beep else []),
            f"s={record.silence_seconds}",
        ]
        reply = await self.session.command(*words, timeout=record.max_seconds + 30)
        return recorded(reply, record)

    async def hangup(self) -> None:
        await self.session.command("HANGUP")


# ---- the driver: the interpreter over a synchronous channel ---------------------------------


class SurveyDriver:
    """Runs one ``SurveyCall`` to its end over a ``SurveyChannel``. Answers and the final state
    go to ``on_answer`` / ``on_ended`` the moment the interpreter hands them out, so a hang-up
    or a crash keeps what was said."""

    def __init__(
        self,
        call: SurveyCall,
        channel: SurveyChannel,
        *,
        media: Callable[[PlayPrompt], str],
        on_answer: Callable[[Answer], Awaitable[None]],
        on_ended: Callable[[SurveyStatus], Awaitable[None]],
    ) -> None:
        self.call = call
        self.channel = channel
        self.media = media
        self.on_answer = on_answer
        self.on_ended = on_ended
        self.hung_up_by_us = False

    async def run(self) -> SurveyStatus:
        actions = self.call.start()
        try:
            while (waiting := await self._carry_out(actions)) is not None:
                actions = await self._wait(waiting)
        except AGIHangup:
            await self._carry_out(self.call.on_hangup())
        except AGITimeout:
            # Asterisk stopped answering and the session is closed: the respondent is as
            # good as gone; what they answered so far is kept, the survey is not complete.
            log.warning("survey_agi_timeout")
            await self._carry_out(self.call.on_hangup())
        if not self.call.done:
            # Nothing left to wait for, yet no final state: end it as a hang-up would.
            await self._carry_out(self.call.on_hangup())
        return self.call.status

    async def _carry_out(self, actions: Sequence[SurveyAction]) -> Blocking | None:
        """Do the actions in order; the blocking one left to wait on, if any."""
        waiting: Blocking | None = None
        for action in actions:
            if isinstance(action, PlayPrompt | StartTimer | Record):
                waiting = action
            elif isinstance(action, StopPlayback | CancelTimer):
                # Plays and waits return before the next event: only one just queued here
                # could still be stopped.
                if _same(waiting, action):
                    waiting = None
            elif isinstance(action, SaveAnswer):
                await self.on_answer(action.answer)
            elif isinstance(action, SurveyEnded):
                await self.on_ended(action.status)
            elif isinstance(action, HangupCall):
                self.hung_up_by_us = True
                with contextlib.suppress(AGIHangup):
                    await self.channel.hangup()
        return None if self.hung_up_by_us else waiting

    async def _wait(self, action: Blocking) -> list[SurveyAction]:
        """Carry out the blocking action and turn what happened into the next event."""
        if isinstance(action, PlayPrompt):
            key = await self.channel.play(self.media(action))
            if key is None:
                return self.call.on_playback_finished(action.playback_id)
            return self.call.on_dtmf(key)
        if isinstance(action, StartTimer):
            key = await self.channel.wait_digit(action.seconds)
            if key is None:
                return self.call.on_timer(action.timer_id)
            return self.call.on_dtmf(key)
        result = await self.channel.record(action)
        if result.hung_up:
            # Hung up while speaking: the survey ends partial, what was said still counts.
            ended = self.call.on_hangup()
            return [*ended, *self.call.on_recording_finished(action.name, result.seconds)]
        return self.call.on_recording_finished(action.name, result.seconds)


def _same(waiting: Blocking | None, stop: StopPlayback | CancelTimer) -> bool:
    if isinstance(stop, StopPlayback):
        return isinstance(waiting, PlayPrompt) and waiting.playback_id == stop.playback_id
    return isinstance(waiting, StartTimer) and waiting.timer_id == stop.timer_id


# ---- the FastAGI script ----------------------------------------------------------------------


@dataclass(frozen=True)
class SurveyRequest:
    survey: str
    call_id: str


def survey_request(args: Sequence[str], default_survey: str) -> SurveyRequest:
    """The script's arguments: the survey's name (empty: ``default_survey``) and the id of the
    info-line call the caller just had. ValueError says what is wrong."""
    survey = args[0] if args and args[0] else default_survey
    call_id = args[1] if len(args) > 1 else ""
    if not SURVEY_NAME.fullmatch(survey):
        raise ValueError(f"{survey[:40]!r} is not a survey name")
    if not call_id:
        raise ValueError("no call id: the dialplan passes ${CENTRALA_CALL_ID}")
    if not CALL_ID.fullmatch(call_id):
        raise ValueError(f"{call_id[:40]!r} is not a call id")
    return SurveyRequest(survey, call_id)


class SurveyAGI:
    """The FastAGI script ``survey``. A detractor's callback goes to their manager, else to
    ``follow_up_queue``, due when that queue next opens."""

    def __init__(
        self,
        surveys: SurveyLog,
        calllog: CallLog,
        *,
        follow_up_queue: str,
        region: str,
        default_survey: str = "nps",
        permission_question: str | None = "may_call_back",
        recording_dir: str = RECORDING_DIR,
        goodbye: str = "sound:vm-goodbye",
        flow_name: str = "infoline",
    ) -> None:
        self.surveys = surveys
        self.calllog = calllog
        self.follow_up_queue = follow_up_queue
        self.region = region
        self.default_survey = default_survey
        self.permission_question = permission_question
        self.recording_dir = recording_dir
        self.goodbye = goodbye
        self.flow_name = flow_name

    async def __call__(self, request: AGIRequest, session: AGISession) -> None:
        try:
            asked = survey_request(request.args, self.default_survey)
            respondent, stored = await self._lookup(asked)
        except (ValueError, SurveyRefused) as exc:
            log.warning(
                "survey_refused",
                reason=str(exc),
                args=[a[:64] for a in request.args[:3]],
                channel=request.channel,
            )
            await self._say_goodbye(session)
            return
        structlog.contextvars.bind_contextvars(call_id=respondent.call_id)
        await self._run(request, session, respondent, stored)

    async def _lookup(self, asked: SurveyRequest) -> tuple[Respondent, StoredSurvey]:
        try:
            respondent = await self.surveys.respondent(asked.call_id)
        except Exception as exc:
            if not is_outage(exc):
                raise
            raise SurveyRefused(f"database away and call {asked.call_id} not live here") from exc
        if respondent is None:
            raise SurveyRefused(f"no call {asked.call_id}")
        if respondent.survey_status in FINAL:
            raise SurveyRefused(f"call surveyed already ({respondent.survey_status})")
        # With the database away: the version last read (answers are journaled).
        stored = await self.surveys.active(asked.survey)
        if stored is None:
            raise SurveyRefused(f"no active survey {asked.survey!r}")
        return respondent, stored

    async def _say_goodbye(self, session: AGISession) -> None:
        file = stream_file(self.goodbye, self.recording_dir)
        with contextlib.suppress(AGIError):
            if file is not None:
                await session.command("STREAM", "FILE", file, "", timeout=30)
            await session.command("HANGUP")

    async def _run(
        self,
        request: AGIRequest,
        session: AGISession,
        respondent: Respondent,
        stored: StoredSurvey,
    ) -> None:
        call_id = respondent.call_id
        call = SurveyCall(
            stored.survey,
            language=respondent.language or "",
            recording_prefix=f"survey-{call_id}",
        )
        await self.surveys.started(call_id, stored.id)
        await self.calllog.event(
            call_id,
            "survey_started",
            survey=stored.survey.name,
            version=stored.version,
            language=call.language,
            channel=request.channel,
        )
        log.info("survey_started", survey=stored.survey.name, version=stored.version)

        async def save(answer: Answer) -> None:
            await self.surveys.save_answer(call_id, stored.id, respondent.client_id, answer, now())

        async def ended(status: SurveyStatus) -> None:
            await self.surveys.ended(call_id, status)

        driver = SurveyDriver(
            call,
            AGISurveyChannel(session, self.recording_dir),
            media=lambda p: prompt_media(stored.survey, p.prompt, p.language),
            on_answer=save,
            on_ended=ended,
        )
        with contextlib.suppress(AGIHangup):  # a caller gone already: the driver notices
            await session.command("ANSWER")
        status = await driver.run()
        await self.calllog.event(
            call_id, "survey_ended", status=status.value, answers=len(call.answers), path=call.path
        )
        log.info("survey_ended", status=status.value, answers=len(call.answers))
        await self._follow_up(call, stored.survey, respondent)

    async def _follow_up(self, call: SurveyCall, survey: Survey, respondent: Respondent) -> None:
        if not call.answers:
            return
        await self.surveys.follow_up_detractor(
            respondent.call_id,
            survey,
            call.answers,
            client_id=respondent.client_id,
            number=normalise(respondent.caller_number, self.region) or "",
            queue=self.follow_up_queue,
            permission=self.permission_question,
            at=now(),
            flow_name=self.flow_name,
        )
