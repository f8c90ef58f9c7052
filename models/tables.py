"""Over 500 lines: every table in one module, so the schema Alembic compares and a reader
sees is one file, with the enums its columns use.

The CRM tables. Every schema change comes with an Alembic migration in models/migrations.

Times are stored as timezone-aware UTC. Identifiers that outside systems give us (client
external ids, agent ids, Asterisk channel ids) carry unique keys, so a repeated import or a
duplicated event changes nothing twice.

Over 500 lines: every table of the schema in one place, as Alembic's autogenerate and a
reader of the schema want them; each is a plain declaration, with no logic to split.
"""

from __future__ import annotations

import enum
import uuid
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Date,
    DateTime,
    Enum,
    Float,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    Numeric,
    String,
    Text,
    TypeDecorator,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from core.enums import AgentRole as AgentRole
from core.enums import ClientType as ClientType
from core.enums import DeskLanguage as DeskLanguage
from core.queue_report import MOVED_ON

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class UTCDateTime(TypeDecorator[datetime]):
    """Aware UTC datetimes on every backend (SQLite would hand back naive ones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime: Centrala stores aware UTC times only")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        datetime: UTCDateTime(),
        dict[str, Any]: JSON,
    }


def _uuid() -> str:
    return str(uuid.uuid4())


def _enum(cls: type[enum.Enum], name: str) -> Enum:
    # Stored as the value strings with a CHECK constraint: readable in SQL, portable to SQLite.
    return Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=20,
        values_callable=lambda e: [m.value for m in e],
    )


class Direction(enum.StrEnum):
    INBOUND = "inbound"
    OUTBOUND = "outbound"


class CallbackStatus(enum.StrEnum):
    OPEN = "open"
    DONE = "done"
    CANCELLED = "cancelled"


class CampaignStatus(enum.StrEnum):
    DRAFT = "draft"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPED = "stopped"
    FINISHED = "finished"


class Agent(Base):
    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)  # agent_id from the CSV
    name: Mapped[str] = mapped_column(String(200))
    role: Mapped[AgentRole] = mapped_column(_enum(AgentRole, "agent_role"))
    endpoint: Mapped[str | None] = mapped_column(String(200))  # e.g. PJSIP/101
    skills: Mapped[list[str]] = mapped_column(JSON, default=list)
    password_hash: Mapped[str | None] = mapped_column(String(200))
    # Where escalated written inquiries reach the agent by e-mail (supervisors, managers).
    email: Mapped[str | None] = mapped_column(String(254))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # The language of the agent's desk and pages (web.i18n); the agent picks it on the desk.
    language: Mapped[DeskLanguage] = mapped_column(
        _enum(DeskLanguage, "agent_language"),
        default=DeskLanguage.BS,
        server_default=DeskLanguage.BS.value,
    )

    memberships: Mapped[list[QueueMember]] = relationship(back_populates="agent")


class AgentSession(Base):
    """An agent logged in now (and how), so a restarted `serve` logs them in again and
    re-attaches their nailed-up leg instead of logging everyone out."""

    __tablename__ = "agent_sessions"
    agent_id: Mapped[str] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    endpoint: Mapped[str] = mapped_column(String(200))
    mode: Mapped[str] = mapped_column(String(20))  # core.acd.AgentMode
    pause_reason: Mapped[str | None] = mapped_column(String(80))
    nailed_channel: Mapped[str | None] = mapped_column(String(64))
    nailed_bridge: Mapped[str | None] = mapped_column(String(64))
    logged_in_at: Mapped[datetime]
    # Several nodes: the node whose instance holds the log-in (None: one instance).
    node: Mapped[str | None] = mapped_column(String(64))


class AgentState(Base):
    """One change of an agent's state, for the agents report (``core.agent_report``): logged
    in and ready (``ready``, on a call or not: talk comes from the calls), ``paused`` with its
    reason, ``wrap_up``, ``logged_out``. Each row lasts until the agent's next one. No foreign
    key: an agent deactivated or deleted keeps their history."""

    __tablename__ = "agent_states"
    __table_args__ = (
        # The state each agent was in when a report's window opens, and the window's rows
        # (bench/agent_report.py, migration 0022).
        Index("ix_agent_states_agent_id_at", "agent_id", "at"),
        Index("ix_agent_states_at", "at"),
    )
    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    agent_id: Mapped[str] = mapped_column(String(64))
    at: Mapped[datetime]
    state: Mapped[str] = mapped_column(String(20))  # core.agent_report.State
    reason: Mapped[str | None] = mapped_column(String(80))  # a pause's


class AgentPhone(Base):
    """An agent's SIP phone (a desk phone or a softphone registers as ``endpoint``). Only the
    digest of its password is kept (SIP's HA1, what Asterisk's password_digest takes): the
    password itself is shown once when made and is in no file and no table."""

    __tablename__ = "agent_phones"
    agent_id: Mapped[str] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    endpoint: Mapped[str] = mapped_column(String(64), unique=True)
    realm: Mapped[str] = mapped_column(String(64))
    password_digest: Mapped[str] = mapped_column(String(200))
    updated_at: Mapped[datetime]


class WebSession(Base):
    """A desktop log-in. The browser's cookie carries only ``id``; who it is and what they may
    do is read from here and from ``agents`` on every request, so a log-out, a demotion, a
    deactivation or a password change holds at once and across restarts of `serve`."""

    __tablename__ = "web_sessions"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime]
    last_seen_at: Mapped[datetime]
    revoked_at: Mapped[datetime | None]


class ApiToken(Base):
    """A per-user token of the bearer API (/api). Only its SHA-256 is kept; what it may do is
    its agent's role read from ``agents`` on every request, so a demotion or a deactivation
    holds at once. Revoked and expired rows stay, for the admin page's list."""

    __tablename__ = "api_tokens"
    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    public_id: Mapped[str] = mapped_column(String(16), unique=True)  # in the token, and lists
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(100))
    created_at: Mapped[datetime]
    created_by: Mapped[str] = mapped_column(String(64))  # an agent id, or "cli" (the host)
    expires_at: Mapped[datetime | None]
    revoked_at: Mapped[datetime | None]
    last_used_at: Mapped[datetime | None]
    last_used_from: Mapped[str | None] = mapped_column(String(64))  # the client's address


