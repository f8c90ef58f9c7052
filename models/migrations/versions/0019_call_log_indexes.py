"""the call log report's indexes: calls by (started_at, id) for its keyset paging, and by
queue, agent, outcome and disposition each with (started_at, id); a call's notes by call_id

Revision ID: 0019
Revises: 0018

Indexes only: no table is rebuilt, SQLite and PostgreSQL alike.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CALL_INDEXES = {
    "ix_calls_started_at_id": ["started_at", "id"],
    "ix_calls_queue_started_at": ["queue", "started_at", "id"],
    "ix_calls_agent_id_started_at": ["agent_id", "started_at", "id"],
    "ix_calls_outcome_started_at": ["outcome", "started_at", "id"],
    "ix_calls_disposition_started_at": ["disposition", "started_at", "id"],
}


def upgrade() -> None:
    for name, columns in CALL_INDEXES.items():
        op.create_index(name, "calls", columns)
    op.create_index("ix_interactions_call_id", "interactions", ["call_id"])


def downgrade() -> None:
    op.drop_index("ix_interactions_call_id", table_name="interactions")
    for name in reversed(CALL_INDEXES):
        op.drop_index(name, table_name="calls")
