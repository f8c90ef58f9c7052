"""calls: flow version, queue and talk times

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.tables import UTCDateTime

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("flow_version", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("queued_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("connected_at", UTCDateTime(), nullable=True))
        batch.add_column(sa.Column("wait_seconds", sa.Float(), nullable=True))
        batch.add_column(sa.Column("talk_seconds", sa.Float(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        for column in ("talk_seconds", "wait_seconds", "connected_at", "queued_at", "flow_version"):
            batch.drop_column(column)
