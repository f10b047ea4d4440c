"""One occurrence's attendance as a CSV or XLSX document (`confbridge.exports`)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from confbridge.attendance.schemas import OccurrenceAttendance
from confbridge.exports import Column, Document, Kind, Table, yes

STATUS_LABELS = {"present": "Có mặt", "partial": "Tham dự một phần", "absent": "Vắng mặt"}
MODE_LABELS = {"online": "Trực tuyến", "in_person": "Trực tiếp", "hybrid": "Kết hợp"}
# Why a hall's last connection ended, as the media servers and the bridge record it.
LEAVE_REASONS = {
    "deleted": "Điểm cầu rời cuộc họp",
    "meeting_ended": "Cuộc họp kết thúc",
    "connection closed": "Kết nối bị đóng",
    "connection failed": "Mất kết nối",
    "never connected": "Không kết nối được",
    "ICE restart failed": "Không khôi phục được kết nối",
    "replaced": "Thay bằng kết nối mới",
    "replaced by another presenter": "Điểm cầu khác trình chiếu",
    "revoked": "Thiết bị bị thu hồi",
    "upstream_lost": "Mất kết nối tới máy chủ trung tâm",
    "relay_refused": "Máy chủ trung tâm từ chối chuyển tiếp",
    "worker_stopped": "Máy chủ truyền thông dừng",
    "node_restarted": "Máy chủ truyền thông khởi động lại",
}
STOPPED_BY = "stopped by "
OTHER_REASON = "Lý do khác"


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
                leave_reason(record.last_leave_reason),
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


def leave_reason(reason: str | None) -> str | None:
    """A recorded leave reason in Vietnamese; a code not known here says only "other"."""
    if reason is None:
        return None
    if reason.startswith(STOPPED_BY):
        return f"Bị dừng trình chiếu bởi {reason.removeprefix(STOPPED_BY).removeprefix('user:')}"
    return LEAVE_REASONS.get(reason, OTHER_REASON)
