"""The survey interpreter: walks one respondent through a survey (``surveys/model.py``). Pure,
in the style of ``core.ivr``: the adapter (ARI for outbound campaigns, FastAGI after a call)
feeds it what happened on the channel (a prompt ended, a key, a timer fired, a recording
ended, the hang-up) and carries out the actions it returns. The media actions are the IVR's
own (``PlayPrompt``, ``StartTimer``, ...), so one executor serves both.

The call: intro (with consent, "press 1 to take part"), the questions from ``start``, each
re-prompted after a timeout or a wrong key up to its retries and then left unanswered, the
thank-you, hang-up. Every prompt can be interrupted by a key, which counts as the answer.
Each answer is handed out as it is given (``SaveAnswer``) so a hang-up or a crash keeps what
was said; the final state comes once (``SurveyEnded``).

Numbers are keyed digit by digit: after a digit that could start a longer valid number ("1"
of an NPS 0-10) the interpreter waits ``next_digit_ms`` for the next ("0": 10); "#" ends the
entry at once, "*" repeats the question. A number out of range is a wrong key.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from core.ivr import HangupCall
from core.prompter import CancelTimer, PlayPrompt, Prompter, StartTimer, StopPlayback
from core.surveys.model import (
    END,
    NPS_MAX,
    ChoiceQuestion,
    NPSQuestion,
    Question,
    RecordingQuestion,
    ScaleQuestion,
    Survey,
    YesNoQuestion,
)

REPEAT_KEY = "*"
END_KEY = "#"


class SurveyStatus(StrEnum):
    IN_PROGRESS = "in_progress"
    COMPLETED = "completed"  # reached the thank-you (questions left unanswered may remain)
    PARTIAL = "partial"  # took part, hung up before the end
    REFUSED = "refused"  # pressed the decline key
    NO_CONSENT = "no_consent"  # never agreed: no key, wrong keys, or hung up in the intro


FINAL = frozenset(SurveyStatus) - {SurveyStatus.IN_PROGRESS}


@dataclass(frozen=True)
class Answer:
    """One answer, as a ``survey_answers`` row stores it (the adapter adds survey, call, client
    and the time)."""

    question_key: str
    value_int: int | None = None
    value_text: str | None = None
    recording: str | None = None

    @property
    def value(self) -> int | str | None:
        if self.value_int is not None:
            return self.value_int
        return self.value_text if self.value_text is not None else self.recording


@dataclass(frozen=True)
class Record:
    """Record the respondent into ``name`` (after a beep), ending on ``terminate_on``, after
    ``silence_seconds`` of silence or at ``max_seconds``; report with ``on_recording_finished``."""

    name: str
    max_seconds: int
    silence_seconds: int
    terminate_on: str = END_KEY
    beep: bool = True


@dataclass(frozen=True)
class SaveAnswer:
    answer: Answer


@dataclass(frozen=True)
class SurveyEnded:
    """The survey's final state, given once: store it with the call (and the contact)."""

    status: SurveyStatus


SurveyAction = (
    PlayPrompt
    | StopPlayback
    | StartTimer
    | CancelTimer
    | Record
    | SaveAnswer
    | SurveyEnded
    | HangupCall
)


class Phase(StrEnum):
    INTRO = "intro"
    QUESTION = "question"
    RECORDING = "recording"
    CLOSING = "closing"  # thank-you or goodbye playing; the status is final
    OVER = "over"


