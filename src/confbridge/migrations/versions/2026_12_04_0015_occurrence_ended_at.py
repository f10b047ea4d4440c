"""When a meeting was ended (by the chair, the secretariat, or by itself after running over)

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-04 16:00:00.000000

A plain ADD COLUMN (no table copy): on SQLite a copy of `occurrences` would drop the original,
and the rows that reference it with it.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("occurrences", sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("occurrences", schema=None) as batch_op:
        batch_op.drop_column("ended_at")
