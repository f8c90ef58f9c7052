"""flow drafts, trial, scheduled and published versions, the audit trail: flow_versions.
status/note/base_version/publish_at, flow_drafts, audit_log

Revision ID: 0015
Revises: 0014

flow_versions gains its columns by plain ALTER TABLE (SQLite has ADD and DROP COLUMN), not
Alembic's batch copy, which would drop its config_generation triggers (0010). flow_drafts is
watched like flow_versions: a draft's test numbers are read by the call path.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.tables import UTCDateTime

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUMP = "UPDATE config_generation SET generation = generation + 1"
NOW = sa.text("(CURRENT_TIMESTAMP)")


def upgrade() -> None:
    op.add_column(
        "flow_versions",
        sa.Column("status", sa.String(length=16), server_default="published", nullable=False),
    )
    op.add_column("flow_versions", sa.Column("note", sa.Text(), nullable=True))
    op.add_column("flow_versions", sa.Column("base_version", sa.Integer(), nullable=True))
    op.add_column("flow_versions", sa.Column("publish_at", UTCDateTime(), nullable=True))
    op.create_table(
        "flow_drafts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("owner", sa.String(length=64), nullable=False),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("base_version", sa.Integer(), nullable=True),
        sa.Column("test_numbers", sa.JSON(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column("trial_version", sa.Integer(), nullable=True),
        sa.Column("created_at", UTCDateTime(), server_default=NOW, nullable=False),
        sa.Column("updated_at", UTCDateTime(), server_default=NOW, nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_flow_drafts")),
        sa.UniqueConstraint("name", "owner", name=op.f("uq_flow_drafts_name")),
    )
    op.create_table(
        "audit_log",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("at", UTCDateTime(), server_default=NOW, nullable=False),
        sa.Column("actor", sa.String(length=64), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("subject", sa.String(length=120), nullable=False),
        sa.Column("detail", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_audit_log")),
    )
    op.create_index(op.f("ix_audit_log_at"), "audit_log", ["at"], unique=False)
    op.create_index(op.f("ix_audit_log_subject"), "audit_log", ["subject"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE TRIGGER config_generation_flow_drafts AFTER INSERT OR UPDATE OR DELETE "
            "OR TRUNCATE ON flow_drafts FOR EACH STATEMENT "
            "EXECUTE FUNCTION bump_config_generation()"
        )
    else:
        for action in ("INSERT", "UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER config_generation_flow_drafts_{action.lower()} AFTER {action} "
                f"ON flow_drafts BEGIN {BUMP}; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER config_generation_flow_drafts ON flow_drafts")
    else:
        for action in ("insert", "update", "delete"):
            op.execute(f"DROP TRIGGER config_generation_flow_drafts_{action}")
    op.drop_index(op.f("ix_audit_log_subject"), table_name="audit_log")
    op.drop_index(op.f("ix_audit_log_at"), table_name="audit_log")
    op.drop_table("audit_log")
    op.drop_table("flow_drafts")
    # Trial and scheduled versions are not history yet: they leave with the drafts. Calls
    # that ran a trial keep its number in calls.flow_version, as a call of a deleted flow.
    op.execute("DELETE FROM flow_versions WHERE status <> 'published'")
    op.drop_column("flow_versions", "publish_at")
    op.drop_column("flow_versions", "base_version")
    op.drop_column("flow_versions", "note")
    op.drop_column("flow_versions", "status")
