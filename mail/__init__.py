"""E-mail's adapters: sending through the SMTP server of the settings (``smtp``, with
aiosmtplib); reading an inquiries mailbox over IMAP (``imap``, with aioimaplib) and a
received message into its parts (``inbound``, the standard library's ``email``). What to
send, and what a message means, is decided elsewhere (``core.report_mail``,
``core.inquiries``, the callers' use cases); this package only talks SMTP and IMAP and reads
MIME.

May import ``core``; never ``models``, ``usecases``, the other adapters, ``web`` or
``centrala`` (the settings come in as ``SmtpServer`` and ``ImapMailbox``)."""
