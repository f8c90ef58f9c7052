"""Carries out the media actions of a pure call state machine (``core.prompter``: the
IVR, the survey) on a channel: prompts as ARI playbacks named ``<channel>-<playback id>``,
timers as the call's ``ChannelTimers``. One executor for the info line and the campaigns."""

from __future__ import annotations

import contextlib

from ari_app.ari import ARIClient, ARINotFound, ChannelTimers
from core.media import PromptSource, prompt_media
from core.prompter import CancelTimer, MediaAction, PlayPrompt, StartTimer, StopPlayback


async def carry_out(
    ari: ARIClient,
    channel_id: str,
    timers: ChannelTimers,
    prompts: PromptSource,
    action: MediaAction,
) -> None:
    """One media action on ``channel_id``; ``prompts``: the flow or survey naming them."""
    if isinstance(action, PlayPrompt):
        media = prompt_media(prompts, action.prompt, action.language)
        await ari.play(channel_id, media, f"{channel_id}-{action.playback_id}")
    elif isinstance(action, StopPlayback):
        with contextlib.suppress(ARINotFound):  # it has ended already
            await ari.stop_playback(f"{channel_id}-{action.playback_id}")
    elif isinstance(action, StartTimer):
        timers.start(action.timer_id, action.seconds)
    elif isinstance(action, CancelTimer):
        timers.cancel(action.timer_id)
