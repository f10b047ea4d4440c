"""media seconds in attendance; occurrences the planner could not book

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-03 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("attendance", schema=None) as batch_op:
        batch_op.add_column(sa.Column("media_s", sa.Integer(), nullable=False, server_default="0"))
    # Stored attendance was judged on bare connections: forget when it was computed, so every
    # ended occurrence is computed again (with media) at its next read. Corrections stay.
    op.execute("DELETE FROM attendance_runs")

    op.create_table(
        "unplanned_occurrences",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=False),
        sa.Column("recurrence_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("conflicts", sa.JSON(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("resolved_by", sa.String(length=150), nullable=True),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["series.id"],
            name=op.f("fk_unplanned_occurrences_series_id_series"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_unplanned_occurrences")),
        sa.UniqueConstraint("series_id", "recurrence_at", name="uq_unplanned_series_recurrence"),
    )


def downgrade() -> None:
    op.drop_table("unplanned_occurrences")
    with op.batch_alter_table("attendance", schema=None) as batch_op:
        batch_op.drop_column("media_s")
