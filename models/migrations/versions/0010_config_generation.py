"""config_generation: a number every change of the call path's read-mostly tables bumps

Revision ID: 0010
Revises: 0009

`serve` keeps the active flow versions, the queues and the agents' profiles in memory and
reads only this number on each use; triggers bump it on any insert, update or delete of
flow_versions, queues, agents and queue_members, whoever writes them (the CLI, an import, a
test), so an edit still applies to the next call. A later SQLite migration that rebuilds
one of these tables (Alembic's batch mode copies it) must create its triggers again.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WATCHED = ("flow_versions", "queues", "agents", "queue_members")
BUMP = "UPDATE config_generation SET generation = generation + 1"


def upgrade() -> None:
    op.create_table(
        "config_generation",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("generation", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_config_generation")),
    )
    op.execute("INSERT INTO config_generation (id, generation) VALUES (1, 0)")
    if op.get_bind().dialect.name == "postgresql":
        op.execute(
            "CREATE FUNCTION bump_config_generation() RETURNS trigger LANGUAGE plpgsql AS "
            f"$$ BEGIN {BUMP}; RETURN NULL; END $$"
        )
        for table in WATCHED:
            op.execute(
                f"CREATE TRIGGER config_generation_{table} AFTER INSERT OR UPDATE OR DELETE "
                f"OR TRUNCATE ON {table} FOR EACH STATEMENT "
                "EXECUTE FUNCTION bump_config_generation()"
            )
        return
    # SQLite: row triggers only (a bulk write bumps once per row; the number only has to move).
    for table in WATCHED:
        for action in ("INSERT", "UPDATE", "DELETE"):
            op.execute(
                f"CREATE TRIGGER config_generation_{table}_{action.lower()} AFTER {action} "
                f"ON {table} BEGIN {BUMP}; END"
            )


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        for table in WATCHED:
            op.execute(f"DROP TRIGGER config_generation_{table} ON {table}")
        op.execute("DROP FUNCTION bump_config_generation()")
    else:
        for table in WATCHED:
            for action in ("insert", "update", "delete"):
                op.execute(f"DROP TRIGGER config_generation_{table}_{action}")
    op.drop_table("config_generation")
