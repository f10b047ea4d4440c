"""Sites' webhook contacts and emergency meetings' displacements

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-04 19:00:00.000000

`record_site_webhooks`: a site's contacts that are HTTP endpoints; `record_notices` gains the
channel (email, webhook) and the webhook it goes to. `meeting_displacements`: the occurrences
an emergency meeting (họp khẩn) cancelled or moved, by whom and why.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0020"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "record_site_webhooks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("url", sa.String(length=254), nullable=False),
        sa.Column("secret", sa.String(length=200), nullable=False),
        sa.Column("name", sa.String(length=150), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_record_site_webhooks_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_site_webhooks")),
        sa.UniqueConstraint("site_id", "url", name="uq_record_site_webhooks_site_url"),
    )
    with op.batch_alter_table("record_notices", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("channel", sa.String(length=10), server_default="email", nullable=False)
        )
        batch_op.add_column(sa.Column("webhook_id", sa.Integer(), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_record_notices_webhook_id_record_site_webhooks"),
            "record_site_webhooks",
            ["webhook_id"],
            ["id"],
            ondelete="SET NULL",
        )
    op.create_table(
        "meeting_displacements",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("emergency_series_id", sa.Integer(), nullable=False),
        sa.Column("emergency_occurrence_id", sa.Integer(), nullable=True),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("from_start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("from_end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("to_start_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("actor", sa.String(length=150), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrences.id"],
            name=op.f("fk_meeting_displacements_occurrence_id_occurrences"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["emergency_series_id"],
            ["series.id"],
            name=op.f("fk_meeting_displacements_emergency_series_id_series"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["emergency_occurrence_id"],
            ["occurrences.id"],
            name=op.f("fk_meeting_displacements_emergency_occurrence_id_occurrences"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_meeting_displacements")),
    )
    with op.batch_alter_table("meeting_displacements", schema=None) as batch_op:
        batch_op.create_index(
            "ix_meeting_displacements_occurrence_id", ["occurrence_id"], unique=False
        )
        batch_op.create_index(
            "ix_meeting_displacements_emergency_series_id", ["emergency_series_id"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("meeting_displacements", schema=None) as batch_op:
        batch_op.drop_index("ix_meeting_displacements_emergency_series_id")
        batch_op.drop_index("ix_meeting_displacements_occurrence_id")
    op.drop_table("meeting_displacements")
    with op.batch_alter_table("record_notices", schema=None) as batch_op:
        batch_op.drop_constraint(
            batch_op.f("fk_record_notices_webhook_id_record_site_webhooks"), type_="foreignkey"
        )
        batch_op.drop_column("webhook_id")
        batch_op.drop_column("channel")
    op.drop_table("record_site_webhooks")
