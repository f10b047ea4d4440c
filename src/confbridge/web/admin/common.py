"""What the administration pages share: who may open them, the scope they act in, the form's
fields, and one way to run a form's change (committed, or refused with a reason shown again
on the page)."""

from __future__ import annotations

from collections.abc import Callable
from enum import StrEnum
from typing import Annotated, Any, TypeVar

from fastapi import Depends
from fastapi.responses import Response
from starlette.datastructures import FormData

from confbridge.auth.scope import Scope
from confbridge.errors import DomainError
from confbridge.web.context import Page, signed_in
from confbridge.web.domain_messages import explain
from confbridge.web.security import NotAllowed
from confbridge.web.shared import parse_id

E = TypeVar("E", bound=StrEnum)
# Renders the page a form came from again, with a status and a message for the reader.
ShownAgain = Callable[[int, str], Response]


def _needs(scope_of_user: str) -> Any:
    def dependency(page: Annotated[Page, Depends(signed_in)]) -> Page:
        assert page.user is not None
        if getattr(page.user, scope_of_user).empty:
            raise NotAllowed
        return page

    return dependency


# Users and the audit log: administrators; units and sites: the secretariat (and
# administrators); terminals: IT staff (and administrators), each of some unit.
AdminPage = Annotated[Page, Depends(_needs("admin_scope"))]
UnitsPage = Annotated[Page, Depends(_needs("edit_scope"))]
TerminalsPage = Annotated[Page, Depends(_needs("it_scope"))]


class Refused(Exception):
    """A form the page itself refuses, with its reason already in the reader's language."""

    def __init__(self, message: str, status_code: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code


def actor(page: Page) -> str:
    """The audit log's name of the signed-in user."""
    assert page.user is not None
    return f"user:{page.user.username}"


def scope(page: Page, name: str) -> Scope:
    """One of the signed-in user's scopes (`admin_scope`, `edit_scope`, `it_scope`)."""
    assert page.user is not None
    found: Scope = getattr(page.user, name)
    return found


def text(form: FormData, name: str, limit: int = 200) -> str:
    """A text field, trimmed and cut to `limit` characters ("" when missing)."""
    value = form.get(name)
    return value.strip()[:limit] if isinstance(value, str) else ""


def form_id(form: FormData, name: str) -> int | None:
    """An id field, or None when it is missing or not an id."""
    return parse_id(text(form, name, 20))


def required_id(form: FormData, name: str, message: str) -> int:
    """An id field that must be given; `Refused` with `message` otherwise."""
    found = form_id(form, name)
    if found is None:
        raise Refused(message)
    return found


def choice(kind: type[E], value: str, message: str) -> E:
    """One of an enumeration's values; `Refused` with `message` otherwise."""
    try:
        return kind(value)
    except ValueError:
        raise Refused(message) from None


def refusal(page: Page, exc: DomainError) -> str:
    return page._("The change was refused: %(reason)s", reason=explain(page, exc))


def attempt(page: Page, change: Callable[[], Response], shown_again: ShownAgain) -> Response:
    """Run a form's change in the request's transaction: committed when it is done; rolled
    back, and the form's page shown again with the reason, when it is refused."""
    try:
        response = change()
        page.session.commit()
    except Refused as exc:
        page.session.rollback()
        return shown_again(exc.status_code, exc.message)
    except DomainError as exc:
        page.session.rollback()
        return shown_again(exc.status_code, refusal(page, exc))
    return response
