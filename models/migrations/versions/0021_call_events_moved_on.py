"""the queues report's index: the calls that moved on from a queue

Revision ID: 0021
Revises: 0020

A call that overflowed to another queue or was transferred to one is offered to each queue it
waited in; the report finds those calls by their ``overflowed``/``transferred`` events in the
window. A partial index on those two kinds only: the other events (most of the table) are
not in it, so writing them costs nothing more (bench/queue_report.py: the month's report read
every event of the year without it).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

MOVED_ON_KINDS = "kind IN ('overflowed', 'transferred')"


def upgrade() -> None:
    op.create_index(
        "ix_call_events_moved_on",
        "call_events",
        ["at"],
        sqlite_where=sa.text(MOVED_ON_KINDS),
        postgresql_where=sa.text(MOVED_ON_KINDS),
    )


def downgrade() -> None:
    op.drop_index("ix_call_events_moved_on", table_name="call_events")
