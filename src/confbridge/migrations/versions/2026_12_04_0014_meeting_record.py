"""The meeting's record: invitation and agenda, documents, progress, conclusions and tasks,
sites' contacts and the notices sent to them

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-04 15:16:18.215007

New tables only (prefix `record_`); nothing existing changes.
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    _create_record_site_contacts()
    _create_record_conclusions()
    _create_record_invitations()
    _create_record_notices()
    _create_record_agenda_items()
    _create_record_tasks()
    _create_record_documents()
    _create_record_progress()


def _create_record_site_contacts() -> None:
    op.create_table(
        "record_site_contacts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("name", sa.String(length=150), nullable=True),
        sa.ForeignKeyConstraint(
            ["site_id"],
            ["sites.id"],
            name=op.f("fk_record_site_contacts_site_id_sites"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_site_contacts")),
        sa.UniqueConstraint("site_id", "email", name="uq_record_site_contacts_site_email"),
    )


def _create_record_conclusions() -> None:
    op.create_table(
        "record_conclusions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("document_number", sa.String(length=60), nullable=True),
        sa.Column("document_date", sa.Date(), nullable=True),
        sa.Column("signer_name", sa.String(length=150), nullable=True),
        sa.Column("signer_title", sa.String(length=200), nullable=True),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("recorded_by", sa.String(length=150), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrences.id"],
            name=op.f("fk_record_conclusions_occurrence_id_occurrences"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_conclusions")),
        sa.UniqueConstraint("occurrence_id", name=op.f("uq_record_conclusions_occurrence_id")),
    )


def _create_record_invitations() -> None:
    op.create_table(
        "record_invitations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("series_id", sa.Integer(), nullable=True),
        sa.Column("occurrence_id", sa.Integer(), nullable=True),
        sa.Column("document_number", sa.String(length=60), nullable=True),
        sa.Column("document_date", sa.Date(), nullable=True),
        sa.Column("parent_body", sa.String(length=200), nullable=True),
        sa.Column("issuing_body", sa.String(length=200), nullable=True),
        sa.Column("place", sa.String(length=100), nullable=True),
        sa.Column("signer_name", sa.String(length=150), nullable=True),
        sa.Column("signer_title", sa.String(length=200), nullable=True),
        sa.Column("summary", sa.Text(), nullable=True),
        sa.Column("attendees", sa.JSON(), nullable=True),
        sa.Column("has_agenda", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.CheckConstraint(
            "(series_id IS NULL) <> (occurrence_id IS NULL)",
            name=op.f("ck_record_invitations_one_owner"),
        ),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrences.id"],
            name=op.f("fk_record_invitations_occurrence_id_occurrences"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["series_id"],
            ["series.id"],
            name=op.f("fk_record_invitations_series_id_series"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_invitations")),
        sa.UniqueConstraint("occurrence_id", name=op.f("uq_record_invitations_occurrence_id")),
        sa.UniqueConstraint("series_id", name=op.f("uq_record_invitations_series_id")),
    )


def _create_record_notices() -> None:
    op.create_table(
        "record_notices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("site_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("dedupe_key", sa.String(length=400), nullable=False),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("next_attempt_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_error", sa.String(length=500), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrences.id"],
            name=op.f("fk_record_notices_occurrence_id_occurrences"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_notices")),
        sa.UniqueConstraint("dedupe_key", name=op.f("uq_record_notices_dedupe_key")),
    )
    with op.batch_alter_table("record_notices", schema=None) as batch_op:
        batch_op.create_index("ix_record_notices_occurrence_id", ["occurrence_id"], unique=False)
        batch_op.create_index(
            "ix_record_notices_status_next", ["status", "next_attempt_at"], unique=False
        )


def _create_record_agenda_items() -> None:
    op.create_table(
        "record_agenda_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("invitation_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("title", sa.String(length=500), nullable=False),
        sa.Column("presenter", sa.String(length=300), nullable=True),
        sa.Column("presenter_site_id", sa.Integer(), nullable=True),
        sa.Column("planned_min", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["invitation_id"],
            ["record_invitations.id"],
            name=op.f("fk_record_agenda_items_invitation_id_record_invitations"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["presenter_site_id"],
            ["sites.id"],
            name=op.f("fk_record_agenda_items_presenter_site_id_sites"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_agenda_items")),
    )
    with op.batch_alter_table("record_agenda_items", schema=None) as batch_op:
        batch_op.create_index(
            "ix_record_agenda_items_invitation_id", ["invitation_id"], unique=False
        )


def _create_record_tasks() -> None:
    op.create_table(
        "record_tasks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("conclusion_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("content", sa.Text(), nullable=False),
        sa.Column("unit", sa.String(length=300), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("deadline_date", sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(
            ["conclusion_id"],
            ["record_conclusions.id"],
            name=op.f("fk_record_tasks_conclusion_id_record_conclusions"),
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["units.id"],
            name=op.f("fk_record_tasks_unit_id_units"),
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_tasks")),
    )
    with op.batch_alter_table("record_tasks", schema=None) as batch_op:
        batch_op.create_index("ix_record_tasks_conclusion_id", ["conclusion_id"], unique=False)


def _create_record_documents() -> None:
    op.create_table(
        "record_documents",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("agenda_item_id", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=255), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("storage_key", sa.String(length=100), nullable=False),
        sa.Column("uploaded_by", sa.String(length=150), nullable=False),
        sa.Column("uploaded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["agenda_item_id"],
            ["record_agenda_items.id"],
            name=op.f("fk_record_documents_agenda_item_id_record_agenda_items"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrences.id"],
            name=op.f("fk_record_documents_occurrence_id_occurrences"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_record_documents")),
        sa.UniqueConstraint("storage_key", name=op.f("uq_record_documents_storage_key")),
    )
    with op.batch_alter_table("record_documents", schema=None) as batch_op:
        batch_op.create_index("ix_record_documents_occurrence_id", ["occurrence_id"], unique=False)


def _create_record_progress() -> None:
    op.create_table(
        "record_progress",
        sa.Column("occurrence_id", sa.Integer(), nullable=False),
        sa.Column("current_item_id", sa.Integer(), nullable=True),
        sa.Column("updated_by", sa.String(length=150), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["current_item_id"],
            ["record_agenda_items.id"],
            name=op.f("fk_record_progress_current_item_id_record_agenda_items"),
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrences.id"],
            name=op.f("fk_record_progress_occurrence_id_occurrences"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("occurrence_id", name=op.f("pk_record_progress")),
    )


def downgrade() -> None:
    op.drop_table("record_progress")
    with op.batch_alter_table("record_documents", schema=None) as batch_op:
        batch_op.drop_index("ix_record_documents_occurrence_id")

    op.drop_table("record_documents")
    with op.batch_alter_table("record_tasks", schema=None) as batch_op:
        batch_op.drop_index("ix_record_tasks_conclusion_id")

    op.drop_table("record_tasks")
    with op.batch_alter_table("record_agenda_items", schema=None) as batch_op:
        batch_op.drop_index("ix_record_agenda_items_invitation_id")

    op.drop_table("record_agenda_items")
    with op.batch_alter_table("record_notices", schema=None) as batch_op:
        batch_op.drop_index("ix_record_notices_status_next")
        batch_op.drop_index("ix_record_notices_occurrence_id")

    op.drop_table("record_notices")
    op.drop_table("record_invitations")
    op.drop_table("record_conclusions")
    op.drop_table("record_site_contacts")
