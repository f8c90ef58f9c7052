"""A real mail system for the tests: Dovecot (IMAP and LMTP) with an SMTP front that delivers
into it, so a message our SMTP client sends lands in the recipient's IMAP INBOX as it would
at the call centre's mail provider.

* ``Dovecot``: Debian's dovecot (``dovecot-imapd dovecot-lmtpd``, installed by
  ``scripts/bootstrap --test``) run in the foreground with a configuration of our own in a
  temporary directory: IMAP and LMTP on free loopback ports, no TLS, cleartext login
  allowed (loopback only), users from a passwd-file with one test password, mail in
  Maildirs under the directory. Debian 12 ships Dovecot 2.3 and Debian 13 2.4, whose
  configuration language differs; both are written here.
* ``SmtpFront``: aiosmtpd in its own process with ``LmtpRelay`` as its handler, which hands
  each message to Dovecot's LMTP (and answers 451 while Dovecot is down, as an MTA would).
* ``MailSystem``: both, with the helpers the tests use (``send``, ``drop``, the mailbox
  settings of a user).

``stop`` and ``start`` again make a Dovecot that is down, then back; its mail stays.

    python -m aiosmtpd -n -l 127.0.0.1:P -c tests.mailsystem.LmtpRelay 127.0.0.1 LMTP_PORT
"""

from __future__ import annotations

import asyncio
import contextlib
import mailbox
import os
import pwd
import shutil
import smtplib
import socket
import subprocess
import sys
import tempfile
from collections.abc import Iterable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import psutil

from mail.imap import ImapMailbox
from mail.smtp import SmtpServer, send
from tests.support import ServerProcess, free_port, wait_until

PASSWORD = "test-password"
INQUIRIES = "upiti@centrala.test"  # the call centre's inquiries mailbox
_DOVECOT_PATHS = ("/usr/sbin/dovecot", "/usr/bin/dovecot")


def dovecot_binary() -> str:
    """Dovecot's master, or a loud failure naming the packages (never a skipped test)."""
    found = shutil.which("dovecot") or next(
        (p for p in _DOVECOT_PATHS if os.access(p, os.X_OK)), None
    )
    if found is None:
        raise RuntimeError(
            "Dovecot is not installed: the IMAP tests need a real one "
            "(apt-get install dovecot-imapd dovecot-lmtpd, or scripts/bootstrap --test)"
        )
    return found


def dovecot_version(binary: str) -> tuple[int, int]:
    out = subprocess.run([binary, "--version"], capture_output=True, text=True, check=True)
    major, minor = out.stdout.split()[0].split(".")[:2]
    return int(major), int(minor)


def dovecot_config(
    version: tuple[int, int], directory: Path, imap_port: int, lmtp_port: int, mail_uid: int
) -> str:
    """The configuration of a test Dovecot living in ``directory``. The mail processes run
    as ``mail_uid`` (Dovecot refuses root for them, hard-coded)."""
    common = f"""
protocols = imap lmtp
listen = 127.0.0.1
base_dir = {directory}/run
state_dir = {directory}/state
log_path = {directory}/dovecot.log
ssl = no
auth_mechanisms = plain login
auth_failure_delay = 0
first_valid_uid = {mail_uid}
last_valid_uid = 0
namespace inbox {{
  inbox = yes
  separator = /
}}
service imap-login {{
  inet_listener imap {{
    port = {imap_port}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service lmtp {{
  inet_listener lmtp {{
    port = {lmtp_port}
  }}
}}
"""
    users = directory / "users"
    if version >= (2, 4):
        return f"""dovecot_config_version = 2.4.0
dovecot_storage_version = 2.4.0
{common}
auth_allow_cleartext = yes
mail_driver = maildir
mail_path = ~/Maildir
passdb passwd-file {{
  passwd_file_path = {users}
  default_password_scheme = PLAIN
}}
userdb passwd-file {{
  passwd_file_path = {users}
}}
"""
    return f"""{common}
disable_plaintext_auth = no
mail_location = maildir:~/Maildir
passdb {{
  driver = passwd-file
  args = scheme=PLAIN {users}
}}
userdb {{
  driver = passwd-file
  args = {users}
}}
"""


