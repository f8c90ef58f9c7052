"""Over 500 lines: building, configuring, starting and stopping the chroot's Asterisk are one
lifecycle over the same paths and process; split, each step would re-derive them.

The local PBX: Debian sid's Asterisk 22 in a chroot, for machines without a Docker engine.

``centrala pbx up`` builds the chroot once (debootstrap, cached under ``pbx_root``), installs
our configuration from ``asterisk-docker/asterisk`` plus the credentials rendered from the
settings, starts Asterisk as the ``asterisk`` user and waits until ARI answers. The Docker
image installs the very same package, so both paths run the same Asterisk.

This is operator tooling that runs before the event loop exists, so it is plain blocking code.
Over 500 lines: the chroot's life (build, start, stop, status) and the one place every file
Asterisk reads is rendered (SIP, TLS, the softphone's wss) belong together; the renderers
themselves live in core/sip.py and core/softphone.py.
"""

from __future__ import annotations

import base64
import contextlib
import errno
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from centrala.prompts import PromptError, build_media, install_media, install_sounds
from centrala.settings import Settings
from core.sip import (
    TLS_CA,
    TLS_CERT,
    TLS_KEY,
    check_hostport,
    render_numbers,
    render_rtp,
    render_transports,
    render_trunks,
)
from core.sip_nodes import render_node_dialplan, render_node_trunks
from core.softphone import TLS_CERT_FILE, TLS_KEY_FILE, render_http_tls

PACKAGES = ("asterisk", "asterisk-modules", "asterisk-config", "asterisk-core-sounds-en")
STAMP = ".centrala-rootfs-ready"
GENERATED_DIR = "/etc/asterisk/centrala"  # where Asterisk reads what Centrala renders
ASTERISK_OWNED = (
    "etc/asterisk",
    "var/lib/asterisk",
    "var/log/asterisk",
    "var/log/asterisk/cdr-custom",  # the CDR file Centrala reconciles from (cdr_custom.conf)
    "var/spool/asterisk",
    "var/spool/asterisk/recording",  # survey comments (AGI RECORD FILE does not mkdir)
    "var/cache/asterisk",
    "run/asterisk",
)


_Log = Callable[[str], None]
NO_EID_NOTICE = (
    "No ethernet interface found for seeding global EID. You will have to set it manually.\n"
)


class PBXError(Exception):
    """Something an operator must fix; the message says what."""


@dataclass(frozen=True)
class PBXStatus:
    running: bool
    pid: int | None
    ari_ok: bool
    version: str | None
    root: Path

    def as_dict(self) -> dict[str, object]:
        return {
            "running": self.running,
            "pid": self.pid,
            "ari": self.ari_ok,
            "version": self.version,
            "root": str(self.root),
        }


def ari_endpoint(settings: Settings) -> tuple[str, int]:
    parts = urlsplit(settings.ari_url)
    return parts.hostname or "127.0.0.1", parts.port or 8088


