"""loans, clients.timezone, campaign_contacts.name/language/timezone

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.tables import UTCDateTime

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONTACT_COLUMNS = ("name", "language", "timezone")


def upgrade() -> None:
    op.create_table(
        "loans",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("opened_at", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=True),
        sa.Column("product", sa.String(length=64), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_loans_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_loans")),
        sa.UniqueConstraint("external_id", name=op.f("uq_loans_external_id")),
    )
    op.create_index(op.f("ix_loans_client_id"), "loans", ["client_id"], unique=False)
    # Plain ALTER TABLE ... ADD COLUMN on every backend: nullable columns need no table copy.
    op.add_column("clients", sa.Column("timezone", sa.String(length=64), nullable=True))
    op.add_column("campaign_contacts", sa.Column("name", sa.String(length=200), nullable=True))
    op.add_column("campaign_contacts", sa.Column("language", sa.String(length=8), nullable=True))
    op.add_column("campaign_contacts", sa.Column("timezone", sa.String(length=64), nullable=True))


def downgrade() -> None:
    # Never batch mode here: SQLite's table copy drops the old `clients`, and with foreign
    # keys on that DROP deletes every client first, cascading to phones, notes and callbacks.
    # ALTER TABLE ... DROP COLUMN (SQLite 3.35+) drops these plain columns in place.
    for column in reversed(CONTACT_COLUMNS):
        op.drop_column("campaign_contacts", column)
    op.drop_column("clients", "timezone")
    op.drop_index(op.f("ix_loans_client_id"), table_name="loans")
    op.drop_table("loans")
