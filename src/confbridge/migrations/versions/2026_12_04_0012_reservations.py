"""When a node last had a session reserved on it by a join

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-04 12:30:00.000000

A heartbeat counts only the sessions that connected: reservations made by joins are kept
until the node's reported peers grow by as many, or until they are too old to be used.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sfu_nodes", schema=None) as batch_op:
        batch_op.add_column(sa.Column("pending_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("sfu_nodes", schema=None) as batch_op:
        batch_op.drop_column("pending_at")
