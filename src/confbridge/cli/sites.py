"""`confbridge sites`: units and sites (a province with its communes and their halls)."""

from __future__ import annotations

from typing import Annotated

import typer

from confbridge.cli.common import clean_errors, migrated_session

app = typer.Typer(help="Units and sites (điểm cầu).", no_args_is_help=True)


@app.command("import-province")
@clean_errors
def import_province(
    name: Annotated[str, typer.Argument(help="province name, e.g. 'Quảng Ninh', or its code")],
) -> None:
    """Create a province, all its communes/wards and one hall site each (idempotent)."""
    from confbridge.sites.divisions import import_province as do_import

    with migrated_session() as session:
        result = do_import(session=session, query=name)
        session.commit()
        assert result.province is not None
        typer.echo(
            f"{result.province.name}: {result.units_created} unit(s) and "
            f"{result.sites_created} site(s) created, {result.unchanged} unchanged"
        )