class Queue(Base):
    __tablename__ = "queues"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    strategy: Mapped[str] = mapped_column(String(40), default="longest_idle")
    priority: Mapped[int] = mapped_column(Integer, default=0)
    max_wait_seconds: Mapped[int | None] = mapped_column(Integer)
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)

    members: Mapped[list[QueueMember]] = relationship(back_populates="queue")


class QueueMember(Base):
    __tablename__ = "queue_members"

    queue_id: Mapped[str] = mapped_column(
        ForeignKey("queues.id", ondelete="CASCADE"), primary_key=True
    )
    agent_id: Mapped[str] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    penalty: Mapped[int] = mapped_column(Integer, default=0)

    queue: Mapped[Queue] = relationship(back_populates="members")
    agent: Mapped[Agent] = relationship(back_populates="memberships")


class Client(Base):
    __tablename__ = "clients"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(8))
    segment: Mapped[str | None] = mapped_column(String(64))
    client_type: Mapped[ClientType] = mapped_column(
        _enum(ClientType, "client_type"), default=ClientType.REGULAR
    )
    assigned_manager_id: Mapped[str | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    birthday: Mapped[date | None] = mapped_column(Date)
    document_expiry: Mapped[date | None] = mapped_column(Date)
    overdue_debt: Mapped[bool] = mapped_column(Boolean, default=False)
    # IANA name; None: the campaign's default zone (calling windows are the client's clock).
    timezone: Mapped[str | None] = mapped_column(String(64))
    # Notices (core.notices): where a message reaches them, and how they like to get one.
    email: Mapped[str | None] = mapped_column(String(254))
    postal_address: Mapped[str | None] = mapped_column(Text)
    preferred_channel: Mapped[str | None] = mapped_column(String(10))  # core.notices.Channel
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now(), onupdate=func.now())

    phones: Mapped[list[ClientPhone]] = relationship(
        back_populates="client", cascade="all, delete-orphan"
    )


class ClientPhone(Base):
    """A client's number in E.164. Several per client; one number may belong to several
    clients (a family phone), so it is indexed, not unique."""

    __tablename__ = "client_phones"
    __table_args__ = (UniqueConstraint("client_id", "number"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    number: Mapped[str] = mapped_column(String(32), index=True)
    label: Mapped[str | None] = mapped_column(String(40))

    client: Mapped[Client] = relationship(back_populates="phones")


class Loan(Base):
    """A client's loan as the loan system reports it (`centrala import loans`). Campaigns read
    their segments from these rows: new, active and inactive borrowers."""

    __tablename__ = "loans"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)  # the loan system's id
    opened_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]  # None: still open
    amount: Mapped[Decimal | None] = mapped_column(Numeric(14, 2))
    product: Mapped[str | None] = mapped_column(String(64))


