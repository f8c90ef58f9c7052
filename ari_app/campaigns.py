"""Over 500 lines: the dialler's Stasis app in one piece (place, AMD, survey, reconcile); to split.

The outbound survey dialler: runs the campaigns over ARI (IVR-only: no agent waits).

Each tick, for every running campaign, it asks the pure rules (``core.surveys.campaign``) whom to
call now, claims those contacts in the database and originates one call each, with a channel
id derived from the attempt (``survey-<campaign>-<contact>-<attempt>``): a retried or
replayed originate gets 409 from Asterisk instead of ringing the client twice.

A call: it rings (unanswered: the hang-up cause says busy / no answer / failed, and the retry
rules take over); answered, it goes through Asterisk's AMD in the ``centrala-amd`` context and
comes back with the verdict; a machine is hung up on or hears a short message; a person is
surveyed by ``core.surveys.interpreter.SurveyCall``. Every answer is stored the moment it is given
and the attempt's result the moment it is known, so a restart of ``centrala serve`` finds the
calls under way on the PBX again (``reconcile``), resumes a survey at the first unanswered
question, and never calls anyone twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import re
import time
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

import phonenumbers
import structlog
from phonenumbers import timezone as number_timezones

from ari_app.ari import (
    TIMER,
    ARIClient,
    ARIConflict,
    ARIError,
    ARINotFound,
    ARIUnavailable,
    ChannelTimers,
    Event,
)
from ari_app.dispatch import event_channel, run_call_step
from ari_app.media import carry_out
from core.ivr import HangupCall
from core.media import prompt_media
from core.prompter import MediaAction, PlayPrompt
from core.surveys.campaign import (
    CampaignSettings,
    ContactStatus,
    Dial,
    Outcome,
    Skip,
    calling_timezones,
    how_many_to_dial,
    in_schedule,
    is_machine,
    next_action_in_zones,
    unanswered_outcome,
)
from core.surveys.interpreter import (
    Record,
    SaveAnswer,
    SurveyAction,
    SurveyCall,
    SurveyEnded,
    SurveyStatus,
)
from models.calllog import CallLog, now
from models.campaigns import CampaignStore, DueContact, RunningCampaign
from models.surveys import StoredSurvey, survey_by_id
from models.tables import Direction
from usecases.surveying import SurveyLog

log = structlog.get_logger(__name__)

AMD_CONTEXT = "centrala-amd"
MACHINE_PLAYBACK = "machine"
PERMISSION_QUESTION = "may_call_back"  # a detractor who says no is not called back
_DIALLABLE = re.compile(r"^\+?[0-9]{3,15}$")
_CHANNEL = re.compile(r"^survey-(\d+)-(\d+)-(\d+)$")


def channel_id_for(campaign_id: int, contact_id: int, attempt: int) -> str:
    return f"survey-{campaign_id}-{contact_id}-{attempt}"


def parse_channel_id(channel_id: str) -> tuple[int, int, int] | None:
    m = _CHANNEL.match(channel_id)
    return (int(m[1]), int(m[2]), int(m[3])) if m else None


def number_zones(number: str) -> tuple[str, ...]:
    """The time zones a number can be in (a mobile number of a country with one zone: that
    one); empty when the numbering plan does not say."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = tuple(z for z in number_timezones.time_zones_for_number(parsed) if "/" in z)
    return zones


class Phase(StrEnum):
    RINGING = "ringing"
    DETECTING = "detecting"  # answered; Asterisk's AMD is listening
    SURVEY = "survey"
    MACHINE = "machine"  # a machine answered: hang up, or leave the message first
    ENDED = "ended"


_SURVEY_OUTCOME = {
    "completed": Outcome.COMPLETED,
    "partial": Outcome.PARTIAL,
    "refused": Outcome.REFUSED,
    "no_consent": Outcome.NO_CONSENT,
}


@dataclass
class SurveyDial:
    """One attempt to one contact, from the originate to the hang-up."""

    channel_id: str
    call_id: str
    campaign_id: int
    contact_id: int
    attempt: int
    number: str
    client_id: int | None
    stored: StoredSurvey
    settings: CampaignSettings
    call: SurveyCall
    timers: ChannelTimers
    phase: Phase = Phase.RINGING
    answered_at: datetime | None = None
    dial_status: str | None = None  # the originate's Dial result (BUSY, NOANSWER, ...)
    outcome: Outcome | None = None  # applied to the contact


