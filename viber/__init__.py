"""Viber's adapters: business messages through a provider's HTTP API (``infobip``: the send
request, its answers, the delivery reports' JSON). What to send, to whom and when, and the
fallback to SMS, are decided elsewhere (``core.notices``, the outbox's use cases); this
package only talks to the provider.

May import ``core``; never ``models``, ``usecases``, the other adapters, ``web`` or
``centrala`` (the settings come in as ``ViberAccount``)."""