def render_generated_config(settings: Settings) -> dict[str, str]:
    """The files under /etc/asterisk/centrala/ that carry addresses and credentials.

    Pure but for reading the softphone's TLS certificate and key when they are set: the
    Docker entrypoint writes the same files from the same environment variables.
    """
    for name, value in (
        ("CENTRALA_ARI_USER", settings.ari_user),
        ("CENTRALA_ARI_PASSWORD", settings.ari_password),
        ("CENTRALA_AMI_USER", settings.ami_user),
        ("CENTRALA_AMI_SECRET", settings.ami_secret),
        ("CENTRALA_INFOLINE_APP", settings.infoline_app),
        ("CENTRALA_SURVEY_APP", settings.survey_app),
        ("CENTRALA_OUTBOUND_APP", settings.outbound_app),
    ):
        if not value or any(c in value for c in "\r\n\0;[]=,\"' \t"):
            raise PBXError(f"{name} must be non-empty, without spaces, quotes, ; [ ] = or ,")
    http_host, http_port = ari_endpoint(settings)
    http_conf = f"bindaddr = {http_host}\nbindport = {http_port}\n"
    tls: dict[str, str] = {}
    if settings.softphone_tls_bind and settings.softphone_tls_cert and settings.softphone_tls_key:
        # wss for browsers' softphones: the operator's certificate beside the config.
        http_conf += render_http_tls(settings.softphone_tls_bind, GENERATED_DIR)
        for name, pem in (
            (TLS_CERT_FILE, settings.softphone_tls_cert),
            (TLS_KEY_FILE, settings.softphone_tls_key),
        ):
            try:
                tls[name] = pem.read_text()
            except OSError as exc:
                raise PBXError(f"cannot read the softphone's TLS file {pem}: {exc}") from exc
    files = tls | {
        "http.conf": http_conf,
        "ari_users.conf": (
            f"[{settings.ari_user}]\ntype = user\nread_only = no\n"
            f"password = {settings.ari_password}\n"
        ),
        "manager_general.conf": f"bindaddr = {settings.ami_host}\nport = {settings.ami_port}\n",
        "manager_users.conf": (
            f"[{settings.ami_user}]\nsecret = {settings.ami_secret}\n"
            "deny = 0.0.0.0/0.0.0.0\npermit = 127.0.0.1/255.255.255.255\n"
            "read = all\nwrite = all\n"
        ),
        # Real lines (core/sip.py): SIP's address, the carrier trunks, the numbers that
        # enter from them (lines of [from-trunk]) and the RTP ports.
        "pjsip_transports.conf": render_transports(settings.sip_network),
        "pjsip_trunks.conf": render_trunks(settings.trunks),
        # Several nodes: a trunk to each other node, and the dialplan that rings an agent's
        # phone on whichever node it is registered.
        "pjsip_nodes.conf": render_node_trunks(settings.nodes, settings.node),
        "nodes.conf": render_node_dialplan(settings.nodes, settings.node),
        "numbers.conf": render_numbers(settings.numbers),
        "rtp_ports.conf": render_rtp(settings.sip_network),
        # Several nodes: each node's channel ids carry its name (Asterisk's systemname), so
        # two nodes never make the same id (the call log's key).
        "asterisk_options.conf": (
            f"systemname = {settings.node}\n"
            if settings.node
            else "; one node: no systemname (CENTRALA_NODE unset)\n"
        ),
        "globals.conf": (
            f"INFOLINE_APP = {settings.infoline_app}\n"
            f"SURVEY_APP = {settings.survey_app}\n"
            f"OUTBOUND_APP = {settings.outbound_app}\n"
            f"CENTRALA_AGI = agi://{settings.agi_host}:{settings.agi_port}\n"
            f"CENTRALA_AGI_SECRET = {settings.effective_agi_secret()}\n"
        ),
    }
    # SIP over TLS: the operator's certificate, key and CA, where the transport says.
    for name, setting, path in (
        (TLS_CERT, "CENTRALA_SIP_TLS_CERT_FILE", settings.sip_tls_cert_file),
        (TLS_KEY, "CENTRALA_SIP_TLS_KEY_FILE", settings.sip_tls_key_file),
        (TLS_CA, "CENTRALA_SIP_TLS_CA_FILE", settings.sip_tls_ca_file),
    ):
        if path is not None:
            files[name] = _read_pem(setting, path)
    return files


def _read_pem(setting: str, path: Path) -> str:
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise PBXError(f"{setting}: cannot read {path}: {exc}") from None
    if "-----BEGIN " not in text:
        raise PBXError(f"{setting}: {path} is not a PEM file")
    return text


