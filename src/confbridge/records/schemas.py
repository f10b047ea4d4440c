"""The meeting record's API shapes."""

from __future__ import annotations

import unicodedata
from datetime import date, datetime
from typing import Annotated, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

from confbridge.pagination import Id
from confbridge.text import single_line

MAX_AGENDA_ITEMS = 100
MAX_ATTENDEE_GROUPS = 500
MAX_TASKS = 200


def _nfc(value: str) -> str:
    # Vietnamese typed on some systems arrives decomposed; documents need composed text.
    return unicodedata.normalize("NFC", value)


def _no_controls_but_newlines(value: str) -> str:
    single_line(value.replace("\r\n", "\n").replace("\n", " "))
    return value.replace("\r\n", "\n")


def _line(max_length: int) -> StringConstraints:
    return StringConstraints(strip_whitespace=True, min_length=1, max_length=max_length)


# One line of text, stripped, composed (NFC), not empty.
_ONE_LINE = (AfterValidator(_nfc), AfterValidator(single_line))
Line60 = Annotated[str, _line(60), *_ONE_LINE]
Line100 = Annotated[str, _line(100), *_ONE_LINE]
Line150 = Annotated[str, _line(150), *_ONE_LINE]
Line200 = Annotated[str, _line(200), *_ONE_LINE]
Line300 = Annotated[str, _line(300), *_ONE_LINE]
Line500 = Annotated[str, _line(500), *_ONE_LINE]
# Paragraphs: line breaks allowed, other control characters not.
Paragraphs = Annotated[
    str,
    StringConstraints(strip_whitespace=True, max_length=20_000),
    AfterValidator(_nfc),
    AfterValidator(_no_controls_but_newlines),
]
# A signer's title may take two lines ("KT. CHỦ TỊCH" / "PHÓ CHỦ TỊCH").
SignerTitle = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
    AfterValidator(_nfc),
    AfterValidator(_no_controls_but_newlines),
]
DocumentDate = Annotated[date, Field(ge=date(2000, 1, 1), le=date(2199, 12, 31))]


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AttendeeGroup(_In):
    """Who must attend (thành phần) from one site, or in general when `site_id` is null."""

    site_id: Id | None = Field(default=None, description="the site; null: every site / in general")
    text: Paragraphs = Field(default="", description="free text, e.g. 'Lãnh đạo các phòng'")
    roles: list[Line150] = Field(
        default_factory=list, max_length=50, description="e.g. 'Chủ tịch UBND xã'"
    )


class AgendaItemIn(_In):
    """An agenda item; with `id`, the existing item of this agenda is updated in place (its
    documents stay attached), without it a new one is added."""

    id: Id | None = None
    title: Line500
    presenter: Line300 | None = Field(
        default=None, description="the presenting unit, e.g. 'Sở Tài chính'"
    )
    presenter_site_id: Id | None = Field(default=None, description="the site it presents from")
    planned_min: int | None = Field(default=None, ge=1, le=24 * 60)


class InvitationWrite(_In):
    """The invitation (giấy mời) and agenda; a field left out keeps its value.

    On an occurrence, a field set to null falls back to the series' invitation, and
    `agenda: null` to the series' agenda.
    """

    document_number: Line60 | None = Field(
        default=None, description="số ký hiệu, e.g. '125/GM-UBND'"
    )
    document_date: DocumentDate | None = None
    parent_body: Line200 | None = Field(
        default=None, description="cơ quan chủ quản (optional line above the issuing body)"
    )
    issuing_body: Line200 | None = Field(
        default=None, description="cơ quan ban hành, e.g. 'ỦY BAN NHÂN DÂN TỈNH QUẢNG NINH'"
    )
    place: Line100 | None = Field(
        default=None, description="địa danh of the date line, e.g. 'Quảng Ninh'"
    )
    signer_name: Line150 | None = None
    signer_title: SignerTitle | None = Field(
        default=None, description="e.g. 'CHỦ TỊCH', or 'KT. CHỦ TỊCH\\nPHÓ CHỦ TỊCH'"
    )
    summary: Paragraphs | None = Field(
        default=None, description="nội dung: what the meeting is for"
    )
    attendees: list[AttendeeGroup] | None = Field(default=None, max_length=MAX_ATTENDEE_GROUPS)
    agenda: list[AgendaItemIn] | None = Field(default=None, max_length=MAX_AGENDA_ITEMS)


class AgendaItemRead(BaseModel):
    id: int
    position: int = Field(description="1, 2, ... in the order of the agenda")
    title: str
    presenter: str | None
    presenter_site_id: int | None
    presenter_site_name: str | None
    planned_min: int | None


class AttendeeGroupRead(BaseModel):
    site_id: int | None
    site_name: str | None
    text: str
    roles: list[str]


