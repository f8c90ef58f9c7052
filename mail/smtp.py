"""Sending a message through an SMTP server (aiosmtplib: the maintained asyncio SMTP client):
plain, STARTTLS or implicit TLS, with login when a user is set. A refusal or an unreachable
server is a ``MailNotSent`` with the server's words, for the caller to log and try again."""

from __future__ import annotations

import ssl
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal

import aiosmtplib

Security = Literal["none", "starttls", "tls"]


class MailNotSent(Exception):
    """The server could not be reached, refused the login, the sender or every recipient."""


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
    """Hands ``message`` to ``server`` for its From and To; MailNotSent when it is not taken
    (by every recipient: a server that takes some has the message to deliver)."""
    context = ssl.create_default_context() if server.security != "none" else None
    try:
        await aiosmtplib.send(
            message,
            hostname=server.host,
            port=server.port,
            username=server.user,
            password=server.password,
            use_tls=server.security == "tls",
            start_tls=server.security == "starttls",
            tls_context=context,
            timeout=server.timeout,
        )
    except (aiosmtplib.SMTPException, OSError) as exc:
        raise MailNotSent(f"{type(exc).__name__}: {exc}") from exc
