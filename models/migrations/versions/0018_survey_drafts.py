"""survey drafts, who published a survey version and why, campaign settings revisions:
surveys.published_by/note, survey_drafts, campaigns.settings_revision

Revision ID: 0018
Revises: 0017

Columns are added by plain ALTER TABLE (SQLite has ADD and DROP COLUMN), as in 0015.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.tables import UTCDateTime

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NOW = sa.text("(CURRENT_TIMESTAMP)")


def upgrade() -> None:
    op.add_column("surveys", sa.Column("published_by", sa.String(length=64), nullable=True))
    op.add_column("surveys", sa.Column("note", sa.Text(), nullable=True))
    op.add_column(
        "campaigns",
        sa.Column("settings_revision", sa.Integer(), server_default="1", nullable=False),
    )
    op.create_table(
        "survey_drafts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("base_version", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), server_default=NOW, nullable=False),
        sa.Column("updated_at", UTCDateTime(), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_survey_drafts")),
        sa.UniqueConstraint("name", "owner", name=op.f("uq_survey_drafts_name")),
    )


def downgrade() -> None:
    op.drop_table("survey_drafts")
    op.drop_column("campaigns", "settings_revision")
    op.drop_column("surveys", "note")
    op.drop_column("surveys", "published_by")