class InvitationRead(BaseModel):
    """An invitation as stored (a series' or an occurrence's own)."""

    document_number: str | None
    document_date: date | None
    parent_body: str | None
    issuing_body: str | None
    place: str | None
    signer_name: str | None
    signer_title: str | None
    summary: str | None
    attendees: list[AttendeeGroupRead] | None
    agenda: list[AgendaItemRead] | None = Field(description="null: not set here")
    updated_at: datetime | None


class OccurrenceInvitationRead(InvitationRead):
    """What an occurrence's invitation says: its own fields over the series'."""

    occurrence_id: int
    series_id: int
    title: str
    start_at: datetime
    end_at: datetime
    tz: str
    own_fields: list[str] = Field(description="the fields this occurrence sets itself")
    current_item_id: int | None = Field(description="the item the chair marked current")


class CurrentItemWrite(_In):
    agenda_item_id: Id | None = Field(description="null: no item is current")


class DocumentRead(BaseModel):
    id: int
    name: str
    kind: str = Field(description="pdf, docx, xlsx or pptx")
    size: int
    sha256: str
    agenda_item_id: int | None
    uploaded_at: datetime
    uploaded_by: str


class DocumentCreated(BaseModel):
    id: int
    name: str
    size: int
    sha256: str


class TaskIn(_In):
    content: Paragraphs = Field(min_length=1)
    unit: Line300
    unit_id: Id | None = None
    deadline_date: DocumentDate | None = None


class ConclusionWrite(_In):
    """The conclusions notice (thông báo kết luận); replaces what was recorded."""

    document_number: Line60 | None = None
    document_date: DocumentDate | None = None
    signer_name: Line150 | None = None
    signer_title: SignerTitle | None = None
    text: Paragraphs = Field(default="", description="the conclusions, one paragraph a line")
    tasks: list[TaskIn] = Field(default_factory=list, max_length=MAX_TASKS)


class TaskRead(BaseModel):
    id: int
    position: int
    content: str
    unit: str
    unit_id: int | None
    deadline_date: date | None


class ConclusionRead(BaseModel):
    occurrence_id: int
    document_number: str | None
    document_date: date | None
    signer_name: str | None
    signer_title: str | None
    text: str
    tasks: list[TaskRead]
    recorded_by: str
    updated_at: datetime


def _email(value: str) -> str:
    # One address, as a mail server takes it in RCPT TO: local@domain, no spaces or brackets.
    local, at, domain = value.rpartition("@")
    if not at or not local or "." not in domain or any(c in value for c in ' <>,;"()[]\\'):
        raise ValueError("give an e-mail address such as vanphong@halong.gov.vn")
    return value


Email = Annotated[str, _line(254), AfterValidator(single_line), AfterValidator(_email)]


class ContactWrite(_In):
    """An e-mail address, or a webhook that receives the notices as signed JSON."""

    email: Email | None = None
    webhook_url: Annotated[str, _line(254), AfterValidator(single_line)] | None = Field(
        default=None,
        description="https URL (plain http only to a loopback or private address); notices "
        "are POSTed to it with header X-ConfBridge-Signature: sha256=<HMAC-SHA256 hex>",
    )
    secret: Annotated[str, StringConstraints(min_length=16, max_length=200)] | None = Field(
        default=None,
        description="the webhook's signing secret (16+ characters); needed for a new webhook, "
        "kept when left out; never shown back",
    )
    name: Line150 | None = None

    @model_validator(mode="after")
    def _one_address(self) -> ContactWrite:
        if (self.email is None) == (self.webhook_url is None):
            raise ValueError("give either email or webhook_url")
        if self.secret is not None and self.webhook_url is None:
            raise ValueError("secret: only for a webhook")
        return self


class ContactRead(BaseModel):
    id: int
    kind: Literal["email", "webhook"] = "email"
    email: str | None = None
    webhook_url: str | None = None
    name: str | None


class NoticeRequest(_In):
    kind: Literal["invitation"] = Field(
        default="invitation",
        description="invitation: send the invitation now (changes, cancellations and "
        "reminders go out by themselves)",
    )


class NoticesQueued(BaseModel):
    queued: int = Field(description="notices added to the outbox (0: already sent or queued)")


class NoticeRead(BaseModel):
    id: int
    site_id: int
    channel: str = Field(description="email or webhook")
    email: str = Field(description="the address, or the webhook's URL")
    kind: str = Field(description="invitation, change, cancellation, reminder_1d, reminder_30m")
    sequence: int
    status: str = Field(description="pending, sending, sent or failed")
    attempts: int
    next_attempt_at: datetime
    last_error: str | None
    sent_at: datetime | None
