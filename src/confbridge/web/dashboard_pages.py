"""The IT staff's dashboard page: nodes, live meetings' links, SIP calls, offline terminals,
alerts.

The page refreshes its body every few seconds from `/it/body`, rendered here like the page
itself, so every word stays in the catalogues; acknowledging an alert is a CSRF-checked form.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends
from fastapi.responses import RedirectResponse, Response

from confbridge.alerts import service as alert_service
from confbridge.dashboard import service as dashboard_service
from confbridge.errors import DomainError
from confbridge.signing import signer_for
from confbridge.timeutil import utcnow
from confbridge.web import labels
from confbridge.web.alert_help import help_for
from confbridge.web.context import CheckedForm, Page, signed_in
from confbridge.web.domain_messages import explain
from confbridge.web.security import NotAllowed

router = APIRouter(include_in_schema=False)
REFRESH_S = 5


def it_staff(page: Annotated[Page, Depends(signed_in)]) -> Page:
    assert page.user is not None
    if page.user.it_scope.empty:  # IT staff (or an administrator) of some unit
        raise NotAllowed
    return page


ITPage = Annotated[Page, Depends(it_staff)]


def _body(page: Page, template: str, **values: object) -> Response:
    assert page.user is not None
    scope = page.user.it_scope
    overview = dashboard_service.overview(
        session=page.session,
        settings=page.settings,
        now=utcnow(),
        signer=signer_for(page.settings.grant_key_path) if scope.whole else None,
        scope=scope,
    )
    return page.render(
        template,
        overview=overview,
        alert_help={a.id: help_for(a, page.translations.gettext) for a in overview.alerts},
        qualities=labels.QUALITIES,
        refresh_s=REFRESH_S,
        link_rtt_ms=page.settings.alerts.link_rtt_ms,
        link_loss_ratio=page.settings.alerts.link_loss_ratio,
        **values,
    )


@router.get("/it")
def dashboard(page: ITPage, message: str | None = None) -> Response:
    return _body(page, "dashboard.html", message=message)


@router.get("/it/body")
def dashboard_body(page: ITPage) -> Response:
    """The page's body alone, for its periodic refresh."""
    return _body(page, "_dashboard_body.html")


@router.post("/it/alerts/{alert_id}/acknowledge")
def acknowledge(page: ITPage, alert_id: int, _form: CheckedForm) -> Response:
    assert page.user is not None
    try:
        alert_service.acknowledge(
            session=page.session,
            alert_id=alert_id,
            by=f"user:{page.user.username}",
            now=utcnow(),
            scope=page.user.it_scope,
        )
    except DomainError as exc:
        return _body(page, "dashboard.html", message=explain(page, exc), error=True)
    page.session.commit()
    return RedirectResponse("/it", status_code=303)
