"""payments, procedure_tasks, campaign_contacts.task_id/purpose

Revision ID: 0012
Revises: 0011
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.tables import UTCDateTime

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "payments",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("external_id", sa.String(length=64), nullable=False),
        sa.Column("loan_id", sa.Integer(), nullable=True),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("payer_client_id", sa.Integer(), nullable=True),
        sa.Column("payer_name", sa.String(length=200), nullable=False),
        sa.Column("payer_number", sa.String(length=32), nullable=True),
        sa.Column("amount", sa.Numeric(precision=14, scale=2), nullable=False),
        sa.Column("paid_at", UTCDateTime(), nullable=False),
        sa.Column("matched", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_payments_client_id_clients"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["loan_id"], ["loans.id"], name=op.f("fk_payments_loan_id_loans"), ondelete="SET NULL"
        ),
        sa.ForeignKeyConstraint(
            ["payer_client_id"],
            ["clients.id"],
            name=op.f("fk_payments_payer_client_id_clients"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payments")),
        sa.UniqueConstraint("external_id", name=op.f("uq_payments_external_id")),
    )
    op.create_index(op.f("ix_payments_client_id"), "payments", ["client_id"], unique=False)
    op.create_index(op.f("ix_payments_loan_id"), "payments", ["loan_id"], unique=False)

    op.create_table(
        "procedure_tasks",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("cause_key", sa.String(length=200), nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=True),
        sa.Column("number", sa.String(length=32), nullable=False),
        sa.Column("payment_id", sa.Integer(), nullable=True),
        sa.Column("loan_id", sa.Integer(), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("closed_reason", sa.String(length=40), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("due_at", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"],
            ["clients.id"],
            name=op.f("fk_procedure_tasks_client_id_clients"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["loan_id"],
            ["loans.id"],
            name=op.f("fk_procedure_tasks_loan_id_loans"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
            name=op.f("fk_procedure_tasks_payment_id_payments"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_procedure_tasks")),
        # One task per cause and kind: `procedures generate` run twice adds nothing.
        sa.UniqueConstraint("kind", "cause_key", name=op.f("uq_procedure_tasks_kind")),
    )
    op.create_index(
        op.f("ix_procedure_tasks_client_id"), "procedure_tasks", ["client_id"], unique=False
    )
    op.create_index("ix_procedure_tasks_open", "procedure_tasks", ["status", "kind"], unique=False)

    # A column with a foreign key: SQLite cannot add the constraint in place, so batch mode
    # copies campaign_contacts there (nothing refers to it, and env.py turns foreign keys off
    # for the migration, so the copy's DROP cascades nowhere). Plain ALTERs on PostgreSQL.
    with op.batch_alter_table("campaign_contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("task_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("purpose", sa.String(length=40), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_campaign_contacts_task_id_procedure_tasks"),
            "procedure_tasks",
            ["task_id"],
            ["id"],
            ondelete="SET NULL",
        )


def downgrade() -> None:
    with op.batch_alter_table("campaign_contacts", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_campaign_contacts_task_id_procedure_tasks"), type_="foreignkey"
        )
        batch_op.drop_column("purpose")
        batch_op.drop_column("task_id")
    op.drop_index("ix_procedure_tasks_open", table_name="procedure_tasks")
    op.drop_index(op.f("ix_procedure_tasks_client_id"), table_name="procedure_tasks")
    op.drop_table("procedure_tasks")
    op.drop_index(op.f("ix_payments_loan_id"), table_name="payments")
    op.drop_index(op.f("ix_payments_client_id"), table_name="payments")
    op.drop_table("payments")
