"""attendance, its runs, pending occurrences and corrections

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-30 13:13:10.796804
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _create_attendance_pending()
    _create_attendance()
    _create_attendance_corrections()
    _create_attendance_runs()
    _create_pending_trigger()


def _create_attendance_pending() -> None:
    op.create_table(
        "attendance_pending",
        sa.Column("occurrence_id", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.PrimaryKeyConstraint("occurrence_id", name=op.f("pk_attendance_pending")),
    )


def _create_attendance() -> None:
    op.create_table(
        "attendance",
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("corrected_status", sa.String(length=10), nullable=True),
        sa.Column("connected_s", sa.Integer(), nullable=False),
        sa.Column("first_join_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_leave_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_leave_reason", sa.String(length=100), nullable=True),
        sa.Column("reconnects", sa.Integer(), nullable=False),
        sa.Column("joined_late", sa.Boolean(), nullable=False),
        sa.Column("left_early", sa.Boolean(), nullable=False),
        sa.Column("rtt_median_ms", sa.Float(), nullable=True),
        sa.Column("loss_max", sa.Float(), nullable=True),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrences.id"],
            name=op.f("fk_attendance_occurrence_id_occurrences"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"], ["sites.id"], name=op.f("fk_attendance_site_id_sites"), ondelete="RESTRICT"
        ),
        sa.PrimaryKeyConstraint("occurrence_id", "site_id", name=op.f("pk_attendance")),
    )
    with op.batch_alter_table("attendance", schema=None) as batch_op:
        batch_op.create_index(
            "ix_attendance_site_occurrence", ["site_id", "occurrence_id"], unique=False
        )


def _create_attendance_corrections() -> None:
    op.create_table(
        "attendance_corrections",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("created_by", sa.String(length=100), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrences.id"],
            name=op.f("fk_attendance_corrections_occurrence_id_occurrences"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_attendance_corrections_site_id_sites"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_attendance_corrections")),
    )
    with op.batch_alter_table("attendance_corrections", schema=None) as batch_op:
        batch_op.create_index(
            "ix_attendance_corrections_occurrence_site", ["occurrence_id", "site_id"], unique=False
        )


def _create_attendance_runs() -> None:
    op.create_table(
        "attendance_runs",
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("start_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("end_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("computed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("records", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrences.id"],
            name=op.f("fk_attendance_runs_occurrence_id_occurrences"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("occurrence_id", name=op.f("pk_attendance_runs")),
    )


# Every stored join/leave/stats event marks its occurrence as pending, whoever stores it, so
# that events arriving after an occurrence's attendance was computed (a worker's spool
# delivering late) are folded in at the next read (`attendance.service.refresh`).
TRIGGER = "sfu_events_attendance_pending"
PG_FUNCTION = "attendance_mark_pending"
ATTENDANCE_EVENT_TYPES = "('joined', 'left', 'stats')"


def _create_pending_trigger() -> None:
    if op.get_bind().dialect.name == "postgresql":
        # One statement-level trigger per INSERT: the batch's occurrences, each once.
        op.execute(
            f"""
            CREATE FUNCTION {PG_FUNCTION}() RETURNS trigger LANGUAGE plpgsql AS $$
            BEGIN
                INSERT INTO attendance_pending (occurrence_id)
                SELECT DISTINCT occurrence_id FROM new_events
                WHERE type IN {ATTENDANCE_EVENT_TYPES}
                ON CONFLICT DO NOTHING;
                RETURN NULL;
            END $$
            """
        )
        op.execute(
            f"""
            CREATE TRIGGER {TRIGGER} AFTER INSERT ON sfu_events
            REFERENCING NEW TABLE AS new_events
            FOR EACH STATEMENT EXECUTE FUNCTION {PG_FUNCTION}()
            """
        )
        return
    op.execute(
        f"""
        CREATE TRIGGER {TRIGGER} AFTER INSERT ON sfu_events
        WHEN NEW.type IN {ATTENDANCE_EVENT_TYPES}
        BEGIN
            INSERT OR IGNORE INTO attendance_pending (occurrence_id) VALUES (NEW.occurrence_id);
        END
        """
    )


def _drop_pending_trigger() -> None:
    op.execute(
        f"DROP TRIGGER IF EXISTS {TRIGGER}"
        + (" ON sfu_events" if op.get_bind().dialect.name == "postgresql" else "")
    )
    if op.get_bind().dialect.name == "postgresql":
        op.execute(f"DROP FUNCTION IF EXISTS {PG_FUNCTION}()")


def downgrade() -> None:
    _drop_pending_trigger()
    op.drop_table("attendance_runs")
    with op.batch_alter_table("attendance_corrections", schema=None) as batch_op:
        batch_op.drop_index("ix_attendance_corrections_occurrence_site")

    op.drop_table("attendance_corrections")
    with op.batch_alter_table("attendance", schema=None) as batch_op:
        batch_op.drop_index("ix_attendance_site_occurrence")

    op.drop_table("attendance")
    op.drop_table("attendance_pending")
