"""The simulated call: the IVR (``core.ivr``) fed prompt ends, timers and keys on a model
clock, its actions carried out as ``ari_app.infoline`` carries them out, with the same routing
and info-line decisions (``core.routing``, ``core.infoline``). Pure; may import the standard
library, ``core`` and ``dialplan``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Literal

from core.callphase import CallPhase, Phase, final_outcome
from core.infoline import (
    CallbackOffer,
    CallbackTask,
    after_hours_offer,
    callback_offer,
    callback_task,
    leaves_queue_for_callback,
)
from core.ivr import (
    IVR,
    AgreeSurvey,
    CancelTimer,
    HangupCall,
    IVRAction,
    PlayPrompt,
    RequestCallback,
    RouteTo,
    SetLanguage,
    StartRecording,
    StartTimer,
    StopPlayback,
    recorded_path,
)
from core.media import prompt_media
from core.routing import (
    Caller,
    NoRoute,
    RouteDecision,
    decide,
    on_max_wait,
    overflow_decision,
    queue_is_open,
)
from core.simulation.keys import Press, SimulationError, parse_keys
from core.simulation.result import End, EndKind, HeardPrompt, Simulation, Step
from dialplan.model import Flow, QueueDef

CHARS_PER_SECOND = 14.0  # espeak-ng speaks about 175 words a minute
MIN_PROMPT_SECONDS = 1.0
MEDIA_PROMPT_SECONDS = 3.0  # a recorded file's length is unknown here
MAX_EVENTS = 2_000  # prompts ended, timers run out, keys: more is a flow looping for ever


def prompt_seconds(
    flow: Flow, prompt: str, language: str, lengths: Mapping[str, float] | None = None
) -> float:
    """How long ``prompt`` plays in the model: the length given, else its text's nominal
    spoken length, else a recorded file's nominal length."""
    if lengths is not None and prompt in lengths:
        return float(lengths[prompt])
    known = flow.prompts.get(prompt)
    text = known.text.get(language) if known is not None else None
    if text:
        return round(max(MIN_PROMPT_SECONDS, len(text) / CHARS_PER_SECOND), 1)
    return MEDIA_PROMPT_SECONDS


@dataclass
class _Playing:
    playback_id: str
    index: int  # in the prompts heard
    ends_at: float


class _StepLimit(Exception):
    pass


