"""Prompts and one timer for a pure call state machine (the IVR, the survey): plays a list of
prompts one after another, runs one timer, hands out their ids, and recognises the events of
something already stopped as stale. Pure: it returns the media actions to carry out."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class PlayPrompt:
    prompt: str
    language: str
    playback_id: str


@dataclass(frozen=True)
class StopPlayback:
    playback_id: str


@dataclass(frozen=True)
class StartTimer:
    timer_id: str
    seconds: float


@dataclass(frozen=True)
class CancelTimer:
    timer_id: str


MediaAction = PlayPrompt | StopPlayback | StartTimer | CancelTimer


@dataclass
class Prompter:
    playlist: list[str] = field(default_factory=list)
    playing: str | None = None
    timer: str | None = None
    seq: int = 0

    def play(self, prompts: list[str], language: str) -> list[MediaAction]:
        """Play ``prompts`` in a row (replacing any list still waiting)."""
        self.playlist = list(prompts)
        return self._next(language)

    def finished(self, playback_id: str, language: str) -> list[MediaAction] | None:
        """A playback ended. None: not the one playing (stale); []: the list has played to
        its end; else the next prompt to play."""
        if playback_id != self.playing:
            return None
        self.playing = None
        return self._next(language) if self.playlist else []

    def fired(self, timer_id: str) -> bool:
        """A timer went off; False when it is not the running one (stale)."""
        if timer_id != self.timer:
            return False
        self.timer = None
        return True

    def start_timer(self, seconds: float) -> list[MediaAction]:
        self.seq += 1
        self.timer = f"t{self.seq}"
        return [StartTimer(self.timer, seconds)]

    def stop(self) -> list[MediaAction]:
        """Stop what plays and the timer, drop the waiting prompts."""
        actions: list[MediaAction] = []
        if self.playing is not None:
            actions.append(StopPlayback(self.playing))
            self.playing = None
        return actions + self.forget()

    def forget(self) -> list[MediaAction]:
        """The call is gone: cancel the timer, forget the prompts (nothing left to stop)."""
        actions: list[MediaAction] = []
        if self.timer is not None:
            actions.append(CancelTimer(self.timer))
            self.timer = None
        self.playing = None
        self.playlist = []
        return actions

    def _next(self, language: str) -> list[MediaAction]:
        prompt = self.playlist.pop(0)
        self.seq += 1
        self.playing = f"p{self.seq}"
        return [PlayPrompt(prompt, language, self.playing)]
