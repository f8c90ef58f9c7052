"""Simulate a call to a flow ("Simulate this call" in the admin console), pure: a caller (the
CRM's facts about them, or nobody known), a moment, and the keys they press go through the very
IVR interpreter (``core.ivr``), routing (``core.routing``) and info-line decisions
(``core.infoline``) that live calls go through, in the order the Stasis adapter
(``ari_app.infoline``) calls them; out come the steps, the prompts heard with their text in the
call's language, the IVR path exactly as the call log stores it (``calls.ivr_path``), and where
the call ends.

**Time.** The call is answered at ``at``; the model clock runs from there. Nothing here can
know a sound file's length, so a prompt lasts a nominal time: its text in the call's language
at ``CHARS_PER_SECOND`` (espeak-ng's default rate, which synthesises the shipped prompts), at
least ``MIN_PROMPT_SECONDS``; a recorded file without text ``MEDIA_PROMPT_SECONDS``. A caller
of ``simulate`` may pass the real lengths (``prompt_lengths``). Timers (a menu's timeout, the
callback's key waits, a queue's maximum wait) take their configured seconds. The clock says
when a queue's hours are checked and when a callback is due.

**Keys** (``parse_keys``): a string such as ``"9 2"``, ``">0"``, ``"1w3"``, ``"0w*1h"``, or a
list of such tokens and timed keys:

- ``0-9 * # A-D``: pressed when the line next waits for a key, i.e. after the prompts of the
  menu (language choice, callback offer) have played to their end;
- ``>`` before a key: pressed at once, during the prompt playing now (typed ahead: the IVR
  cuts the prompt, and a key typed during a plain announcement counts for the next menu, as
  on a live call);
- ``w``: press nothing until a timer runs out (a menu's timeout and retry; in a queue, its
  maximum wait with nobody answering: the overflow);
- ``h``: the caller hangs up there;
- in a list, ``{"key": "1", "after_seconds": 2.5}``: pressed 2.5 s (model time) after the
  previous input, whatever plays or waits then (a timer due earlier runs out first; a key due
  the moment a prompt ends counts after it).

After the last input the caller stays on the line pressing nothing: timeouts run until the
call reaches a queue or the flow ends it. In a queue the only key that does anything is the
flow's callback key (``*``); no agent answers in a simulation, the queue is where it ends
unless ``w`` waits out the maximum wait. Announcements in the queue change no path and are left
out. A flow that loops without end stops after ``MAX_EVENTS`` events (``step_limit``).

The package: ``keys.py`` (the caller's inputs and their parsing), ``walk.py`` (the simulated
call: the IVR's actions carried out as the adapter carries them out), ``result.py`` (what a
simulation shows). May import the standard library, ``core`` and ``dialplan`` (like the rest
of ``core``).
"""

from core.simulation.keys import MAX_AFTER_SECONDS, MAX_KEYS, Press, SimulationError, parse_keys
from core.simulation.result import End, HeardPrompt, Simulation, Step
from core.simulation.walk import (
    CHARS_PER_SECOND,
    MAX_EVENTS,
    MEDIA_PROMPT_SECONDS,
    MIN_PROMPT_SECONDS,
    prompt_seconds,
    simulate,
)

__all__ = [
    "CHARS_PER_SECOND",
    "MAX_AFTER_SECONDS",
    "MAX_EVENTS",
    "MAX_KEYS",
    "MEDIA_PROMPT_SECONDS",
    "MIN_PROMPT_SECONDS",
    "End",
    "HeardPrompt",
    "Press",
    "Simulation",
    "SimulationError",
    "Step",
    "parse_keys",
    "prompt_seconds",
    "simulate",
]
