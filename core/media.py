"""Which media plays a prompt: the ARI media URI of a flow's or a survey's prompt in a
language (``prompt_media``), and the sound file name it is synthesised into. Pure: the
synthesis itself (espeak-ng, sox) is I/O and stays in ``centrala.prompts``."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol

from core.surveys.model import Survey
from dialplan.model import Prompt

SOUND_PREFIX = "centrala"


class PromptSource(Protocol):
    """A call flow or a survey: whatever names prompts."""

    @property
    def prompts(self) -> Mapping[str, Prompt]: ...


def sound_name(source: PromptSource, name: str) -> str:
    """The file name (without .wav) prompt `name` is synthesised into: a survey's prompts are
    ``survey-<survey>-<name>`` so they never overwrite the info line's (both have "thanks")."""
    if isinstance(source, Survey):
        return f"survey-{source.name}-{name}"
    return name


def prompt_media(source: PromptSource, name: str, lang: str) -> str:
    """The ARI media URI that plays prompt `name` in `lang`: the prompt's explicit media for
    that language if it has one, else the synthesised ``sound:centrala/<lang>/<file>``."""
    prompt = source.prompts.get(name)
    if prompt is not None and lang in prompt.media:
        return prompt.media[lang]
    return f"sound:{SOUND_PREFIX}/{lang}/{sound_name(source, name)}"
