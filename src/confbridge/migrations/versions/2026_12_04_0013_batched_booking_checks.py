"""Bookings' references checked once per statement instead of once per row

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-04 13:00:00.000000

A national series writes 171,105 bookings in a few INSERT ... SELECT statements. On PostgreSQL
the two foreign keys of `bookings` fired an RI trigger per row and per key (342,210 calls, about
1 s of the 1.5 s the insert took), each looking up and share-locking a parent row that the
statement had already locked thousands of times. The keys are replaced by triggers that keep
the same rules, set-wise:

- a statement that writes bookings locks each occurrence and site it names once (FOR KEY SHARE,
  the lock a foreign key check takes) and fails with foreign_key_violation if one is missing;
  deleting or re-keying a parent waits for that lock, as it would for a foreign key's;
- deleting occurrences deletes their bookings (was ON DELETE CASCADE);
- deleting a booked site, or changing the id of a booked site or occurrence, fails (was
  RESTRICT / NO ACTION).

SQLite gets the same rules as row triggers (its own foreign key checks are row by row too),
so that both databases have the schema the models describe.
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FK_OCCURRENCE = "fk_bookings_occurrence_id_occurrences"
FK_SITE = "fk_bookings_site_id_sites"

# (trigger, table) pairs, so that the downgrade drops exactly what the upgrade made.
TRIGGERS = (
    ("bookings_check_references", "bookings"),
    ("bookings_check_references_update", "bookings"),
    ("occurrences_delete_bookings", "occurrences"),
    ("occurrences_restrict_bookings", "occurrences"),
    ("sites_restrict_bookings", "sites"),
    ("sites_restrict_bookings_update", "sites"),
)
PG_FUNCTIONS = (
    "bookings_check_references",
    "bookings_check_reference_row",
    "bookings_delete_of_occurrences",
    "bookings_restrict_parent",
)

PG_CHECK_STATEMENT = """
CREATE FUNCTION bookings_check_references() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    wanted bigint;
    locked bigint;
BEGIN
    SELECT count(*) INTO wanted FROM (SELECT DISTINCT occurrence_id FROM new_bookings) AS d;
    SELECT count(*) INTO locked FROM (
        SELECT 1 FROM occurrences
        WHERE id IN (SELECT occurrence_id FROM new_bookings) FOR KEY SHARE
    ) AS l;
    IF locked <> wanted THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'insert or update on table "bookings" names an occurrence that does not exist',
            CONSTRAINT = 'fk_bookings_occurrence_id_occurrences';
    END IF;
    SELECT count(*) INTO wanted FROM (SELECT DISTINCT site_id FROM new_bookings) AS d;
    SELECT count(*) INTO locked FROM (
        SELECT 1 FROM sites WHERE id IN (SELECT site_id FROM new_bookings) FOR KEY SHARE
    ) AS l;
    IF locked <> wanted THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'insert or update on table "bookings" names a site that does not exist',
            CONSTRAINT = 'fk_bookings_site_id_sites';
    END IF;
    RETURN NULL;
END $$
"""

# Bookings are re-keyed one row at a time, if ever; the WHEN clause spares every other update.
PG_CHECK_ROW = """
CREATE FUNCTION bookings_check_reference_row() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM 1 FROM occurrences WHERE id = NEW.occurrence_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'update on table "bookings" names an occurrence that does not exist',
            CONSTRAINT = 'fk_bookings_occurrence_id_occurrences';
    END IF;
    PERFORM 1 FROM sites WHERE id = NEW.site_id FOR KEY SHARE;
    IF NOT FOUND THEN
        RAISE foreign_key_violation USING
            MESSAGE = 'update on table "bookings" names a site that does not exist',
            CONSTRAINT = 'fk_bookings_site_id_sites';
    END IF;
    RETURN NULL;
END $$
"""

PG_CASCADE = """
CREATE FUNCTION bookings_delete_of_occurrences() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM bookings WHERE occurrence_id IN (SELECT id FROM old_occurrences);
    RETURN NULL;
END $$
"""

# TG_ARGV[0] is the bookings column that refers to the trigger's table.
PG_RESTRICT = """
CREATE FUNCTION bookings_restrict_parent() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    booked boolean;
BEGIN
    EXECUTE format('SELECT EXISTS (SELECT 1 FROM bookings WHERE %I = $1)', TG_ARGV[0])
        INTO booked USING OLD.id;
    IF booked THEN
        RAISE foreign_key_violation USING
            MESSAGE = format('%s %s is still referenced from table "bookings"', TG_TABLE_NAME, OLD.id);
    END IF;
    RETURN NULL;
