"""FastAGI: the wire format (``protocol``: the request header, command quoting, replies),
the server and its sessions (``server``), and the handlers the dialplan calls (``infoline``,
``survey``).

May import ``agi``, ``usecases``, ``models``, ``core`` and ``dialplan``; never ``ari_app``
(the same layer), ``web`` or ``centrala``."""