@dataclass
class _Call:
    """One simulated call: the IVR and the adapter's bookkeeping (``CallerSession``'s fields
    that decide the path), moved as ``ari_app.infoline`` moves them."""

    flow: Flow
    queues: dict[str, QueueDef]
    caller: Caller
    caller_e164: str | None
    caller_number: str | None
    region: str
    at: datetime
    lengths: Mapping[str, float] | None
    ivr: IVR = field(init=False)
    clock: float = 0.0
    phase: CallPhase = field(default_factory=CallPhase)
    playing: _Playing | None = None
    timer: tuple[str, float] | None = None
    steps: list[Step] = field(default_factory=list)
    heard: list[HeardPrompt] = field(default_factory=list)
    seen_path: int = 0
    events: int = 0
    end: End | None = None
    outcome: str | None = None
    survey: str | None = None
    decision: RouteDecision | None = None
    queue_def: QueueDef | None = None
    queue_open: bool | None = None
    visited: list[str] = field(default_factory=list)
    queue_entered: float = 0.0
    callback: CallbackTask | None = None

    def __post_init__(self) -> None:
        self.ivr = IVR(self.flow, self.caller)

    # ---- the run ---------------------------------------------------------------------------

    def run(self, presses: list[Press]) -> list[str]:
        """Play the inputs; the tokens of those the call ended before."""
        last_input = 0.0
        try:
            self._apply(self.ivr.start())
            for index, press in enumerate(presses):
                if self.end is not None:
                    return [p.token() for p in presses[index:]]
                due = None if press.after_seconds is None else last_input + press.after_seconds
                self._press(press, due)
                last_input = self.clock
            while self.end is None and self._at(Phase.IVR):
                if not self._next_event():
                    break
        except _StepLimit:
            self._finish("step_limit", ended=False, reason=f"over {MAX_EVENTS} events")
        if self.end is None and self._at(Phase.QUEUED):
            self._finish("queued", ended=False)
        elif self.end is None:  # the IVR waits for nothing: a flow the validator would refuse
            self._finish("step_limit", ended=False, reason="nothing left to happen")
        return []

    def _press(self, press: Press, due: float | None) -> None:
        if press.action == "hang_up":
            self._step("caller_hung_up", self.ivr.node)
            self._finish("caller_hung_up", hung_up_by_us=False)
            return
        if self._at(Phase.QUEUED):
            self._in_queue(press, due)
            return
        if press.action == "wait":
            while self.end is None and self._at(Phase.IVR):
                fired = self._next_event()
                if fired in ("timer", None):
                    break
            if self.end is None and self._at(Phase.QUEUED):
                self._in_queue(press, due)  # the wait goes on in the queue
            return
        if due is not None:
            while self.end is None and self._at(Phase.IVR):
                next_at = self._next_at()
                if next_at is None or next_at > due:
                    break
                self._next_event()
            if self._at(Phase.IVR):
                self.clock = max(self.clock, due)
        elif not (press.during_prompt and self.playing is not None):
            # Pressed when the line waits for a key: what plays first plays to its end.
            while self.end is None and self._at(Phase.IVR):
                if self.playing is None and self.timer is not None:
                    break
                if self._next_event() is None:
                    break
        if self.end is not None:
            return
        if self._at(Phase.QUEUED):
            self._in_queue(press, due)
            return
        self._key(press.key)

    def _key(self, key: str) -> None:
        self._count()
        node = self.ivr.node
        where = (
            f"during {self.heard[self.playing.index].prompt}"
            if self.playing is not None
            else "while the line waits"
        )
        self._step("key", node, f"{key} {where}")
        self._apply(self.ivr.on_dtmf(key))

    def _at(self, phase: Phase) -> bool:
        # A method, not the attribute: each step may move the phase (mypy would narrow it).
        return self.phase.now is phase

    # ---- media and timers ------------------------------------------------------------------

    def _next_at(self) -> float | None:
        due = [self.playing.ends_at] if self.playing is not None else []
        if self.timer is not None:
            due.append(self.timer[1])
        return min(due) if due else None

    def _next_event(self) -> Literal["prompt", "timer"] | None:
        """Let the earliest of the prompt playing and the timer happen; None: nothing is
        pending."""
        next_at = self._next_at()
        if next_at is None:
            return None
        self._count()
        self.clock = next_at
        if self.playing is not None and self.playing.ends_at == next_at:
            playing, self.playing = self.playing, None
            self._apply(self.ivr.on_playback_finished(playing.playback_id))
            return "prompt"
        assert self.timer is not None
        timer_id, self.timer = self.timer[0], None
        self._step("timeout", self.ivr.node)
        self._apply(self.ivr.on_timer(timer_id))
        return "timer"

    def _count(self) -> None:
        self.events += 1
        if self.events > MAX_EVENTS:
            raise _StepLimit

    # ---- the IVR's actions, as ari_app.infoline.stasis._run carries them out ---------------

    def _apply(self, actions: list[IVRAction]) -> None:
        self._path_steps()
        for action in actions:
            if self.end is not None:
                return
            if isinstance(action, PlayPrompt):
                self._play(action)
            elif isinstance(action, StopPlayback):
                if self.playing is not None and self.playing.playback_id == action.playback_id:
                    i = self.playing.index
                    cut = self.clock - self.heard[i].started
                    self.heard[i] = replace(self.heard[i], cut_at=cut)
                    self.playing = None
            elif isinstance(action, StartTimer):
                self.timer = (action.timer_id, self.clock + action.seconds)
            elif isinstance(action, CancelTimer):
                if self.timer is not None and self.timer[0] == action.timer_id:
                    self.timer = None
            elif isinstance(action, SetLanguage):
                self._step("language", None, f"the call goes on in {action.language}")
            elif isinstance(action, RouteTo):
                self._route(action.intent)
            elif isinstance(action, RequestCallback):
                self._callback(action)
            elif isinstance(action, AgreeSurvey):
                self.survey = action.survey
                self._step("survey_agreed", self.ivr.node, action.survey)
            elif isinstance(action, StartRecording):
                after = self.flow.recording.after if self.flow.recording else None
                self._step("recording", after, "the call is recorded from the end of this node")
            elif isinstance(action, HangupCall):
                self._step("hung_up", self.ivr.node, "the flow hangs up")
                self._finish("hung_up", hung_up_by_us=True, reason="hangup_node")

    def _path_steps(self) -> None:
        for entry in self.ivr.path[self.seen_path :]:
            node, _, choice = entry.partition(":")
            self._step("choice" if choice else "node", node, entry if choice else "")
        self.seen_path = len(self.ivr.path)

    def _play(self, action: PlayPrompt) -> None:
        seconds = prompt_seconds(self.flow, action.prompt, action.language, self.lengths)
        known = self.flow.prompts.get(action.prompt)
        self.heard.append(
            HeardPrompt(
                prompt=action.prompt,
                language=action.language,
                text=known.text.get(action.language) if known is not None else None,
                media=prompt_media(self.flow, action.prompt, action.language),
                started=self.clock,
                seconds=seconds,
            )
        )
        self.playing = _Playing(action.playback_id, len(self.heard) - 1, self.clock + seconds)
        self._step("prompt", self.ivr.node, action.prompt)

    # ---- routing and the queue, as ari_app.infoline.queueing does them ---------------------

    def _route(self, intent: str) -> None:
        try:
            decision = decide(self.flow, self.queues, self.caller, intent)
        except NoRoute:
            self._step("no_route", self.ivr.node, intent)
            self._finish("hung_up", hung_up_by_us=False, reason="no_route")
            return
        self._step("routed", self.ivr.node, f"{intent}: {decision.rule} -> {decision.queue}")
        self._enqueue(decision)

    def _enqueue(self, decision: RouteDecision) -> None:
        self.decision = decision
        self.queue_def = self.queues.get(decision.queue)
        self.visited.append(decision.queue)
        self.queue_open = queue_is_open(self.flow.calendars, self.queue_def, self._now())
        if not self.queue_open:
            self.outcome = "after_hours"
            self._step("after_hours", self.ivr.node, decision.queue)
            self._to_callback(after_hours_offer(self.flow))
            return
        self.phase.move(Phase.QUEUED)
        self.queue_entered = self.clock
        self._step("queued", self.ivr.node, decision.queue)

    def _in_queue(self, press: Press, due: float | None) -> None:
        deadline = (
            self.queue_entered + self.queue_def.max_wait_seconds
            if self.queue_def is not None
            else None
        )
        if press.action == "wait":
            if deadline is None:
                self._step("ignored_key", None, "w: this queue has no maximum wait")
                return
            self.clock = max(self.clock, deadline)
            self._max_wait()
            return
        if due is not None and deadline is not None and deadline <= due:
            self.clock = max(self.clock, deadline)
            self._max_wait()
            if self.end is None:
                self._press(press, due)  # the key is pressed later, wherever the call is
            return
        if due is not None:
            self.clock = max(self.clock, due)
        self._count()
        if not leaves_queue_for_callback(self.flow, press.key):
            self._step("ignored_key", None, f"{press.key} while waiting in the queue")
            return
        self._step("left_queue", None, f"{press.key}: a callback instead of waiting")
        self.phase.move(Phase.IVR)
        self.outcome = "callback_requested"
        self._to_callback(callback_offer(self.flow))

    def _max_wait(self) -> None:
        assert self.decision is not None
        self._count()
        step = on_max_wait(self.queue_def, tuple(self.visited))
        self.phase.move(Phase.IVR)
        self._step("overflowed", None, f"{self.decision.queue} -> {step.queue or 'callback'}")
        if step.kind == "queue" and step.queue:
            self._enqueue(overflow_decision(self.decision, step.queue))
            return
        self.outcome = "overflowed"
        self._to_callback(callback_offer(self.flow))

    def _to_callback(self, offer: CallbackOffer) -> None:
        if offer.node is None:
            self._step("hung_up", self.ivr.node, "no callback node in the flow")
            self._finish("hung_up", hung_up_by_us=False, reason="no_callback_node")
            return
        self._apply(self.ivr.goto(offer.node, preamble=list(offer.preamble)))

    def _callback(self, request: RequestCallback) -> None:
        self.callback = callback_task(
            request,
            flow=self.flow,
            queues=self.queues,
            caller=self.caller,
            caller_e164=self.caller_e164,
            caller_number=self.caller_number,
            region=self.region,
            outcome=self.outcome,
            at=self._now(),
        )
        if self.outcome is None:
            self.outcome = "callback_requested"
        due = self.callback.due_at.isoformat()
        self._step("callback", self.ivr.node, f"{self.callback.number or '?'} from {due}")

    # ---- the end ---------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self.at + timedelta(seconds=self.clock)

    def _step(self, kind: str, node: str | None, detail: str = "") -> None:
        self.steps.append(Step(self.clock, kind, node, detail))

    def _finish(
        self, kind: EndKind, *, hung_up_by_us: bool = False, reason: str = "", ended: bool = True
    ) -> None:
        """``ended``: the call is over here (its row's outcome is known), else it stays where
        it is (in a queue, or stopped by the step limit)."""
        outcome = None
        if ended:
            self.phase.move(Phase.ENDED)
            outcome = final_outcome(
                phase=self.phase,
                connected=False,
                outcome=self.outcome,
                hung_up_by_us=hung_up_by_us,
            )
        self.playing = None
        self.timer = None
        self.end = End(
            kind=kind,
            seconds=self.clock,
            at=self._now(),
            outcome=outcome,
            node=self.ivr.node,
            reason=reason,
            route=self.decision,
            queue_open=self.queue_open,
            callback=self.callback,
        )


