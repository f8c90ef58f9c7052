"""Agents' manual outbound calls over ARI (Stasis app ``CENTRALA_OUTBOUND_APP``): from the desk
(ring the agent's phone, then the client through the outbound trunk, bridge them) and from the
agent's desk phone (``from-agents`` hands the dialled number here). The decisions are
``core.outbound``'s; the trunk's call rate is ``ari_app.trunks``'; rows go through the call
log like every call's. May import core, models and the other ari_app modules it names.
"""

from ari_app.outbound.adoption import OutboundApp
from ari_app.outbound.calls import ManualCall

__all__ = ["ManualCall", "OutboundApp"]