class Dovecot(ServerProcess):
    """A Dovecot of the test's own with ``users`` (addresses), each with ``PASSWORD``."""

    def __init__(self, users: list[str]) -> None:
        binary = dovecot_binary()
        if os.geteuid() != 0:
            raise RuntimeError("the test Dovecot is started as root (as scripts/test runs)")
        # Not under pytest's tmp_path: that is 0700 root's, and Dovecot reads the users and
        # the mail as its own users.
        self.directory = Path(tempfile.mkdtemp(prefix="centrala-dovecot-"))
        self.directory.chmod(0o755)
        self.imap_port = free_port()
        self.lmtp_port = free_port()
        self.users = users
        self.mail_user = pwd.getpwnam("dovecot")  # the package's own system user
        conf = self.directory / "dovecot.conf"
        conf.write_text(
            dovecot_config(
                dovecot_version(binary),
                self.directory,
                self.imap_port,
                self.lmtp_port,
                self.mail_user.pw_uid,
            )
        )
        uid, gid = self.mail_user.pw_uid, self.mail_user.pw_gid
        lines = [f"{u}:{{PLAIN}}{PASSWORD}:{uid}:{gid}::{self.home(u)}::" for u in users]
        (self.directory / "users").write_text("\n".join(lines) + "\n")
        for u in users:
            self.home(u).mkdir(parents=True)
            os.chown(self.home(u), uid, gid)
        super().__init__(
            [binary, "-F", "-c", str(conf)],
            self.imap_port,
            self.directory / "dovecot.out",
            "Dovecot",
        )

    def home(self, user: str) -> Path:
        return self.directory / "mail" / user

    async def start(self) -> None:
        await super().start()

        def lmtp_listening() -> bool:
            with socket.socket() as s:
                return s.connect_ex(("127.0.0.1", self.lmtp_port)) == 0

        await wait_until(lmtp_listening, timeout=20, message="Dovecot's LMTP listening")

    def stop(self) -> None:
        """Dovecot down, its sessions with it. An IMAP process in IDLE outlives a stopped
        master by ten seconds before saying BYE; told to stop itself too, it goes at once."""
        if self.proc is not None:
            children = psutil.Process(self.proc.pid).children(recursive=True)
            # The master first: one that sees its children end before it was told to stop
            # waits six seconds before it does.
            self.proc.terminate()
            for child in children:
                with contextlib.suppress(psutil.NoSuchProcess):
                    child.terminate()
            super().stop()
            psutil.wait_procs(children, timeout=10)

    def logs(self) -> str:
        found = [p for p in (self.directory / "dovecot.log", self.log) if p.exists()]
        return "\n".join(p.read_text(errors="replace") for p in found)

    def drop(self, user: str, raw: bytes) -> None:
        """``raw`` put straight into ``user``'s Maildir, as a local delivery agent does:
        mail that came while the IMAP server was down."""
        self.drop_many(user, [raw])

    def drop_many(self, user: str, raws: Iterable[bytes]) -> None:
        """``drop`` for many messages at once (their files owned by the mail user once)."""
        box = mailbox.Maildir(self.home(user) / "Maildir", create=True)
        for raw in raws:
            box.add(raw)
        uid, gid = self.mail_user.pw_uid, self.mail_user.pw_gid
        for path in (self.home(user) / "Maildir").rglob("*"):
            os.chown(path, uid, gid)
        os.chown(self.home(user) / "Maildir", uid, gid)

    def remove(self) -> None:
        shutil.rmtree(self.directory, ignore_errors=True)


class LmtpRelay:
    """aiosmtpd's handler: each message handed to Dovecot's LMTP for its recipients. A
    recipient LMTP refuses is refused to the SMTP client; Dovecot down is a 451."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.port = port

    @classmethod
    def from_cli(cls, _parser: Any, host: str, port: str) -> LmtpRelay:
        return cls(host, int(port))

    def _deliver(self, sender: str, recipients: list[str], data: bytes) -> str:
        try:
            with smtplib.LMTP(self.host, self.port, timeout=30) as lmtp:
                refused = lmtp.sendmail(sender, recipients, data)
        except smtplib.SMTPRecipientsRefused as exc:
            code, said = next(iter(exc.recipients.values()))
            return f"{code} {said.decode(errors='replace')}"
        except (OSError, smtplib.SMTPException) as exc:
            return f"451 4.3.0 the mailbox server is unavailable: {exc}"
        if refused:  # LMTP answers per recipient: some took it, so it is delivered
            print(f"refused by LMTP: {refused}", file=sys.stderr, flush=True)
        return "250 OK delivered"

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        data = envelope.original_content or envelope.content
        return await asyncio.to_thread(
            self._deliver, envelope.mail_from, list(envelope.rcpt_tos), bytes(data)
        )


class SmtpFront(ServerProcess):
    def __init__(self, directory: Path, lmtp_port: int) -> None:
        self.port = free_port()
        argv = [sys.executable, "-m", "aiosmtpd", "-n", "-l", f"127.0.0.1:{self.port}",
                "-c", "tests.mailsystem.LmtpRelay", "127.0.0.1", str(lmtp_port)]  # fmt: skip
        super().__init__(argv, self.port, directory / "smtp.log", "the SMTP front")

    def server(self) -> SmtpServer:
        return SmtpServer("127.0.0.1", self.port, security="none", timeout=10)


class MailSystem:
    """Dovecot and its SMTP front, started and stopped together."""

    def __init__(self, users: list[str] | None = None) -> None:
        self.dovecot = Dovecot(users or [INQUIRIES])
        self.smtp = SmtpFront(self.dovecot.directory, self.dovecot.lmtp_port)

    async def start(self) -> None:
        await self.dovecot.start()
        await self.smtp.start()

    def stop(self) -> None:
        self.smtp.stop()
        self.dovecot.stop()
        self.dovecot.remove()

    def mailbox(self, user: str = INQUIRIES, folder: str = "INBOX") -> ImapMailbox:
        """The settings our reader reads ``user``'s ``folder`` with."""
        return ImapMailbox(
            host="127.0.0.1",
            port=self.dovecot.imap_port,
            user=user,
            password=PASSWORD,
            folder=folder,
            tls=False,
            timeout=10,
        )

    async def send(self, message: EmailMessage) -> None:
        """``message`` sent through the SMTP front (with our own SMTP client)."""
        await send(self.smtp.server(), message)
