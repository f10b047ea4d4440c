"""SIP dial-in: meeting numbers and PINs of series, upstream bridges, room systems, guests

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-04 09:00:00.000000
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
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.add_column(sa.Column("meeting_number", sa.String(length=9), nullable=True))
        batch_op.add_column(sa.Column("pin", sa.String(length=8), nullable=True))
        batch_op.add_column(sa.Column("upstream_sip_uri", sa.String(length=300), nullable=True))
    _backfill_series()
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.alter_column("meeting_number", existing_type=sa.String(length=9), nullable=False)
        batch_op.alter_column("pin", existing_type=sa.String(length=8), nullable=False)
        batch_op.create_unique_constraint(
            batch_op.f("uq_series_meeting_number"), ["meeting_number"]
        )
    with op.batch_alter_table("occurrences", schema=None) as batch_op:
        batch_op.add_column(sa.Column("upstream_sip_uri", sa.String(length=300), nullable=True))
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sip_uri", sa.String(length=300), nullable=True))
        batch_op.add_column(sa.Column("guest_uri", sa.String(length=300), nullable=True))
        batch_op.create_unique_constraint(batch_op.f("uq_sites_sip_uri"), ["sip_uri"])
        batch_op.create_unique_constraint(batch_op.f("uq_sites_guest_uri"), ["guest_uri"])


def downgrade() -> None:
    with op.batch_alter_table("sites", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_sites_guest_uri"), type_="unique")
        batch_op.drop_constraint(batch_op.f("uq_sites_sip_uri"), type_="unique")
        batch_op.drop_column("guest_uri")
        batch_op.drop_column("sip_uri")
    with op.batch_alter_table("occurrences", schema=None) as batch_op:
        batch_op.drop_column("upstream_sip_uri")
    with op.batch_alter_table("series", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_series_meeting_number"), type_="unique")
        batch_op.drop_column("upstream_sip_uri")
        batch_op.drop_column("pin")
        batch_op.drop_column("meeting_number")
