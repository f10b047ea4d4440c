"""node machine and region; how an edge relays its room

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-30 16:10:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sfu_nodes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("machine_id", sa.String(length=100), nullable=False, server_default="")
        )
        batch_op.add_column(
            sa.Column("region", sa.String(length=20), nullable=False, server_default="")
        )
    with op.batch_alter_table("room_edges", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("kind", sa.String(length=10), nullable=False, server_default="pipe")
        )


def downgrade() -> None:
    with op.batch_alter_table("room_edges", schema=None) as batch_op:
        batch_op.drop_column("kind")
    with op.batch_alter_table("sfu_nodes", schema=None) as batch_op:
        batch_op.drop_column("region")
        batch_op.drop_column("machine_id")
