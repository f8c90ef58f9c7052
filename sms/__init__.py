"""SMS's adapters: an ESME client of an SMSC over SMPP 3.4 (``smpp``: bind, submit the parts
``core.sms`` computes, take delivery receipts and messages from phones back, reconnect), on
the PDU layout of ``pdu``. What to send, to whom and when is decided elsewhere (the outbox's
use cases); this package only talks SMPP.

May import ``core``; never ``models``, ``usecases``, the other adapters, ``web`` or
``centrala`` (the settings come in as ``Smsc``)."""
