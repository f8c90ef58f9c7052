"""The caller's inputs to a simulated call: keys, waits, a hang-up, and timed keys, parsed
from the string or list an admin gives (see ``core.simulation``), and the error bad input
ends in. Pure; may import the standard library and ``core``."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from core.errors import DomainError
from core.infoline import DTMF_KEYS

MAX_KEYS = 100  # inputs in one simulation, like the DTMF a call may send in its IVR
MAX_AFTER_SECONDS = 3600.0

PressAction = Literal["key", "wait", "hang_up"]


class SimulationError(DomainError):
    """A simulation asked for with bad input (keys, time, caller)."""

    def __init__(self, error_id: str, message: str, *, status: int = 400, **details: Any) -> None:
        super().__init__(message, error_id=error_id, status=status, details=details)


@dataclass(frozen=True)
class Press:
    """One input of the caller: a ``key``, a ``wait`` for a timer, or a ``hang_up``."""

    action: PressAction
    key: str = ""
    during_prompt: bool = False  # pressed at once, cutting the prompt that plays
    after_seconds: float | None = None  # pressed this long after the previous input

    def token(self) -> str:
        if self.action == "wait":
            return "w"
        if self.action == "hang_up":
            return "h"
        if self.after_seconds is not None:
            return f"{self.key}@+{self.after_seconds:g}s"
        return f">{self.key}" if self.during_prompt else self.key


def _tokens(text: str, offset: int = 0) -> list[Press]:
    presses: list[Press] = []
    during = False
    for i, char in enumerate(text):
        if char in " ,":
            if during:
                raise SimulationError("bad_keys", "'>' must come right before a key", at=offset + i)
            continue
        if char == ">":
            if during:
                raise SimulationError("bad_keys", "'>>': one '>' per key", at=offset + i)
            during = True
        elif char in DTMF_KEYS:
            presses.append(Press("key", char, during_prompt=during))
            during = False
        elif char in "wh" and not during:
            presses.append(Press("wait" if char == "w" else "hang_up"))
        else:
            raise SimulationError(
                "bad_keys",
                f"{char!r} at {offset + i}: keys are 0-9 * # A-D, '>' before a key, w, h",
                at=offset + i,
            )
    if during:
        raise SimulationError("bad_keys", "'>' must come right before a key", at=offset + len(text))
    return presses


def _timed(item: Mapping[str, Any], index: int) -> Press:
    unknown = set(item) - {"key", "after_seconds", "during_prompt", "wait", "hang_up"}
    if unknown:
        raise SimulationError("bad_keys", f"keys[{index}]: unknown {sorted(unknown)}", at=index)
    if item.get("wait") is True and len(item) == 1:
        return Press("wait")
    if item.get("hang_up") is True and len(item) == 1:
        return Press("hang_up")
    key = item.get("key")
    if not isinstance(key, str) or len(key) != 1 or key not in DTMF_KEYS:
        raise SimulationError("bad_keys", f"keys[{index}]: key is one of 0-9 * # A-D", at=index)
    after = item.get("after_seconds")
    during = item.get("during_prompt", False)
    if not isinstance(during, bool):
        raise SimulationError(
            "bad_keys", f"keys[{index}]: during_prompt is true or false", at=index
        )
    if after is not None:
        if (
            isinstance(after, bool)
            or not isinstance(after, int | float)
            or not 0 <= after <= MAX_AFTER_SECONDS
        ):
            raise SimulationError(
                "bad_keys", f"keys[{index}]: after_seconds is 0-{MAX_AFTER_SECONDS:g}", at=index
            )
        if during:
            raise SimulationError(
                "bad_keys", f"keys[{index}]: after_seconds or during_prompt, not both", at=index
            )
        return Press("key", key, after_seconds=float(after))
    return Press("key", key, during_prompt=during)


def parse_keys(keys: str | Sequence[object]) -> list[Press]:
    """The caller's inputs (see the module's docstring); SimulationError ``bad_keys``."""
    presses: list[Press] = []
    if isinstance(keys, str):
        presses = _tokens(keys)
    elif isinstance(keys, Sequence):
        for index, item in enumerate(keys):
            if isinstance(item, Press):
                presses.append(item)
            elif isinstance(item, str):
                found = _tokens(item, index)
                if len(found) != 1:
                    raise SimulationError(
                        "bad_keys", f"keys[{index}]: one key, '>key', w or h", at=index
                    )
                presses += found
            elif isinstance(item, Mapping):
                presses.append(_timed(item, index))
            else:
                raise SimulationError("bad_keys", f"keys[{index}]: a string or an object", at=index)
    else:
        raise SimulationError("bad_keys", "keys: a string or a list")
    if len(presses) > MAX_KEYS:
        raise SimulationError("bad_keys", f"at most {MAX_KEYS} keys", at=MAX_KEYS)
    return presses