def simulate(
    flow: Flow,
    caller: Caller,
    at: datetime,
    keys: str | Sequence[object] = "",
    *,
    queues: dict[str, QueueDef] | None = None,
    caller_number: str | None = None,
    caller_e164: str | None = None,
    region: str = "BA",
    prompt_lengths: Mapping[str, float] | None = None,
) -> Simulation:
    """Simulate a call from ``caller`` answered at ``at`` (aware) pressing ``keys``.
    ``queues``: the live queue settings (an admin may have edited them since the flow was
    applied; default the flow's own); ``caller_number``/``caller_e164``: the number they call
    from (a callback on "their own number" goes there)."""
    if at.tzinfo is None or at.utcoffset() is None:
        raise SimulationError("bad_time", "the time needs a zone (e.g. 2026-12-01T10:00+01:00)")
    presses = parse_keys(keys)
    call = _Call(
        flow=flow,
        queues=dict(flow.queues) if queues is None else queues,
        caller=caller,
        caller_e164=caller_e164,
        caller_number=caller_number,
        region=region,
        at=at,
        lengths=prompt_lengths,
    )
    left = call.run(presses)
    assert call.end is not None
    return Simulation(
        flow=flow.name,
        caller=caller,
        started_at=at,
        language=call.ivr.language,
        path=recorded_path(call.ivr.path),
        steps=call.steps,
        prompts=call.heard,
        end=call.end,
        survey=call.survey,
        queues=call.visited,
        keys_left=left,
    )
