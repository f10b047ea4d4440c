"""A real SMTP server on loopback (aiosmtpd) that keeps the messages it accepts."""

from __future__ import annotations

import email
import email.policy
from email.message import EmailMessage
from typing import Any


class Inbox:
    """An aiosmtpd handler that keeps what it accepts; `refuse` answers 451 that many times."""

    def __init__(self) -> None:
        self.messages: list[EmailMessage] = []
        self.refuse = 0

    async def handle_DATA(self, _server: Any, _session: Any, envelope: Any) -> str:
        if self.refuse > 0:
            self.refuse -= 1
            return "451 4.3.0 try again later"
        parsed = email.message_from_bytes(envelope.content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(parsed)
        return "250 OK"
