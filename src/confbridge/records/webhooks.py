"""Sites' webhook contacts: where a site's notices are POSTed as JSON, signed as the alert
webhook's are (`alerts.delivery.signature`, header `X-ConfBridge-Signature`).

A site's webhook is set by its unit's secretariat, not by the operator, so the server only
calls addresses a secretariat may reasonably point it at: https anywhere, plain http only to
this machine or a private network (a receiver in the hall's own LAN). Every webhook has its
own secret, so one site's receiver cannot forge another's notices.
"""

from __future__ import annotations

import ipaddress
import json
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

import httpx
from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.alerts.delivery import SIGNATURE_HEADER, signature
from confbridge.errors import Invalid
from confbridge.meetings.models import Displacement, Occurrence
from confbridge.records.models import Notice, SiteWebhook
from confbridge_kernel.redact import blank_reason, is_loopback

MAX_URL_CHARS = 254
MIN_SECRET_CHARS = 16
WEBHOOK_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class WebhookIn:
    url: str
    secret: str | None = None
    name: str | None = None


def _private_address(host: str) -> bool:
    if is_loopback(host):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_private
    except ValueError:
        return False  # a name: it may resolve anywhere


def check_url(url: str) -> str:
    """The URL if the server may call it, else a 422 saying why."""
    if len(url) > MAX_URL_CHARS:
        raise Invalid(f"webhook_url: at most {MAX_URL_CHARS} characters")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise Invalid(f"webhook_url: must be an https:// (or http://) URL, got {url!r}")
    if parts.username or parts.password:
        raise Invalid("webhook_url: no user or password in the URL; the secret signs each call")
    if parts.scheme == "http" and not _private_address(parts.hostname):
        raise Invalid(
            "webhook_url: plain http only to a loopback or private address (e.g. "
            f"http://10.0.0.5/hook); use https for {parts.hostname}"
        )
    return url


def _check_secret(secret: str) -> str:
    reason = blank_reason(secret)
    if reason or len(secret.strip()) < MIN_SECRET_CHARS:
        raise Invalid(
            f"secret: at least {MIN_SECRET_CHARS} characters (the receiver checks each "
            "call's signature with it)"
        )
    return secret


def list_webhooks(*, session: Session, site_id: int) -> list[SiteWebhook]:
    query = select(SiteWebhook).where(SiteWebhook.site_id == site_id).order_by(SiteWebhook.id)
    return list(session.scalars(query))


def set_webhooks(*, session: Session, site_id: int, webhooks: Iterable[WebhookIn]) -> None:
    """Make the site's webhooks exactly `webhooks`; a URL already set keeps its secret unless
    a new one is given, a new URL needs one."""
    wanted = {check_url(w.url): w for w in webhooks}
    for webhook in list_webhooks(session=session, site_id=site_id):
        given = wanted.pop(webhook.url, None)
        if given is None:
            session.delete(webhook)
            continue
        webhook.name = given.name
        if given.secret is not None:
            webhook.secret = _check_secret(given.secret)
    for given in wanted.values():
        if given.secret is None:
            raise Invalid(f"secret: a new webhook ({given.url}) needs its secret")
        session.add(
            SiteWebhook(
                site_id=site_id,
                url=given.url,
                secret=_check_secret(given.secret),
                name=given.name,
            )
        )
    session.flush()


def payload(
    notice: Notice, occurrence: Occurrence, displacement: Displacement | None, now: datetime
) -> dict[str, object]:
    """The JSON body of a notice: what the e-mail says, as data."""
    series = occurrence.series
    body: dict[str, object] = {
        "notice_id": notice.id,
        "kind": notice.kind,
        "sent_at": now.isoformat(),
        "site_id": notice.site_id,
        "occurrence": {
            "id": occurrence.id,
            "series_id": series.id,
            "title": series.title,
            "kind": series.kind,
            "mode": series.mode,
            "start_at": occurrence.start_at.isoformat(),
            "end_at": occurrence.end_at.isoformat(),
            "status": occurrence.status,
            "sequence": notice.sequence,
            "chair_site": series.chair_site.name,
        },
    }
    if displacement is not None:
        body["emergency"] = {
            "action": displacement.action,
            "reason": displacement.reason,
            "by": displacement.actor,
            "emergency_series_id": displacement.emergency_series_id,
            "emergency_occurrence_id": displacement.emergency_occurrence_id,
            "from_start_at": displacement.from_start_at.isoformat(),
        }
    return body


def post(webhook: SiteWebhook, body: dict[str, object], http: httpx.Client) -> None:
    """POST the signed body; raises `httpx.HTTPError` unless the receiver answers 2xx."""
    content = json.dumps(body, ensure_ascii=False).encode()
    headers = {
        "Content-Type": "application/json; charset=utf-8",
        SIGNATURE_HEADER: signature(webhook.secret, content),
    }
    response = http.post(webhook.url, content=content, headers=headers)
    if not response.is_success:
        raise httpx.HTTPStatusError(
            f"HTTP {response.status_code}: {response.text[:200]}",
            request=response.request,
            response=response,
        )
