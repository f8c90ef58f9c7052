"""written inquiries: the inquiries, their messages (in, out, notes) with their attachments,
and their log (states, assignments, kind changes, escalations); the admin's classification
rules; agents' e-mail addresses

Revision ID: 0026
Revises: 0025

A message's source key is unique (a message read twice from its mailbox, or a webhook
delivered twice, is stored once); (state, created_at) finds the backlog oldest first.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.tables import UTCDateTime

revision: str = "0026"
down_revision: str | None = "0025"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("agents") as batch:
        batch.add_column(sa.Column("email", sa.String(length=254), nullable=True))
    op.create_table(
        "inquiries",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=12), nullable=False),
        sa.Column("kind", sa.String(length=24), nullable=False),
        sa.Column("kind_by", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("sender", sa.String(length=254), nullable=False),
        sa.Column("sender_name", sa.String(length=200), nullable=False),
        sa.Column("sender_phone", sa.String(length=32), nullable=True),
        sa.Column("reply_from", sa.String(length=254), nullable=True),
        sa.Column("queue", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("owner_id", sa.String(length=64), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("first_response_at", UTCDateTime(), nullable=True),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_inquiries_client_id_clients"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["owner_id"],
            ["agents.id"],
            name=op.f("fk_inquiries_owner_id_agents"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inquiries")),
    )
    op.create_index(op.f("ix_inquiries_client_id"), "inquiries", ["client_id"])
    op.create_index(op.f("ix_inquiries_owner_id"), "inquiries", ["owner_id"])
    op.create_index(op.f("ix_inquiries_sender"), "inquiries", ["sender"])
    op.create_index("ix_inquiries_state_created_at", "inquiries", ["state", "created_at"])
    op.create_index("ix_inquiries_client_id_created_at", "inquiries", ["client_id", "created_at"])
    op.create_table(
        "inquiry_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("inquiry_id", sa.Integer(), nullable=False),
        sa.Column("direction", sa.String(length=4), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("author_id", sa.String(length=64), nullable=True),
        sa.Column("source_key", sa.String(length=300), nullable=True),
        sa.Column("message_id", sa.String(length=300), nullable=True),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("quoted", sa.Text(), nullable=False),
        sa.Column("automatic", sa.Boolean(), nullable=False),
        sa.Column("send_state", sa.String(length=10), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("claimed_at", UTCDateTime(), nullable=True),
        sa.Column("provider_id", sa.String(length=300), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["author_id"],
            ["agents.id"],
            name=op.f("fk_inquiry_messages_author_id_agents"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["inquiry_id"],
            ["inquiries.id"],
            name=op.f("fk_inquiry_messages_inquiry_id_inquiries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inquiry_messages")),
        sa.UniqueConstraint("source_key", name=op.f("uq_inquiry_messages_source_key")),
    )
    op.create_index(op.f("ix_inquiry_messages_inquiry_id"), "inquiry_messages", ["inquiry_id"])
    op.create_index(op.f("ix_inquiry_messages_message_id"), "inquiry_messages", ["message_id"])
    op.create_index("ix_inquiry_messages_send_state_at", "inquiry_messages", ["send_state", "at"])
    op.create_table(
        "inquiry_attachments",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.Integer(), nullable=False),
        sa.Column("filename", sa.String(length=200), nullable=False),
        sa.Column("content_type", sa.String(length=120), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.ForeignKeyConstraint(
            ["message_id"],
            ["inquiry_messages.id"],
            name=op.f("fk_inquiry_attachments_message_id_inquiry_messages"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inquiry_attachments")),
    )
    op.create_index(
        op.f("ix_inquiry_attachments_message_id"), "inquiry_attachments", ["message_id"]
    )
    op.create_table(
        "inquiry_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("inquiry_id", sa.Integer(), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=True),
        sa.Column("actor", sa.String(length=64), nullable=True),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("notified_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["inquiry_id"],
            ["inquiries.id"],
            name=op.f("fk_inquiry_log_inquiry_id_inquiries"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inquiry_log")),
    )
    op.create_index(op.f("ix_inquiry_log_inquiry_id"), "inquiry_log", ["inquiry_id"])

    op.create_table(
        "inquiry_rules",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("document", sa.JSON(), nullable=False),
        sa.Column("updated_by", sa.String(length=64), nullable=True),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inquiry_rules")),
    )


def downgrade() -> None:
    op.drop_table("inquiry_rules")
    op.drop_table("inquiry_log")
    op.drop_table("inquiry_attachments")
    op.drop_table("inquiry_messages")
    op.drop_table("inquiries")
    with op.batch_alter_table("agents") as batch:
        batch.drop_column("email")
