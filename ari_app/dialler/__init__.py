"""The agent dialler over ARI: agent campaigns' calls from the originate to the hang-up.

How many calls to place is ``core.pacing``'s (one ``Pacer`` per campaign, fed every event);
what an attempt's end means is ``core.dialler``'s; contacts are claimed and attempts applied in
``models.dialler``. Here: originate the client's leg, take its answer to an agent's nailed-up
leg (the ACD's choice, inbound first) within the 2 seconds, or play the campaign's
identification message and hang up, and keep the call's row and trail. Callback tasks are
worked first, an agent's own on their desk (``callbacks``).

May import: ``core``, ``models``, ``ari_app``.
"""