class LocalPBX:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.pbx_root
        self.rootfs = self.root / "rootfs"
        self.pidfile = self.root / "asterisk.pid"
        self.logfile = self.root / "asterisk.out"

    # ---- checks, apart from effects -------------------------------------------------------

    def check_can_run(self) -> None:
        if os.geteuid() != 0:
            raise PBXError(
                "`centrala pbx up` needs root (it builds a chroot and starts Asterisk as the "
                "asterisk user inside it); run it with sudo"
            )
        if not self.rootfs_ready() and shutil.which("debootstrap") is None:
            raise PBXError("debootstrap is not installed: apt-get install -y debootstrap")

    def rootfs_ready(self) -> bool:
        return (self.rootfs / STAMP).is_file()

    def ports_in_use(self) -> list[str]:
        """Our ports that another process holds (checked only while our Asterisk is down)."""
        host, port = ari_endpoint(self.settings)
        sip_host, sip_port = check_hostport(self.settings.sip_bind)
        wanted = [
            (socket.SOCK_STREAM, host, port, "ARI HTTP"),
            (socket.SOCK_STREAM, self.settings.ami_host, self.settings.ami_port, "AMI"),
            (socket.SOCK_DGRAM, sip_host.strip("[]"), sip_port or 5060, "SIP"),
        ]
        if self.settings.softphone_tls_bind:
            tls_host, tls_port = check_hostport(self.settings.softphone_tls_bind)
            wanted.append((socket.SOCK_STREAM, tls_host.strip("[]"), tls_port or 8089, "HTTPS"))
        if self.settings.sip_tls_bind is not None:
            tls_host, tls_port = check_hostport(self.settings.sip_tls_bind)
            wanted.append((socket.SOCK_STREAM, tls_host.strip("[]"), tls_port or 5061, "SIP TLS"))
        taken = []
        for kind, h, p, what in wanted:
            family = socket.AF_INET6 if ":" in h else socket.AF_INET
            with socket.socket(family, kind) as s:
                if kind == socket.SOCK_STREAM:
                    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    s.bind((h, p))
                except OSError as exc:
                    if exc.errno == errno.EADDRINUSE:
                        taken.append(f"{what} {h}:{p}")
                    else:
                        raise
        return taken

    # ---- state ----------------------------------------------------------------------------

    def pid(self) -> int | None:
        try:
            pid = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _alive(pid) and self._in_our_root(pid) else None

    def _in_our_root(self, pid: int) -> bool:
        try:
            return Path(os.readlink(f"/proc/{pid}/root")).resolve() == self.rootfs.resolve()
        except OSError:
            return False

    def processes_in_root(self) -> list[int]:
        """Every process whose root is our chroot: what `down` must leave none of."""
        pids = []
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            pid = int(entry.name)
            if self._in_our_root(pid) and _alive(pid):
                pids.append(pid)
        return pids

    def ari_info(self, timeout: float = 2.0) -> dict[str, object] | None:
        url = self.settings.ari_url.rstrip("/") + "/asterisk/info"
        token = base64.b64encode(
            f"{self.settings.ari_user}:{self.settings.ari_password}".encode()
        ).decode()
        req = urllib.request.Request(url, headers={"Authorization": f"Basic {token}"})
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:
                data: dict[str, object] = json.loads(resp.read())
                return data
        except (OSError, urllib.error.URLError, ValueError):
            return None

    def status(self) -> PBXStatus:
        pid = self.pid()
        info = self.ari_info() if pid else None
        version = None
        system = info.get("system") if info else None
        if isinstance(system, dict):
            version = str(system.get("version"))
        return PBXStatus(pid is not None, pid, info is not None, version, self.root)

    # ---- effects --------------------------------------------------------------------------

    def build_rootfs(self, log: _Log) -> None:
        tmp = self.root / "rootfs.partial"
        if tmp.exists():
            shutil.rmtree(tmp)
        self.root.mkdir(parents=True, exist_ok=True)
        log(f"building the Asterisk chroot in {self.rootfs} (once; about a minute)")
        cmd = [
            "debootstrap",
            "--variant=minbase",
            "--include=" + ",".join(PACKAGES),
            "sid",
            str(tmp),
            self.settings.pbx_mirror,
        ]
        with open(self.root / "debootstrap.log", "wb") as out:
            proc = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
        if proc.returncode != 0:
            tail = (self.root / "debootstrap.log").read_text(errors="replace")[-2000:]
            raise PBXError(f"debootstrap failed (exit {proc.returncode}):\n{tail}")
        # The chroot's package cache is 100+ MB we never need again.
        shutil.rmtree(tmp / "var/cache/apt/archives", ignore_errors=True)
        if self.rootfs.exists():
            shutil.rmtree(self.rootfs)
        tmp.rename(self.rootfs)
        (self.rootfs / STAMP).write_text(" ".join(PACKAGES) + "\n")

    def install_config(self, log: _Log | None = None) -> None:
        etc = self.rootfs / "etc/asterisk"
        if etc.exists():
            shutil.rmtree(etc)
        shutil.copytree(self.settings.pbx_config_dir, etc)
        extra = self.settings.pbx_extra_config_dir
        if extra is not None:
            # Tests' simulated agents and clients (extensions_test.conf); never in production.
            if not extra.is_dir():
                raise PBXError(f"CENTRALA_PBX_EXTRA_CONFIG_DIR {extra} is not a directory")
            for conf in sorted(extra.glob("*.conf")):
                shutil.copy2(conf, etc / conf.name)
        self.install_media(log or (lambda m: print(m, file=sys.stderr)))
        self._share_agi_secret()
        generated = etc / "centrala"
        generated.mkdir(exist_ok=True)
        for name, text in render_generated_config(self.settings).items():
            (generated / name).write_text(text)
        uid, gid = self._asterisk_ids()
        for rel in ASTERISK_OWNED:
            path = self.rootfs / rel
            path.mkdir(parents=True, exist_ok=True)
            for dirpath, _dirs, files in os.walk(path):
                os.chown(dirpath, uid, gid)
                for f in files:
                    os.chown(os.path.join(dirpath, f), uid, gid, follow_symlinks=False)
        # Credentials (and the TLS key) readable by Asterisk only.
        for conf in generated.iterdir():
            conf.chmod(0o640)

    def _share_agi_secret(self) -> None:
        """`pbx up` runs with sudo and may be first to generate the FastAGI secret: give the
        file to the user who ran sudo, or `serve` (run as that user) could not read it."""
        if self.settings.agi_secret:
            return
        self.settings.effective_agi_secret()
        uid, gid = os.environ.get("SUDO_UID"), os.environ.get("SUDO_GID")
        if uid and gid and uid.isdigit() and gid.isdigit():
            path = self.settings.data_dir / "agi-secret"
            if path.stat().st_uid == 0:
                os.chown(path, int(uid), int(gid))

    def install_media(self, log: _Log) -> None:
        """The prompts and the music on hold into the chroot (``install_media``)."""
        try:
            build_media(self.settings)
        except PromptError as exc:
            log(f"warning: prompts not synthesised, the IVR may play missing files: {exc}")
        install_media(self.settings, self.rootfs)

    def install_sounds(self) -> None:
        """Every synthesised prompt in data_dir/sounds into the chroot's sounds/centrala/."""
        install_sounds(self.settings, self.rootfs)

    def _asterisk_ids(self) -> tuple[int, int]:
        for line in (self.rootfs / "etc/passwd").read_text().splitlines():
            fields = line.split(":")
            if fields[0] == "asterisk":
                return int(fields[2]), int(fields[3])
        raise PBXError(f"no asterisk user in {self.rootfs}/etc/passwd: remove {self.root}")

    def check_secrets(self) -> None:
        if problems := self.settings.exposed_default_secrets():
            raise PBXError("refusing to start Asterisk: " + "; ".join(problems))

    def up(self, log: _Log) -> PBXStatus:
        self.check_secrets()
        self.check_can_run()
        if self.pid() is not None:
            # Already ours and running: refresh the config and reload, so `up` is idempotent.
            self.install_config(log)
            self._cli("core reload")
            self._wait_ari(self.settings.pbx_start_timeout)
            return self.status()
        taken = self.ports_in_use()
        if taken:
            raise PBXError(
                "ports needed by Asterisk are taken by another process: "
                + ", ".join(taken)
                + " (see `ss -lntup`; stop it or change CENTRALA_ARI_URL / CENTRALA_AMI_PORT)"
            )
        if not self.rootfs_ready():
            self.build_rootfs(log)
        self.install_config(log)
        with open(self.logfile, "ab") as out:
            proc = subprocess.Popen(
                [
                    "chroot",
                    str(self.rootfs),
                    "/usr/sbin/asterisk",
                    "-f",
                    "-n",
                    "-U",
                    "asterisk",
                    "-G",
                    "asterisk",
                ],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        self.pidfile.write_text(f"{proc.pid}\n")
        deadline = time.monotonic() + self.settings.pbx_start_timeout
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise PBXError(
                    f"Asterisk exited at start (code {proc.returncode}); last lines of "
                    f"{self.logfile}:\n{_tail(self.logfile)}"
                )
            if self.ari_info(timeout=1.0) is not None:
                return self.status()
            time.sleep(0.1)
        raise PBXError(
            f"ARI did not answer at {self.settings.ari_url} within "
            f"{self.settings.pbx_start_timeout:.0f}s; see {self.logfile}"
        )

    def _wait_ari(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while self.ari_info(timeout=1.0) is None:
            if time.monotonic() > deadline:
                raise PBXError(f"ARI did not answer at {self.settings.ari_url}")
            time.sleep(0.1)

    def _cli(self, command: str) -> str:
        proc = subprocess.run(
            ["chroot", str(self.rootfs), "/usr/sbin/asterisk", "-rx", command],
            capture_output=True,
            text=True,
            timeout=15,
            check=False,
        )
        # The remote console says this first on a host (or network namespace) without an
        # ethernet interface: it is not the command's answer.
        return proc.stdout.removeprefix(NO_EID_NOTICE)

    def cli(self, command: str) -> str:
        """Run an Asterisk CLI command (tests use it for `module reload`, `core show`).
        Asterisk's `-rx` exits 0 whatever happens: a refusal is told from its words."""
        if self.pid() is None:
            raise PBXError("the local Asterisk is not running: `centrala pbx up`")
        output = self._cli(command)
        refusal = cli_refusal(command, output)
        if refusal is not None:
            raise CLIRefused(refusal, output)
        return output

    def down(self, timeout: float = 10.0) -> bool:
        """Stop Asterisk; returns whether anything was running. Leaves no process behind."""
        pids = self.processes_in_root()
        if not pids:
            self.pidfile.unlink(missing_ok=True)
            return False
        if self.pid() is not None:
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._cli("core stop now")
        # A clean "core stop now" first; SIGTERM half-way through the timeout, SIGKILL at it.
        deadline = time.monotonic() + timeout
        terminated = False
        while pids := self.processes_in_root():
            now = time.monotonic()
            if now > deadline or (not terminated and now > deadline - timeout / 2):
                sig = signal.SIGKILL if now > deadline else signal.SIGTERM
                terminated = True
                for pid in pids:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, sig)
            time.sleep(0.1)
        self.pidfile.unlink(missing_ok=True)
        return True


class CLIRefused(PBXError):
    """Asterisk refused a CLI command (unknown, failed, or wrong arguments)."""

    def __init__(self, reason: str, output: str) -> None:
        super().__init__(reason)
        self.output = output


def cli_refusal(command: str, output: str) -> str | None:
    """Why Asterisk refused ``command``, from what it printed; None when it ran. Its CLI
    says "No such command", "Command '…' failed." (the handler failed), or prints the
    command's usage (wrong arguments)."""
    text = output.strip()
    if text.startswith("No such command"):
        return f"Asterisk does not know the command {command!r}"
    if re.search(r"^Command '.*' failed\.$", text, re.M):
        return f"Asterisk refused {command!r}: {text.splitlines()[0]}"
    asks_for_help = command.split()[:3] == ["core", "show", "help"]
    if not asks_for_help and re.search(r"^\s*Usage\d?: ", text, re.M):
        return f"wrong arguments for {command!r}; its usage follows"
    return None


def _alive(pid: int) -> bool:
    _reap(pid)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _reap(pid: int) -> None:
    # When Asterisk was started by this very process, collect it once it has exited.
    with contextlib.suppress(ChildProcessError):
        os.waitpid(pid, os.WNOHANG)


def _tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no output)"