class CampaignDialler:
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
        self.calls: dict[str, SurveyDial] = {}
        self._surveys: dict[int, StoredSurvey] = {}
        self._task: asyncio.Task[None] | None = None
        self._reconciled = asyncio.Event()
        self._reconciling = asyncio.Lock()

    # ---- the dialling loop ----------------------------------------------------------------

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="campaign-dialler")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        for s in list(self.calls.values()):
            s.timers.cancel_all()

    async def _loop(self) -> None:
        while True:
            started = time.monotonic()
            try:
                if self.ari.connected and not self._reconciled.is_set():
                    await self.reconcile()  # the one at connect failed: no dialling before
                if self.ari.connected and self._reconciled.is_set():
                    await self.tick()
            except Exception:  # a database hiccup must not end the campaigns for good
                log.exception("campaign_tick_failed")
            await asyncio.sleep(max(0.05, self.tick_seconds - (time.monotonic() - started)))

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

    async def _survey(self, survey_id: int) -> StoredSurvey:
        stored = self._surveys.get(survey_id)
        if stored is None:
            stored = await survey_by_id(self.store.sessions, survey_id)
            if stored is None:
                raise LookupError(f"survey version {survey_id} is gone")
            self._surveys[survey_id] = stored
        return stored

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
        opened = await self.calllog.open_call(
            channel_id=channel_id,
            linkedid=None,
            direction=Direction.OUTBOUND,
            handler="campaign",
            caller_number=self.caller_id,
            caller_name=None,
            called_number=contact.number,
            started_at=at,
            client_id=contact.client.client_id,
            survey_id=stored.id,
        )
        await self.store.set_call(contact.contact_id, opened.id)
        s = self._follow(channel_id, opened.id, campaign, due, attempt, stored)
        structlog.contextvars.bind_contextvars(call_id=opened.id)
        if not _DIALLABLE.match(contact.number):
            # Never put a hostile string into a dial string.
            await self._end(s, Outcome.INVALID_NUMBER, None, "not a diallable number")
            return True
        try:
            await self.ari.originate(
                self.dial.format(number=contact.number),
                channel_id=channel_id,
                app=self.app,
                app_args=f"campaign,{campaign.id},{contact.contact_id},{attempt}",
                caller_id=self.caller_id,
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

    # ---- events ---------------------------------------------------------------------------

    async def on_event(self, event: Event) -> None:
        if event.get("application") != self.app:
            return
        kind = str(event.get("type"))
        channel: dict[str, Any] = event.get("channel") or event.get("peer") or {}
        channel_id = event_channel(event)
        s = self.calls.get(channel_id)
        if s is None:
            if kind == "StasisStart" and parse_channel_id(channel_id):
                # A call of ours from before a restart, back in Stasis before reconcile ran:
                # this very event says where it is (just answered, or AMD's verdict).
                args = [str(a) for a in event.get("args") or []]
                async with self._reconciling:
                    s = await self._adopt(channel, entering=args[0] if args else None)
            if s is None:
                return
        await run_call_step(
            self.ari,
            self._handle(s, kind, event),
            call_id=s.call_id,
            channel_id=s.channel_id,
            event_type=kind,
            failure="survey_call_failed",
        )

    async def _handle(self, s: SurveyDial, kind: str, event: Event) -> None:
        if kind == "StasisStart":
            args = [str(a) for a in event.get("args") or []]
            if args and args[0] == "amd":
                await self._amd_verdict(s, args[1] if len(args) > 1 else "", args[2:])
            else:
                await self._answered(s)
        elif kind == "ChannelDtmfReceived":
            digit = str(event.get("digit", ""))
            if s.phase is Phase.SURVEY and len(digit) == 1 and digit in "0123456789*#":
                await self._run(s, s.call.on_dtmf(digit))
        elif kind in ("PlaybackFinished", "PlaybackFailed"):
            local = str(event.get("playback", {}).get("id", "")).removeprefix(f"{s.channel_id}-")
            if s.phase is Phase.MACHINE and local == MACHINE_PLAYBACK:
                await self.ari.hangup(s.channel_id)
            elif s.phase is Phase.SURVEY:
                await self._run(s, s.call.on_playback_finished(local))
        elif kind == TIMER:
            if s.phase is Phase.SURVEY:
                await self._run(s, s.call.on_timer(str(event.get("timer"))))
        elif kind in ("RecordingFinished", "RecordingFailed"):
            recording = event.get("recording") or {}
            seconds = 0.0
            if kind == "RecordingFinished":
                seconds = float(recording.get("talking_duration") or recording.get("duration") or 0)
            await self._run(s, s.call.on_recording_finished(str(recording.get("name")), seconds))
        elif kind == "Dial" and s.phase is Phase.RINGING:
            status = str(event.get("dialstatus") or "")
            if status:
                s.dial_status = status
        elif kind == "ChannelHangupRequest":
            if s.phase is Phase.SURVEY:
                await self._run(s, s.call.on_hangup())
        elif kind == "ChannelDestroyed":
            cause = event.get("cause")
            await self._destroyed(s, int(cause) if isinstance(cause, int) else None, event)

    async def _answered(self, s: SurveyDial) -> None:
        if s.phase is not Phase.RINGING:
            return
        s.answered_at = now()
        await self.calllog.answered(s.call_id, s.answered_at)
        if s.settings.amd:
            s.phase = Phase.DETECTING
            await self.ari.request(
                "POST",
                f"/channels/{s.channel_id}/continue",
                params={"context": AMD_CONTEXT, "extension": "s", "priority": 1},
            )
        else:
            await self._start_survey(s)

    async def _amd_verdict(self, s: SurveyDial, status: str, cause: list[str]) -> None:
        if s.phase is not Phase.DETECTING:
            return
        await self.calllog.event(s.call_id, "amd", status=status, cause=",".join(cause))
        if not is_machine(status):
            await self._start_survey(s)
            return
        s.phase = Phase.MACHINE
        log.info("answering_machine", action=s.settings.machine_action)
        await self._apply(s, Outcome.MACHINE)
        if s.settings.machine_action == "message" and s.settings.machine_prompt:
            media = prompt_media(s.stored.survey, s.settings.machine_prompt, s.call.language)
            await self.calllog.event(s.call_id, "machine_message", media=media)
            await self.ari.play(s.channel_id, media, f"{s.channel_id}-{MACHINE_PLAYBACK}")
        else:
            await self.ari.hangup(s.channel_id)

    async def _start_survey(self, s: SurveyDial) -> None:
        s.phase = Phase.SURVEY
        await self.surveys.started(s.call_id, s.stored.id)
        await self._run(s, s.call.start())

    async def _destroyed(self, s: SurveyDial, cause: int | None, event: Event) -> None:
        if s.phase is Phase.ENDED:
            return
        if s.phase is Phase.SURVEY:
            await self._run(s, s.call.on_hangup())
        outcome = s.outcome
        if outcome is None:
            # Never reached the survey: unanswered, or gone while AMD listened (try again).
            outcome = (
                unanswered_outcome(cause, s.dial_status)
                if s.answered_at is None
                else Outcome.NO_ANSWER
            )
        await self._end(s, outcome, cause, event.get("cause_txt"))

    async def _end(
        self, s: SurveyDial, outcome: Outcome, cause: int | None, cause_text: object
    ) -> None:
        s.phase = Phase.ENDED
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
        if s.outcome is not None:
            return
        s.outcome = outcome
        contact = await self.store.apply(
            s.campaign_id, s.contact_id, s.attempt, outcome, now(), s.call_id
        )
        if contact is not None:
            log.info(
                "contact_updated",
                contact_id=s.contact_id,
                status=contact.status.value,
                next_attempt_at=contact.next_attempt_at.isoformat()
                if contact.next_attempt_at
                else None,
            )

    # ---- the survey's actions -------------------------------------------------------------

    async def _run(self, s: SurveyDial, actions: list[SurveyAction]) -> None:
        for action in actions:
            if isinstance(action, PlayPrompt) and s.phase is not Phase.SURVEY:
                continue  # the call has left the survey (hung up): nothing to play to
            if isinstance(action, MediaAction):
                await carry_out(self.ari, s.channel_id, s.timers, s.stored.survey, action)
            elif isinstance(action, Record):
                await self.ari.request(
                    "POST",
                    f"/channels/{s.channel_id}/record",
                    params={
                        "name": action.name,
                        "format": "wav",
                        "maxDurationSeconds": action.max_seconds,
                        "maxSilenceSeconds": action.silence_seconds,
                        "ifExists": "overwrite",
                        "beep": "true" if action.beep else "false",
                        "terminateOn": action.terminate_on,
                    },
                )
            elif isinstance(action, SaveAnswer):
                await self.surveys.save_answer(
                    s.call_id, s.stored.id, s.client_id, action.answer, now()
                )
            elif isinstance(action, SurveyEnded):
                await self._survey_ended(s, action)
            elif isinstance(action, HangupCall):
                with contextlib.suppress(ARINotFound):
                    await self.ari.hangup(s.channel_id)

    async def _survey_ended(self, s: SurveyDial, ended: SurveyEnded) -> None:
        await self.surveys.ended(s.call_id, ended.status)
        await self._apply(s, _SURVEY_OUTCOME[ended.status.value])
        await self.surveys.follow_up_detractor(
            s.call_id,
            s.stored.survey,
            s.call.answers,
            client_id=s.client_id,
            number=s.number,
            queue=s.settings.followup_queue,
            permission=PERMISSION_QUESTION,
            at=now(),
        )

    # ---- after a restart or a reconnect ---------------------------------------------------

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
        finally:
            structlog.contextvars.unbind_contextvars("call_id", "channel_id")
        self._reconciled.set()

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
            if state is not None and state.survey_status in _SURVEY_OUTCOME:
                outcome = _SURVEY_OUTCOME[state.survey_status]
            elif answers:
                outcome = Outcome.PARTIAL
            elif state is not None and state.answered_at is not None:
                outcome = Outcome.NO_CONSENT
            if outcome.value in _SURVEY_OUTCOME:
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
            s.phase = Phase.RINGING
        elif entering == "amd":
            s.phase = Phase.DETECTING
        elif dialplan.get("context") == AMD_CONTEXT and not in_stasis:
            s.phase = Phase.DETECTING  # AMD still listening: its verdict comes to us
        else:
            # Answered and in Stasis: the survey goes on where the stored answers end.
            s.phase = Phase.SURVEY
            if s.answered_at is None:
                s.answered_at = now()
            answers = await self.surveys.answers(call_id)
            log.info("survey_call_resumed", answers=len(answers))
            await self._run(s, s.call.resume(answers))
        log.info("survey_call_adopted", phase=s.phase.value)
        return s
