"""A restart of ``serve`` (or a reconnect to Asterisk) calls nobody twice: every attempt the
database says is under way is found again on the PBX and adopted (its survey resumes at the
first unanswered question), or, gone meanwhile, gets its result from what was stored."""

from __future__ import annotations

import contextlib
from typing import Any

import structlog

from ari_app.ari import ARIError, ARINotFound
from ari_app.campaigns.session import (
    AMD_CONTEXT,
    SURVEY_OUTCOME,
    SurveyDial,
    channel_id_for,
    parse_channel_id,
)
from ari_app.campaigns.survey import Surveying
from core.surveys.campaign import Outcome
from core.surveys.dialphase import Phase
from core.surveys.interpreter import SurveyStatus
from models.calllog import now
from models.db import is_outage

log = structlog.get_logger(__name__)


class Adoption(Surveying):
    async def reconcile(self) -> None:
        """Find every attempt under way again: a call still on the PBX is adopted (its survey
        resumes); a call that ended while we were away gets its result from what was stored
        (answers mean they took part; never answered means it failed and is retried)."""
        async with self._reconciling:
            await self._reconcile()

    async def _reconcile(self) -> None:
        try:
            for campaign_id, contact_id, attempt, call_id in await self.store.dialling_contacts():
                channel_id = channel_id_for(campaign_id, contact_id, attempt)
                structlog.contextvars.bind_contextvars(call_id=call_id, channel_id=channel_id)
                try:
                    channel = await self.ari.get_channel(channel_id)
                except ARINotFound:
                    await self._ended_while_away(campaign_id, contact_id, attempt, call_id)
                    continue
                if channel_id not in self.calls:
                    await self._adopt(channel)
        except ARIError as exc:
            log.warning("campaign_reconcile_failed", error=str(exc))
            return
        except Exception as exc:
            if not is_outage(exc):
                raise
            # The database is away: the loop reconciles once it is back, before any dial.
            self.calllog.database_failed(exc)
            log.warning("campaign_reconcile_deferred_database_down")
            return
        finally:
            structlog.contextvars.unbind_contextvars("call_id", "channel_id")
        self._reconciled.set()

    async def pbx_gone(self) -> int:
        """Asterisk is gone (its node died): every attempt under way on it ended as if
        while we were away (a survey taken keeps its answers; one never answered fails and
        is retried by the campaign's rules, from any node). Returns how many."""
        async with self._reconciling:
            found = await self.store.dialling_contacts()
            for campaign_id, contact_id, attempt, call_id in found:
                channel_id = channel_id_for(campaign_id, contact_id, attempt)
                structlog.contextvars.bind_contextvars(call_id=call_id, channel_id=channel_id)
                try:
                    await self._ended_while_away(campaign_id, contact_id, attempt, call_id)
                finally:
                    structlog.contextvars.unbind_contextvars("call_id", "channel_id")
        return len(found)

    async def _ended_while_away(
        self, campaign_id: int, contact_id: int, attempt: int, call_id: str | None
    ) -> None:
        s = self.calls.get(channel_id_for(campaign_id, contact_id, attempt))
        if s is not None:  # ours, but its ChannelDestroyed was lost with the connection
            await self._destroyed(s, None, {"cause_txt": "gone while disconnected"})
            return
        outcome = Outcome.FAILED
        if call_id is not None:
            state = await self.calllog.state(call_id)
            answers = await self.surveys.answers(call_id)
            if state is not None and state.survey_status in SURVEY_OUTCOME:
                outcome = SURVEY_OUTCOME[state.survey_status]
            elif answers:
                outcome = Outcome.PARTIAL
            elif state is not None and state.answered_at is not None:
                outcome = Outcome.NO_CONSENT
            if outcome.value in SURVEY_OUTCOME:
                await self.surveys.ended(call_id, SurveyStatus(outcome.value))
            await self.calllog.close(
                call_id,
                at=now(),
                cause=None,
                cause_text="gone while disconnected",
                outcome=outcome.value,
            )
        await self.store.apply(campaign_id, contact_id, attempt, outcome, now(), call_id)
        log.warning("survey_call_closed_on_reconcile", outcome=outcome.value)

    async def _adopt(
        self, channel: dict[str, Any], entering: str | None = None
    ) -> SurveyDial | None:
        """Take over a call of ours placed before a restart. ``entering``: the first argument
        of the StasisStart that brought it ("campaign": just answered, "amd": the verdict)."""
        channel_id = str(channel.get("id", ""))
        ids = parse_channel_id(channel_id)
        if ids is None or channel_id in self.calls:
            return self.calls.get(channel_id)
        campaign_id, contact_id, attempt = ids
        found = await self.store.attempt(campaign_id, contact_id, attempt)
        if found is None:
            log.warning("survey_call_unknown_hanging_up")
            with contextlib.suppress(ARIError):
                await self.ari.hangup(channel_id)
            return None
        campaign, due, call_id = found
        stored = await self._survey(campaign.survey_id)
        state = await self.calllog.state(call_id)
        s = self._follow(channel_id, call_id, campaign, due, attempt, stored)
        s.answered_at = state.answered_at if state is not None else None
        structlog.contextvars.bind_contextvars(call_id=call_id, channel_id=channel_id)
        dialplan = channel.get("dialplan") or {}
        in_stasis = str(dialplan.get("app_name", "")).lower() == "stasis"
        if entering == "campaign" or channel.get("state") != "Up":
            s.state.move(Phase.RINGING)
        elif entering == "amd":
            s.state.move(Phase.DETECTING)
        elif dialplan.get("context") == AMD_CONTEXT and not in_stasis:
            s.state.move(Phase.DETECTING)  # AMD still listening: its verdict comes to us
        else:
            # Answered and in Stasis: the survey goes on where the stored answers end.
            s.state.move(Phase.SURVEY)
            if s.answered_at is None:
                s.answered_at = now()
            answers = await self.surveys.answers(call_id)
            log.info("survey_call_resumed", answers=len(answers))
            await self._run(s, s.call.resume(answers))
        log.info("survey_call_adopted", phase=s.phase.value)
        return s
