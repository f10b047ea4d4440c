"""One occurrence's attendance as a CSV or XLSX document (`confbridge.exports`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from confbridge.attendance.schemas import OccurrenceAttendance
from confbridge.exports import Column, Document, Kind, Table, yes

STATUS_LABELS = {"present": "Có mặt", "partial": "Tham dự một phần", "absent": "Vắng mặt"}
MODE_LABELS = {"online": "Trực tuyến", "in_person": "Trực tiếp", "hybrid": "Kết hợp"}


def occurrence_attendance_document(
    attendance: OccurrenceAttendance, *, tz: str, generated_at: datetime
) -> Document:
    table = Table(
        "Điểm danh",
        [
            Column("Điểm cầu", width=40),
            Column("Đơn vị", width=28),
            Column("Chủ trì", width=9),
            Column("Trạng thái", width=18),
            Column("Trạng thái theo kết nối", width=18),
            Column("Số phút kết nối", Kind.number),
            Column("Tỷ lệ thời gian kết nối", Kind.ratio),
            Column("Số phút có tín hiệu", Kind.number),
            Column("Tỷ lệ thời gian có tín hiệu", Kind.ratio),
            Column("Vào lúc", Kind.datetime, 17),
            Column("Rời lúc", Kind.datetime, 17),
            Column("Lý do rời", width=20),
            Column("Số lần kết nối lại", Kind.integer),
            Column("Đến muộn", width=10),
            Column("Về sớm", width=10),
            Column("RTT trung vị (ms)", Kind.number),
            Column("Mất gói lớn nhất", Kind.ratio),
            Column("Lý do điều chỉnh", width=36),
            Column("Khách mời (SIP)", width=10),
        ],
    )
    for record in attendance.records:
        table.rows.append(
            [
                record.site_name,
                record.unit_name,
                yes(record.is_chair),
                STATUS_LABELS[record.status.value],
                STATUS_LABELS[record.computed_status.value],
                record.connected_min,
                record.connected_ratio,
                record.media_min,
                record.media_ratio,
                record.first_join_at,
                record.last_leave_at,
                record.last_leave_reason,
                record.reconnects,
                yes(record.joined_late),
                yes(record.left_early),
                record.rtt_median_ms,
                record.loss_max,
                record.correction.reason if record.correction else None,
                yes(record.guest),
            ]
        )
    summary = attendance.summary
    info: list[tuple[str, Any]] = [
        ("Cuộc họp", attendance.title),
        ("Ngày", attendance.local_date),
        ("Bắt đầu", attendance.start_at),
        ("Kết thúc", attendance.end_at),
        ("Hình thức", MODE_LABELS[attendance.mode.value]),
        ("Số điểm cầu được mời", summary.invited),
        ("Có mặt", summary.present),
        ("Tham dự một phần", summary.partial),
        ("Vắng mặt", summary.absent),
        ("Lập lúc", generated_at),
    ]
    name = f"diem-danh_{attendance.occurrence_id}_{attendance.local_date}"
    return Document(name, [table], info, tz)
