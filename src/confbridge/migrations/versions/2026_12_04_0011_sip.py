"""SIP dial-in: meeting numbers and PINs of series, upstream bridges, room systems, guests

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 09:00:00.000000

Only ADD COLUMN and CREATE INDEX: on SQLite anything more copies the table, and dropping the
original `series` would delete its occurrences (ON DELETE CASCADE) on the way.
"""

import secrets
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _backfill_series() -> None:
    """Give every existing series a distinct 7-digit meeting number and a 6-digit PIN (the same
    forms as `confbridge.sip_uri`, repeated here: a migration must not change with the code)."""
    connection = op.get_bind()
    series = sa.table(
        "series", sa.column("id", sa.Integer), sa.column("meeting_number"), sa.column("pin")
    )
    ids = list(connection.scalars(sa.select(series.c.id).order_by(series.c.id)))
    taken: set[str] = set()
    for series_id in ids:
        number = str(1_000_000 + secrets.randbelow(9_000_000))
        while number in taken:
            number = str(1_000_000 + secrets.randbelow(9_000_000))
        taken.add(number)
        connection.execute(
            series.update()
            .where(series.c.id == series_id)
            .values(meeting_number=number, pin=f"{secrets.randbelow(1_000_000):06d}")
        )


def upgrade() -> None:
    # NOT NULL columns can be added to filled tables only with a default; it is dropped again
    # where the database can (PostgreSQL) and never used: every new series gets its own.
    op.add_column(
        "series",
        sa.Column("meeting_number", sa.String(length=9), nullable=False, server_default=""),
    )
    op.add_column(
        "series", sa.Column("pin", sa.String(length=8), nullable=False, server_default="")
    )
    op.add_column("series", sa.Column("upstream_sip_uri", sa.String(length=300), nullable=True))
    _backfill_series()
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("series", "meeting_number", server_default=None)
        op.alter_column("series", "pin", server_default=None)
    op.create_index("ix_series_meeting_number", "series", ["meeting_number"], unique=True)

    op.add_column(
        "occurrences", sa.Column("upstream_sip_uri", sa.String(length=300), nullable=True)
    )

    op.add_column("sites", sa.Column("sip_uri", sa.String(length=300), nullable=True))
    op.add_column("sites", sa.Column("guest_uri", sa.String(length=300), nullable=True))
    op.create_index("ix_sites_sip_uri", "sites", ["sip_uri"], unique=True)
    op.create_index("ix_sites_guest_uri", "sites", ["guest_uri"], unique=True)


def downgrade() -> None:
    op.drop_index("ix_sites_guest_uri", table_name="sites")
    op.drop_index("ix_sites_sip_uri", table_name="sites")
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_column("guest_uri")
        batch_op.drop_column("sip_uri")
    with op.batch_alter_table("occurrences", schema=None) as batch_op:
        batch_op.drop_column("upstream_sip_uri")
    op.drop_index("ix_series_meeting_number", table_name="series")
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_column("upstream_sip_uri")
        batch_op.drop_column("pin")
        batch_op.drop_column("meeting_number")
