"""The dialler's tick: for every running campaign in its calling window, whom the pure rules
say to call now; each is claimed in the database, its call row opened, and one call
originated (an originate that fails gives the attempt back as failed)."""

from __future__ import annotations

import contextlib
import math
from datetime import datetime

import structlog

from ari_app.ari import ARIConflict, ARIError, ARINotFound, ARIUnavailable
from ari_app.campaigns.calls import DiallerCalls
from ari_app.campaigns.session import DIALLABLE, channel_id_for, number_zones
from core.outbound import OutboundRefused
from core.surveys.campaign import (
    ContactStatus,
    Dial,
    Outcome,
    Skip,
    calling_timezones,
    how_many_to_dial,
    in_schedule,
    next_action_in_zones,
)
from models.calllog import now
from models.campaigns import DueContact, RunningCampaign
from models.tables import Direction

log = structlog.get_logger(__name__)


class Placing(DiallerCalls):
    async def tick(self) -> None:
        at = now()
        for campaign in await self.store.running():
            if in_schedule(campaign.settings, at):
                await self._tick_campaign(campaign, at)

    async def _tick_campaign(self, campaign: RunningCampaign, at: datetime) -> None:
        settings = campaign.settings
        per_tick = max(1, math.floor(settings.calls_per_second * self.tick_seconds))
        active = await self.store.dialling(campaign.id)
        free = how_many_to_dial(active, settings.concurrency, settings.concurrency, per_tick)
        if free == 0:
            return
        due = await self.store.due(campaign.id, at, limit=free * 4)
        if not due:
            if active == 0 and await self.store.finish_if_done(campaign.id):
                log.info("campaign_finished", campaign=campaign.name)
            return
        do_not_call = await self.store.do_not_call()
        # Segments were applied when the list was built; the client's loans are not re-read.
        rules = settings.rules.model_copy(update={"segments": None})
        placed = 0
        for d in due:
            if placed >= free:
                break
            zones = calling_timezones(d.contact.client, number_zones(d.contact.number))
            action = next_action_in_zones(d.contact, at, rules, zones, do_not_call)
            if isinstance(action, Dial):
                if action.at > at:
                    await self.store.defer(d.contact.contact_id, action.at)
                elif await self._dial(campaign, d, action.attempt, at):
                    placed += 1
            elif isinstance(action, Skip) and action.final:
                status = (
                    ContactStatus.EXHAUSTED
                    if action.reason == "max_attempts"
                    else ContactStatus.SKIPPED
                )
                await self.store.close_contact(d.contact.contact_id, status, action.reason)
                log.info("contact_skipped", contact_id=d.contact.contact_id, reason=action.reason)
            # Done, or a Skip that is not final: nothing to do now.

    async def _dial(
        self, campaign: RunningCampaign, due: DueContact, attempt: int, at: datetime
    ) -> bool:
        contact = due.contact
        if not await self.store.claim(contact.contact_id, attempt):
            return False
        channel_id = channel_id_for(campaign.id, contact.contact_id, attempt)
        try:
            # Bound for this attempt only: the loop goes on to other contacts.
            with structlog.contextvars.bound_contextvars(channel_id=channel_id, call_id=None):
                return await self._place(campaign, due, attempt, at)
        except Exception:
            # Claimed but never placed (the database or the survey failed us): give the
            # attempt back as failed, so the contact is retried instead of held forever.
            if channel_id not in self.calls:
                with contextlib.suppress(Exception):
                    await self.store.apply(
                        campaign.id, contact.contact_id, attempt, Outcome.FAILED, now(), None
                    )
            raise

    async def _place(
        self, campaign: RunningCampaign, due: DueContact, attempt: int, at: datetime
    ) -> bool:
        contact = due.contact
        channel_id = channel_id_for(campaign.id, contact.contact_id, attempt)
        stored = await self._survey(campaign.survey_id)
        caller_id = campaign.settings.caller_id or self.caller_id
        opened = await self.calllog.open_call(
            channel_id=channel_id,
            linkedid=None,
            direction=Direction.OUTBOUND,
            handler="campaign",
            caller_number=caller_id,
            caller_name=None,
            called_number=contact.number,
            started_at=at,
            client_id=contact.client.client_id,
            survey_id=stored.id,
        )
        await self.store.set_call(contact.contact_id, opened.id)
        s = self._follow(channel_id, opened.id, campaign, due, attempt, stored)
        structlog.contextvars.bind_contextvars(call_id=opened.id)
        if not DIALLABLE.match(contact.number):
            # Never put a hostile string into a dial string.
            await self._end(s, Outcome.INVALID_NUMBER, None, "not a diallable number")
            return True
        if self.gate is not None:
            try:
                # The carrier's call rate: the tick waits its turn (a whole tick at most).
                await self.gate.admit(self.trunk, max(self.tick_seconds, 1.0) * 5)
            except OutboundRefused as exc:
                await self._end(s, Outcome.FAILED, None, str(exc))
                return True
        try:
            await self.ari.originate(
                self.dial.format(number=contact.number),
                channel_id=channel_id,
                app=self.app,
                app_args=f"campaign,{campaign.id},{contact.contact_id},{attempt}",
                caller_id=caller_id,
                dial_timeout=campaign.settings.ring_seconds,
            )
        except ARIConflict:
            log.warning("originate_duplicate")  # the channel exists: it is this very attempt
        except ARIUnavailable as exc:
            # No answer from Asterisk: the call may have been placed all the same. Only a
            # channel known to be absent is a failed attempt; else its events (or the
            # reconcile after the reconnect) tell.
            log.warning("originate_unconfirmed", error=str(exc))
            with contextlib.suppress(ARIUnavailable):
                try:
                    await self.ari.get_channel(channel_id)
                except ARINotFound:
                    await self._end(s, Outcome.FAILED, None, f"originate failed: {exc}")
        except ARIError as exc:
            log.warning("originate_failed", error=str(exc))
            await self._end(s, Outcome.FAILED, None, f"originate failed: {exc}")
            return True
        log.info("survey_call_dialled", number=contact.number, attempt=attempt)
        return True
