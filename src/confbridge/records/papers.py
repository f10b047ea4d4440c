"""The record's documents as `AdminDocument`s: an occurrence's invitation (giấy mời) and its
conclusions notice (thông báo kết luận)."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from confbridge.meetings.models import Booking, MeetingMode
from confbridge.records import service as record_service
from confbridge.records.layout import (
    AdminDocument,
    Paragraph,
    date_line,
    number_line,
    title_lines,
    weekday,
)
from confbridge.records.models import Conclusion
from confbridge.records.schemas import AttendeeGroup
from confbridge.records.service import EffectiveInvitation
from confbridge.sites.models import Site
from confbridge.timeutil import zone

MODE_WORDS = {
    MeetingMode.online.value: "trực tuyến",
    MeetingMode.in_person.value: "trực tiếp",
    MeetingMode.hybrid.value: "kết hợp trực tiếp và trực tuyến",
}
# Beyond this many invited sites the invitation counts them instead of naming each.
MAX_NAMED_SITES = 12


def _invited_sites(session: Session, occurrence_id: int) -> list[Site]:
    query = (
        select(Site)
        .join(Booking, Booking.site_id == Site.id)
        .where(Booking.occurrence_id == occurrence_id, Booking.active.is_(True))
        .order_by(Booking.is_chair.desc(), Site.name)
    )
    return list(session.scalars(query))


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:]


def invitation_document(session: Session, found: EffectiveInvitation) -> AdminDocument:
    """The giấy mời of an occurrence, as its invitation (own fields over the series') says."""
    occurrence, series = found.occurrence, found.series
    chair = series.chair_site
    start = occurrence.start_at.astimezone(zone(series.tz))
    sites = _invited_sites(session, occurrence.id)
    others = [site.name for site in sites if site.id != chair.id]
    duration_min = int((occurrence.end_at - occurrence.start_at) / timedelta(minutes=1))

    body = [Paragraph("Trân trọng kính mời:")]
    groups = [AttendeeGroup.model_validate(group) for group in found.attendees]
    names = record_service.site_names(session=session, site_ids=(g.site_id or 0 for g in groups))
    for group in groups:
        parts = ["; ".join(group.roles)] if group.roles else []
        if group.text:
            parts.append(group.text)
        text = ", ".join(parts) or "Đại diện lãnh đạo"
        if group.site_id:
            text = f"{names.get(group.site_id, '')}: {text}"
        body.append(Paragraph(text, bullet=True))
    if not groups:
        body.append(Paragraph("Đại diện lãnh đạo các điểm cầu dự họp.", bullet=True))
    body.append(Paragraph(found.summary or series.title, label="Nội dung:"))
    body.append(
        Paragraph(
            f"{start:%H} giờ {start:%M} phút, {weekday(start.date())}, ngày {start:%d/%m/%Y}"
            f" (dự kiến {duration_min} phút).",
            label="Thời gian:",
        )
    )
    body.append(Paragraph(f"Họp {MODE_WORDS.get(series.mode, series.mode)}.", label="Hình thức:"))
    if series.mode == MeetingMode.in_person.value:
        place = f"{chair.name}."
    elif len(others) <= MAX_NAMED_SITES:
        place = f"điểm cầu chính tại {chair.name}" + (
            f"; các điểm cầu: {', '.join(others)}." if others else "."
        )
    else:
        place = f"điểm cầu chính tại {chair.name} và {len(others)} điểm cầu."
    body.append(Paragraph(place[:1].upper() + place[1:], label="Địa điểm:"))
    if found.items:
        body.append(Paragraph("", label="Chương trình:"))
        for item in found.items:
            text = f"{item.position}. {item.title}"
            presenter = item.presenter or (
                record_service.site_names(
                    session=session, site_ids=[item.presenter_site_id or 0]
                ).get(item.presenter_site_id or 0)
            )
            if presenter:
                text += f" - {presenter}"
            if item.planned_min:
                text += f" ({item.planned_min} phút)"
            body.append(Paragraph(text, indent=True))
    body.append(Paragraph("Đề nghị các đại biểu tham dự đúng thành phần, đúng thời gian./."))

    recipients = [site.name for site in sites]
    if len(recipients) > MAX_NAMED_SITES:
        recipients = [f"Các điểm cầu dự họp ({len(recipients)} điểm cầu)"]
    return AdminDocument(
        parent_body=found.parent_body,
        issuing_body=found.issuing_body or chair.unit.name,
        number_line=number_line(found.document_number, "GM"),
        place_date=date_line(found.place, found.document_date),
        kind="GIẤY MỜI",
        summary=f"Dự {_lower_first(series.title)}",
        recipients=recipients,
        body=body,
        copies_to=["Như thành phần mời;", "Lưu: VT."],
        signer_title=title_lines(found.signer_title) or [""],
        signer_name=found.signer_name or "",
        file_title=f"Giấy mời - {series.title}",
    )


def conclusion_document(
    session: Session, found: EffectiveInvitation, conclusion: Conclusion
) -> AdminDocument:
    """The thông báo kết luận of an occurrence: its conclusions and the tasks they assign."""
    occurrence, series = found.occurrence, found.series
    chair = series.chair_site
    start = occurrence.start_at.astimezone(zone(series.tz))
    sites = _invited_sites(session, occurrence.id)
    issuing_body = found.issuing_body or chair.unit.name
    mode = MODE_WORDS.get(series.mode, series.mode)
    body = [
        Paragraph(
            f"Ngày {start:%d/%m/%Y}, cuộc họp {_lower_first(series.title)} được tổ chức"
            f" theo hình thức {mode}, điểm cầu chính tại {chair.name}"
            + (f", với {len(sites)} điểm cầu tham dự." if len(sites) > 1 else ".")
        )
    ]
    if conclusion.signer_name:
        body.append(
            Paragraph(
                f"Sau khi nghe báo cáo và ý kiến của các đại biểu, đồng chí "
                f"{conclusion.signer_name} kết luận như sau:"
            )
        )
    else:
        body.append(Paragraph("Cuộc họp kết luận như sau:"))
    for number, line in enumerate(
        (line.strip() for line in conclusion.text.splitlines() if line.strip()), start=1
    ):
        body.append(Paragraph(f"{number}. {line}"))
    if conclusion.tasks:
        body.append(Paragraph("", label="Giao nhiệm vụ:"))
        for task in conclusion.tasks:
            deadline = f" Thời hạn: {task.deadline_date:%d/%m/%Y}." if task.deadline_date else ""
            body.append(Paragraph(f"{task.content}{deadline}", label=f"{task.unit}:", bullet=True))
    body.append(Paragraph("Thông báo để các cơ quan, đơn vị biết, thực hiện./."))
    return AdminDocument(
        parent_body=found.parent_body,
        issuing_body=issuing_body,
        number_line=number_line(conclusion.document_number, "TB"),
        place_date=date_line(found.place, conclusion.document_date),
        kind="THÔNG BÁO",
        summary=f"Kết luận tại {_lower_first(series.title)} ngày {start:%d/%m/%Y}",
        body=body,
        copies_to=["Các đơn vị được giao nhiệm vụ;", "Các điểm cầu dự họp;", "Lưu: VT."],
        signer_title=title_lines(conclusion.signer_title or found.signer_title) or [""],
        signer_name=conclusion.signer_name or "",
        file_title=f"Thông báo kết luận - {series.title}",
    )
