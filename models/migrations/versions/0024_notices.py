"""notices to clients: the outbox (notices), the providers' reports waiting for their notice
(notice_reports), opt-outs per channel, clients' e-mail, postal address and preferred
channel

Revision ID: 0024
Revises: 0023

The outbox's key is unique (one message per client, kind and occasion); (state, not_before)
finds the due messages, (client_id, created_at) a client's history and frequency cap.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.tables import UTCDateTime

revision: str = "0024"
down_revision: str | None = "0023"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("clients") as batch:
        batch.add_column(sa.Column("email", sa.String(length=254), nullable=True))
        batch.add_column(sa.Column("postal_address", sa.Text(), nullable=True))
        batch.add_column(sa.Column("preferred_channel", sa.String(length=10), nullable=True))
    op.create_table(
        "notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=120), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("address", sa.String(length=254), nullable=False),
        sa.Column("topic", sa.String(length=120), nullable=True),
        sa.Column("subject", sa.String(length=300), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("html", sa.Text(), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("not_before", UTCDateTime(), nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("claimed_at", UTCDateTime(), nullable=True),
        sa.Column("provider_id", sa.String(length=120), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("final_at", UTCDateTime(), nullable=True),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_notices_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notices")),
        sa.UniqueConstraint("key", name=op.f("uq_notices_key")),
    )
    op.create_index("ix_notices_state_not_before", "notices", ["state", "not_before"])
    op.create_index("ix_notices_client_id_created_at", "notices", ["client_id", "created_at"])
    op.create_index(op.f("ix_notices_provider_id"), "notices", ["provider_id"])
    op.create_table(
        "notice_reports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("provider_id", sa.String(length=120), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_notice_reports")),
    )
    op.create_index(op.f("ix_notice_reports_provider_id"), "notice_reports", ["provider_id"])
    op.create_table(
        "contact_opt_outs",
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("channel", sa.String(length=10), nullable=False),
        sa.Column("at", UTCDateTime(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_contact_opt_outs_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("client_id", "channel", name=op.f("pk_contact_opt_outs")),
    )


def downgrade() -> None:
    op.drop_table("contact_opt_outs")
    op.drop_index(op.f("ix_notice_reports_provider_id"), table_name="notice_reports")
    op.drop_table("notice_reports")
    op.drop_index(op.f("ix_notices_provider_id"), table_name="notices")
    op.drop_index("ix_notices_client_id_created_at", table_name="notices")
    op.drop_index("ix_notices_state_not_before", table_name="notices")
    op.drop_table("notices")
    with op.batch_alter_table("clients") as batch:
        batch.drop_column("preferred_channel")
        batch.drop_column("postal_address")
        batch.drop_column("email")
