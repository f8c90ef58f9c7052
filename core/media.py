"""Which media plays a prompt: the ARI media URI of a flow's or a survey's prompt in a
language (``prompt_media``), and the sound file name it is synthesised into. Pure: the
synthesis itself (espeak-ng, sox) is I/O and stays in ``centrala.prompts``."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from typing import Protocol

from core.surveys.model import Survey
from dialplan.model import Prompt

SOUND_PREFIX = "centrala"
# A flow's synthesised prompt is named after its text too ("welcome-3fa2c91b"): a version that
# changes a text gets a file of its own, so calls still on the old version (and everyone
# while a draft is tried from a test number) go on hearing the old one.
_TEXT_TAG = re.compile(r"-[0-9a-f]{8}$")


class PromptSource(Protocol):
    """A call flow or a survey: whatever names prompts."""

    @property
    def prompts(self) -> Mapping[str, Prompt]: ...


def text_tag(lang: str, text: str) -> str:
    return hashlib.sha256(f"{lang}\n{text}".encode()).hexdigest()[:8]


def sound_name(source: PromptSource, name: str, lang: str) -> str:
    """The file name (without .wav) prompt ``name`` in ``lang`` is synthesised into:
    ``<name>-<tag of the text>`` for a flow, ``survey-<survey>-<name>-<tag>`` for a survey (so
    they never overwrite the info line's: both have "thanks"). A new text is a new file, so
    a published edit is heard at once while calls on the old version keep theirs."""
    prompt = source.prompts.get(name)
    text = prompt.text.get(lang) if prompt is not None else None
    stem = f"survey-{source.name}-{name}" if isinstance(source, Survey) else name
    return f"{stem}-{text_tag(lang, text)}" if text else stem


def prompt_of(sound: str) -> str:
    """The prompt's name in a flow's sound name (``welcome-3fa2c91b`` -> ``welcome``)."""
    return _TEXT_TAG.sub("", sound)


def prompt_media(source: PromptSource, name: str, lang: str) -> str:
    """The ARI media URI that plays prompt `name` in `lang`: the prompt's explicit media for
    that language if it has one, else the synthesised ``sound:centrala/<lang>/<file>``."""
    prompt = source.prompts.get(name)
    if prompt is not None and lang in prompt.media:
        return prompt.media[lang]
    return f"sound:{SOUND_PREFIX}/{lang}/{sound_name(source, name, lang)}"
