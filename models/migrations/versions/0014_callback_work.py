"""callbacks worked by the dialler: campaign_contacts.callback_id/callback_agent_id, a number
once per campaign except for callbacks, callbacks.last_outcome/last_call_id/next_attempt_at/
closed_reason/closed_at

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from models.tables import UTCDateTime

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_NOT_CALLBACK = sa.text("callback_id IS NULL")


def upgrade() -> None:
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.add_column(sa.Column("last_outcome", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("last_call_id", sa.String(length=36), nullable=True))
        batch_op.add_column(sa.Column("next_attempt_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("closed_reason", sa.String(length=80), nullable=True))
        batch_op.add_column(sa.Column("closed_at", UTCDateTime(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_callbacks_last_call_id_calls"),
            "calls",
            ["last_call_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("campaign_contacts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("callback_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("callback_agent_id", sa.String(length=64), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_campaign_contacts_callback_id_callbacks"),
            "callbacks",
            ["callback_id"],
            ["id"],
            ondelete="SET NULL",
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_campaign_contacts_callback_id"), ["callback_id"]
        )
        # A callbacks campaign holds a number once per task: the old (campaign, number) key
        # becomes partial, for the other campaigns.
        batch_op.drop_constraint("uq_campaign_contacts_campaign_id", type_="unique")
    op.create_index(
        "uq_campaign_contacts_number",
        "campaign_contacts",
        ["campaign_id", "number"],
        unique=True,
        sqlite_where=_NOT_CALLBACK,
        postgresql_where=_NOT_CALLBACK,
    )


def downgrade() -> None:
    # Back to a number once per campaign: of a callbacks campaign's repeated numbers, the
    # first contact stays.
    op.execute(
        "DELETE FROM campaign_contacts WHERE callback_id IS NOT NULL AND EXISTS ("
        "SELECT 1 FROM campaign_contacts AS first WHERE first.campaign_id ="
        " campaign_contacts.campaign_id AND first.number = campaign_contacts.number"
        " AND first.id < campaign_contacts.id)"
    )
    op.drop_index("uq_campaign_contacts_number", table_name="campaign_contacts")
    with op.batch_alter_table("campaign_contacts", schema=None) as batch_op:
        batch_op.create_unique_constraint(
            "uq_campaign_contacts_campaign_id", ["campaign_id", "number"]
        )
        batch_op.drop_constraint(batch_op.f("uq_campaign_contacts_callback_id"), type_="unique")
        batch_op.drop_constraint(
            batch_op.f("fk_campaign_contacts_callback_id_callbacks"), type_="foreignkey"
        )
        batch_op.drop_column("callback_agent_id")
        batch_op.drop_column("callback_id")
    with op.batch_alter_table("callbacks", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_callbacks_last_call_id_calls"), type_="foreignkey")
        batch_op.drop_column("closed_at")
        batch_op.drop_column("closed_reason")
        batch_op.drop_column("next_attempt_at")
        batch_op.drop_column("last_call_id")
        batch_op.drop_column("last_outcome")
