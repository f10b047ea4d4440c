"""Users and their memberships: list, create, a user's page (memberships added and removed,
password reset, enabled or disabled). An administrator sees the users with a role in its
units, and changes only those whose roles all lie there (`auth.service`'s rules: the last
administrator of the whole installation stays)."""

from __future__ import annotations

import re
import secrets
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter
from fastapi.responses import Response
from starlette.datastructures import FormData

from confbridge.auth import service as auth_service
from confbridge.auth.models import Role, User
from confbridge.auth.schemas import USERNAME_PATTERN
from confbridge.web import labels, queries
from confbridge.web.admin.common import (
    AdminPage,
    Refused,
    actor,
    attempt,
    choice,
    scope,
    text,
)
from confbridge.web.context import CheckedForm, Page
from confbridge.web.shared import not_found, parse_id, redirect

router = APIRouter(include_in_schema=False)
ROLE_LABELS = {
    "admin": labels.N_("Administrator"),
    "secretariat": labels.N_("Secretariat"),
    "it": labels.N_("IT staff"),
    "viewer": labels.N_("Viewer"),
}


def _choices(page: Page) -> dict[str, Any]:
    """What the membership pickers offer: the administrator's units and the roles."""
    admin_scope = scope(page, "admin_scope")
    units = queries.flatten(queries.unit_tree(page.session, admin_scope))
    all_units = queries.flatten(queries.unit_tree(page.session, admin_scope, with_disabled=True))
    return {
        "units": units,
        "unit_names": {u.id: u.name for u in all_units},
        "root": admin_scope.whole,
        "roles": labels.translated(ROLE_LABELS, page.translations.gettext),
    }


def _list_page(page: Page, status_code: int = 200, **values: Any) -> Response:
    users = auth_service.list_(session=page.session, scope=scope(page, "admin_scope"))
    return page.render("admin_users.html", status_code, users=users, **_choices(page), **values)


def _membership(page: Page, form: FormData) -> auth_service.MembershipIn:
    """The (unit, role) a form asks for; "root" is the whole installation."""
    unit_text = text(form, "unit_id", 20)
    unit_id = None if unit_text == "root" else parse_id(unit_text)
    if unit_id is None and unit_text != "root":
        raise Refused(page._("Choose a unit."))
    role = choice(Role, text(form, "role", 20), page._("Choose a role."))
    return auth_service.MembershipIn(unit_id=unit_id, role=role)


@router.get("/admin/users")
def users_page(page: AdminPage) -> Response:
    return _list_page(page, saved=page.request.query_params.get("saved"))


@router.post("/admin/users")
def create_user(page: AdminPage, form: CheckedForm) -> Response:
    """A user with one membership; its one-time password is shown once, on the answer."""

    def change() -> Response:
        username = text(form, "username", 81)
        if not re.fullmatch(USERNAME_PATTERN, username):
            raise Refused(
                page._(
                    "A username has 2 to 80 letters without accents, digits or the signs . _ @ -."
                )
            )
        membership = _membership(page, form)
        auth_service.check_may_grant(
            admin_scope=scope(page, "admin_scope"), memberships=[membership]
        )
        password = secrets.token_urlsafe(12)
        user = auth_service.create(
            session=page.session,
            username=username,
            password=password,
            memberships=[membership],
            full_name=text(form, "full_name"),
            actor=actor(page),
        )
        user.must_change_password = True
        return _list_page(page, 201, created=user.username, password=password)

    return attempt(page, change, lambda code, error: _list_page(page, code, error=error))


# --- one user -------------------------------------------------------------------------------


def _visible_user(page: Page, user_id: str) -> User | None:
    """The user, if it has a role in the administrator's units (as the API: others are "not
    found")."""
    admin_scope = scope(page, "admin_scope")
    parsed = parse_id(user_id)
    user = auth_service.get(session=page.session, user_id=parsed) if parsed else None
    if user is None:
        return None
    if admin_scope.whole or any(admin_scope.covers(m.unit_id) for m in user.memberships):
        return user
    return None


