"""The agent dialler's part in working callback tasks: an agent's own due callbacks (assigned
to them, or their client's) are held on their desk as a preview before the queue's callbacks
are dialled for whoever is free; and every agent's campaigns are served callbacks first
(``core.callbacks.callbacks_first``). The feeder that fills the campaigns is
``models.callback_tasks``; ``serve`` runs it on a schedule."""

from __future__ import annotations

from collections.abc import Callable, Collection, MutableMapping
from typing import Any

import structlog

from ari_app.campaigns.session import number_zones
from models.callback_tasks import agents_with_own_callbacks, release_claim
from models.calllog import now
from models.dialler import Claimed, DiallerStore, RunningAgentCampaign

log = structlog.get_logger(__name__)


async def offer_own_callbacks(
    store: DiallerStore,
    campaign: RunningAgentCampaign,
    ready: list[str],
    hold: Callable[[str, RunningAgentCampaign, Claimed], None],
) -> list[str]:
    """Each free agent (``ready``) with an own callback of ``campaign`` due gets it on their
    desk, held for them (``hold``) until they call or skip it; the agents left free, for the
    queue's callbacks."""
    at = now()
    own = await agents_with_own_callbacks(store.sessions, campaign.id, ready, at)
    still = []
    for agent_id in ready:
        claimed = (
            await store.claim(campaign, at, 1, zones=number_zones, agent_id=agent_id)
            if agent_id in own
            else []
        )
        if claimed:
            hold(agent_id, campaign, claimed[0])
            log.info("callback_offered", agent_id=agent_id, contact_id=claimed[0].contact_id)
        else:
            still.append(agent_id)
    return still


async def release_left(
    store: DiallerStore,
    campaign: RunningAgentCampaign,
    previews: MutableMapping[str, Any],
    present: Collection[str],
) -> None:
    """An own callback held for an agent who is gone (logged out, their phone down) goes back
    to pending, uncounted: it is theirs again when they are back. ``previews``: agent -> the
    contact on their desk (``PreviewContact``); ``present``: the campaign's agents now."""
    for agent_id, held in list(previews.items()):
        if held.campaign.id != campaign.id or agent_id in present:
            continue
        del previews[agent_id]
        await release_claim(store.sessions, held.claimed.contact_id, held.claimed.attempt)
        log.info("callback_released", agent_id=agent_id, contact_id=held.claimed.contact_id)
