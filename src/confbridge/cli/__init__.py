"""The `confbridge` command: the processes it runs (`serve`, `sfu`, `sip`, `terminal`) and the
administration commands, one module per command group."""

from __future__ import annotations

import typer

from confbridge.cli import (
    db,
    meetings,
    nodes,
    reports,
    schedules,
    serve,
    sip,
    sites,
    terminal_agent,
    terminals,
    users,
)
from confbridge.cli import sfu as sfu_worker
from confbridge.cli.terminal_agent import TERMINAL_REVOKED_EXIT

__all__ = ["TERMINAL_REVOKED_EXIT", "app"]

app = typer.Typer(
    help="ConfBridge: hội nghị truyền hình trực tuyến / government video-conference bridge.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
# Registered in the order `--help` lists them.
app.command()(serve.serve)
app.command()(sfu_worker.sfu)
app.command()(sip.sip)
app.command()(terminal_agent.terminal)
app.add_typer(db.app, name="db")
app.add_typer(sites.app, name="sites")
app.add_typer(schedules.app, name="schedules")
app.add_typer(users.app, name="users")
app.add_typer(meetings.app, name="meetings")
app.add_typer(reports.app, name="report")
app.add_typer(terminals.app, name="terminals")
app.add_typer(nodes.app, name="nodes")
