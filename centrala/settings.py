"""Over 500 lines: every setting in one class, as operators read them (the names are their
contract), each beside its check.

Settings: environment variables with the prefix ``CENTRALA_``, or a TOML file named by
``CENTRALA_CONFIG``. The environment wins over the file.

The names here are a contract with operators' scripts (see DESIGN.md), keep them stable.
"""

from __future__ import annotations

import ipaddress
import os
import socket
from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from core.cluster import check_timing
from core.enums import DeskLanguage
from core.letters import DEFAULT_SENDER
from core.notices import Policy
from core.report_mail import ReportMailError, parse_recipients, parse_time_of_day
from core.sip import (
    NODE_TRUNK_PREFIX,
    MediaEncryption,
    SipNetwork,
    Trunk,
    check_sip,
    numbers,
    outbound_dial,
)
from core.sip_nodes import check_nodes, check_site
from core.softphone import check_softphone_tls, default_ws_url
from dialplan.model import Calendar

if TYPE_CHECKING:
    from mail.imap import ImapMailbox

REPO_ROOT = Path(__file__).resolve().parent.parent
# The shipped credentials: fine while Asterisk listens on loopback only, where the machine's
# own users are the only ones who reach it.
DEFAULT_ARI_PASSWORD = "centrala-local-ari"
DEFAULT_AMI_SECRET = "centrala-local-ami"
# Where the shipped cdr_custom.conf makes Asterisk write its records, under its root.
CDR_FILE_IN_PBX = "var/log/asterisk/cdr-custom/centrala.csv"
RECORDINGS_IN_PBX = "/var/spool/asterisk/monitor/centrala"  # Asterisk's spool (MixMonitor)


