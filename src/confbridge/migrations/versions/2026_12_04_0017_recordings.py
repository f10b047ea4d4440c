"""Recordings of occurrences

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-04 16:10:00.000000

One row per recording a worker wrote of an occurrence's programme; the file stays on the node.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recordings",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(length=100), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ended_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("bytes", sa.BigInteger(), nullable=True),
        sa.Column("sha256", sa.String(length=64), nullable=True),
        sa.Column("started_by", sa.String(length=200), nullable=False),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrences.id"],
            name=op.f("fk_recordings_occurrence_id_occurrences"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recordings")),
    )
    op.create_index(
        "ix_recordings_occurrence_started", "recordings", ["occurrence_id", "started_at"]
    )


def downgrade() -> None:
    op.drop_index("ix_recordings_occurrence_started", table_name="recordings")
    op.drop_table("recordings")
