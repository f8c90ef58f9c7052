"""agents.language: the language of the agent's desk (bs or en), Bosnian for everyone so far

Revision ID: 0017
Revises: 0016
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUMP = "UPDATE config_generation SET generation = generation + 1"


def _agents_triggers_again() -> None:
    """SQLite's batch mode rebuilds ``agents`` (a CHECK cannot be added in place) and the
    copy has none of 0010's config_generation triggers: without them an edit of an agent
    would not reach a running `serve`."""
    if op.get_bind().dialect.name != "sqlite":
        return
    for action in ("INSERT", "UPDATE", "DELETE"):
        op.execute(
            f"CREATE TRIGGER IF NOT EXISTS config_generation_agents_{action.lower()} AFTER"
            f" {action} ON agents BEGIN {BUMP}; END"
        )


def upgrade() -> None:
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column(
                "language",
                sa.Enum(
                    "bs",
                    "en",
                    name="agent_language",
                    native_enum=False,
                    create_constraint=True,
                    length=20,
                ),
                server_default="bs",
                nullable=False,
            )
        )
    _agents_triggers_again()


def downgrade() -> None:
    with op.batch_alter_table("agents", schema=None) as batch_op:
        # SQLite's batch copy would keep the CHECK naming the column it drops.
        batch_op.drop_constraint(batch_op.f("ck_agents_agent_language"), type_="check")
        batch_op.drop_column("language")
    _agents_triggers_again()
