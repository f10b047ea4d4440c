"""The meeting's record: its invitation (giấy mời) with the agenda, the documents the halls read,
where the meeting is in its agenda, and the conclusions issued afterwards."""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import Mapped, mapped_column, relationship

from confbridge.db import Base, UTCDateTime
from confbridge.timeutil import utcnow


class Invitation(Base):
    """The invitation of a series (every occurrence's by default) or of one occurrence.

    An occurrence's own invitation overrides the series' field by field: a field left empty
    (None) falls back to the series'. Its agenda replaces the series' only when `has_agenda`.
    """

    __tablename__ = "record_invitations"

    id: Mapped[int] = mapped_column(primary_key=True)
    series_id: Mapped[int | None] = mapped_column(
        ForeignKey("series.id", ondelete="CASCADE"), unique=True
    )
    occurrence_id: Mapped[int | None] = mapped_column(
        ForeignKey("occurrences.id", ondelete="CASCADE"), unique=True
    )
    # Số ký hiệu, e.g. "125/GM-UBND", and the date the invitation is signed.
    document_number: Mapped[str | None] = mapped_column(String(60))
    document_date: Mapped[date | None] = mapped_column(Date)
    # Cơ quan chủ quản (the line above, optional) and cơ quan ban hành.
    parent_body: Mapped[str | None] = mapped_column(String(200))
    issuing_body: Mapped[str | None] = mapped_column(String(200))
    # Địa danh of the date line: "Quảng Ninh, ngày 05 tháng 01 năm 2026".
    place: Mapped[str | None] = mapped_column(String(100))
    signer_name: Mapped[str | None] = mapped_column(String(150))
    # e.g. "CHỦ TỊCH", or "KT. CHỦ TỊCH" with "PHÓ CHỦ TỊCH" on a second line.
    signer_title: Mapped[str | None] = mapped_column(String(200))
    summary: Mapped[str | None] = mapped_column(Text)
    # Thành phần: [{"site_id": int | None, "text": str, "roles": [str]}]; None: the series'.
    attendees: Mapped[list[dict[str, object]] | None] = mapped_column(JSON)
    has_agenda: Mapped[bool] = mapped_column(Boolean, default=False)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    items: Mapped[list[AgendaItem]] = relationship(
        back_populates="invitation",
        order_by="AgendaItem.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )

    __table_args__ = (
        CheckConstraint("(series_id IS NULL) <> (occurrence_id IS NULL)", name="one_owner"),
    )


class AgendaItem(Base):
    """One item of an invitation's agenda (chương trình): who presents it and for how long."""

    __tablename__ = "record_agenda_items"

    id: Mapped[int] = mapped_column(primary_key=True)
    invitation_id: Mapped[int] = mapped_column(
        ForeignKey("record_invitations.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer)
    title: Mapped[str] = mapped_column(String(500))
    # The presenting unit as written ("Sở Tài chính"), and/or the site it presents from.
    presenter: Mapped[str | None] = mapped_column(String(300))
    presenter_site_id: Mapped[int | None] = mapped_column(
        ForeignKey("sites.id", ondelete="SET NULL")
    )
    planned_min: Mapped[int | None] = mapped_column(Integer)

    invitation: Mapped[Invitation] = relationship(back_populates="items")

    __table_args__ = (Index("ix_record_agenda_items_invitation_id", "invitation_id"),)


class Document(Base):
    """A file (tài liệu họp) of an occurrence, or of one of its agenda items.

    The bytes live under `<data_dir>/documents/` named by `storage_key`; `sha256` is checked
    when they are read back.
    """

    __tablename__ = "record_documents"

    id: Mapped[int] = mapped_column(primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrences.id", ondelete="CASCADE"))
    agenda_item_id: Mapped[int | None] = mapped_column(
        ForeignKey("record_agenda_items.id", ondelete="SET NULL")
    )
    name: Mapped[str] = mapped_column(String(255))
    kind: Mapped[str] = mapped_column(String(10))  # pdf, docx, xlsx, pptx
    size: Mapped[int] = mapped_column(BigInteger)
    sha256: Mapped[str] = mapped_column(String(64))
    storage_key: Mapped[str] = mapped_column(String(100), unique=True)
    uploaded_by: Mapped[str] = mapped_column(String(150))
    uploaded_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)

    __table_args__ = (Index("ix_record_documents_occurrence_id", "occurrence_id"),)


class Progress(Base):
    """Where a meeting is: the agenda item the chair marked current (the halls show it)."""

    __tablename__ = "record_progress"

    occurrence_id: Mapped[int] = mapped_column(
        ForeignKey("occurrences.id", ondelete="CASCADE"), primary_key=True
    )
    current_item_id: Mapped[int | None] = mapped_column(
        ForeignKey("record_agenda_items.id", ondelete="SET NULL")
    )
    updated_by: Mapped[str] = mapped_column(String(150))
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)


class Conclusion(Base):
    """The conclusions notice (thông báo kết luận) of an occurrence, issued afterwards."""

    __tablename__ = "record_conclusions"

    id: Mapped[int] = mapped_column(primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(
        ForeignKey("occurrences.id", ondelete="CASCADE"), unique=True
    )
    document_number: Mapped[str | None] = mapped_column(String(60))
    document_date: Mapped[date | None] = mapped_column(Date)
    signer_name: Mapped[str | None] = mapped_column(String(150))
    signer_title: Mapped[str | None] = mapped_column(String(200))
    # The conclusions themselves, one paragraph per line.
    text: Mapped[str] = mapped_column(Text, default="")
    recorded_by: Mapped[str] = mapped_column(String(150))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow, onupdate=utcnow)

    tasks: Mapped[list[AssignedTask]] = relationship(
        back_populates="conclusion",
        order_by="AssignedTask.position",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class AssignedTask(Base):
    """A task the conclusions assign to a unit, with its deadline."""

    __tablename__ = "record_tasks"

    id: Mapped[int] = mapped_column(primary_key=True)
    conclusion_id: Mapped[int] = mapped_column(
        ForeignKey("record_conclusions.id", ondelete="CASCADE")
    )
    position: Mapped[int] = mapped_column(Integer)
    content: Mapped[str] = mapped_column(Text)
    unit: Mapped[str] = mapped_column(String(300))  # as written: "Sở Tài chính"
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id", ondelete="SET NULL"))
    deadline_date: Mapped[date | None] = mapped_column(Date)

    conclusion: Mapped[Conclusion] = relationship(back_populates="tasks")

    __table_args__ = (Index("ix_record_tasks_conclusion_id", "conclusion_id"),)


class SiteContact(Base):
    """An e-mail address of a site that receives the meetings' notices."""

    __tablename__ = "record_site_contacts"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    email: Mapped[str] = mapped_column(String(254))
    name: Mapped[str | None] = mapped_column(String(150))

    __table_args__ = (
        UniqueConstraint("site_id", "email", name="uq_record_site_contacts_site_email"),
    )


class SiteWebhook(Base):
    """A site's contact that is an HTTP endpoint: notices are POSTed to it as signed JSON."""

    __tablename__ = "record_site_webhooks"

    id: Mapped[int] = mapped_column(primary_key=True)
    site_id: Mapped[int] = mapped_column(ForeignKey("sites.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(254))
    # Signs each body (HMAC-SHA256, the alert webhook's header); never shown back.
    secret: Mapped[str] = mapped_column(String(200))
    name: Mapped[str | None] = mapped_column(String(150))

    __table_args__ = (UniqueConstraint("site_id", "url", name="uq_record_site_webhooks_site_url"),)


class NoticeChannel(StrEnum):
    email = "email"
    webhook = "webhook"


class NoticeStatus(StrEnum):
    pending = "pending"  # to be sent at next_attempt_at
    sending = "sending"  # handed to the mail server; not retried (it may have gone out)
    sent = "sent"
    failed = "failed"  # gave up after the last attempt


class Notice(Base):
    """One e-mail or webhook call to one contact about one occurrence (an outbox row).

    `dedupe_key` (kind, occurrence, its calendar SEQUENCE, address or webhook) is unique:
    planning the same notice twice adds nothing, so nothing is sent twice. A webhook notice
    keeps the URL it was meant for in `email` (shown on the page) and its `webhook_id`.
    """

    __tablename__ = "record_notices"

    id: Mapped[int] = mapped_column(primary_key=True)
    occurrence_id: Mapped[int] = mapped_column(ForeignKey("occurrences.id", ondelete="CASCADE"))
    site_id: Mapped[int] = mapped_column(Integer)
    email: Mapped[str] = mapped_column(String(254))
    kind: Mapped[str] = mapped_column(String(20))
    sequence: Mapped[int] = mapped_column(Integer)
    dedupe_key: Mapped[str] = mapped_column(String(400), unique=True)
    status: Mapped[str] = mapped_column(String(10), default=NoticeStatus.pending.value)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    last_error: Mapped[str | None] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime(), default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime())
    channel: Mapped[str] = mapped_column(
        String(10), default=NoticeChannel.email.value, server_default="email"
    )
    webhook_id: Mapped[int | None] = mapped_column(
        ForeignKey("record_site_webhooks.id", ondelete="SET NULL")
    )

    __table_args__ = (
        Index("ix_record_notices_occurrence_id", "occurrence_id"),
        Index("ix_record_notices_status_next", "status", "next_attempt_at"),
    )
