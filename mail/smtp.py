"""Sending a message through an SMTP server (aiosmtplib: the maintained asyncio SMTP client):
plain, STARTTLS or implicit TLS, with login when a user is set. A refusal or an unreachable
server is a ``MailNotSent`` with the server's words, for the caller to log and try again."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import getaddresses, parseaddr
from typing import Literal

import aiosmtplib

Security = Literal["none", "starttls", "tls"]


class MailNotSent(Exception):
    """The server could not be reached, refused the login, the sender or every recipient;
    ``permanent`` when it refused the recipient for good (a 5xx reply to RCPT: sending again
    will not help), not when it was down, busy or said to try later."""

    def __init__(self, reason: str, *, permanent: bool = False) -> None:
        super().__init__(reason)
        self.permanent = permanent


@dataclass(frozen=True)
class SmtpServer:
    host: str
    port: int = 25
    security: Security = "starttls"
    user: str | None = None
    password: str | None = None
    timeout: float = 30.0

    def __repr__(self) -> str:  # never the password, in a log line or a traceback
        return f"SmtpServer({self.host}:{self.port}, {self.security}, user={self.user!r})"


async def send(server: SmtpServer, message: EmailMessage) -> None:
    """Hands ``message`` to ``server`` from its From to its To (no Cc or Bcc); MailNotSent
    when it is not taken (by every recipient: a server that takes some has it to deliver)."""
    context = ssl.create_default_context() if server.security != "none" else None
    # Flattened here with the message's own policy (aiosmtplib's would fold every header at
    # 78 characters, making a long List-Unsubscribe link an encoded word), in 7-bit transfer
    # encodings that any server takes.
    raw = message.as_bytes(policy=message.policy.clone(linesep="\r\n", cte_type="7bit"))
    sender = parseaddr(str(message["From"]))[1]
    recipients = [a for _, a in getaddresses([str(v) for v in message.get_all("To", [])]) if a]
    try:
        await aiosmtplib.send(
            raw,
            sender=sender,
            recipients=recipients,
            hostname=server.host,
            port=server.port,
            username=server.user,
            password=server.password,
            use_tls=server.security == "tls",
            start_tls=server.security == "starttls",
            tls_context=context,
            timeout=server.timeout,
        )
    except aiosmtplib.SMTPRecipientsRefused as exc:
        permanent = all(500 <= r.code < 600 for r in exc.recipients)
        raise MailNotSent(f"{type(exc).__name__}: {exc}", permanent=permanent) from exc
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise MailNotSent(f"{type(exc).__name__}: {exc}") from exc
