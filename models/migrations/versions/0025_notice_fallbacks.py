"""Viber's fallback to SMS: a notice's ``fallback_of`` (the SMS's Viber message) and
``fallback_at`` (when a Viber message's fallback was decided: its SMS queued, or none by the
contact policy)

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


def downgrade() -> None:
    with op.batch_alter_table("notices") as batch:
        batch.drop_constraint(op.f("fk_notices_fallback_of_notices"), type_="foreignkey")
        batch.drop_column("fallback_at")
        batch.drop_column("fallback_of")
