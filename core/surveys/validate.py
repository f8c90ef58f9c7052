"""Checks of a survey definition before it is stored: pure functions, like
``dialplan.validate``.

``load_survey`` parses YAML or JSON into a ``Survey`` (shape errors raise ``SurveyError`` with
"path.to.field: message" lines); ``validate`` then finds what the shape cannot express: unknown
``next`` questions, unreachable questions, loops (a survey asks each question at most once:
answers are keyed by question), conditions that cannot fit the question's answers, missing
prompts or languages. One line per problem; an empty list means valid.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from pydantic import ValidationError

from core.surveys.model import (
    END,
    MAX_QUESTIONS,
    NPS_MAX,
    Case,
    ChoiceQuestion,
    NPSQuestion,
    Question,
    RecordingQuestion,
    ScaleQuestion,
    Survey,
    When,
    YesNoQuestion,
)
from dialplan.validate import FlowError, check_prompt_sizes, check_prompts, read_document

QUESTION_TYPES = ("nps", "scale", "yes_no", "choice", "recording")


class SurveyError(Exception):
    """A survey that cannot be used; ``problems`` holds one message per problem."""

    def __init__(self, problems: Iterable[str]) -> None:
        self.problems = list(problems)
        super().__init__("\n".join(self.problems))


# ---- parsing ------------------------------------------------------------------------------


def _loc(loc: tuple[int | str, ...]) -> str:
    parts = list(loc)
    # Discriminated questions put the type tag in the path: questions.q.nps.prompt -> q.prompt
    if len(parts) >= 3 and parts[0] == "questions" and parts[2] in QUESTION_TYPES:
        del parts[2]
    out = ""
    for p in parts:
        out += f"[{p}]" if isinstance(p, int) else (f".{p}" if out else str(p))
    return out or "(top level)"


def shape_problems(exc: ValidationError) -> list[str]:
    """Pydantic's errors about a survey as "path.to.field: message" lines."""
    return [
        f"{_loc(tuple(e['loc']))}: {e['msg'].removeprefix('Value error, ')}" for e in exc.errors()
    ]


def load_survey(text: str, filename: str) -> Survey:
    """Parse a survey written as YAML or JSON. Raises SurveyError with every shape problem."""
    try:
        data = read_document(text, filename)
    except FlowError as exc:
        raise SurveyError(exc.problems) from None
    if not isinstance(data, dict):
        kind = "empty" if data is None else type(data).__name__
        raise SurveyError(
            [f"{filename}: a survey is a mapping (name:, questions:, ...), not {kind}"]
        )
    try:
        survey = Survey.model_validate(data)
    except ValidationError as exc:
        raise SurveyError(shape_problems(exc)) from None
    # Whatever reads a survey (apply, serve, the prompt builder) gets one within the limits.
    if problems := check_limits(survey):
        raise SurveyError(problems)
    return survey


def check_limits(survey: Survey) -> list[str]:
    """The survey's size within the limits: checked before anything else, so an oversized
    survey is never walked, stored or synthesised."""
    problems = []
    if len(survey.questions) > MAX_QUESTIONS:
        problems.append(f"questions: {len(survey.questions):,} questions, at most {MAX_QUESTIONS}")
    problems.extend(check_prompt_sizes(survey.prompts, survey.languages))
    return problems


# ---- checks -------------------------------------------------------------------------------


def cases(question: Question) -> list[Case]:
    """The question's ``next`` as cases (a plain name is one default case)."""
    if isinstance(question.next, str):
        return [Case(next=question.next)]
    return list(question.next)


def _targets(name: str, question: Question) -> Iterator[tuple[str, str]]:
    if isinstance(question.next, str):
        yield f"questions.{name}.next", question.next
    else:
        for i, case in enumerate(question.next):
            yield f"questions.{name}.next[{i}].next", case.next


def _prompts(survey: Survey) -> Iterator[tuple[str, str]]:
    """(where, prompt name) for every prompt the survey plays."""
    yield "intro", survey.intro
    yield "thanks", survey.thanks
    if survey.invalid_prompt is not None:
        yield "invalid_prompt", survey.invalid_prompt
    if survey.consent is not None and survey.consent.declined_prompt is not None:
        yield "consent.declined_prompt", survey.consent.declined_prompt
    for name, question in survey.questions.items():
        yield f"questions.{name}.prompt", question.prompt
        if question.invalid_prompt is not None:
            yield f"questions.{name}.invalid_prompt", question.invalid_prompt


def _fmt(items: Iterable[str]) -> str:
    return ", ".join(sorted(items))


def _check_languages(survey: Survey) -> list[str]:
    problems = []
    if survey.default_language not in survey.languages:
        problems.append(
            f"default_language: {survey.default_language!r} is not in languages "
            f"[{_fmt(survey.languages)}]"
        )
    for lang in sorted({x for x in survey.languages if survey.languages.count(x) > 1}):
        problems.append(f"languages: {lang!r} is listed twice")
    return problems


