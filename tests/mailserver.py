"""A real SMTP server for the tests: aiosmtpd (an RFC 5321 server) run as its own process on
a free loopback port, each message it takes stored in a Maildir the test reads (with the
envelope's sender and recipients, as X-MailFrom and X-RcptTo). ``stop`` and ``start`` again
make a mail server that is down, then back."""

from __future__ import annotations

import mailbox
import sys
from collections.abc import AsyncIterator
from email.message import Message
from pathlib import Path

import pytest

from tests.support import ServerProcess, free_port, running


class MailServer(ServerProcess):
    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        maildir = str(directory / "Maildir")
        argv = [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.port}",
                "-c", "aiosmtpd.handlers.Mailbox", maildir]  # fmt: skip
        super().__init__(argv, self.port, directory / "smtpd.log", "the SMTP server")

    def messages(self) -> list[Message]:
        """What the server has taken, oldest first."""
        box = mailbox.Maildir(self.directory / "Maildir", create=True)
        found = [(m.get_date(), m) for m in box]
        return [m for _, m in sorted(found, key=lambda pair: pair[0])]

    def env(self) -> dict[str, str]:
        """The settings that send through this server."""
        return {
            "CENTRALA_SMTP_HOST": "127.0.0.1",
            "CENTRALA_SMTP_PORT": str(self.port),
            "CENTRALA_SMTP_SECURITY": "none",
        }


@pytest.fixture
async def smtp(tmp_path: Path) -> AsyncIterator[MailServer]:
    """A mail server of the test's own, running for the test."""
    async with running(MailServer(tmp_path / "mail")) as server:
        yield server
