"""`confbridge terminals`: the sites' terminals (create with a pairing code, list, revoke)."""

from __future__ import annotations

from typing import Annotated

import typer

from confbridge.cli.common import clean_errors, current_settings, migrated_session
from confbridge.timeutil import utcnow

app = typer.Typer(
    help="Terminals (thiết bị đầu cuối) of the sites: create with a pairing code, list, revoke.",
    no_args_is_help=True,
)


@app.command("create")
@clean_errors
def terminals_create(
    site: Annotated[int, typer.Option("--site", help="the site's id")],
    name: Annotated[str, typer.Option(help="e.g. 'Hội trường tầng 2'")] = "",
) -> None:
    """Create a terminal for a site and print its one-time pairing code."""
    from confbridge.terminals import service as terminal_service

    settings = current_settings()
    with migrated_session(settings) as session:
        terminal_row, pairing, code = terminal_service.create(
            session=session,
            site_id=site,
            name=name,
            secret_key=settings.secret_key,
            ttl_min=settings.terminals.pairing_code_ttl_min,
            now=utcnow(),
            created_by="cli",
        )
        session.commit()
        typer.echo(
            f"terminal {terminal_row.id} ({terminal_row.name}): pairing code "
            f"{terminal_service.format_code(code)}, valid until "
            f"{pairing.expires_at:%Y-%m-%d %H:%M} UTC"
        )


@app.command("list")
@clean_errors
def terminals_list(
    site: Annotated[int | None, typer.Option("--site", help="only this site's")] = None,
) -> None:
    """List terminals with their status (online, offline, revoked) and last heartbeat."""
    from confbridge.terminals import service as terminal_service

    settings = current_settings()
    with migrated_session(settings) as session:
        views, total = terminal_service.list_(
            session=session,
            now=utcnow(),
            offline_after_s=settings.terminals.offline_after_s,
            site_id=site,
            limit=1000,
        )
        for view in views:
            row, state = view.terminal, view.state
            seen = f"{row.last_seen_at:%Y-%m-%d %H:%M:%S} UTC" if row.last_seen_at else "never"
            extra = f", {state.kind} {state.version} at {state.ip}" if state else ""
            typer.echo(
                f"{row.id}\t{view.status.value}\t{row.site.name}\t{row.name}\t"
                f"last seen {seen}{extra}"
            )
        typer.echo(f"{total} terminal(s)")


@app.command("revoke")
@clean_errors
def terminals_revoke(terminal_id: Annotated[int, typer.Argument(help="the terminal's id")]) -> None:
    """Revoke a terminal: its token stops working at once."""
    from confbridge.terminals import service as terminal_service

    with migrated_session() as session:
        row = terminal_service.get(session=session, terminal_id=terminal_id)
        terminal_service.revoke(session=session, terminal=row, now=utcnow(), actor="cli")
        session.commit()
        typer.echo(f"terminal {row.id} ({row.name}) revoked")
