"""ARI and AMI only: the ARI client (``ari``), the AMI client (``ami``), the media executor
(``media``), the Stasis apps (``infoline``: the info line; ``campaigns``: the dialler) and the
agents' legs (``agents``). They carry out what ``core`` decides.

May import ``ari_app``, ``usecases``, ``models``, ``core`` and ``dialplan``; never ``agi`` (the
same layer), ``web`` or ``centrala``."""
