"""per-node keys, the rooms each node held, worker incarnations

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-03 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "sfu_node_enrolments",
        sa.Column("node_id", sa.String(length=100), nullable=False),
        sa.Column("key_hash", sa.String(length=64), nullable=False),
        sa.Column("local", sa.Boolean(), nullable=False),
        sa.Column("allow_loopback", sa.Boolean(), nullable=False),
        sa.Column("enrolled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("enrolled_by", sa.String(length=120), nullable=False),
        sa.Column("restarts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("node_id", name=op.f("pk_sfu_node_enrolments")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_sfu_node_enrolments_key_hash")),
    )
    op.create_table(
        "room_hosts",
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(length=100), nullable=False),
        sa.Column("first_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrences.id"],
            name=op.f("fk_room_hosts_occurrence_id_occurrences"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("occurrence_id", "node_id", name=op.f("pk_room_hosts")),
    )
    with op.batch_alter_table("room_hosts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_room_hosts_node_id"), ["node_id"], unique=False)
    # every room placed or relayed so far: its node keeps the right to report on it
    op.execute(
        "INSERT INTO room_hosts (occurrence_id, node_id, first_at) "
        "SELECT occurrence_id, node_id, placed_at FROM room_placements"
    )
    op.execute(
        "INSERT INTO room_hosts (occurrence_id, node_id, first_at) "
        "SELECT e.occurrence_id, e.node_id, e.created_at FROM room_edges e "
        "WHERE NOT EXISTS (SELECT 1 FROM room_hosts h "
        "WHERE h.occurrence_id = e.occurrence_id AND h.node_id = e.node_id)"
    )
    with op.batch_alter_table("sfu_nodes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("incarnation", sa.String(length=64), nullable=False, server_default="")
        )
        batch_op.add_column(sa.Column("started_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(
            sa.Column("restart_pending", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(
            sa.Column("previous_seen_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("sfu_nodes", schema=None) as batch_op:
        batch_op.drop_column("previous_seen_at")
        batch_op.drop_column("restart_pending")
        batch_op.drop_column("started_at")
        batch_op.drop_column("incarnation")
    with op.batch_alter_table("room_hosts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_room_hosts_node_id"))
    op.drop_table("room_hosts")
    op.drop_table("sfu_node_enrolments")
