"""several serve instances: the Asterisk nodes and which instance owns each (a lease renewed
by its owner), the instances as they last said they were alive, each call's node and the
node dialling a campaign contact

Revision ID: 0027
Revises: 0026
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.tables import UTCDateTime

revision: str = "0027"
down_revision: str | None = "0026"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("node", sa.String(length=64), nullable=True))
    with op.batch_alter_table("campaign_contacts") as batch:
        batch.add_column(sa.Column("node", sa.String(length=64), nullable=True))
    op.create_table(
        "pbx_nodes",
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=128), nullable=True),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.Column("owned_since", UTCDateTime(), nullable=True),
        sa.Column("renewed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_pbx_nodes")),
    )
    op.create_table(
        "instances",
        sa.Column("id", sa.String(length=128), nullable=False),
        sa.Column("host", sa.String(length=255), nullable=False),
        sa.Column("web_url", sa.String(length=255), nullable=False),
        sa.Column("node", sa.String(length=64), nullable=True),
        sa.Column("started_at", UTCDateTime(), nullable=False),
        sa.Column("seen_at", UTCDateTime(), nullable=False),
        sa.Column("stopped_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_instances")),
    )


def downgrade() -> None:
    op.drop_table("instances")
    op.drop_table("pbx_nodes")
    with op.batch_alter_table("campaign_contacts") as batch:
        batch.drop_column("node")
    with op.batch_alter_table("calls") as batch:
        batch.drop_column("node")