def is_loopback(host: str) -> bool:
    """Whether ``host`` is reachable from this machine only (an unknown name is not)."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class SiteNode(BaseModel):
    """Another node of this instance's site (``CENTRALA_SITE``): where its Asterisk's ARI
    answers (the same user and password as this node's) and where its CDR file is read."""

    model_config = ConfigDict(extra="forbid")

    ari_url: str = Field(pattern=r"^https?://")
    cdr_file: Path
    # Its AMI (at the ARI's host; the same user and secret) and where this instance reads the
    # recordings it writes: both, or its callers are not recorded.
    ami_port: int | None = Field(default=None, ge=1, le=65535)
    recording_dir: Path | None = None

    @model_validator(mode="after")
    def _recording_needs_both(self) -> SiteNode:
        if (self.ami_port is None) != (self.recording_dir is None):
            raise ValueError("ami_port and recording_dir go together (both: its callers recorded)")
        return self

    @property
    def ami_host(self) -> str:
        return urlsplit(self.ari_url).hostname or "127.0.0.1"


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="CENTRALA_", extra="ignore")

    data_dir: Path = Field(default=REPO_ROOT / "var", description="SQLite file, recordings, logs")
    database_url: str | None = Field(
        default=None, description="SQLAlchemy URL; unset means the embedded SQLite file"
    )

    ari_url: str = "http://127.0.0.1:8088/ari"
    ari_user: str = "centrala"
    ari_password: str = DEFAULT_ARI_PASSWORD
    ami_host: str = "127.0.0.1"
    ami_port: int = 5038
    ami_user: str = "centrala"
    ami_secret: str = DEFAULT_AMI_SECRET
    agi_host: str = "127.0.0.1"
    agi_port: int = 4573
    # FastAGI is reachable by anyone who reaches its port: the dialplan passes this secret as
    # every script's first argument, and a request without it is refused before any handler.
    agi_secret: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z0-9_-]{16,128}$",
        description="shared with the dialplan; unset: generated into DATA_DIR/agi-secret",
    )
    # Asterisk's own connections come from these addresses: they are never held to the
    # per-address cap, and the other addresses together leave them a reserved share.
    agi_pbx_addresses: list[str] = ["127.0.0.1", "::1"]
    agi_max_sessions: int = Field(default=500, ge=2, le=10_000)
    agi_max_sessions_per_peer: int = Field(default=16, ge=1, le=10_000)
    agi_reserved_for_pbx: int = Field(default=100, ge=0, le=10_000)
    agi_header_timeout: float = Field(default=5.0, gt=0, le=60)
    agi_command_timeout: float = Field(default=30.0, gt=0, le=600)
    web_host: str = "127.0.0.1"
    web_port: int = 8080
    # Several instances (core/cluster.py): the Asterisk node this instance serves (its ARI,
    # AMI and CDR are the settings above). Unset: one instance, no lease. Set: the node's
    # Stasis apps and this instance's loops run only while it holds the node's lease; a
    # standby takes the node over once the owner has not renewed it for a whole lease.
    node: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
    # This instance's name among the others (unset: the host's name and the web port).
    instance_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
    node_lease_seconds: float = Field(default=9.0, ge=0.3, le=120)
    # Asterisk away this long with nothing listening on its ARI (its node died): its calls
    # are closed as lost, at the moment the link was lost.
    node_dead_seconds: float = Field(default=30.0, ge=1, le=3600)
    node_renew_seconds: float = Field(default=2.0, ge=0.1, le=40)
    # Every node of the cluster, name -> SIP host:port (the same list on every node): each
    # node reaches the others through a trunk, so an agent's phone registered on any node is
    # rung for a call on any node. Unset: phones ring only on this node.
    nodes: dict[str, str] = Field(default_factory=dict)
    # The other nodes this instance owns together with its own, name -> their ARI URL and
    # CDR file: one ACD across them (their callers wait for the same agents, the longest
    # waiting first). Every instance of a site lists the same nodes; one owns them all, the
    # others stand by. Unset: this instance owns its node alone.
    site: dict[str, SiteNode] = Field(default_factory=dict)

    infoline_app: str = "infoline"
    infoline_number: str = "0800100200"
    greeting_sound: str = "sound:hello-world"
    default_region: str = Field(
        default="BA", description="ISO country used to read national caller numbers"
    )

    migrate_on_start: bool = Field(
        default=True, description="`centrala serve` upgrades the schema before it starts"
    )

    api_token: str | None = Field(
        default=None,
        description="bearer token of the /api routes; unset: generated into DATA_DIR/api-token",
    )

    # The agent desktop (ari_app/web): signed session cookies, their lifetime, and whether an
    # agent must enter the call's disposition before taking the next call.
    web_secret: str | None = Field(
        default=None,
        description="key that signs desktop sessions; unset: generated into DATA_DIR/web-secret",
    )
    session_hours: float = Field(default=9.0, gt=0, le=24 * 7)
    disposition_required: bool = True

    # The web port against hostile clients (web/server.py): deadlines for a request's headers
    # and body, a cap on open connections, and how cookies are marked behind a TLS proxy.
    web_header_timeout: float = Field(
        default=15.0, gt=0, le=3600, description="seconds a connection may take to send headers"
    )
    web_body_timeout: float = Field(
        default=30.0, gt=0, le=3600, description="seconds a request may take to send its body"
    )
    web_max_connections: int = Field(
        default=500, ge=1, le=100_000, description="open web connections at most"
    )
    web_secure_cookies: bool = Field(
        default=False, description="mark session cookies Secure (served behind HTTPS)"
    )
    web_trusted_proxy: str | None = Field(
        default=None,
        description="address of the reverse proxy whose X-Forwarded-For/-Proto are believed",
    )
    # GET /metrics for Prometheus (web/metrics.py): "open" (no credentials: Prometheus
    # scrapes a private network, and the web port is on loopback by default), "token" (the
    # host's API token as a bearer), or "off".
    metrics_access: Literal["open", "token", "off"] = Field(
        default="open", description="who may read GET /metrics: open, token or off"
    )

    log_format: Literal["json", "console"] = "json"
    log_level: str = "INFO"

    # The local PBX (`centrala pbx up`): a Debian sid chroot with the distribution's Asterisk.
    pbx_root: Path = Path("/var/cache/centrala/asterisk-sid")
    pbx_mirror: str = "http://deb.debian.org/debian"
    pbx_config_dir: Path = REPO_ROOT / "asterisk-docker" / "asterisk"
    pbx_start_timeout: float = 60.0
    pbx_extra_config_dir: Path | None = Field(
        default=None, description="every *.conf here is installed too (tests' simulated phones)"
    )

    # Asterisk's call detail records (cdr_custom.conf): calls Centrala never saw (it was away)
    # become rows from them. None: the local PBX's file under pbx_root. Elsewhere: a path
    # where Asterisk's cdr-custom/centrala.csv is shared with this host.
    cdr_file: Path | None = Field(default=None, description="Asterisk's cdr-custom/centrala.csv")
    cdr_reconcile_seconds: float = Field(
        default=15.0, gt=0, le=3600, description="how often calls are reconciled from the CDR"
    )
    # A record is taken only this long after its call ended: the StasisStart of a caller who
    # hung up at once may still be on its way to the app that opens their row.
    cdr_grace_seconds: float = Field(default=15.0, ge=1, le=3600)

    # Where `serve` puts the prompts it synthesises when a flow is published or tried from a
    # phone: Asterisk's sounds/centrala (None: the local PBX's, under pbx_root; with Asterisk
    # elsewhere, that directory shared with this host, as the Docker image's volume).
    prompts_dir: Path | None = Field(default=None, description="Asterisk's sounds/centrala")

    # Call recording (core.recording): where Asterisk writes the files (as Asterisk sees the
    # path: inside its chroot or container), where `serve` reads them (None: the local PBX's
    # spool under pbx_root; with Asterisk elsewhere, that directory shared with this host),
    # the format, and how many days a recording is kept (0: for good).
    recording_pbx_dir: str = Field(default=RECORDINGS_IN_PBX, pattern=r"^/[A-Za-z0-9_./-]+$")
    recording_dir: Path | None = Field(default=None, description="the recordings, as we see them")
    recording_format: Literal["wav", "gsm"] = "wav"
    recording_retention_days: int = Field(default=90, ge=0, le=36500)
    recording_sweep_seconds: float = Field(
        default=60.0, gt=0, le=86400, description="how often old recordings are looked for"
    )

    # The call flow a fresh install plays (its prompts are synthesised by `pbx up`).
    flow_file: Path = REPO_ROOT / "dialplan" / "infoline.yaml"

    # Automated surveys: the surveys a fresh install knows (applied by `serve` when missing,
    # prompts synthesised by `pbx up`), the Stasis app of campaign calls, and how a campaign
    # dials a client's number (`{number}` is the E.164 number).
    survey_files: list[Path] = [REPO_ROOT / "surveys" / "nps.yaml"]
    survey_app: str = "centrala-survey"
    outbound_dial: str | None = Field(
        default=None,
        description="channel to dial for campaign calls; unset: PJSIP/{number}@OUTBOUND_TRUNK",
    )
    outbound_caller_id: str | None = Field(
        default=None,
        description="the number campaign calls show; unset: the outbound trunk's caller_id, "
        "else the info number",
    )
    campaign_tick_seconds: float = Field(default=1.0, gt=0, le=60)
    # The post-call survey (agi/survey.py): the survey of the transfer target "survey", and
    # the queue of a detractor's callback when they have no manager of their own.
    postcall_survey: str = Field(default="nps", pattern=r"^[a-z][a-z0-9_]{0,63}$")
    survey_follow_up_queue: str = "new_clients"

    # Real phone lines (core/sip.py): where SIP listens and how it is seen through NAT, the RTP
    # ports, the carrier trunks with the numbers arriving on them, the trunk calls leave
    # through, and the realm and codecs of agents' phones. The defaults: SIP on loopback only,
    # no trunk, the info number entering the info line.
    sip_bind: str = Field(default="127.0.0.1:5060", description="SIP UDP address and port")
    sip_external_address: str | None = Field(
        default=None, description="public address (host or host:port) when behind NAT"
    )
    sip_local_nets: list[str] = Field(
        default_factory=list, description="networks reached without NAT (with an external one)"
    )
    rtp_start: int = 10000
    rtp_end: int = 20000
    # SIP over TLS (trunks with transport = "tls", phones registering over TLS): the files are
    # read by `pbx up` / `pbx render` and copied where Asterisk reads them; keep the key
    # outside the repository, readable by the operator only.
    sip_tls_bind: str | None = Field(default=None, description="SIP TLS address and port")
    sip_tls_cert_file: Path | None = Field(default=None, description="PEM certificate (chain)")
    sip_tls_key_file: Path | None = Field(default=None, description="PEM private key")
    sip_tls_ca_file: Path | None = Field(
        default=None, description="PEM CA(s) the carrier's certificate is verified against"
    )
    trunks: list[Trunk] = Field(default_factory=list, description="carrier SIP trunks")
    outbound_trunk: str | None = Field(default=None, description="the trunk calls leave through")
    # Manual outbound calls (ari_app/outbound): their Stasis app, the number each queue's
    # calls present (else the outbound trunk's caller_id), the hours agents may call clients
    # (unset: any time), and how long a call waits for the trunk's call rate before refusal.
    outbound_app: str = "centrala-outbound"
    # Agent campaigns (ari_app/dialler): their Stasis app and how often each is paced.
    dialler_app: str = "centrala-dialler"
    dialler_tick_seconds: float = Field(default=0.5, gt=0, le=10)
    # How often `serve` generates procedural call tasks from the CRM (0: never; the
    # `centrala procedures generate` command does the same by hand).
    procedures_generate_seconds: float = Field(default=3600, ge=0)
    # How often `serve` copies due callback tasks into their queue's callbacks campaign
    # (models.callback_tasks; 0: never).
    callbacks_feed_seconds: float = Field(default=60, ge=0)
    # How often `serve` publishes the flow versions scheduled for now (models.flows; 0: never,
    # e.g. when another instance does it).
    scheduled_publish_seconds: float = Field(default=10, ge=0)
    queue_caller_ids: dict[str, Annotated[str, Field(pattern=r"^\+?[0-9]{2,20}$")]] = Field(
        default_factory=dict, description="queue -> the number its agents' calls present"
    )
    manual_call_window: Calendar | None = None
    trunk_max_wait_seconds: float = Field(default=3.0, ge=0, le=60)
    sip_realm: str = Field(default="centrala", pattern=r"^[A-Za-z0-9.-]{1,64}$")
    phone_codecs: list[str] = ["g722", "alaw", "ulaw"]
    # The browser softphone (core/softphone.py): where browsers reach Asterisk's WebSocket
    # transport. Unset: ws:// on Asterisk's HTTP address (CENTRALA_ARI_URL's host and port),
    # which a browser accepts on loopback only; a deployment puts wss:// here.
    softphone_ws_url: str | None = Field(
        default=None,
        pattern=r"^wss?://[^\s\"'<>]+$",
        description="e.g. wss://pbx.example.com:8089/ws",
    )
    # wss: TLS on Asterisk's HTTP server with the operator's certificate (PEM files on this
    # host; `pbx up` and `pbx render` copy them beside Asterisk's config).
    softphone_tls_bind: str | None = Field(default=None, description="e.g. 0.0.0.0:8089")
    softphone_tls_cert: Path | None = None
    softphone_tls_key: Path | None = None
    phone_media_encryption: MediaEncryption = Field(
        default="none", description="sdes: agents' phones' calls in SRTP only (over TLS)"
    )

    # SMS (sms/smpp.py): the SMSC Centrala binds to over SMPP 3.4 as a transceiver (sending,
    # and taking delivery receipts and clients' replies). Unset host: no SMS.
    sms_smpp_host: str | None = None
    sms_smpp_port: int = Field(default=2775, ge=1, le=65535)
    # SMPP 3.4 caps them at 15 and 8 characters (C-octet strings of 16 and 9).
    sms_smpp_system_id: str = Field(default="", max_length=15)
    sms_smpp_password: str = Field(default="", max_length=8)
    sms_smpp_system_type: str = Field(default="", max_length=12)
    sms_source_address: str = Field(
        default="Centrala",
        pattern=r"^(\+?[0-9]{1,15}|[A-Za-z0-9 ._-]{1,11})$",
        description="the sender shown: up to 11 letters and digits, or a number",
    )
    sms_max_parts: int = Field(default=10, ge=1, le=255, description="longer: not sent")
    sms_timeout_seconds: float = Field(default=10, gt=0, le=120)
    sms_enquire_link_seconds: float = Field(default=30, gt=0, le=3600)
    sms_reconnect_max_seconds: float = Field(default=30, gt=0, le=3600)
    # The SMSC's clock: its delivery receipts' dates are written in it, without a zone.
    sms_smsc_time_zone: str = Field(default="UTC", description="e.g. Europe/Sarajevo")

    @model_validator(mode="after")
    def _sms_zone_exists(self) -> Settings:
        from zoneinfo import ZoneInfo, ZoneInfoNotFoundError  # only this check needs it

        try:
            ZoneInfo(self.sms_smsc_time_zone)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"CENTRALA_SMS_SMSC_TIME_ZONE: no zone {exc}") from exc
        return self

    # Viber (viber/infobip.py): business messages through Infobip's API; unset base URL or
    # key: no Viber. A Viber message that fails, or has no report within its validity and
    # the grace, falls back to one SMS (core.notices.needs_fallback).
    viber_base_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s\"'<>]+$",
        description="e.g. https://xyz.api.infobip.com",
    )
    viber_api_key: str | None = None
    viber_sender: str = Field(default="Centrala", min_length=1, max_length=64)
    # The provider drops a message undelivered after this: our wait before the SMS.
    viber_validity_seconds: int = Field(default=600, ge=30, le=1_209_600)
    viber_report_grace_seconds: float = Field(default=60, ge=0, le=3600)
    viber_timeout_seconds: float = Field(default=10, gt=0, le=120)
    # The delivery reports' webhook is {public URL}/hooks/viber/{this}; unset: no webhook
    # (every Viber message then falls back to SMS after its validity).
    viber_callback_token: str | None = Field(
        default=None, min_length=16, pattern=r"^[A-Za-z0-9_-]+$"
    )

    # The Facebook / Instagram inbox of written inquiries (web/meta_hooks.py, meta/graph.py):
    # Meta's webhook at /webhooks/meta, signed with the app's secret, subscribed with the
    # verify token (both unset: no webhook); replies through the Graph API's Send API with
    # the Page access token.
    meta_app_secret: str | None = Field(default=None, min_length=1)
    meta_verify_token: str | None = Field(default=None, pattern=r"^[\x21-\x7e]{1,256}$")
    meta_page_token: str | None = Field(default=None, min_length=1)
    meta_graph_url: str = Field(
        default="https://graph.facebook.com",
        pattern=r"^https?://[^\s\"'<>?#]+$",
        description="Meta's Graph API (tests: a local stand-in)",
    )
    meta_graph_version: str = Field(default="v21.0", pattern=r"^v[0-9]{1,3}\.[0-9]{1,2}$")
    meta_timeout_seconds: float = Field(default=10, gt=0, le=120)

    # E-mail (mail/smtp.py): the SMTP server messages are handed to. Unset host: no e-mail.
    smtp_host: str | None = None
    smtp_port: int = Field(default=25, ge=1, le=65535)
    smtp_security: Literal["none", "starttls", "tls"] = Field(
        default="starttls", description="none: plain SMTP (a relay on this host)"
    )
    smtp_user: str | None = None
    smtp_password: str | None = None
    smtp_from: str = Field(default="centrala@localhost", description="the messages' sender")
    smtp_timeout_seconds: float = Field(default=30, gt=0, le=300)
    # The reports e-mailed each morning (usecases/morning_reports.py): yesterday's queues,
    # agents, campaigns and call log as CSV, to this comma-separated list, at this local time
    # (the reports' time zone). Empty list: none are sent.
    reports_mail_to: str = Field(default="", description="e.g. manager@example.org, qa@...")
    reports_mail_at: str = Field(default="07:00", description="HH:MM, the call centre's time")
    reports_mail_language: DeskLanguage = DeskLanguage.BS
    # How often `serve` looks whether a morning's e-mail is due (0: never, e.g. when
    # another instance does it).
    reports_mail_check_seconds: float = Field(default=60, ge=0)
    # Notices to clients (core/notices.py: the contact policy; usecases/notices.py).
    public_url: str | None = Field(
        default=None,
        pattern=r"^https?://[^\s\"'<>]+$",
        description="how clients reach this server (unsubscribe links); unset: the web address",
    )
    notices_quiet_from: str = Field(default="20:00", description="HH:MM on the client's clock")
    notices_quiet_until: str = Field(default="09:00", description="HH:MM on the client's clock")
    notices_cap: int = Field(default=3, ge=1, le=100)  # messages and outbound calls ...
    notices_cap_days: int = Field(default=7, ge=1, le=365)  # ... to a client in these days
    notices_workers: int = Field(default=4, ge=1, le=100)  # messages in flight at once
    # A message claimed this long ago and not sent (its `serve` died) is taken over: longer
    # than any sending takes (the providers' timeouts), or two instances would send it.
    notices_lease_seconds: float = Field(default=300, ge=1, le=86400)
    # How often `serve` sends the due messages (and, once a day, queues the birthdays);
    # 0: never.
    notices_check_seconds: float = Field(default=30, ge=0)
    notices_birthdays: bool = True  # serve queues each day's birthday greetings
    notices_documents: bool = True  # and the notices of ID documents about to expire
    # Days before an ID document expires its notice goes out (serve's daily job, and
    # `centrala notices run document-expiry`).
    notices_document_days: int = Field(default=30, ge=1, le=365)
    # The printed letters' sender (core/letters.py): the foundation's name, then its address,
    # lines separated by a newline or a written \n; its last line's town dates the letters.
    # Written inquiries: the ACD queue they wait in, and the agent (a supervisor) complaints,
    # donation requests and credit applications go to at once.
    inquiries_queue: str = Field(default="general", min_length=1, max_length=64)
    inquiries_supervisor: str | None = Field(default=None, min_length=1, max_length=64)
    # How often `serve` sends the agents' answers (0: never).
    inquiries_check_seconds: float = Field(default=10, ge=0)
    # The inquiries' mailboxes read over IMAP (each message an inquiry's, once): one here,
    # more as a JSON list in CENTRALA_IMAP_MORE ([{"host": ..., "user": ..., ...}]).
    imap_host: str | None = None
    imap_port: int = Field(default=993, ge=1, le=65535)
    imap_user: str = ""
    imap_password: str = Field(default="", repr=False)
    imap_folder: str = "INBOX"
    imap_tls: bool = True  # IMAP over TLS (993); false: plain (a server on this machine)
    # The address clients write to (the answers' sender); unset: the user, if an address.
    imap_address: str | None = None
    imap_more: list[dict[str, Any]] = Field(default_factory=list, repr=False)
    # A client whose channel is a letter (their preference; no phone, no e-mail) gets their
    # notice as a letter queued for printing (`centrala letters queued`); false: skipped.
    letters_queue: bool = True
    letters_sender: str = Field(
        default=DEFAULT_SENDER, min_length=1, description="name\\nstreet\\npostcode town"
    )

    @model_validator(mode="after")
    def _imap_mailboxes_read(self) -> Settings:
        self.imap_mailboxes()  # a bad one is an error at start, not a silent mailbox
        return self

    def imap_mailboxes(self) -> list[tuple[ImapMailbox, str | None]]:
        """The mailboxes to read (``mail.imap.ImapMailbox``) with the address clients write
        to each; ValueError naming what is wrong."""
        if not self.imap_host and not self.imap_more:
            return []
        from mail.imap import ImapMailbox  # aioimaplib: only when there are mailboxes

        given: list[dict[str, Any]] = []
        if self.imap_host:
            given.append(
                {
                    "host": self.imap_host,
                    "port": self.imap_port,
                    "user": self.imap_user,
                    "password": self.imap_password,
                    "folder": self.imap_folder,
                    "tls": self.imap_tls,
                    "address": self.imap_address,
                }
            )
        given += self.imap_more
        boxes = []
        fields = {"host", "port", "user", "password", "folder", "tls", "address"}
        for i, box in enumerate(given):
            where = "CENTRALA_IMAP_*" if self.imap_host and i == 0 else f"CENTRALA_IMAP_MORE[{i}]"
            if not isinstance(box, dict) or not box.get("host") or set(box) - fields:
                raise ValueError(f"{where}: a host, and only {', '.join(sorted(fields))}")
            user = str(box.get("user", ""))
            address = str(box.get("address") or "") or (user if "@" in user else None)
            try:
                mailbox = ImapMailbox(
                    host=str(box["host"]),
                    port=int(box.get("port", 993)),
                    user=user,
                    password=str(box.get("password", "")),
                    folder=str(box.get("folder", "INBOX")),
                    tls=bool(box.get("tls", True)),
                )
            except (TypeError, ValueError) as exc:
                raise ValueError(f"{where}: {exc}") from exc
            boxes.append((mailbox, address))
        return boxes

    @model_validator(mode="after")
    def _node_lease_holds(self) -> Settings:
        try:
            check_timing(self.node_lease_seconds, self.node_renew_seconds)
        except ValueError as exc:
            raise ValueError(f"CENTRALA_NODE_LEASE_SECONDS: {exc}") from exc
        return self

    @model_validator(mode="after")
    def _viber_fits_together(self) -> Settings:
        if bool(self.viber_base_url) != bool(self.viber_api_key):
            raise ValueError(
                "CENTRALA_VIBER_BASE_URL and CENTRALA_VIBER_API_KEY go together (both: Viber)"
            )
        return self

    @model_validator(mode="after")
    def _meta_fits_together(self) -> Settings:
        if bool(self.meta_app_secret) != bool(self.meta_verify_token):
            raise ValueError(
                "CENTRALA_META_APP_SECRET and CENTRALA_META_VERIFY_TOKEN go together (both:"
                " the Facebook / Instagram webhook)"
            )
        if self.meta_page_token and not self.meta_app_secret:
            raise ValueError(
                "CENTRALA_META_PAGE_TOKEN needs CENTRALA_META_APP_SECRET and"
                " CENTRALA_META_VERIFY_TOKEN: replies answer the messages the webhook takes"
            )
        return self

    @model_validator(mode="after")
    def _mail_fits_together(self) -> Settings:
        try:
            recipients = parse_recipients(self.reports_mail_to)
            parse_time_of_day(self.reports_mail_at)
            if not parse_recipients(self.smtp_from):
                raise ReportMailError("CENTRALA_SMTP_FROM: an address is needed")
            parse_time_of_day(self.notices_quiet_from)
            parse_time_of_day(self.notices_quiet_until)
        except ReportMailError as exc:
            raise ValueError(str(exc)) from exc
        if recipients and not self.smtp_host:
            raise ValueError("CENTRALA_REPORTS_MAIL_TO needs CENTRALA_SMTP_HOST (the mail server)")
        return self

    @property
    def notice_policy(self) -> Policy:
        try:
            return Policy(
                quiet_from=parse_time_of_day(self.notices_quiet_from),
                quiet_until=parse_time_of_day(self.notices_quiet_until),
                cap=self.notices_cap,
                cap_days=self.notices_cap_days,
            )
        except ReportMailError as exc:
            raise ValueError(f"CENTRALA_NOTICES_QUIET_*: {exc}") from exc

    @property
    def effective_instance_id(self) -> str:
        return self.instance_id or f"{socket.gethostname()[:100]}:{self.web_port}"

    @property
    def effective_public_url(self) -> str:
        return (self.public_url or f"http://{self.web_host}:{self.web_port}").rstrip("/")

    @property
    def report_recipients(self) -> tuple[str, ...]:
        return parse_recipients(self.reports_mail_to)

    @property
    def report_mail_time(self) -> time:
        return parse_time_of_day(self.reports_mail_at)

    @model_validator(mode="after")
    def _sip_fits_together(self) -> Settings:
        problems = check_sip(
            self.sip_network,
            self.trunks,
            outbound_trunk=self.outbound_trunk,
            infoline_number=self.infoline_number,
            phone_media_encryption=self.phone_media_encryption,
        )
        problems += check_softphone_tls(
            self.softphone_tls_bind,
            None if self.softphone_tls_cert is None else str(self.softphone_tls_cert),
            None if self.softphone_tls_key is None else str(self.softphone_tls_key),
            self.softphone_ws_url,
        )
        problems += check_nodes(self.nodes, self.node)
        problems += check_site(self.site, self.nodes, self.node)
        problems += [
            f"trunk {t.name!r}: names starting with {NODE_TRUNK_PREFIX!r} are the nodes' trunks"
            for t in self.trunks
            if self.nodes and t.name.startswith(NODE_TRUNK_PREFIX)
        ]
        if problems:
            raise ValueError("; ".join(problems))
        return self

    @property
    def phones_anywhere(self) -> bool:
        """Several nodes: an agent's phone may be registered on any of them."""
        return len(self.nodes) > 1

    @property
    def effective_softphone_ws_url(self) -> str:
        if self.softphone_ws_url:
            return self.softphone_ws_url
        parts = urlsplit(self.ari_url)
        return default_ws_url(parts.hostname or "127.0.0.1", parts.port or 8088)

    @property
    def sip_network(self) -> SipNetwork:
        return SipNetwork(
            bind=self.sip_bind,
            external_address=self.sip_external_address,
            local_nets=tuple(self.sip_local_nets),
            rtp_start=self.rtp_start,
            rtp_end=self.rtp_end,
            tls_bind=self.sip_tls_bind,
            tls_cert=self.sip_tls_cert_file is not None,
            tls_key=self.sip_tls_key_file is not None,
            tls_ca=self.sip_tls_ca_file is not None,
        )

    @property
    def numbers(self) -> dict[str, str]:
        """Every number entering from a trunk and its entry point."""
        return numbers(self.trunks, self.infoline_number)

    @property
    def infoline_numbers(self) -> list[str]:
        # A queue's number enters the info line's app too (straight into the queue).
        return [n for n, e in self.numbers.items() if e == "infoline" or e.startswith("queue:")]

    @property
    def effective_outbound_dial(self) -> str:
        if self.outbound_dial:
            return self.outbound_dial
        return outbound_dial(self.outbound_trunk or "trunk")

    @property
    def outbound_trunk_settings(self) -> Trunk | None:
        return next((t for t in self.trunks if t.name == self.outbound_trunk), None)

    @property
    def effective_outbound_caller_id(self) -> str:
        if self.outbound_caller_id:
            return self.outbound_caller_id
        trunk = next((t for t in self.trunks if t.name == self.outbound_trunk), None)
        return (trunk.caller_id if trunk else None) or self.infoline_number

    def exposed_default_secrets(self) -> list[str]:
        """Why the shipped ARI password or AMI secret must not be used here: one line per
        interface that listens beyond loopback with one (anyone reaching it could originate,
        listen to or hang up any call). Empty when none does."""
        problems = []
        ari_host = urlsplit(self.ari_url).hostname or "127.0.0.1"
        if self.ari_password == DEFAULT_ARI_PASSWORD and not is_loopback(ari_host):
            problems.append(
                f"CENTRALA_ARI_PASSWORD is the shipped default and ARI is on {ari_host} "
                "(CENTRALA_ARI_URL), not loopback: set CENTRALA_ARI_PASSWORD to a secret of "
                "your own, or use 127.0.0.1"
            )
        tls_host = (self.softphone_tls_bind or "127.0.0.1:0").rsplit(":", 1)[0].strip("[]")
        if self.ari_password == DEFAULT_ARI_PASSWORD and not is_loopback(tls_host):
            problems.append(
                f"CENTRALA_ARI_PASSWORD is the shipped default and Asterisk's HTTPS server (ARI "
                f"with it) is on {tls_host} (CENTRALA_SOFTPHONE_TLS_BIND): set "
                "CENTRALA_ARI_PASSWORD to a secret of your own"
            )
        if self.ami_secret == DEFAULT_AMI_SECRET and not is_loopback(self.ami_host):
            problems.append(
                f"CENTRALA_AMI_SECRET is the shipped default and AMI is on {self.ami_host} "
                "(CENTRALA_AMI_HOST), not loopback: set CENTRALA_AMI_SECRET to a secret of "
                "your own, or use 127.0.0.1"
            )
        return problems

    def make_data_dir(self) -> Path:
        """The data directory, made readable by its owner only when we create it (it holds
        the database, the session key, the API token and recordings)."""
        self.data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.data_dir

    def effective_api_token(self) -> str:
        """The API token: the setting, else the one `serve` generated on first start."""
        if self.api_token:
            return self.api_token
        path = self.data_dir / "api-token"
        if not path.exists():
            import secrets

            self.make_data_dir()
            try:
                fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            except FileExistsError:  # another process made it first
                return path.read_text().strip()
            with os.fdopen(fd, "w") as f:
                f.write(secrets.token_urlsafe(32))
        return path.read_text().strip()

    def effective_web_secret(self) -> str:
        """The desktop's session key: the setting, else one generated on first use."""
        if self.web_secret:
            return self.web_secret
        return _generated_secret(self.data_dir / "web-secret")

    def effective_agi_secret(self) -> str:
        """The FastAGI secret: the setting, else one generated on first use (by `serve` or
        `pbx up`, whichever runs first, so both render and check the same one)."""
        if self.agi_secret:
            return self.agi_secret
        return _generated_secret(self.data_dir / "agi-secret")

    @property
    def effective_cdr_file(self) -> Path:
        if self.cdr_file is not None:
            return self.cdr_file
        return self.pbx_root / "rootfs" / CDR_FILE_IN_PBX

    @property
    def effective_prompts_dir(self) -> Path:
        from centrala.prompts import SOUNDS_DIR

        if self.prompts_dir is not None:
            return self.prompts_dir
        return self.pbx_root / "rootfs" / SOUNDS_DIR

    @property
    def effective_recording_dir(self) -> Path:
        if self.recording_dir is not None:
            return self.recording_dir
        return self.pbx_root / "rootfs" / self.recording_pbx_dir.lstrip("/")

    @property
    def effective_database_url(self) -> str:
        if self.database_url:
            return self.database_url
        return f"sqlite+aiosqlite:///{self.data_dir / 'centrala.db'}"

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        config_file = os.environ.get("CENTRALA_CONFIG")
        if config_file:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=Path(config_file)))
        return tuple(sources)


def _generated_secret(path: Path) -> str:
    if not path.exists():
        import secrets

        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process made it first
            return path.read_text().strip()
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    return path.read_text().strip()


def settings_problems(exc: ValidationError) -> str:
    """A settings error as operators read it: one line per problem, named by its setting."""
    lines = ["the settings are not valid:"]
    for error in exc.errors():
        where = ".".join(str(part) for part in error["loc"])
        message = str(error["msg"]).removeprefix("Value error, ")
        if not where:
            lines += [f"  {problem}" for problem in message.split("; ")]
        else:
            lines.append(f"  CENTRALA_{where.upper()}: {message}")
    return "\n".join(lines)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    return Settings()
