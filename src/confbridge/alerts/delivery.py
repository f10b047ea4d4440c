"""Sends new alerts to the configured webhook, retrying with back-off until it answers 2xx."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import logging

import httpx

from confbridge.alerts import service as alert_service
from confbridge.db import Database
from confbridge.settings import AlertSettings
from confbridge.timeutil import utcnow
from confbridge_kernel.tasks import OwnedTask

log = logging.getLogger(__name__)

DELIVERY_POLL_S = 1.0
DELIVERY_TIMEOUT_S = 10.0
BATCH = 20
SIGNATURE_HEADER = "X-ConfBridge-Signature"


def signature(secret: str, body: bytes) -> str:
    """`sha256=<hex HMAC of the body>`, so the receiver can check who sent it."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class AlertDelivery:
    """Owns one task that delivers due alerts; `start()` and `close()` as the scheduler."""

    def __init__(self, database: Database, settings: AlertSettings) -> None:
        self._database = database
        self._settings = settings
        self._task = OwnedTask("confbridge-alert-delivery")

    def start(self) -> None:
        if self._settings.webhook_url:
            self._task.start(self._run())

    async def close(self) -> None:
        await self._task.close()

    async def _run(self) -> None:
        async with httpx.AsyncClient(timeout=DELIVERY_TIMEOUT_S) as http:
            while True:
                try:
                    await self.deliver_due(http)
                except Exception:  # the next round may succeed (database back, etc.)
                    log.exception("alert delivery round failed")
                await asyncio.sleep(DELIVERY_POLL_S)

    async def deliver_due(self, http: httpx.AsyncClient) -> int:
        """One round: try each due alert once; returns how many were delivered."""
        ids = await asyncio.to_thread(self._due)
        delivered = 0
        for alert_id in ids:
            body = await asyncio.to_thread(self._claim, alert_id)
            if body is None:
                continue
            error = await self._post(http, body)
            await asyncio.to_thread(self._record, alert_id, error)
            delivered += error is None
        return delivered

    def _due(self) -> list[int]:
        with self._database.session() as session:
            return alert_service.due_for_delivery(session=session, now=utcnow(), limit=BATCH)

    def _claim(self, alert_id: int) -> bytes | None:
        with self._database.session() as session:
            alert = alert_service.claim(session=session, alert_id=alert_id, now=utcnow())
            session.commit()
            if alert is None:
                return None
            return json.dumps(alert_service.payload(alert), ensure_ascii=False).encode()

    async def _post(self, http: httpx.AsyncClient, body: bytes) -> str | None:
        url = self._settings.webhook_url
        assert url is not None
        headers = {"Content-Type": "application/json; charset=utf-8"}
        if self._settings.webhook_secret:
            headers[SIGNATURE_HEADER] = signature(self._settings.webhook_secret, body)
        try:
            response = await http.post(url, content=body, headers=headers)
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if response.is_success:
            return None
        return f"HTTP {response.status_code}: {response.text[:200]}"

    def _record(self, alert_id: int, error: str | None) -> None:
        with self._database.session() as session:
            alert = alert_service.get(session=session, alert_id=alert_id)
            alert_service.record_attempt(
                session=session,
                alert=alert,
                error=error,
                now=utcnow(),
                max_attempts=self._settings.delivery_max_attempts,
            )
            session.commit()