@dataclass
class SurveyCall:
    """One respondent's survey. ``language``: the client's (the default when the survey does
    not speak it). ``recording_prefix`` must be unique per call (e.g. "survey-<call id>"):
    recordings are named ``<prefix>-<question>``."""

    survey: Survey
    language: str = ""
    recording_prefix: str = "survey"
    status: SurveyStatus = SurveyStatus.IN_PROGRESS
    consented: bool = False
    phase: Phase = Phase.INTRO
    question: str | None = None
    answers: list[Answer] = field(default_factory=list)
    path: list[str] = field(default_factory=list)  # what happened, for the call's ivr_path
    _media: Prompter = field(default_factory=Prompter)
    _recording: str | None = None
    _attempts: int = 0
    _digits: str = ""

    def __post_init__(self) -> None:
        if self.language not in self.survey.languages:
            self.language = self.survey.default_language

    @property
    def done(self) -> bool:
        return self.status in FINAL

    # ---- inputs ---------------------------------------------------------------------------

    def start(self) -> list[SurveyAction]:
        self.phase = Phase.INTRO
        self.path.append("intro")
        return self._play([self.survey.intro])

    def on_playback_finished(self, playback_id: str) -> list[SurveyAction]:
        step = self._media.finished(playback_id, self.language)
        if step is None:
            return []
        if step:
            return [*step]
        if self.phase is Phase.INTRO:
            consent = self.survey.consent
            if consent is None:
                return self._take_part()
            return self._start_timer(consent.timeout_seconds)
        if self.phase is Phase.QUESTION:
            question = self._question()
            if isinstance(question, RecordingQuestion):
                return self._record(question)
            return self._start_timer(question.timeout_seconds)
        if self.phase is Phase.CLOSING:
            self.phase = Phase.OVER
            return [HangupCall()]
        return []

    def on_dtmf(self, digit: str) -> list[SurveyAction]:
        if self.phase is Phase.INTRO and not self.done:
            return self._stop() + self._consent_key(digit)
        if self.phase is Phase.QUESTION:
            question = self._question()
            if isinstance(question, RecordingQuestion):
                # A key during "after the tone, tell us": skip to the recording.
                return self._stop() + self._record(question)
            return self._stop() + self._key(question, digit)
        # Recording (the adapter ends it on `terminate_on`), closing, over: nothing to answer.
        return []

    def on_timer(self, timer_id: str) -> list[SurveyAction]:
        if not self._media.fired(timer_id):
            return []
        if self.phase is Phase.INTRO:
            return self._consent_retry(invalid=False)
        if self.phase is Phase.QUESTION:
            question = self._question()
            if self._digits and isinstance(question, NPSQuestion | ScaleQuestion):
                return self._take_number(question)  # no further digit: "1" stays 1
            return self._retry(question, invalid=False)
        return []

    def on_recording_finished(self, name: str, seconds: float) -> list[SurveyAction]:
        """The recording ended (key, silence, limit, or the hang-up: Asterisk keeps what was
        said, so this also counts after ``on_hangup``). ``seconds``: its length, 0 when
        nothing was recorded (the comment is then left unanswered)."""
        if name != self._recording:
            return []
        self._recording = None
        assert self.question is not None
        key = self.question
        answer = Answer(key, recording=name) if seconds > 0 else None
        actions: list[SurveyAction] = []
        if answer is not None:
            self.answers.append(answer)
            actions.append(SaveAnswer(answer))
        self.path.append(f"{key}:{'recorded' if answer else 'empty'}")
        if self.phase is not Phase.RECORDING:  # hung up meanwhile
            return actions
        return actions + self._advance(self._question(), None)

    def resume(self, answers: list[Answer]) -> list[SurveyAction]:
        """Go on with a survey whose first part ran in a process that is gone (``centrala
        serve`` restarted mid-call): the answers stored stand, and the respondent is asked the
        first question they have not answered, without the intro when they had consented
        (answers mean they had). Without answers it starts from the intro."""
        if not answers:
            return self.start()
        self.answers = list(answers)
        self.consented = True
        given = {a.question_key: a.value for a in answers}
        name = self.survey.start
        while name != END and name in given and name in self.survey.questions:
            name = next_question(self.survey.questions[name], given[name])
        self.path.append("resumed")
        return self._enter(name)

    def on_hangup(self) -> list[SurveyAction]:
        """The respondent hung up (or the call was lost). Answers given stay; a number still
        being keyed ("1" waiting for a possible "0") is dropped: it was never confirmed."""
        actions: list[SurveyAction] = [*self._media.forget()]
        self._digits = ""
        recording = self.phase is Phase.RECORDING
        self.phase = Phase.OVER
        if self.done:
            return actions
        if recording:
            self.path.append("hangup:recording")
        else:
            self.path.append("hangup")
        return actions + self._finish(
            SurveyStatus.PARTIAL if self.consented else SurveyStatus.NO_CONSENT
        )

    # ---- consent --------------------------------------------------------------------------

    def _consent_key(self, digit: str) -> list[SurveyAction]:
        consent = self.survey.consent
        if consent is None:
            # Taking part is implied: the key skips the intro and answers the first question.
            return self._take_part(typeahead=digit)
        if digit == consent.key:
            self.path.append("intro:consent")
            return self._take_part()
        if digit == consent.decline_key:
            self.path.append("intro:declined")
            actions = self._finish(SurveyStatus.REFUSED)
            if consent.declined_prompt is None:
                self.phase = Phase.OVER
                return [*actions, HangupCall()]
            self.phase = Phase.CLOSING
            return actions + self._play([consent.declined_prompt])
        self.path.append(f"intro:{digit}!")
        return self._consent_retry(invalid=True)

    def _consent_retry(self, *, invalid: bool) -> list[SurveyAction]:
        consent = self.survey.consent
        assert consent is not None
        self._attempts += 1
        if self._attempts > consent.retries:
            self.path.append(f"intro:{'invalid' if invalid else 'timeout'}")
            self.phase = Phase.OVER
            return [*self._finish(SurveyStatus.NO_CONSENT), HangupCall()]
        prompts = [self.survey.intro]
        if invalid and self.survey.invalid_prompt is not None:
            prompts.insert(0, self.survey.invalid_prompt)
        return self._play(prompts)

    def _take_part(self, typeahead: str | None = None) -> list[SurveyAction]:
        self.consented = True
        return self._enter(self.survey.start, typeahead)

    # ---- questions ------------------------------------------------------------------------

    def _question(self) -> Question:
        assert self.question is not None
        return self.survey.questions[self.question]

    def _enter(self, name: str, typeahead: str | None = None) -> list[SurveyAction]:
        if name == END:
            return self._thanks()
        question = self.survey.questions[name]
        self.phase = Phase.QUESTION
        self.question = name
        self.path.append(name)
        self._attempts = 0
        self._digits = ""
        if typeahead is not None:
            if isinstance(question, RecordingQuestion):
                return self._record(question)
            return self._key(question, typeahead)
        return self._play([question.prompt])

    def _key(self, question: Question, digit: str) -> list[SurveyAction]:
        if digit == REPEAT_KEY and not self._digits:
            return self._play([question.prompt])
        if isinstance(question, NPSQuestion | ScaleQuestion):
            return self._number_key(question, digit)
        if isinstance(question, YesNoQuestion):
            if digit in (question.yes_key, question.no_key):
                value = 1 if digit == question.yes_key else 0
                return self._answer(question, Answer(self._key_name(), value_int=value))
        elif isinstance(question, ChoiceQuestion):
            option = question.options.get(digit)
            if option is not None:
                return self._answer(question, Answer(self._key_name(), value_text=option))
        self.path.append(f"{self.question}:{digit}!")
        return self._retry(question, invalid=True)

    def _number_key(self, question: NPSQuestion | ScaleQuestion, digit: str) -> list[SurveyAction]:
        _low, high = _bounds(question)
        if digit == END_KEY:
            if not self._digits:
                self.path.append(f"{self.question}:#!")
                return self._retry(question, invalid=True)
            return self._take_number(question)
        if not digit.isdigit():
            self.path.append(f"{self.question}:{self._digits}{digit}!")
            self._digits = ""
            return self._retry(question, invalid=True)
        self._digits += digit
        if self._digits != "0" and int(self._digits) * 10 <= high:
            # Could still become a longer valid number ("1" of "10"): wait for the next digit.
            seconds = question.next_digit_ms / 1000
            return self._start_timer(seconds)
        return self._take_number(question)

    def _take_number(self, question: NPSQuestion | ScaleQuestion) -> list[SurveyAction]:
        low, high = _bounds(question)
        keyed, self._digits = self._digits, ""
        value = int(keyed)
        if not low <= value <= high:
            self.path.append(f"{self.question}:{keyed}!")
            return self._retry(question, invalid=True)
        return self._answer(question, Answer(self._key_name(), value_int=value))

    def _key_name(self) -> str:
        assert self.question is not None
        return self.question

    def _answer(self, question: Question, answer: Answer) -> list[SurveyAction]:
        self.answers.append(answer)
        self.path.append(f"{answer.question_key}:{answer.value}")
        return [SaveAnswer(answer), *self._advance(question, answer.value)]

    def _retry(self, question: Question, *, invalid: bool) -> list[SurveyAction]:
        self._attempts += 1
        self._digits = ""
        if self._attempts > question.retries:
            self.path.append(f"{self.question}:{'invalid' if invalid else 'timeout'}")
            return self._advance(question, None)  # left unanswered: the default case
        prompts = [question.prompt]
        invalid_prompt = question.invalid_prompt or self.survey.invalid_prompt
        if invalid and invalid_prompt is not None:
            prompts.insert(0, invalid_prompt)
        return self._play(prompts)

    def _advance(self, question: Question, value: int | str | None) -> list[SurveyAction]:
        return self._enter(next_question(question, value))

    def _record(self, question: RecordingQuestion) -> list[SurveyAction]:
        self.phase = Phase.RECORDING
        self._recording = f"{self.recording_prefix}-{self._key_name()}"
        return [Record(self._recording, question.max_seconds, question.silence_seconds)]

    def _thanks(self) -> list[SurveyAction]:
        self.path.append("thanks")
        self.question = None
        self.phase = Phase.CLOSING
        return self._finish(SurveyStatus.COMPLETED) + self._play([self.survey.thanks])

    def _finish(self, status: SurveyStatus) -> list[SurveyAction]:
        if self.done:
            return []
        self.status = status
        return [SurveyEnded(status)]

    # ---- media and timers -----------------------------------------------------------------

    def _play(self, prompts: list[str]) -> list[SurveyAction]:
        return [*self._media.play(prompts, self.language)]

    def _start_timer(self, seconds: float) -> list[SurveyAction]:
        return [*self._media.start_timer(seconds)]

    def _stop(self) -> list[SurveyAction]:
        return [*self._media.stop()]


def next_question(question: Question, value: int | str | None) -> str:
    """Where the survey goes after ``question`` answered with ``value`` (None: unanswered)."""
    if isinstance(question.next, str):
        return question.next
    for case in question.next:
        if case.when is None or case.when.holds(value):
            return case.next
    return END  # validate() requires a default case; without one the survey ends here


def _bounds(question: NPSQuestion | ScaleQuestion) -> tuple[int, int]:
    if isinstance(question, NPSQuestion):
        return 0, NPS_MAX
    return question.min, question.max
