"""The ground floor of the dialler: its parts, and the steps every concern uses (following a
call, applying an attempt's outcome to the contact, closing the call's record)."""

from __future__ import annotations

import asyncio

import structlog

from ari_app.ari import ARIClient, ChannelTimers
from ari_app.campaigns.session import SurveyDial
from ari_app.trunks import TrunkGate
from core.surveys.campaign import Outcome
from core.surveys.dialphase import Phase
from core.surveys.interpreter import SurveyCall
from models.calllog import CallLog, now
from models.campaigns import CampaignStore, DueContact, RunningCampaign, apply_outcome_op
from models.surveys import StoredSurvey, survey_by_id
from usecases.surveying import SurveyLog

log = structlog.get_logger(__name__)


class DiallerCalls:
    def __init__(
        self,
        ari: ARIClient,
        calllog: CallLog,
        surveys: SurveyLog,
        store: CampaignStore,
        *,
        app: str,
        dial: str,
        caller_id: str,
        tick_seconds: float = 1.0,
    ) -> None:
        self.ari = ari
        self.calllog = calllog
        self.surveys = surveys
        self.store = store
        self.app = app
        self.dial = dial
        self.caller_id = caller_id
        self.tick_seconds = tick_seconds
        # The outbound trunk's call rate, shared with agents' manual calls (set by serve).
        self.gate: TrunkGate | None = None
        self.trunk: str | None = None
        self.calls: dict[str, SurveyDial] = {}
        self._surveys: dict[int, StoredSurvey] = {}
        self._task: asyncio.Task[None] | None = None
        self._reconciled = asyncio.Event()
        self._reconciling = asyncio.Lock()
        calllog.register("contact_outcome", apply_outcome_op)

    async def _survey(self, survey_id: int) -> StoredSurvey:
        stored = self._surveys.get(survey_id)
        if stored is None:
            stored = await survey_by_id(self.store.sessions, survey_id)
            if stored is None:
                raise LookupError(f"survey version {survey_id} is gone")
            self._surveys[survey_id] = stored
        return stored

    def _follow(
        self,
        channel_id: str,
        call_id: str,
        campaign: RunningCampaign,
        due: DueContact,
        attempt: int,
        stored: StoredSurvey,
    ) -> SurveyDial:
        """Start following an attempt's call (placed now, or found again after a restart)."""
        contact = due.contact
        s = self.calls[channel_id] = SurveyDial(
            channel_id=channel_id,
            call_id=call_id,
            campaign_id=campaign.id,
            contact_id=contact.contact_id,
            attempt=attempt,
            number=contact.number,
            client_id=contact.client.client_id,
            stored=stored,
            settings=campaign.settings,
            call=SurveyCall(
                stored.survey,
                language=contact.client.language or "",
                recording_prefix=f"survey-{call_id}",
            ),
            timers=ChannelTimers(self.ari, self.app, channel_id),
        )
        return s

    async def _end(
        self, s: SurveyDial, outcome: Outcome, cause: int | None, cause_text: object
    ) -> None:
        s.state.move(Phase.ENDED)
        s.timers.cancel_all()
        await self._apply(s, outcome)
        self.calls.pop(s.channel_id, None)
        at = now()
        await self.calllog.close(
            s.call_id,
            at=at,
            cause=cause,
            cause_text=str(cause_text) if cause_text is not None else None,
            outcome=outcome.value,
            ivr_path=s.call.path,
            talk_seconds=(at - s.answered_at).total_seconds() if s.answered_at else None,
        )
        log.info("survey_call_ended", outcome=outcome.value, cause=cause)

    async def _apply(self, s: SurveyDial, outcome: Outcome) -> None:
        """The attempt's outcome, stored on the contact the moment it is known (once)."""
        if s.outcome is not None:
            return
        s.outcome = outcome
        # In order with the call's writes: journaled while the database is away (the call's
        # row still closes), applied once when it is back.
        contact = await self.calllog.write(
            [
                {
                    "op": "contact_outcome",
                    "campaign_id": s.campaign_id,
                    "contact_id": s.contact_id,
                    "attempt": s.attempt,
                    "outcome": outcome.value,
                    "at": now(),
                    "call_id": s.call_id,
                }
            ]
        )
        if contact is None and self.calllog.degraded:
            log.warning("contact_outcome_journaled", contact_id=s.contact_id)
        if contact is not None:
            log.info(
                "contact_updated",
                contact_id=s.contact_id,
                status=contact.status.value,
                next_attempt_at=contact.next_attempt_at.isoformat()
                if contact.next_attempt_at
                else None,
            )