class Payment(Base):
    """A payment as the payments system reports it (`centrala import payments`): who paid,
    how much, when, and the loan it was matched to (``matched``), if any. ``client_id`` is the
    loan's client when matched to a loan, else the client the file names as the payer;
    ``payer_client_id`` is the client the file names as the payer (None: not one of ours, or
    not known). Procedural calls are generated from these rows (core.procedures)."""

    __tablename__ = "payments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    external_id: Mapped[str] = mapped_column(String(64), unique=True)  # the payment system's id
    loan_id: Mapped[int | None] = mapped_column(
        ForeignKey("loans.id", ondelete="SET NULL"), index=True
    )
    client_id: Mapped[int | None] = mapped_column(
        ForeignKey("clients.id", ondelete="SET NULL"), index=True
    )
    payer_client_id: Mapped[int | None] = mapped_column(
        ForeignKey("clients.id", ondelete="SET NULL")
    )
    payer_name: Mapped[str] = mapped_column(String(200))
    payer_number: Mapped[str | None] = mapped_column(String(32))  # E.164
    amount: Mapped[Decimal] = mapped_column(Numeric(14, 2))
    paid_at: Mapped[datetime]
    matched: Mapped[bool] = mapped_column(Boolean, default=False)


class ProcedureTask(Base):
    """A procedural call a CRM event calls for (core.procedures.ProcedureKind), generated by
    `centrala procedures generate`. ``cause_key`` names the event ("payment:P-1", "loan:L-1",
    "document:C-1:2027-01-31"): one task per (kind, cause), so generating again adds nothing.
    A task is closed with ``closed_reason`` once its cause has gone (checked again right
    before it is dialled) or the call is done."""

    __tablename__ = "procedure_tasks"
    __table_args__ = (
        UniqueConstraint("kind", "cause_key"),
        Index("ix_procedure_tasks_open", "status", "kind"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    kind: Mapped[str] = mapped_column(String(40))
    cause_key: Mapped[str] = mapped_column(String(200))
    client_id: Mapped[int | None] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    number: Mapped[str] = mapped_column(String(32))  # E.164, whom the call goes to
    payment_id: Mapped[int | None] = mapped_column(ForeignKey("payments.id", ondelete="SET NULL"))
    loan_id: Mapped[int | None] = mapped_column(ForeignKey("loans.id", ondelete="SET NULL"))
    status: Mapped[str] = mapped_column(String(20), default="open")  # open | closed
    closed_reason: Mapped[str | None] = mapped_column(String(40))
    created_at: Mapped[datetime]
    due_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]


class Call(Base):
    """One call, from the first sight of its channel to its hang-up."""

    __tablename__ = "calls"
    # The call log report's filters, each with the report's order (migration 0019).
    __table_args__ = (
        Index("ix_calls_started_at_id", "started_at", "id"),
        Index("ix_calls_queue_started_at", "queue", "started_at", "id"),
        Index("ix_calls_agent_id_started_at", "agent_id", "started_at", "id"),
        Index("ix_calls_outcome_started_at", "outcome", "started_at", "id"),
        Index("ix_calls_disposition_started_at", "disposition", "started_at", "id"),
        # The queues report: the calls queued in a window (core.queue_report).
        Index("ix_calls_queued_at", "queued_at"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=_uuid)
    # Asterisk's id of the channel that opened the record: a duplicated StasisStart or AGI
    # request for the same channel finds the row instead of making a second one.
    channel_id: Mapped[str] = mapped_column(String(64), unique=True)
    linkedid: Mapped[str | None] = mapped_column(String(64), index=True)
    direction: Mapped[Direction] = mapped_column(_enum(Direction, "call_direction"))
    handler: Mapped[str] = mapped_column(String(16))  # "ari" | "agi" | "pbx" (CDR only)
    caller_number: Mapped[str | None] = mapped_column(String(64))
    caller_name: Mapped[str | None] = mapped_column(String(200))
    called_number: Mapped[str | None] = mapped_column(String(64))
    client_id: Mapped[int | None] = mapped_column(
        ForeignKey("clients.id", ondelete="SET NULL"), index=True
    )
    started_at: Mapped[datetime] = mapped_column(index=True)
    answered_at: Mapped[datetime | None]
    ended_at: Mapped[datetime | None]
    hangup_cause: Mapped[int | None] = mapped_column(Integer)
    hangup_cause_text: Mapped[str | None] = mapped_column(String(80))
    outcome: Mapped[str | None] = mapped_column(String(40))
    disposition: Mapped[str | None] = mapped_column(String(80))
    queue: Mapped[str | None] = mapped_column(String(64))
    agent_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    ivr_path: Mapped[list[str]] = mapped_column(JSON, default=list)
    flow_version: Mapped[int | None] = mapped_column(Integer)
    queued_at: Mapped[datetime | None]
    connected_at: Mapped[datetime | None]
    wait_seconds: Mapped[float | None] = mapped_column(Float)
    talk_seconds: Mapped[float | None] = mapped_column(Float)
    # A survey call (campaign or after a call): the version asked and how far it got
    # (core.surveys.interpreter.SurveyStatus), also when nothing was answered: response rates.
    survey_id: Mapped[int | None] = mapped_column(
        ForeignKey("surveys.id", ondelete="SET NULL"), index=True
    )
    survey_status: Mapped[str | None] = mapped_column(String(20))
    # An agent campaign's call (core.dialler): its abandonment figures are counted from here.
    campaign_id: Mapped[int | None] = mapped_column(
        ForeignKey("campaigns.id", ondelete="SET NULL"), index=True
    )
    # Where a live call is (core.livestate), so a restarted `serve` adopts it; NULL once closed.
    live_state: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    # The Asterisk node the call is on (CENTRALA_NODE; NULL: one node): only that node's
    # owner adopts it or closes it.
    node: Mapped[str | None] = mapped_column(String(64))

    events: Mapped[list[CallEvent]] = relationship(
        back_populates="call", order_by="CallEvent.id", cascade="all, delete-orphan"
    )


# The events after which a call may wait in another queue (the queues report's visits).
MOVED_ON_KINDS = f"kind IN ({', '.join(repr(kind) for kind in MOVED_ON)})"


class CallEvent(Base):
    __tablename__ = "call_events"
    # The queues report finds the few calls that moved on from a queue (migration 0021): a
    # partial index, so the many other events cost it nothing.
    __table_args__ = (
        Index(
            "ix_call_events_moved_on",
            "at",
            sqlite_where=text(MOVED_ON_KINDS),
            postgresql_where=text(MOVED_ON_KINDS),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(40))
    data: Mapped[dict[str, Any]] = mapped_column(default=dict)

    call: Mapped[Call] = relationship(back_populates="events")


class Interaction(Base):
    """A note in the client's history: a call's disposition, an email answered, a remark."""

    __tablename__ = "interactions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[int | None] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), index=True
    )
    call_id: Mapped[str | None] = mapped_column(
        ForeignKey("calls.id", ondelete="SET NULL"), index=True
    )
    agent_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    channel: Mapped[str] = mapped_column(String(20), default="phone")
    category: Mapped[str | None] = mapped_column(String(40))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Callback(Base):
    """A task to call someone back: after hours, from a queue, a detractor's follow-up."""

    __tablename__ = "callbacks"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    call_id: Mapped[str | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    number: Mapped[str] = mapped_column(String(32))
    reason: Mapped[str | None] = mapped_column(String(80))
    queue: Mapped[str | None] = mapped_column(String(64))
    assigned_agent_id: Mapped[str | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL")
    )
    due_at: Mapped[datetime] = mapped_column(index=True)
    status: Mapped[CallbackStatus] = mapped_column(
        _enum(CallbackStatus, "callback_status"), default=CallbackStatus.OPEN
    )
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    # Worked by the dialler (core.callbacks): the last attempt's outcome (or the agent's
    # disposition) and call, when the next attempt is due, and why it was closed.
    last_outcome: Mapped[str | None] = mapped_column(String(40))
    last_call_id: Mapped[str | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    next_attempt_at: Mapped[datetime | None]
    closed_reason: Mapped[str | None] = mapped_column(String(80))
    closed_at: Mapped[datetime | None]


class Survey(Base):
    """A versioned survey definition; answers point at the exact version asked."""

    __tablename__ = "surveys"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]]
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    published_by: Mapped[str | None] = mapped_column(String(64))  # an agent id, "api" or "cli"
    note: Mapped[str | None] = mapped_column(Text)


class SurveyDraft(Base):
    """An admin's unpublished edit of a survey, one per survey and owner, changed in place;
    ``base_version`` is the active version it was taken from (publishing refuses when another
    was published since)."""

    __tablename__ = "survey_drafts"
    __table_args__ = (UniqueConstraint("name", "owner"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100))
    owner: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]]
    base_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class SurveyAnswer(Base):
    __tablename__ = "survey_answers"
    __table_args__ = (UniqueConstraint("call_id", "question_key"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    survey_id: Mapped[int] = mapped_column(ForeignKey("surveys.id"), index=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"))
    question_key: Mapped[str] = mapped_column(String(64))
    value_int: Mapped[int | None] = mapped_column(Integer)
    value_text: Mapped[str | None] = mapped_column(Text)
    recording: Mapped[str | None] = mapped_column(String(300))
    answered_at: Mapped[datetime]


class Campaign(Base):
    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(100), unique=True)
    kind: Mapped[str] = mapped_column(String(20))  # survey | sales | procedural
    status: Mapped[CampaignStatus] = mapped_column(
        _enum(CampaignStatus, "campaign_status"), default=CampaignStatus.DRAFT
    )
    survey_id: Mapped[int | None] = mapped_column(ForeignKey("surveys.id"))
    settings: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Counts the saved edits of ``settings``: an edit names the revision it was made on and
    # is refused when another was saved since (no lost edits between two admins).
    settings_revision: Mapped[int] = mapped_column(Integer, default=1, server_default="1")
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())


class CampaignContact(Base):
    __tablename__ = "campaign_contacts"
    __table_args__ = (
        # A number once per campaign, except in a callbacks campaign: one contact per task
        # (the callback_id's own unique index), and a client may ask again after a call.
        Index(
            "uq_campaign_contacts_number",
            "campaign_id",
            "number",
            unique=True,
            sqlite_where=text("callback_id IS NULL"),
            postgresql_where=text("callback_id IS NULL"),
        ),
        Index("ix_campaign_contacts_due", "campaign_id", "status", "next_attempt_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    client_id: Mapped[int | None] = mapped_column(ForeignKey("clients.id", ondelete="SET NULL"))
    number: Mapped[str] = mapped_column(String(32))
    status: Mapped[str] = mapped_column(String(20), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    last_outcome: Mapped[str | None] = mapped_column(String(40))
    last_call_id: Mapped[str | None] = mapped_column(ForeignKey("calls.id", ondelete="SET NULL"))
    # The Asterisk node dialling its attempt under way (CENTRALA_NODE; NULL: one node): only
    # that node's dialler finds it again after a restart.
    node: Mapped[str | None] = mapped_column(String(64))
    # Every attempt's result, [{attempt, outcome, at, call_id}]
    # (core.surveys.campaign.AttemptRecord):
    # an attempt number already here is never applied twice.
    attempt_history: Mapped[list[dict[str, Any]]] = mapped_column(
        JSON, default=list, server_default=text("'[]'")
    )
    segment: Mapped[str | None] = mapped_column(String(20))  # at selection: NPS per segment
    # From an imported contact list (core.surveys.contacts): a contact may be no client of ours yet,
    # so what the call needs (greeting, prompt language, calling window) travels with it.
    name: Mapped[str | None] = mapped_column(String(200))
    language: Mapped[str | None] = mapped_column(String(8))
    timezone: Mapped[str | None] = mapped_column(String(64))
    # An agent campaign: the agent the contact is reserved for (preview, progressive) or was
    # put through to.
    agent_id: Mapped[str | None] = mapped_column(String(64))
    # An agent campaign's procedural call: the task it serves (checked again before dialling)
    # and its purpose (core.procedures.ProcedureKind), which the screen-pop shows with a script.
    task_id: Mapped[int | None] = mapped_column(
        ForeignKey("procedure_tasks.id", ondelete="SET NULL")
    )
    purpose: Mapped[str | None] = mapped_column(String(40))
    # A callbacks campaign's contact: its task (never two contacts for one task), and the
    # agent whose own task it is (offered to them only, in preview; None: the queue's).
    callback_id: Mapped[int | None] = mapped_column(
        ForeignKey("callbacks.id", ondelete="SET NULL"), unique=True
    )
    callback_agent_id: Mapped[str | None] = mapped_column(String(64))


class DoNotCall(Base):
    __tablename__ = "do_not_call"

    number: Mapped[str] = mapped_column(String(32), primary_key=True)
    reason: Mapped[str | None] = mapped_column(String(200))
    added_at: Mapped[datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[datetime | None]


class FlowVersion(Base):
    """A stored version of an editable call flow (dialplan/*.yaml, `centrala dialplan apply`).

    Versions of a name count up from 1 and are never changed; at most one per name is active
    (the partial unique index below), and new calls take it. Calls in progress keep theirs.
    """

    __tablename__ = "flow_versions"
    __table_args__ = (UniqueConstraint("name", "version"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    version: Mapped[int] = mapped_column(Integer)
    definition: Mapped[dict[str, Any]]
    checksum: Mapped[str] = mapped_column(String(64))  # sha256 of the canonical JSON
    active: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    created_by: Mapped[str | None] = mapped_column(String(64))
    # "published" (the history; the active one is among them), "scheduled" (to be published
    # at ``publish_at``), "refused" (a scheduled one another publish overtook) or "trial" (a
    # draft frozen for the calls of its test numbers: numbered so such a call keeps it).
    status: Mapped[str] = mapped_column(
        String(16), default="published", server_default=text("'published'")
    )
    note: Mapped[str | None] = mapped_column(Text)  # the publisher's words
    base_version: Mapped[int | None] = mapped_column(Integer)  # the version it replaced
    publish_at: Mapped[datetime | None] = mapped_column()  # when a scheduled one goes live


Index(
    "uq_flow_versions_active_name",
    FlowVersion.name,
    unique=True,
    postgresql_where=FlowVersion.active,
    sqlite_where=FlowVersion.active,
)


class FlowDraft(Base):
    """An admin's unpublished edit of a flow: one per flow and owner, changed in place.

    ``base_version`` is the active version it was taken from (publishing refuses when another
    version was published since). Calls from ``test_numbers`` run ``trial_version``, the
    draft frozen into ``flow_versions`` when it last passed validation (None: it does not).
    """

    __tablename__ = "flow_drafts"
    __table_args__ = (UniqueConstraint("name", "owner"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(64))
    owner: Mapped[str] = mapped_column(String(64))
    definition: Mapped[dict[str, Any]]
    base_version: Mapped[int | None] = mapped_column(Integer)
    test_numbers: Mapped[list[str]] = mapped_column(JSON, default=list, server_default=text("'[]'"))
    trial_version: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[datetime] = mapped_column(server_default=func.now())


class AuditEntry(Base):
    """One change made through the admin console, the API or the CLI (flows, hours, queues,
    agents, roles): who, when, what and to what. Written in the transaction of the change,
    never updated."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    at: Mapped[datetime] = mapped_column(server_default=func.now(), index=True)
    actor: Mapped[str] = mapped_column(String(64))  # an agent id, "api" or "cli"
    action: Mapped[str] = mapped_column(String(40))  # e.g. "flow.publish"
    subject: Mapped[str] = mapped_column(String(120), index=True)  # e.g. "flow:infoline"
    detail: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)


class ConfigGeneration(Base):
    """One row whose number counts every change of what the call path reads on every call
    (flow versions, queues, agents, their memberships): triggers bump it on any insert,
    update or delete of those tables, by any process (`centrala dialplan apply`, an import,
    a test writing rows). `serve` keeps those tables in memory and reads only this number
    per use (models/crm.py), so an edit still applies to the next call."""

    __tablename__ = "config_generation"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    generation: Mapped[int] = mapped_column(BigInteger, default=0)


class ClientAudit(Base):
    """One change of a client's contact data from the agent desktop: who, when, which field,
    the value before and after. Written in the same transaction as the change."""

    __tablename__ = "client_audit"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"), index=True)
    agent_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    field: Mapped[str] = mapped_column(String(40))
    old_value: Mapped[str | None] = mapped_column(Text)
    new_value: Mapped[str | None] = mapped_column(Text)
    changed_at: Mapped[datetime] = mapped_column(server_default=func.now())


class Recording(Base):
    """A call's recording (both sides, from the end of the recording notice to the hang-up):
    the file under the recordings directory, and once the call has ended its length, size and
    sha256. ``paused`` holds the stretches an agent paused it for (core.recording.Stretch:
    ``since``/``until``/``by``; ``offsets`` once finished: seconds into the file). A recording
    past the retention period loses its file and keeps the row with ``deleted_at``."""

    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    call_id: Mapped[str] = mapped_column(ForeignKey("calls.id", ondelete="CASCADE"), index=True)
    file: Mapped[str] = mapped_column(String(200), unique=True)
    format: Mapped[str] = mapped_column(String(8))
    started_at: Mapped[datetime]
    ended_at: Mapped[datetime | None] = mapped_column(index=True)
    seconds: Mapped[float | None] = mapped_column(Float)
    size_bytes: Mapped[int | None] = mapped_column(Integer)
    sha256: Mapped[str | None] = mapped_column(String(64))
    paused: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    deleted_at: Mapped[datetime | None]


class ReportMailing(Base):
    """One local day's morning e-mail of the reports (``usecases.morning_reports``): claimed
    by the `serve` that sends it (``sending``, with when, so a claim whose `serve` died is
    taken over), then ``sent``, ``failed`` (tried again at ``next_attempt_at``) or
    ``given_up``. The day is the key: two instances never both mail a morning."""

    __tablename__ = "report_mailings"

    day: Mapped[date] = mapped_column(Date, primary_key=True)
    state: Mapped[str] = mapped_column(String(12))  # sending, sent, failed, given_up
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    claimed_at: Mapped[datetime | None]
    next_attempt_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    recipients: Mapped[str] = mapped_column(Text, default="")
    last_error: Mapped[str | None] = mapped_column(String(500))


VIBER_UNDECIDED = "channel = 'viber' AND fallback_at IS NULL"


class Notice(Base):
    """One message to a client in the outbox (``core.notices``): its kind, channel, address
    and merged text, its key (one per client, kind and occasion: a job run twice adds none),
    and its states from queued to delivered, failed or expired, with the provider's id and
    what went wrong. ``not_before``: the end of the client's quiet hours."""

    __tablename__ = "notices"
    __table_args__ = (
        # The due messages, oldest first (usecases.notices claims them by this).
        Index("ix_notices_state_not_before", "state", "not_before"),
        Index("ix_notices_client_id_created_at", "client_id", "created_at"),
        # The Viber messages whose fallback is not decided yet, by state: each sweep's
        # (models.notices.fallbacks_due), however many decided ones the years leave.
        Index(
            "ix_notices_viber_undecided",
            "state",
            "sent_at",
            sqlite_where=text(VIBER_UNDECIDED),
            postgresql_where=text(VIBER_UNDECIDED),
        ),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    key: Mapped[str] = mapped_column(String(120), unique=True)
    client_id: Mapped[int] = mapped_column(ForeignKey("clients.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(20))
    channel: Mapped[str] = mapped_column(String(10))
    language: Mapped[str] = mapped_column(String(8))
    address: Mapped[str] = mapped_column(String(254))
    topic: Mapped[str | None] = mapped_column(String(120))
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[str] = mapped_column(Text)
    html: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(10))  # core.notices.NoticeState
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    not_before: Mapped[datetime]
    next_attempt_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    provider_id: Mapped[str | None] = mapped_column(String(120), index=True)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    final_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(String(500))
    # Viber's fallback (core.notices.needs_fallback): an SMS's Viber message, and when a
    # Viber message's fallback was decided (its SMS queued, or none by the policy).
    fallback_of: Mapped[int | None] = mapped_column(ForeignKey("notices.id", ondelete="CASCADE"))
    fallback_at: Mapped[datetime | None]


class NoticeReport(Base):
    """A provider's report on a message, kept until it is applied to its notice: a receipt
    can come in before the sending has recorded the provider's id (the SMSC answers fast),
    and is applied then (``models.notices``), once."""

    __tablename__ = "notice_reports"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    provider_id: Mapped[str] = mapped_column(String(120), index=True)
    state: Mapped[str] = mapped_column(String(10))
    at: Mapped[datetime]
    error: Mapped[str | None] = mapped_column(String(500))


class ContactOptOut(Base):
    """A client who does not want messages on a channel: since when, and how they said so
    (``stop_reply``, ``unsubscribe``, ``agent``, ``import``)."""

    __tablename__ = "contact_opt_outs"

    client_id: Mapped[int] = mapped_column(
        ForeignKey("clients.id", ondelete="CASCADE"), primary_key=True
    )
    channel: Mapped[str] = mapped_column(String(10), primary_key=True)
    at: Mapped[datetime]
    source: Mapped[str] = mapped_column(String(20))


class Inquiry(Base):
    """A written inquiry (``core.inquiries``): a thread of messages from an e-mail, the web
    contact form or the Facebook / Instagram inbox, linked to the client when the sender is
    known, with its kind (classified, or set by an agent), state, owner, queue and priority;
    ``first_response_at`` and the state history (``inquiry_log``) give its SLA."""

    __tablename__ = "inquiries"
    __table_args__ = (
        # The backlog and the ACD's next one: by state, then oldest first.
        Index("ix_inquiries_state_created_at", "state", "created_at"),
        Index("ix_inquiries_client_id_created_at", "client_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    channel: Mapped[str] = mapped_column(String(12))  # core.inquiries.InquiryChannel
    kind: Mapped[str] = mapped_column(String(24))  # core.inquiries.InquiryKind
    kind_by: Mapped[str] = mapped_column(String(64))  # "rules", or the agent who set it
    state: Mapped[str] = mapped_column(String(10))  # core.inquiries.InquiryState
    subject: Mapped[str] = mapped_column(String(300))
    client_id: Mapped[int | None] = mapped_column(
        ForeignKey("clients.id", ondelete="SET NULL"), index=True
    )
    # Who wrote: an e-mail address, a Facebook / Instagram sender id (PSID / IGSID).
    sender: Mapped[str] = mapped_column(String(254), index=True)
    sender_name: Mapped[str] = mapped_column(String(200), default="")
    sender_phone: Mapped[str | None] = mapped_column(String(32))
    # Where the answer leaves from: the mailbox it came to, the page it was sent to.
    reply_from: Mapped[str | None] = mapped_column(String(254))
    queue: Mapped[str] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(Integer, default=0)
    owner_id: Mapped[str | None] = mapped_column(
        ForeignKey("agents.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    first_response_at: Mapped[datetime | None]
    closed_at: Mapped[datetime | None]


class InquiryMessage(Base):
    """A message of an inquiry: in (from the client), out (an agent's answer, sent by the
    channel the inquiry came in: its ``send_state``), or an internal note. ``source_key``
    is where it came from, unique (``imap:MAILBOX:UIDVALIDITY:UID``, ``meta:MID``,
    ``form:ID``): a message read twice is stored once; ``message_id`` (an e-mail's
    Message-ID) finds the thread an answer belongs to."""

    __tablename__ = "inquiry_messages"
    # The answers to send: by their state, the oldest first.
    __table_args__ = (Index("ix_inquiry_messages_send_state_at", "send_state", "at"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    inquiry_id: Mapped[int] = mapped_column(
        ForeignKey("inquiries.id", ondelete="CASCADE"), index=True
    )
    direction: Mapped[str] = mapped_column(String(4))  # core.inquiries.MessageDirection
    at: Mapped[datetime]
    author_id: Mapped[str | None] = mapped_column(ForeignKey("agents.id", ondelete="SET NULL"))
    source_key: Mapped[str | None] = mapped_column(String(300), unique=True)
    message_id: Mapped[str | None] = mapped_column(String(300), index=True)
    subject: Mapped[str] = mapped_column(String(300), default="")
    text: Mapped[str] = mapped_column(Text)  # the new text
    quoted: Mapped[str] = mapped_column(Text, default="")  # quoted text and signature, apart
    # Sent by Centrala itself (the contact form's receipt): no agent's answer, no first
    # response, and marked Auto-Submitted so no out-of-office answers it.
    automatic: Mapped[bool] = mapped_column(Boolean, default=False)
    # An answer's sending: queued -> sending (claimed_at: a `serve` that dies mid-send leaves
    # it to the next after a lease) -> sent (provider_id: the e-mail's Message-ID, Meta's
    # mid) or failed (error); a provider that is down: queued again at next_attempt_at.
    send_state: Mapped[str | None] = mapped_column(String(10))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None]
    claimed_at: Mapped[datetime | None]
    provider_id: Mapped[str | None] = mapped_column(String(300))
    error: Mapped[str | None] = mapped_column(String(500))


class InquiryAttachment(Base):
    """A file that came with (or went with) an inquiry's message, kept in the database with
    the message it belongs to (one transaction: a message is never stored without them)."""

    __tablename__ = "inquiry_attachments"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    message_id: Mapped[int] = mapped_column(
        ForeignKey("inquiry_messages.id", ondelete="CASCADE"), index=True
    )
    filename: Mapped[str] = mapped_column(String(200))
    content_type: Mapped[str] = mapped_column(String(120))
    size: Mapped[int] = mapped_column(Integer)
    content: Mapped[bytes] = mapped_column(LargeBinary)


class InquiryLog(Base):
    """What happened to an inquiry, in order: its states (the SLA's history), assignments,
    kind changes and escalations (the record ``core.inquiries.escalation`` reads: a level
    done is never notified again)."""

    __tablename__ = "inquiry_log"

    id: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=True)
    inquiry_id: Mapped[int] = mapped_column(
        ForeignKey("inquiries.id", ondelete="CASCADE"), index=True
    )
    at: Mapped[datetime]
    kind: Mapped[str] = mapped_column(String(16))  # state, assign, kind, escalate
    state: Mapped[str | None] = mapped_column(String(10))  # the state after it
    actor: Mapped[str | None] = mapped_column(String(64))  # an agent's id, or None: Centrala
    data: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    # An escalation's: when its agent was told (desk and e-mail); None: not yet.
    notified_at: Mapped[datetime | None]


class InquiryRules(Base):
    """The admin's classification rules of written inquiries (``core.inquiries.check_rules``'s
    document), one row; ``version`` goes up with each save, so two admins editing at once do
    not overwrite each other unseen."""

    __tablename__ = "inquiry_rules"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)  # always 1
    version: Mapped[int] = mapped_column(Integer)
    document: Mapped[dict[str, Any]] = mapped_column(JSON)
    updated_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime]


class PbxNode(Base):
    """An Asterisk node and the `serve` instance that owns it (``core.cluster``): the owner
    renews the row (``version`` up each time); another instance takes the node over when the
    version stands still for a whole lease."""

    __tablename__ = "pbx_nodes"

    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    owner: Mapped[str | None] = mapped_column(String(128))  # None: released
    version: Mapped[int] = mapped_column(BigInteger)
    owned_since: Mapped[datetime | None]
    renewed_at: Mapped[datetime]
    # Where its owner got to in the node's CDR file (``ari_app.cdr``): None, not read yet.
    cdr_inode: Mapped[int | None] = mapped_column(BigInteger)
    cdr_offset: Mapped[int | None] = mapped_column(BigInteger)


class Instance(Base):
    """A `serve` instance as it last said it was alive: where it serves the web, the node it
    is configured for, since when it runs (for /status and the wallboard)."""

    __tablename__ = "instances"

    id: Mapped[str] = mapped_column(String(128), primary_key=True)
    host: Mapped[str] = mapped_column(String(255))
    web_url: Mapped[str] = mapped_column(String(255))
    node: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[datetime]
    seen_at: Mapped[datetime]
    stopped_at: Mapped[datetime | None]
