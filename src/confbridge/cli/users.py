"""`confbridge users`: user accounts (create, disable, enable, set a role, reset a password)."""

from __future__ import annotations

import getpass
import os
import sys
from collections.abc import Callable
from typing import Annotated, Any

import typer

from confbridge.cli.common import clean_errors, fail, migrated_session

app = typer.Typer(help="User accounts.", no_args_is_help=True)


@app.command("create")
@clean_errors
def users_create(
    username: str,
    role: Annotated[str, typer.Option(help="admin, secretariat, it or viewer")],
    full_name: Annotated[str, typer.Option()] = "",
    unit: Annotated[
        str | None,
        typer.Option(help="the unit (code or id) the role applies to; none: everything"),
    ] = None,
) -> None:
    """Create a user; the password comes from CONFBRIDGE_NEW_PASSWORD or a prompt.

    The role applies to `--unit` and every unit below it, or to the whole installation."""
    from confbridge.auth import service as auth_service
    from confbridge.auth.models import Role

    try:
        role_value = Role(role)
    except ValueError:
        fail(f"unknown role {role!r} (admin, secretariat, it, viewer)")
        return
    password = os.environ.get("CONFBRIDGE_NEW_PASSWORD")
    if not password:
        if not sys.stdin.isatty():
            fail("no password: set CONFBRIDGE_NEW_PASSWORD or run in a terminal")
        password = getpass.getpass("password: ")
    from confbridge.auth import scope as scope_service

    with migrated_session() as session:
        unit_id = None
        if unit is not None:
            unit_id = scope_service.unit_id_by_code(session=session, code=unit)
            if unit_id is None and unit.isdigit():
                missing = scope_service.missing_units(session=session, unit_ids=[int(unit)])
                unit_id = None if missing else int(unit)
            if unit_id is None:
                fail(f"no unit with code or id {unit!r}")
                return
        membership = auth_service.MembershipIn(unit_id=unit_id, role=role_value)
        auth_service.create(
            session=session,
            username=username,
            password=password,
            memberships=[membership],
            full_name=full_name,
            actor="cli",
        )
        session.commit()
        where = "the whole installation" if unit_id is None else f"unit {unit_id} and below"
        typer.echo(f"user {username!r} created with role {role_value.value} for {where}")


def _change_user(username: str, change: Callable[[Any, Any], str]) -> None:
    """Run `change(session, user)` on a user found by name, commit, and print its line."""
    from confbridge.auth import service as auth_service

    with migrated_session() as session:
        user = auth_service.get_by_username(session=session, username=username)
        if user is None:
            fail(f"no user named {username!r}")
            return
        line = change(session, user)
        session.commit()
        typer.echo(line)


@app.command("disable")
@clean_errors
def users_disable(username: str) -> None:
    """Disable a user: its sessions end at once (users are never deleted)."""
    from confbridge.auth import service as auth_service

    def change(session: Any, user: Any) -> str:
        auth_service.update(session=session, user=user, actor="cli", active=False)
        return f"user {username!r} disabled; its sessions have ended"

    _change_user(username, change)


@app.command("enable")
@clean_errors
def users_enable(username: str) -> None:
    """Enable a disabled user again."""
    from confbridge.auth import service as auth_service

    def change(session: Any, user: Any) -> str:
        auth_service.update(session=session, user=user, actor="cli", active=True)
        return f"user {username!r} enabled"

    _change_user(username, change)


@app.command("set-role")
@clean_errors
def users_set_role(username: str, role: str) -> None:
    """Give a user one role (admin, secretariat, it or viewer) over the whole installation,
    in place of its memberships."""
    from confbridge.auth import service as auth_service
    from confbridge.auth.models import Role

    try:
        role_value = Role(role)
    except ValueError:
        fail(f"unknown role {role!r} (admin, secretariat, it, viewer)")
        return

    def change(session: Any, user: Any) -> str:
        auth_service.update(session=session, user=user, actor="cli", role=role_value)
        return f"user {username!r} now has role {role_value.value}"

    _change_user(username, change)


@app.command("reset-password")
@clean_errors
def users_reset_password(username: str) -> None:
    """Set a one-time password (printed once), or CONFBRIDGE_NEW_PASSWORD; the user must
    change it at the next sign-in, and its sessions end."""
    from confbridge.auth import service as auth_service

    given = os.environ.get("CONFBRIDGE_NEW_PASSWORD") or None

    def change(session: Any, user: Any) -> str:
        generated = auth_service.reset_password(
            session=session, user=user, actor="cli", password=given
        )
        if generated:
            return f"user {username!r}: one-time password (shown once): {generated}"
        return f"user {username!r}: password set from CONFBRIDGE_NEW_PASSWORD"

    _change_user(username, change)
