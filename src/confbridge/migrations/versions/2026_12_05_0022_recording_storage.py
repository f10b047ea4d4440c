"""Recordings moved to the object store

Revision ID: 0022
Revises: 0021
Create Date: 2026-12-05 00:00:00.000000

`recordings.storage_key`: the object's name once a finished recording was copied to the
object store (and removed from its worker); null while the file is on the worker.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0022"
down_revision: str | None = "0021"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.add_column(sa.Column("storage_key", sa.String(length=200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("recordings", schema=None) as batch_op:
        batch_op.drop_column("storage_key")
