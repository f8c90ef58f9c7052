"""Meta's adapters for the Facebook / Instagram inbox of written inquiries: the Graph API's
Send API (``graph``: a reply to a person who wrote to our Page or Instagram professional
account, its answers and errors). What a webhook notification means, the signature, the
24-hour window and the cutting of long texts are decided in ``core.inquiries.meta``; the
webhook's routes are ``web.meta_hooks``; what to answer and when is the inquiries' use
case's business.

May import ``core``; never ``models``, ``usecases``, the other adapters, ``web`` or
``centrala`` (the settings come in as ``MetaAccount``)."""
