"""each node's place in its Asterisk's CDR file, kept with the node: the instance that takes
a node over goes on reading where its owner stopped (the calls that heard the apology while
nobody owned the node are recorded too)

Revision ID: 0028
Revises: 0027
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0028"
down_revision: str | None = "0027"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("pbx_nodes") as batch:
        batch.add_column(sa.Column("cdr_inode", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("cdr_offset", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("pbx_nodes") as batch:
        batch.drop_column("cdr_offset")
        batch.drop_column("cdr_inode")
