"""live state for restart survival: calls.live_state, agent_sessions

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.tables import UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("live_state", sa.JSON(), nullable=True))
    op.create_table(
        "agent_sessions",
        sa.Column("agent_id", sa.String(length=64), nullable=False),
        sa.Column("endpoint", sa.String(length=200), nullable=False),
        sa.Column("mode", sa.String(length=20), nullable=False),
        sa.Column("pause_reason", sa.String(length=80), nullable=True),
        sa.Column("nailed_channel", sa.String(length=64), nullable=True),
        sa.Column("nailed_bridge", sa.String(length=64), nullable=True),
        sa.Column("logged_in_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["agent_id"],
            ["agents.id"],
            name=op.f("fk_agent_sessions_agent_id_agents"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("agent_id", name=op.f("pk_agent_sessions")),
    )


def downgrade() -> None:
    op.drop_table("agent_sessions")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("live_state")
