"""`confbridge meetings`: meeting series (plan open-ended ones up to the horizon)."""

from __future__ import annotations

import typer

from confbridge.cli.common import clean_errors, current_settings, open_database

app = typer.Typer(help="Meeting series.", no_args_is_help=True)


@app.command("extend")
@clean_errors
def meetings_extend() -> None:
    """Plan open-ended series up to the horizon now (the server does this hourly)."""
    from confbridge.scheduler import Scheduler

    settings = current_settings()
    created = Scheduler(open_database(settings), settings).extend_horizons()
    typer.echo(f"{created} occurrence(s) planned")
