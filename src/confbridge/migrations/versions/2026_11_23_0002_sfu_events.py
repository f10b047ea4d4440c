"""sfu events

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 15:28:17.626863
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # No foreign key to occurrences: events for occurrences unknown here are kept on purpose.
    op.create_table(
        "sfu_events",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=20), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("node_id", sa.String(length=100), nullable=False),
        sa.Column("room", sa.String(length=100), nullable=False),
        sa.Column("occurrence_id", sa.BigInteger(), nullable=False),
        sa.Column("site_id", sa.BigInteger(), nullable=True),
        sa.Column("peer_id", sa.String(length=64), nullable=True),
        sa.Column("direction", sa.String(length=10), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sfu_events")),
    )
    with op.batch_alter_table("sfu_events", schema=None) as batch_op:
        batch_op.create_index("ix_sfu_events_occurrence_at", ["occurrence_id", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sfu_events", schema=None) as batch_op:
        batch_op.drop_index("ix_sfu_events_occurrence_at")
    op.drop_table("sfu_events")
