"""the morning reports' e-mails: report_mailings

Revision ID: 0023
Revises: 0022

One row per local day whose reports were (or are being) e-mailed: its state, attempts and
the last error. The day is the primary key, so two `serve` instances cannot both claim it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.tables import UTCDateTime

revision: str = "0023"
down_revision: str | None = "0022"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "report_mailings",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("state", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("claimed_at", UTCDateTime(), nullable=True),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("sent_at", UTCDateTime(), nullable=True),
        sa.Column("recipients", sa.Text(), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.PrimaryKeyConstraint("day", name=op.f("pk_report_mailings")),
    )


def downgrade() -> None:
    op.drop_table("report_mailings")
