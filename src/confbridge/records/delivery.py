"""Plans the meetings' notices and sends them by e-mail, retrying with back-off."""

from __future__ import annotations

import logging
import smtplib
from datetime import datetime

from confbridge.db import Database
from confbridge.meetings.models import Occurrence
from confbridge.records import mail
from confbridge.records import notices as notice_service
from confbridge.records.models import Notice
from confbridge.settings import MailSettings
from confbridge.timeutil import utcnow
from confbridge_kernel.tasks import OwnedTask, every

log = logging.getLogger(__name__)
NOTICE_POLL_S = 30.0
BATCH = 20


class NoticeDelivery:
    """Owns one task that plans and sends notices; `start()` and `close()` as the scheduler."""

    def __init__(self, database: Database, settings: MailSettings) -> None:
        self._database = database
        self._settings = settings
        self._task = OwnedTask("confbridge-notice-delivery")

    def start(self) -> None:
        if self._settings.smtp_host:
            rounds = every(
                NOTICE_POLL_S, self.run_once, failed="notice delivery round failed", log=log
            )
            self._task.start(rounds)

    async def close(self) -> None:
        await self._task.close()

    def run_once(self, now: datetime | None = None) -> int:
        """Plan due notices and send those due; returns how many were sent."""
        now = now or utcnow()
        with self._database.session() as session:
            notice_service.plan(session=session, now=now)
            ids = notice_service.claim_due(session=session, now=now, limit=BATCH)
            # committed before sending: a crash now leaves them `sending`, never resent
            session.commit()
        return sum(self._send_one(notice_id, now) for notice_id in ids)

    def _send_one(self, notice_id: int, now: datetime) -> bool:
        with self._database.session() as session:
            notice = session.get(Notice, notice_id)
            occurrence = session.get(Occurrence, notice.occurrence_id) if notice else None
            if notice is None or occurrence is None:
                return False
            try:
                message = mail.compose(session, notice, occurrence, self._settings, now)
                mail.send(message, self._settings)
            except (smtplib.SMTPException, OSError) as exc:
                log.warning("notice %d to %s not sent: %s", notice.id, notice.email, exc)
                notice_service.mark_refused(
                    session=session,
                    notice=notice,
                    error=str(exc) or type(exc).__name__,
                    now=now,
                    max_attempts=self._settings.max_attempts,
                )
                session.commit()
                return False
            notice_service.mark_sent(session=session, notice=notice, now=now)
            session.commit()
            return True