def _user_page(page: Page, user: User, status_code: int = 200, **values: Any) -> Response:
    return page.render("admin_user.html", status_code, shown=user, **_choices(page), **values)


def _change_user(page: Page, user_id: str, change: Callable[[User], Response | None]) -> Response:
    """Run `change(user)` on a user the administrator may manage: its page again with the
    reason when refused, else back to it (or the page `change` returns)."""
    user = _visible_user(page, user_id)
    if user is None:
        return not_found(page)

    def run() -> Response:
        auth_service.check_may_manage(
            session=page.session, admin_scope=scope(page, "admin_scope"), user=user
        )
        shown = change(user)
        return shown or redirect(f"/admin/users/{user.id}?saved=1")

    def shown_again(status_code: int, error: str) -> Response:
        fresh = auth_service.get(session=page.session, user_id=user.id) or user
        return _user_page(page, fresh, status_code, error=error)

    return attempt(page, run, shown_again)


def _signed_in_user(page: Page) -> User | str:
    """The administrator as the service's rules want it (nobody locks themselves out)."""
    assert page.user is not None
    return auth_service.get(session=page.session, user_id=page.user.id) or actor(page)


@router.get("/admin/users/{user_id}")
def user_page(page: AdminPage, user_id: str) -> Response:
    user = _visible_user(page, user_id)
    if user is None:
        return not_found(page)
    return _user_page(page, user, saved=page.request.query_params.get("saved"))


@router.post("/admin/users/{user_id}/active")
def set_user_active(page: AdminPage, user_id: str, form: CheckedForm) -> Response:
    """Disable or enable an account (users are never deleted: the audit keeps their names)."""

    def change(user: User) -> None:
        auth_service.update(
            session=page.session,
            user=user,
            actor=_signed_in_user(page),
            active=text(form, "active", 1) == "1",
        )

    return _change_user(page, user_id, change)


@router.post("/admin/users/{user_id}/memberships")
def add_membership(page: AdminPage, user_id: str, form: CheckedForm) -> Response:
    """One more role over a unit (and the units below it) for the user."""

    def change(user: User) -> None:
        added = _membership(page, form)
        wanted = [*auth_service.memberships_of(user), added]
        auth_service.check_may_grant(admin_scope=scope(page, "admin_scope"), memberships=[added])
        auth_service.update(
            session=page.session, user=user, actor=_signed_in_user(page), memberships=wanted
        )

    return _change_user(page, user_id, change)


@router.post("/admin/users/{user_id}/memberships/remove")
def remove_membership(page: AdminPage, user_id: str, form: CheckedForm) -> Response:
    """Take one role away; a user keeps at least one (to stop one, disable the account)."""

    def change(user: User) -> None:
        removed = _membership(page, form)
        kept = [m for m in auth_service.memberships_of(user) if m != removed]
        if len(kept) == len(user.memberships):
            raise Refused(page._("The user has no such role."), 404)
        if not kept:
            raise Refused(
                page._("A user keeps at least one role; to stop the account, disable it.")
            )
        auth_service.update(
            session=page.session, user=user, actor=_signed_in_user(page), memberships=kept
        )

    return _change_user(page, user_id, change)


@router.post("/admin/users/{user_id}/password")
def reset_password(page: AdminPage, user_id: str, form: CheckedForm) -> Response:
    """A new password (typed, checked against the password policy, or a one-time password
    shown once); the user must change it at the next sign-in."""

    def change(user: User) -> Response:
        typed = form.get("password")
        given = typed if isinstance(typed, str) and typed else None
        generated = auth_service.reset_password(
            session=page.session, user=user, actor=_signed_in_user(page), password=given
        )
        return _user_page(page, user, password_reset=True, password=generated)

    return _change_user(page, user_id, change)
