"""A notice as an e-mail: Vietnamese text, the meeting as an iCalendar invitation (RFC 5546
REQUEST or CANCEL, same UID and SEQUENCE as the calendar feeds), and for an invitation its
giấy mời as PDF; sent with the standard library's SMTP client."""

from __future__ import annotations

import smtplib
from datetime import datetime
from email.message import EmailMessage
from email.utils import formatdate, make_msgid

from icalendar import Calendar, Event, vCalAddress
from sqlalchemy.orm import Session

from confbridge.meetings.calendars import KIND_LABELS, MODE_LABELS, occurrence_uid
from confbridge.meetings.models import Displacement, Occurrence, Series
from confbridge.records import notices as notice_service
from confbridge.records import papers, render_pdf
from confbridge.records import service as record_service
from confbridge.records.models import Notice
from confbridge.settings import MailSettings
from confbridge.text import one_line
from confbridge.timeutil import zone

SUBJECTS = {
    "invitation": "Giấy mời họp",
    "change": "Thay đổi lịch họp",
    "cancellation": "Hủy cuộc họp",
    "reminder_1d": "Nhắc lịch họp (ngày mai)",
    "reminder_30m": "Nhắc lịch họp (30 phút nữa)",
}


def _ics(occurrence: Occurrence, notice: Notice, settings: MailSettings, now: datetime) -> bytes:
    series = occurrence.series
    cancel = notice.kind == "cancellation"
    calendar = Calendar()
    calendar.add("prodid", "-//ConfBridge//Meeting notices//VI")
    calendar.add("version", "2.0")
    calendar.add("method", "CANCEL" if cancel else "REQUEST")
    event = Event()
    event.add("uid", occurrence_uid(series.id, occurrence.recurrence_at))
    event.add("sequence", occurrence.sequence)
    event.add("dtstamp", now)
    event.add("dtstart", occurrence.start_at)
    event.add("dtend", occurrence.end_at)
    event.add("summary", one_line(series.title))
    event.add("location", one_line(series.chair_site.name))
    event.add("status", "CANCELLED" if cancel else "CONFIRMED")
    organizer = vCalAddress(f"mailto:{settings.from_address}")
    event.add("organizer", organizer)
    attendee = vCalAddress(f"mailto:{notice.email}")
    attendee.params["ROLE"] = "REQ-PARTICIPANT"
    event.add("attendee", attendee)
    calendar.add_component(event)
    return calendar.to_ical()


def _emergency_lines(session: Session, displaced: Displacement, tz: str) -> list[str]:
    """Why the meeting was cancelled or moved: the emergency meeting, who decided, the reason."""
    emergency = session.get(Series, displaced.emergency_series_id)
    title = one_line(emergency.title) if emergency else ""
    was = displaced.from_start_at.astimezone(zone(tz))
    done = "hủy" if displaced.action == "cancel" else "dời"
    return [
        f"Cuộc họp (dự kiến {was:%H:%M} ngày {was:%d/%m/%Y}) bị {done} để tổ chức họp khẩn: "
        f"{title}",
        f"Lý do: {displaced.reason}",
        f"Người quyết định: {displaced.actor.removeprefix('user:')}",
    ]


def compose(
    session: Session, notice: Notice, occurrence: Occurrence, settings: MailSettings, now: datetime
) -> EmailMessage:
    """The e-mail of one notice."""
    series = occurrence.series
    start = occurrence.start_at.astimezone(zone(series.tz))
    end = occurrence.end_at.astimezone(zone(series.tz))
    when = f"{start:%H:%M}–{end:%H:%M} ngày {start:%d/%m/%Y}"
    message = EmailMessage()
    message["Subject"] = f"{SUBJECTS[notice.kind]}: {one_line(series.title)} – {when}"
    message["From"] = settings.from_address
    message["To"] = notice.email
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(idstring=f"notice-{notice.id}")
    found = record_service.effective(session=session, occurrence=occurrence)
    lines = [
        f"{SUBJECTS[notice.kind]}: {series.title}",
        f"Thời gian: {when}",
        f"Loại: {KIND_LABELS.get(series.kind, series.kind)}; "
        f"hình thức: {MODE_LABELS.get(series.mode, series.mode)}",
        f"Chủ trì: {series.chair_site.name}",
    ]
    displaced = notice_service.displacement_of(session=session, notice=notice)
    if displaced is not None:
        lines += _emergency_lines(session, displaced, series.tz)
    if found.document_number:
        lines.append(f"Giấy mời số: {found.document_number}")
    if found.summary:
        lines.append(f"Nội dung: {found.summary}")
    if found.items:
        lines.append("Chương trình:")
        lines += [f"  {item.position}. {item.title}" for item in found.items]
    message.set_content("\n".join(lines) + "\n")
    method = "CANCEL" if notice.kind == "cancellation" else "REQUEST"
    message.add_attachment(
        _ics(occurrence, notice, settings, now),
        maintype="text",
        subtype="calendar",
        filename="invite.ics",
        params={"method": method},
    )
    if notice.kind == "invitation":
        pdf = render_pdf.render(papers.invitation_document(session, found))
        message.add_attachment(
            pdf, maintype="application", subtype="pdf", filename=f"giay-moi-{occurrence.id}.pdf"
        )
    return message


def send(message: EmailMessage, settings: MailSettings) -> None:
    """Hand the message to the SMTP server; raises on refusal or a broken connection."""
    assert settings.smtp_host is not None
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=settings.timeout_s) as smtp:
        if settings.starttls:
            smtp.starttls()
        if settings.username and settings.password:
            smtp.login(settings.username, str(settings.password))
        smtp.send_message(message)
