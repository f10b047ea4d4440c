"""join grants of replaced terminal tokens, pushed to workers as revoked

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "grant_revocations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("terminal_id", sa.Integer(), nullable=False),
        sa.Column("credential_id", sa.String(length=32), nullable=False),
        sa.Column("revoked_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_grant_revocations")),
    )
    with op.batch_alter_table("grant_revocations", schema=None) as batch_op:
        batch_op.create_index("ix_grant_revocations_expires_at", ["expires_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("grant_revocations", schema=None) as batch_op:
        batch_op.drop_index("ix_grant_revocations_expires_at")
    op.drop_table("grant_revocations")
