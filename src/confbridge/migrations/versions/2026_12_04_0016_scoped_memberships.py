"""scoped roles: memberships (unit, role) replace the global role of users; audit addresses

Every existing user keeps its role as a membership at the root (no unit): the whole
installation, which is what the global role meant. Audit entries gain the client address
of the request that wrote them.

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-04 15:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The strongest role first: what a user with several memberships goes back to on downgrade.
ROLE_RANK = ("admin", "secretariat", "it", "viewer")


def upgrade() -> None:
    op.create_table(
        "memberships",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=True),
        sa.Column("role", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name=op.f("fk_memberships_user_id_users"), ondelete="CASCADE"
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"],
            ["units.id"],
            name=op.f("fk_memberships_unit_id_units"),
            ondelete="RESTRICT",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_memberships")),
    )
    op.create_index("ix_memberships_user_id", "memberships", ["user_id"])
    op.create_index("ix_memberships_unit_id", "memberships", ["unit_id"])
    op.execute(
        "INSERT INTO memberships (user_id, unit_id, role, created_at) "
        "SELECT id, NULL, role, created_at FROM users"
    )
    # A plain ALTER TABLE (PostgreSQL; SQLite since 3.35): a batch copy of `users` would drop
    # the original table, and its sessions and memberships with it by ON DELETE CASCADE.
    op.execute("ALTER TABLE users DROP COLUMN role")
    op.add_column("audit_log", sa.Column("address", sa.String(length=64), nullable=True))


def downgrade() -> None:
    op.execute("ALTER TABLE audit_log DROP COLUMN address")
    op.execute("ALTER TABLE users ADD COLUMN role VARCHAR(20) NOT NULL DEFAULT 'viewer'")
    for role in reversed(ROLE_RANK):
        # the strongest role a user held anywhere wins (written last)
        op.execute(
            sa.text(
                "UPDATE users SET role = :role WHERE id IN "
                "(SELECT user_id FROM memberships WHERE role = :role)"
            ).bindparams(role=role)
        )
    op.drop_index("ix_memberships_unit_id", table_name="memberships")
    op.drop_index("ix_memberships_user_id", table_name="memberships")
    op.drop_table("memberships")
