"""Use cases several adapters share, on top of the stores: the survey log and a detractor's
follow-up callback (``surveying``: the dialler over ARI and the post-call survey over
FastAGI both use it).

May import ``usecases``, ``models``, ``core`` and ``dialplan``; never the adapters
(``ari_app``, ``agi``, ``web``) or ``centrala``."""
