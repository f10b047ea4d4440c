"""nodes and alerts

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 13:45:34.408985
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _create_alerts()
    _create_sfu_nodes()
    _create_room_edges()
    _create_room_placements()


def _create_alerts() -> None:
    op.create_table(
        "alerts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("severity", sa.String(length=10), nullable=False),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("node_id", sa.String(length=100), nullable=True),
        sa.Column("occurrence_id", sa.Integer(), nullable=True),
        sa.Column("site_id", sa.Integer(), nullable=True),
        sa.Column("message", sa.String(length=500), nullable=False),
        sa.Column("message_en", sa.String(length=500), nullable=False),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("acknowledged_by", sa.String(length=150), nullable=True),
        sa.Column("open_key", sa.String(length=240), nullable=True),
        sa.Column("delivery_state", sa.String(length=10), nullable=False),
        sa.Column("delivery_attempts", sa.Integer(), nullable=False),
        sa.Column("next_delivery_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivery_claimed_until", sa.DateTime(timezone=True), nullable=True),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_delivery_error", sa.String(length=300), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_alerts")),
        sa.UniqueConstraint("open_key", name=op.f("uq_alerts_open_key")),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index(
            "ix_alerts_delivery", ["delivery_state", "next_delivery_at"], unique=False
        )
        batch_op.create_index("ix_alerts_raised_at", ["raised_at"], unique=False)


def _create_sfu_nodes() -> None:
    op.create_table(
        "sfu_nodes",
        sa.Column("id", sa.String(length=100), nullable=False),
        sa.Column("public_url", sa.String(length=500), nullable=False),
        sa.Column("internal_url", sa.String(length=500), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("capacity_peers", sa.Integer(), nullable=False),
        sa.Column("draining", sa.Boolean(), nullable=False),
        sa.Column("rooms", sa.Integer(), nullable=False),
        sa.Column("peers", sa.Integer(), nullable=False),
        sa.Column("packets_per_s", sa.Float(), nullable=False),
        sa.Column("cpu_ratio", sa.Float(), nullable=False),
        sa.Column("spool_events", sa.Integer(), nullable=False),
        sa.Column("pending_sessions", sa.Integer(), nullable=False),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("down_since", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sfu_nodes")),
    )


def _create_room_edges() -> None:
    op.create_table(
        "room_edges",
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["sfu_nodes.id"],
            name=op.f("fk_room_edges_node_id_sfu_nodes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrences.id"],
            name=op.f("fk_room_edges_occurrence_id_occurrences"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("occurrence_id", "node_id", name=op.f("pk_room_edges")),
    )


def _create_room_placements() -> None:
    op.create_table(
        "room_placements",
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("node_id", sa.String(length=100), nullable=False),
        sa.Column("placed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["node_id"],
            ["sfu_nodes.id"],
            name=op.f("fk_room_placements_node_id_sfu_nodes"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrences.id"],
            name=op.f("fk_room_placements_occurrence_id_occurrences"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("occurrence_id", name=op.f("pk_room_placements")),
    )
    with op.batch_alter_table("room_placements", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_room_placements_node_id"), ["node_id"], unique=False)

    with op.batch_alter_table("sfu_events", schema=None) as batch_op:
        batch_op.create_index("ix_sfu_events_type_at", ["type", "at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("sfu_events", schema=None) as batch_op:
        batch_op.drop_index("ix_sfu_events_type_at")

    with op.batch_alter_table("room_placements", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_room_placements_node_id"))

    op.drop_table("room_placements")
    op.drop_table("room_edges")
    op.drop_table("sfu_nodes")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_raised_at")
        batch_op.drop_index("ix_alerts_delivery")

    op.drop_table("alerts")
