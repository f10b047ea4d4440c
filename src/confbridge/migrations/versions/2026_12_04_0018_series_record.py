"""A series' recording policy

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-04 16:30:00.000000

`record`: always, on_demand (the default, and every existing series') or never.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("record", sa.String(length=20), server_default="on_demand", nullable=False)
        )


def downgrade() -> None:
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_column("record")
