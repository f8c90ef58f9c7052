"""The outbound survey dialler: runs the campaigns over ARI (IVR-only: no agent waits). One
room per concern, the same furniture as ``ari_app.infoline``:

- ``session.py``: one survey call (``SurveyDial``; its phase moves on
  ``core.surveys.dialphase``'s state machine), the channel id that says campaign, contact and
  attempt, the names the dialplan shares;
- ``calls.py``: what every concern shares (the parts, following a call, applying an attempt's
  outcome, closing the record);
- ``placing.py``: the tick: whom to call now, claiming and originating;
- ``survey.py``: the call's course: answered, AMD's verdict, a machine, the survey, the hang-up;
- ``adoption.py``: after a restart or a reconnect (reconcile, adopting a call found live);
- ``stasis.py``: ``CampaignDialler``: the loop, and ARI events in.

Each tick, for every running campaign, it asks the pure rules (``core.surveys.campaign``) whom
to call now, claims those contacts in the database and originates one call each, with a
channel id derived from the attempt (``survey-<campaign>-<contact>-<attempt>``): a retried or
replayed originate gets 409 from Asterisk instead of ringing the client twice.

A call: it rings (unanswered: the hang-up cause says busy / no answer / failed, and the retry
rules take over); answered, it goes through Asterisk's AMD in the ``centrala-amd`` context and
comes back with the verdict; a machine is hung up on or hears a short message; a person is
surveyed by ``core.surveys.interpreter.SurveyCall``. Every answer is stored the moment it is
given and the attempt's result the moment it is known, so a restart of ``centrala serve`` finds
the calls under way on the PBX again (``reconcile``), resumes a survey at the first unanswered
question, and never calls anyone twice.

The rooms are one class built in layers (DiallerCalls ← Placing ← Surveying ← Adoption ←
CampaignDialler), as the info line's are: a call's steps call each other across concerns, and
one object keeps every step of a call on its own ordered event stream.

May import ``ari_app.ari``, ``ari_app.dispatch``, ``ari_app.media``, ``core``, ``models`` and
``usecases``.
"""

from ari_app.campaigns.session import (
    SurveyDial,
    channel_id_for,
    number_zones,
    parse_channel_id,
)
from ari_app.campaigns.stasis import CampaignDialler
from core.surveys.dialphase import Phase

__all__ = [
    "CampaignDialler",
    "Phase",
    "SurveyDial",
    "channel_id_for",
    "number_zones",
    "parse_channel_id",
]
