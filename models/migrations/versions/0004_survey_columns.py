"""survey columns: calls.survey_id/survey_status, campaign_contacts.attempt_history/segment

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("calls") as batch:
        batch.add_column(sa.Column("survey_id", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("survey_status", sa.String(length=20), nullable=True))
        batch.create_foreign_key(
            op.f("fk_calls_survey_id_surveys"),
            "surveys",
            ["survey_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch.create_index(op.f("ix_calls_survey_id"), ["survey_id"], unique=False)
    with op.batch_alter_table("campaign_contacts") as batch:
        # Existing contacts get an empty history (the column is NOT NULL).
        batch.add_column(
            sa.Column("attempt_history", sa.JSON(), server_default=sa.text("'[]'"), nullable=False)
        )
        batch.add_column(sa.Column("segment", sa.String(length=20), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("campaign_contacts") as batch:
        batch.drop_column("segment")
        batch.drop_column("attempt_history")
    with op.batch_alter_table("calls") as batch:
        batch.drop_index(op.f("ix_calls_survey_id"))
        batch.drop_constraint(op.f("fk_calls_survey_id_surveys"), type_="foreignkey")
        batch.drop_column("survey_status")
        batch.drop_column("survey_id")
