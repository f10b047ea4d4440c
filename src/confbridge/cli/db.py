"""`confbridge db`: the database schema (apply migrations, show the revision)."""

from __future__ import annotations

import typer

from confbridge.cli.common import clean_errors, current_settings, open_database

app = typer.Typer(help="Database schema.", no_args_is_help=True)


@app.command("upgrade")
@clean_errors
def db_upgrade() -> None:
    """Apply every pending migration."""
    from confbridge import migrate

    database = open_database(current_settings())
    migrate.upgrade(database.engine)
    typer.echo(f"database at revision {migrate.current_revision(database.engine)}")


@app.command("current")
@clean_errors
def db_current() -> None:
    """Show the database's revision and the code's."""
    from confbridge import migrate

    database = open_database(current_settings())
    current = migrate.current_revision(database.engine)
    head = migrate.head_revision()
    typer.echo(f"database: {current or 'empty'}; code: {head}")
    if current != head:
        raise typer.Exit(1)
