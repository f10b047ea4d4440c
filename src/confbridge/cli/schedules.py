"""`confbridge schedules`: units, sites and series declared in a YAML file."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from confbridge.cli.common import clean_errors, current_settings, fail, migrated_session
from confbridge.timeutil import utcnow

app = typer.Typer(help="Schedules declared in YAML files.", no_args_is_help=True)


@app.command("apply")
@clean_errors
def schedules_apply(
    file: Annotated[Path, typer.Argument(help="a schedule YAML file")],
    dry_run: Annotated[bool, typer.Option(help="check and report, change nothing")] = False,
) -> None:
    """Create or update the units, sites and series a file declares (idempotent)."""
    from confbridge.schedules import service as schedule_service
    from confbridge.schedules.loader import ScheduleError

    settings = current_settings()
    with migrated_session(settings) as session:
        try:
            report = schedule_service.apply_file(
                file, session=session, settings=settings, now=utcnow()
            )
        except ScheduleError as exc:
            session.rollback()
            fail(str(exc))
            return
        for line in report.lines():
            typer.echo(line)
        if dry_run:
            session.rollback()
            typer.echo(f"dry run, nothing changed: {report.summary()}")
        else:
            session.commit()
            typer.echo(report.summary())