END $$
"""

PG_TRIGGERS = (
    """CREATE TRIGGER bookings_check_references AFTER INSERT ON bookings
    REFERENCING NEW TABLE AS new_bookings
    FOR EACH STATEMENT EXECUTE FUNCTION bookings_check_references()""",
    """CREATE TRIGGER bookings_check_references_update
    AFTER UPDATE OF occurrence_id, site_id ON bookings FOR EACH ROW
    WHEN (OLD.occurrence_id IS DISTINCT FROM NEW.occurrence_id
          OR OLD.site_id IS DISTINCT FROM NEW.site_id)
    EXECUTE FUNCTION bookings_check_reference_row()""",
    """CREATE TRIGGER occurrences_delete_bookings AFTER DELETE ON occurrences
    REFERENCING OLD TABLE AS old_occurrences
    FOR EACH STATEMENT EXECUTE FUNCTION bookings_delete_of_occurrences()""",
    """CREATE TRIGGER occurrences_restrict_bookings AFTER UPDATE OF id ON occurrences
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION bookings_restrict_parent('occurrence_id')""",
    """CREATE TRIGGER sites_restrict_bookings AFTER DELETE ON sites
    FOR EACH ROW EXECUTE FUNCTION bookings_restrict_parent('site_id')""",
    """CREATE TRIGGER sites_restrict_bookings_update AFTER UPDATE OF id ON sites
    FOR EACH ROW WHEN (OLD.id IS DISTINCT FROM NEW.id)
    EXECUTE FUNCTION bookings_restrict_parent('site_id')""",
)

# RAISE(ABORT) is SQLITE_CONSTRAINT: an IntegrityError, as a foreign key failure is.
SQLITE_MISSING_PARENT = """
    NOT EXISTS (SELECT 1 FROM occurrences WHERE id = NEW.occurrence_id)
    OR NOT EXISTS (SELECT 1 FROM sites WHERE id = NEW.site_id)
"""
SQLITE_TRIGGERS = (
    f"""CREATE TRIGGER bookings_check_references BEFORE INSERT ON bookings
    WHEN {SQLITE_MISSING_PARENT}
    BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed'); END""",
    f"""CREATE TRIGGER bookings_check_references_update
    BEFORE UPDATE OF occurrence_id, site_id ON bookings
    WHEN {SQLITE_MISSING_PARENT}
    BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed'); END""",
    """CREATE TRIGGER occurrences_delete_bookings AFTER DELETE ON occurrences
    BEGIN DELETE FROM bookings WHERE occurrence_id = OLD.id; END""",
    """CREATE TRIGGER occurrences_restrict_bookings BEFORE UPDATE OF id ON occurrences
    WHEN OLD.id <> NEW.id AND EXISTS (SELECT 1 FROM bookings WHERE occurrence_id = OLD.id)
    BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed'); END""",
    """CREATE TRIGGER sites_restrict_bookings BEFORE DELETE ON sites
    WHEN EXISTS (SELECT 1 FROM bookings WHERE site_id = OLD.id)
    BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed'); END""",
    """CREATE TRIGGER sites_restrict_bookings_update BEFORE UPDATE OF id ON sites
    WHEN OLD.id <> NEW.id AND EXISTS (SELECT 1 FROM bookings WHERE site_id = OLD.id)
    BEGIN SELECT RAISE(ABORT, 'FOREIGN KEY constraint failed'); END""",
)


def _postgresql() -> bool:
    return op.get_bind().dialect.name == "postgresql"


def upgrade() -> None:
    # On SQLite this copies `bookings`; nothing refers to it, so nothing cascades.
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_constraint(FK_OCCURRENCE, type_="foreignkey")
        batch_op.drop_constraint(FK_SITE, type_="foreignkey")
    if _postgresql():
        for function in (PG_CHECK_STATEMENT, PG_CHECK_ROW, PG_CASCADE, PG_RESTRICT):
            op.execute(function)
        for trigger in PG_TRIGGERS:
            op.execute(trigger)
    else:
        for trigger in SQLITE_TRIGGERS:
            op.execute(trigger)


def downgrade() -> None:
    for trigger, table in TRIGGERS:
        op.execute(f"DROP TRIGGER IF EXISTS {trigger}" + (f" ON {table}" if _postgresql() else ""))
    if _postgresql():
        for function in PG_FUNCTIONS:
            op.execute(f"DROP FUNCTION IF EXISTS {function}()")
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.create_foreign_key(
            FK_OCCURRENCE, "occurrences", ["occurrence_id"], ["id"], ondelete="CASCADE"
        )
        batch_op.create_foreign_key(FK_SITE, "sites", ["site_id"], ["id"], ondelete="RESTRICT")
