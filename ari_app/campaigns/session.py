"""One survey call of the dialler: its state (``SurveyDial``; its phase is
``core.surveys.dialphase``'s state machine), the ids it is known by (the channel id says
campaign, contact and attempt), and the names the dialplan shares."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import datetime

import phonenumbers
from phonenumbers import timezone as number_timezones

from ari_app.ari import ChannelTimers
from core.surveys.campaign import CampaignSettings, Outcome

# The channel id names campaign, contact and attempt (in core: the campaigns report reads it).
from core.surveys.campaign import channel_id_for as channel_id_for
from core.surveys.campaign import parse_channel_id as parse_channel_id
from core.surveys.dialphase import DialState, Phase
from core.surveys.interpreter import SurveyCall
from models.surveys import StoredSurvey

AMD_CONTEXT = "centrala-amd"  # the dialplan context where Asterisk's AMD listens (extensions.conf)
MACHINE_PLAYBACK = "machine"
PERMISSION_QUESTION = "may_call_back"  # a detractor who says no is not called back
DIALLABLE = re.compile(r"^\+?[0-9]{3,15}$")


def number_zones(number: str) -> tuple[str, ...]:
    """The time zones a number can be in (a mobile number of a country with one zone: that
    one); empty when the numbering plan does not say."""
    try:
        parsed = phonenumbers.parse(number, None)
    except phonenumbers.NumberParseException:
        return ()
    zones = tuple(z for z in number_timezones.time_zones_for_number(parsed) if "/" in z)
    return zones


# A survey's end, as the attempt's outcome for the contact.
SURVEY_OUTCOME = {
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
    state: DialState = field(default_factory=DialState)  # moved only by its legal moves
    answered_at: datetime | None = None
    dial_status: str | None = None  # the originate's Dial result (BUSY, NOANSWER, ...)
    outcome: Outcome | None = None  # applied to the contact

    @property
    def phase(self) -> Phase:
        return self.state.now
