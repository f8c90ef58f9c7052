"""The IVR interpreter: walks a caller through a flow (``dialplan/model.py``). Pure: the Stasis
adapter feeds it what happened on the channel (a prompt ended, a key was pressed, a timer
fired) and carries out the actions it returns.

Every prompt can be skipped with a key, and that key counts as typed ahead for the next menu
("press 3 for complaints" can be pressed during the welcome). Menus re-prompt after a timeout
or an invalid key, then go to their ``on_fail`` node.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from core.prompter import CancelTimer as CancelTimer
from core.prompter import PlayPrompt as PlayPrompt
from core.prompter import Prompter
from core.prompter import StartTimer as StartTimer
from core.prompter import StopPlayback as StopPlayback
from core.routing import Caller, matches
from dialplan.model import (
    AgreeSurveyNode,
    BranchNode,
    CallbackNode,
    Flow,
    HangupNode,
    LanguageNode,
    MenuNode,
    PlayNode,
    RouteNode,
)

MAX_CALLBACK_DIGITS = 20
CALLBACK_FIRST_KEY_SECONDS = 8.0
CALLBACK_NEXT_KEY_SECONDS = 5.0
# A call's path as the call log stores it: a caller pressing keys for an hour would otherwise
# store tens of thousands of entries in one row (and ship them to every screen pop).
MAX_RECORDED_PATH = 200
RECORDED_PATH_HEAD = 50  # the start says how the caller came in; the rest is the latest


def recorded_path(path: list[str], limit: int = MAX_RECORDED_PATH) -> list[str]:
    """``path`` as stored: whole when short enough, else its first ``RECORDED_PATH_HEAD``
    entries, a marker saying how many were left out, and the latest ones; ``limit`` entries in
    all."""
    if len(path) <= limit:
        return list(path)
    head = min(RECORDED_PATH_HEAD, limit // 4)
    tail = limit - head - 1
    return [*path[:head], f"…{len(path) - head - tail} skipped…", *path[-tail:]]


@dataclass(frozen=True)
class SetLanguage:
    language: str


@dataclass(frozen=True)
class RouteTo:
    intent: str


@dataclass(frozen=True)
class RequestCallback:
    """Call the caller back: on ``number`` as keyed, or on their own number when None."""

    number: str | None
    queue: str


@dataclass(frozen=True)
class HangupCall:
    pass


@dataclass(frozen=True)
class StartRecording:
    """The notice that calls are recorded has been played (or skipped with a key): record the
    call from now on (the adapter does nothing when it is recorded already)."""


@dataclass(frozen=True)
class AgreeSurvey:
    """The caller agreed to ``survey`` after the call (the adapter remembers it)."""

    survey: str


IVRAction = (
    PlayPrompt
    | StopPlayback
    | StartTimer
    | CancelTimer
    | SetLanguage
    | RouteTo
    | RequestCallback
    | HangupCall
    | AgreeSurvey
    | StartRecording
)


@dataclass
class IVR:
    flow: Flow
    caller: Caller
    language: str = ""
    node: str | None = None
    path: list[str] = field(default_factory=list)
    done: bool = False
    _media: Prompter = field(default_factory=Prompter)
    _attempts: int = 0
    _digits: str = ""
    _confirming: bool = False
    _preamble: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.language:
            # A client the CRM knows hears everything in their language from the first
            # prompt (the recording notice); the others the line's default until they choose.
            known = self.caller.language
            self.language = known if known in self.flow.languages else self.flow.default_language

    # ---- inputs ---------------------------------------------------------------------------

    def start(self) -> list[IVRAction]:
        return self.goto(self.flow.start)

    def goto(
        self, node: str, typeahead: str | None = None, preamble: list[str] | None = None
    ) -> list[IVRAction]:
        """Enter ``node`` (also used by the adapter: after hours, a callback from the queue);
        ``preamble`` prompts play first (e.g. "we are closed" before the callback offer)."""
        actions = self._stop()
        self.done = False
        self._preamble = list(preamble or [])
        return actions + self._enter(node, typeahead)

    def on_playback_finished(self, playback_id: str) -> list[IVRAction]:
        step = self._media.finished(playback_id, self.language)
        if step is None:
            return []
        return [*step] if step else self._prompts_done()

    def on_timer(self, timer_id: str) -> list[IVRAction]:
        if not self._media.fired(timer_id):
            return []
        node = self._node()
        if isinstance(node, MenuNode):
            return self._menu_retry(node, invalid=False)
        if isinstance(node, LanguageNode):
            return self._enter(node.next)
        if isinstance(node, CallbackNode):
            if self._digits:
                return self._callback_take(node, self._digits)
            self._attempts += 1
            if self._attempts > 1:
                # No answer twice: no callback without the caller's consent.
                return self._enter(node.next)
            return self._play([node.prompt])
        return []

    def on_dtmf(self, digit: str) -> list[IVRAction]:
        if self.done or self.node is None:
            return []
        node = self._node()
        if isinstance(node, PlayNode | AgreeSurveyNode):
            return self._stop() + self._enter(node.next, typeahead=digit)
        if isinstance(node, HangupNode):
            return []
        if isinstance(node, LanguageNode):
            return self._stop() + self._language_key(node, digit)
        if isinstance(node, MenuNode):
            return self._stop() + self._menu_key(node, digit)
        if isinstance(node, CallbackNode):
            if self._confirming:
                return []
            return self._stop() + self._callback_key(node, digit)
        return []

    # ---- restart survival -----------------------------------------------------------------

    @property
    def playing(self) -> str | None:
        """The prompt playing now (its playback id), if any."""
        return self._media.playing

    @property
    def seq(self) -> int:
        return self._media.seq

    def resume(self, language: str, path: list[str], seq: int) -> None:
        """Continue a call another process walked this far; playback and timer ids go on from
        ``seq`` so they never meet the old process's (a late event of those is stale)."""
        if language in self.flow.languages:
            self.language = language
        self.path = list(path)
        self._media.seq = seq

    # ---- nodes ----------------------------------------------------------------------------

    def _node(self) -> object:
        assert self.node is not None
        return self.flow.nodes[self.node]

    def _enter(self, name: str, typeahead: str | None = None) -> list[IVRAction]:
        """Enter ``name`` and walk on through the nodes that need no waiting (a play skipped by
        a key typed ahead, a branch, a known caller's language, a survey agreement) until one
        plays, waits or ends. A loop, not recursion: a flow's chain must not be able to
        exhaust the stack. ``dialplan.validate`` refuses loops of such nodes; one in a flow
        stored before that check hangs up after a walk longer than the flow, not spinning."""
        actions: list[IVRAction] = []
        for _step in range(len(self.flow.nodes) + 1):
            if self._leaving_notice():
                actions.append(StartRecording())
            node = self.flow.nodes[name]
            self.node = name
            self.path.append(name)
            self._attempts = 0
            self._digits = ""
            self._confirming = False
            if isinstance(node, PlayNode):
                if typeahead is not None:
                    name = node.next
                    continue
                return actions + self._play([node.prompt])
            if isinstance(node, LanguageNode):
                lang = self.caller.language
                if lang and lang in self.flow.languages:
                    self.language = lang
                    actions.append(SetLanguage(lang))
                    name = node.next
                    continue
                if typeahead is not None:
                    if typeahead not in node.options:
                        # Not a language key: the caller is already answering the next menu.
                        name = node.next
                        continue
                    return actions + self._language_key(node, typeahead)
                return actions + self._play([node.prompt])
            if isinstance(node, BranchNode):
                name = next(
                    (c.next for c in node.cases if matches(c.when, self.caller, None)),
                    node.default,
                )
                continue
            if isinstance(node, MenuNode):
                if typeahead is not None:
                    return actions + self._menu_key(node, typeahead)
                return actions + self._play([node.prompt])
            if isinstance(node, RouteNode):
                self.done = True
                return [*actions, RouteTo(node.intent)]
            if isinstance(node, CallbackNode):
                return actions + self._play([node.prompt])
            if isinstance(node, HangupNode):
                if node.prompt:
                    return actions + self._play([node.prompt])
                self.done = True
                return [*actions, HangupCall()]
            if isinstance(node, AgreeSurveyNode):
                actions.append(AgreeSurvey(node.survey))
                if node.prompt is None or typeahead is not None:
                    name = node.next
                    continue
                return actions + self._play([node.prompt])
            raise AssertionError(f"unknown node type {type(node).__name__}")
        self.done = True
        return [*actions, HangupCall()]

    def _leaving_notice(self) -> bool:
        """Moving on from the node whose end starts the recording (``Flow.recording``)."""
        recording = self.flow.recording
        return recording is not None and self.node == recording.after

    def _prompts_done(self) -> list[IVRAction]:
        node = self._node()
        if isinstance(node, PlayNode | AgreeSurveyNode):
            return self._enter(node.next)
        if isinstance(node, MenuNode):
            return self._start_timer(node.timeout_seconds)
        if isinstance(node, LanguageNode):
            return self._start_timer(node.timeout_seconds)
        if isinstance(node, CallbackNode):
            if self._confirming:
                return self._enter(node.next)
            return self._start_timer(CALLBACK_FIRST_KEY_SECONDS)
        if isinstance(node, HangupNode):
            self.done = True
            return [HangupCall()]
        return []

    def _language_key(self, node: LanguageNode, digit: str) -> list[IVRAction]:
        lang = node.options.get(digit)
        if lang is None:
            # Not a language key: the caller is already answering the next menu.
            return self._enter(node.next, typeahead=digit)
        self.language = lang
        self.path.append(f"{self.node}:{digit}")
        return [SetLanguage(lang), *self._enter(node.next)]

    def _menu_key(self, node: MenuNode, digit: str) -> list[IVRAction]:
        target = node.options.get(digit)
        if target is None:
            self.path.append(f"{self.node}:{digit}!")
            return self._menu_retry(node, invalid=True)
        self.path.append(f"{self.node}:{digit}")
        return self._enter(target)

    def _menu_retry(self, node: MenuNode, *, invalid: bool) -> list[IVRAction]:
        self._attempts += 1
        if self._attempts > node.retries:
            self.path.append(f"{self.node}:{'invalid' if invalid else 'timeout'}")
            return self._enter(node.on_fail)
        prompts = [node.prompt]
        if invalid and node.invalid_prompt:
            prompts.insert(0, node.invalid_prompt)
        return self._play(prompts)

    def _callback_key(self, node: CallbackNode, digit: str) -> list[IVRAction]:
        if not self._digits and digit == "1":
            return self._callback_take(node, None)
        if digit == "#":
            return self._callback_take(node, self._digits or None)
        if digit.isdigit() and len(self._digits) < MAX_CALLBACK_DIGITS:
            self._digits += digit
        return self._start_timer(CALLBACK_NEXT_KEY_SECONDS)

    def _callback_take(self, node: CallbackNode, number: str | None) -> list[IVRAction]:
        self.path.append(f"{self.node}:{'own_number' if number is None else 'other_number'}")
        self._confirming = True
        return [RequestCallback(number, node.queue), *self._play([node.confirm_prompt])]

    # ---- media and timers -----------------------------------------------------------------

    def _play(self, prompts: list[str]) -> list[IVRAction]:
        preamble, self._preamble = self._preamble, []
        return [*self._media.play([*preamble, *prompts], self.language)]

    def _start_timer(self, seconds: float) -> list[IVRAction]:
        return [*self._media.start_timer(seconds)]

    def _stop(self) -> list[IVRAction]:
        return [*self._media.stop()]
