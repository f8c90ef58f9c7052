"""E-mail's adapters: sending through the SMTP server of the settings (``smtp``, with
aiosmtplib). What to send, and when, is decided elsewhere (``core.report_mail``, the
callers' use cases); this package only talks SMTP.

May import ``core``; never ``models``, ``usecases``, the other adapters, ``web`` or
``centrala`` (the settings come in as ``SmtpServer``)."""
