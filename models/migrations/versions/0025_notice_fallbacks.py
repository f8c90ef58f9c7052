"""Viber's fallback to SMS: a notice's ``fallback_of`` (the SMS's Viber message) and
``fallback_at`` (when a Viber message's fallback was decided: its SMS queued, or none by the
contact policy), and a partial index of the Viber messages not yet decided

Revision ID: 0025
Revises: 0024
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.tables import UTCDateTime

revision: str = "0025"
down_revision: str | None = "0024"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None
# A migration keeps its own copy (models.tables.VIBER_UNDECIDED may change later).
UNDECIDED = "channel = 'viber' AND fallback_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("notices") as batch:
        batch.add_column(sa.Column("fallback_of", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("fallback_at", UTCDateTime(), nullable=True))
        batch.create_foreign_key(
            op.f("fk_notices_fallback_of_notices"),
            "notices",
            ["fallback_of"],
            ["id"],
            ondelete="CASCADE",
        )
    op.create_index(
        "ix_notices_viber_undecided",
        "notices",
        ["state", "sent_at"],
        sqlite_where=sa.text(UNDECIDED),
        postgresql_where=sa.text(UNDECIDED),
    )


def downgrade() -> None:
    op.drop_index("ix_notices_viber_undecided", table_name="notices")
    with op.batch_alter_table("notices") as batch:
        batch.drop_constraint(op.f("fk_notices_fallback_of_notices"), type_="foreignkey")
        batch.drop_column("fallback_at")
        batch.drop_column("fallback_of")
