"""terminal pairing codes and heartbeats

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-30 13:31:57.623649
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "terminal_pairing_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("terminal_id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=150), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["terminal_id"],
            ["terminals.id"],
            name=op.f("fk_terminal_pairing_codes_terminal_id_terminals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_terminal_pairing_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_terminal_pairing_codes_code_hash")),
    )
    with op.batch_alter_table("terminal_pairing_codes", schema=None) as batch_op:
        batch_op.create_index(
            "ix_terminal_pairing_codes_terminal_id", ["terminal_id"], unique=False
        )

    op.create_table(
        "terminal_states",
        sa.Column("terminal_id", sa.Integer(), nullable=False),
        sa.Column("reported_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("ip", sa.String(length=64), nullable=False),
        sa.Column("camera", sa.Boolean(), nullable=False),
        sa.Column("microphone", sa.Boolean(), nullable=False),
        sa.Column("occurrence_id", sa.Integer(), nullable=True),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(
            ["terminal_id"],
            ["terminals.id"],
            name=op.f("fk_terminal_states_terminal_id_terminals"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("terminal_id", name=op.f("pk_terminal_states")),
    )
    with op.batch_alter_table("terminals", schema=None) as batch_op:
        batch_op.add_column(sa.Column("paired_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("terminals", schema=None) as batch_op:
        batch_op.drop_column("paired_at")

    op.drop_table("terminal_states")
    with op.batch_alter_table("terminal_pairing_codes", schema=None) as batch_op:
        batch_op.drop_index("ix_terminal_pairing_codes_terminal_id")

    op.drop_table("terminal_pairing_codes")
