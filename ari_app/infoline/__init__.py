"""The free info line's Stasis application, over ARI (the decisions are ``core``'s: the IVR,
routing, the ACD, the call's phases). One room per concern, like wazo-calld's plugins:

- ``session.py``: a caller's session (its phase on ``core.callphase``'s state machine), the
  synthetic events posted on a caller's stream, the names the dialplan shares;
- ``notifier.py``: news for the agent desktop;
- ``calls.py``: what every concern shares (the parts, music on hold, freeing the agent,
  closing the record);
- ``transfers.py``: the agent's call controls (hold, blind and attended transfer, the survey);
- ``queueing.py``: routing, the queue, offers, connecting the agent, the caller leaving;
- ``adoption.py``: restart survival (the live state; adopting calls after a restart);
- ``stasis.py``: ``InfolineApp``: ARI events in, a call's start and its IVR actions.

The rooms are one class built in layers (CallBase ← Transfers ← Queueing ← Adoption ←
InfolineApp): a call's steps call each other across concerns, and one object per app keeps
every step of a call on that caller's own ordered event stream (a session is never changed by
two things at once, and nothing here blocks another caller).

May import ``ari_app.ari``, ``ari_app.agents``, ``ari_app.media``, ``core``, ``dialplan`` and
``models``.
"""

from ari_app.infoline.notifier import DeskNotice
from ari_app.infoline.session import CallerSession, ari_time
from ari_app.infoline.stasis import InfolineApp

__all__ = ["CallerSession", "DeskNotice", "InfolineApp", "ari_time"]
