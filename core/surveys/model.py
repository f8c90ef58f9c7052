"""The shape of an automated IVR survey (NPS, research) as admins write it in YAML/JSON. Pure
data, in the style of ``dialplan.model``: checked by ``core.surveys.validate``, interpreted call by
call by ``core.surveys.interpreter``.

Versions: the definition carries its ``name``; like flows, the store gives every applied
definition of a name the next ``version`` (``surveys.name, version``) and answers point at the
exact row asked, so editing a survey never changes what old answers meant.

Questions form a graph from ``start``: each question's ``next`` is a question name, ``end``
(the thank-you), or a list of cases on the answer (the first whose ``when`` holds decides, the
last case has no ``when`` and is the default). A question left unanswered after its retries
takes the default. Answer values: ``nps`` and ``scale`` the number, ``yes_no`` 1 (yes) or 0
(no), ``choice`` the option's key, ``recording`` the recording's name.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import Field, model_validator

from dialplan.model import LANG, Name, Prompt, Strict

END = "end"  # `next: end`: the survey is over, play the thank-you
KEY = r"^[0-9]$"  # answer keys; "*" repeats the question and "#" ends a number
NPS_MAX = 10
MAX_SCALE = 100  # numbers are keyed digit by digit: keep them short
# At most this many questions (the shipped NPS survey asks 3): a caller answers them one by
# one on the phone, and each question's prompts are synthesised. Prompts and their text are
# bounded as a flow's are (``dialplan.model``).
MAX_QUESTIONS = 100

Key = Annotated[str, Field(pattern=KEY)]
Language = Annotated[str, Field(pattern=LANG)]

__all__ = [
    "END",
    "NPS_MAX",
    "Case",
    "ChoiceQuestion",
    "Consent",
    "NPSQuestion",
    "Prompt",
    "Question",
    "RecordingQuestion",
    "ScaleQuestion",
    "Survey",
    "When",
    "YesNoQuestion",
]


class When(Strict):
    """A condition on the answer; every given part must hold, and an unanswered question
    matches no condition. ``answer_in``: numbers (nps, scale; yes_no 1 or 0); ``min``/``max``: an
    inclusive range of numbers; ``option_in``: choice keys."""

    answer_in: list[int] | None = None
    min: int | None = None
    max: int | None = None
    option_in: list[Name] | None = None

    @model_validator(mode="after")
    def _something(self) -> When:
        if self.answer_in is None and self.min is None and self.max is None and not self.option_in:
            raise ValueError("an empty `when` matches everything: leave it out for the default")
        if self.min is not None and self.max is not None and self.min > self.max:
            raise ValueError(f"min {self.min} is above max {self.max}")
        return self

    def holds(self, value: int | str | None) -> bool:
        if value is None:
            return False
        if isinstance(value, str):
            return (
                self.option_in is not None
                and value in self.option_in
                and self.answer_in is None
                and self.min is None
                and self.max is None
            )
        if self.option_in is not None:
            return False
        if self.answer_in is not None and value not in self.answer_in:
            return False
        if self.min is not None and value < self.min:
            return False
        return self.max is None or value <= self.max


class Case(Strict):
    when: When | None = None  # None: the default, always the last case
    next: Name


Next = Name | list[Case]


class _Question(Strict):
    prompt: Name
    next: Next
    timeout_seconds: float = Field(default=6, gt=0, le=30)  # for the first key, after the prompt
    retries: int = Field(default=2, ge=0, le=5)  # re-prompts after a timeout or a wrong key
    invalid_prompt: Name | None = None  # else the survey's


class _Numeric(_Question):
    # After a digit that could start a longer valid number ("1" of 10), wait this long for the
    # next one; "#" ends the entry at once.
    next_digit_ms: int = Field(default=1500, ge=200, le=5000)


class NPSQuestion(_Numeric):
    """How likely are you to recommend us, 0 to 10: "1" then "0" within ``next_digit_ms`` is
    10, "1" alone (or "1#") is 1."""

    type: Literal["nps"]


class ScaleQuestion(_Numeric):
    type: Literal["scale"]
    min: int = Field(ge=0, le=MAX_SCALE)
    max: int = Field(ge=0, le=MAX_SCALE)

    @model_validator(mode="after")
    def _range(self) -> ScaleQuestion:
        if self.min >= self.max:
            raise ValueError(f"min {self.min} must be below max {self.max}")
        return self


class YesNoQuestion(_Question):
    type: Literal["yes_no"]
    yes_key: Key = "1"
    no_key: Key = "2"

    @model_validator(mode="after")
    def _keys(self) -> YesNoQuestion:
        if self.yes_key == self.no_key:
            raise ValueError(f"yes_key and no_key are both {self.yes_key!r}")
        return self


class ChoiceQuestion(_Question):
    """Press a digit for an option; the answer is the option's key (``value_text``)."""

    type: Literal["choice"]
    options: dict[Key, Name] = Field(min_length=2)

    @model_validator(mode="after")
    def _distinct(self) -> ChoiceQuestion:
        keys = list(self.options.values())
        doubled = sorted({k for k in keys if keys.count(k) > 1})
        if doubled:
            raise ValueError(f"option keys given to more than one digit: {', '.join(doubled)}")
        return self


class RecordingQuestion(_Question):
    """A voice comment after the prompt and a beep; ends on ``#``, after ``silence_seconds`` of
    silence, or at ``max_seconds``. Nothing to branch on: ``next`` is unconditional."""

    type: Literal["recording"]
    max_seconds: int = Field(default=60, ge=3, le=300)
    silence_seconds: int = Field(default=4, ge=1, le=30)
    next: Name


Question = Annotated[
    NPSQuestion | ScaleQuestion | YesNoQuestion | ChoiceQuestion | RecordingQuestion,
    Field(discriminator="type"),
]


class Consent(Strict):
    """Asked by the intro prompt ("press 1 to take part"); without a consent key within the
    timeout and retries nobody is asked anything."""

    key: Key = "1"
    decline_key: Key | None = "2"
    timeout_seconds: float = Field(default=6, gt=0, le=30)
    retries: int = Field(default=1, ge=0, le=5)
    declined_prompt: Name | None = None  # "thank you, goodbye" after a refusal

    @model_validator(mode="after")
    def _keys(self) -> Consent:
        if self.key == self.decline_key:
            raise ValueError(f"key and decline_key are both {self.key!r}")
        return self


class Survey(Strict):
    name: Name
    description: str = ""
    default_language: Language
    languages: list[Language] = Field(min_length=1)
    intro: Name  # the greeting; with `consent` it asks for it
    consent: Consent | None = None  # None: taking part is implied (e.g. the caller chose it)
    start: Name
    questions: dict[Name, Question] = Field(min_length=1)
    thanks: Name
    invalid_prompt: Name | None = None  # "that is not a valid answer" before a re-prompt
    prompts: dict[Name, Prompt]
