"""A unit's disabling

Revision ID: 0021
Revises: 0020
Create Date: 2026-12-04 19:00:00.000000

`units.disabled_at`: set when an administrator disables a unit (and everything below it);
the unit stays, so that reports and the audit log keep its name.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0021"
down_revision: str | None = "0020"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("units", schema=None) as batch_op:
        batch_op.add_column(sa.Column("disabled_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("units", schema=None) as batch_op:
        batch_op.drop_column("disabled_at")