def _check_graph(survey: Survey) -> list[str]:
    problems = []
    questions = survey.questions
    if END in questions:
        problems.append(f"questions.{END}: {END!r} is reserved (`next: {END}` ends the survey)")
    if survey.start not in questions:
        problems.append(f"start: no question named {survey.start!r}")
    edges: dict[str, list[str]] = {name: [] for name in questions}
    for name, question in questions.items():
        for where, target in _targets(name, question):
            if target == END:
                continue
            if target in questions:
                edges[name].append(target)
            else:
                problems.append(f"{where}: no question named {target!r} (nor {END!r})")
    if survey.start not in questions:
        return problems

    reached: set[str] = set()
    stack = [survey.start]
    while stack:
        name = stack.pop()
        if name not in reached:
            reached.add(name)
            stack.extend(edges[name])
    if unreachable := set(questions) - reached:
        problems.append(f"unreachable questions (no path from start): {_fmt(unreachable)}")

    # Any cycle is a loop: answers are stored one per question and call. A depth-first walk
    # with its own stack (no recursion a long chain of questions could exhaust).
    state: dict[str, int] = {}  # 1: on the current path, 2: finished
    path: list[str] = []
    for begin in sorted(questions):
        if begin in state:
            continue
        walk: list[tuple[str, bool]] = [(begin, False)]
        while walk:
            name, finished = walk.pop()
            if finished:
                path.pop()
                state[name] = 2
                continue
            if name in state:
                continue
            state[name] = 1
            path.append(name)
            walk.append((name, True))
            # Pushed in reverse: visited in sorted order, as the report always was.
            for target in sorted(set(edges[name]), reverse=True):
                if state.get(target) == 1:
                    cycle = [*path[path.index(target) :], target]
                    problems.append(
                        f"loop: {' → '.join(cycle)} (a survey asks each question at most once)"
                    )
                elif target not in state:
                    walk.append((target, False))
    return problems


def _answer_range(question: Question) -> tuple[int, int] | None:
    if isinstance(question, NPSQuestion):
        return 0, NPS_MAX
    if isinstance(question, ScaleQuestion):
        return question.min, question.max
    if isinstance(question, YesNoQuestion):
        return 0, 1
    return None


def _check_when(where: str, question: Question, when: When) -> list[str]:
    problems = []
    numbers = _answer_range(question)
    if isinstance(question, ChoiceQuestion):
        if when.answer_in is not None or when.min is not None or when.max is not None:
            problems.append(f"{where}: a choice is answered by option keys: use option_in")
        known = set(question.options.values())
        for key in when.option_in or ():
            if key not in known:
                problems.append(f"{where}.option_in: {key!r} is not an option [{_fmt(known)}]")
    elif numbers is not None:
        low, high = numbers
        if when.option_in is not None:
            problems.append(f"{where}.option_in: only choice questions have options")
        for value in when.answer_in or ():
            if not low <= value <= high:
                problems.append(f"{where}.answer_in: {value} is outside {low}..{high}")
        for bound in ("min", "max"):
            value = getattr(when, bound)
            if value is not None and not low <= value <= high:
                problems.append(f"{where}.{bound}: {value} is outside {low}..{high}")
    return problems


def _check_cases(survey: Survey) -> list[str]:
    problems = []
    for name, question in survey.questions.items():
        if isinstance(question.next, str) or isinstance(question, RecordingQuestion):
            continue
        where = f"questions.{name}.next"
        if not question.next:
            problems.append(f"{where}: no cases")
            continue
        default_at = next((i for i, c in enumerate(question.next) if c.when is None), None)
        if default_at is None:
            problems.append(
                f"{where}: no default case (end with a case without `when`: unanswered and "
                "unmatched answers need somewhere to go)"
            )
        else:
            for i in range(default_at + 1, len(question.next)):
                problems.append(
                    f"{where}[{i}]: never tried, the default case {where}"
                    f"[{default_at}] comes before it"
                )
        for i, case in enumerate(question.next):
            if case.when is not None:
                problems.extend(_check_when(f"{where}[{i}].when", question, case.when))
    return problems


def validate(survey: Survey) -> list[str]:
    """Every problem of the survey, one line each; empty when it can be applied."""
    if problems := check_limits(survey):
        return problems
    return [
        *_check_languages(survey),
        *_check_graph(survey),
        *_check_cases(survey),
        *check_prompts(_prompts(survey), survey.prompts, survey.languages),
    ]


def check_survey(text: str, filename: str) -> Survey:
    """Load and validate; raises SurveyError with every problem found."""
    survey = load_survey(text, filename)
    if problems := validate(survey):
        raise SurveyError(problems)
    return survey
