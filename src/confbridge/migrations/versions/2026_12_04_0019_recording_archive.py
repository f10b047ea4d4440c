"""Recordings' chapters and failure, a series' recording retention

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-04 19:00:00.000000

`recordings.chapters`: the worker's chapters (floor, content) and the agenda items the chair
marked while it recorded; `recordings.failure`: why the worker could not write it all.
`series.recording_retention_days`: recordings are deleted this long after they end (null: kept).
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("chapters", sa.JSON(), nullable=True))
        batch_op.add_column(sa.Column("failure", sa.String(length=500), nullable=True))
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.add_column(sa.Column("recording_retention_days", sa.Integer(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_column("recording_retention_days")
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_column("failure")
        batch_op.drop_column("chapters")
