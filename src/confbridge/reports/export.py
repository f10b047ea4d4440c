"""The reports (online ratio, attendance per site) as CSV and XLSX documents
(`confbridge.exports`)."""

from __future__ import annotations

from typing import Any

from confbridge.exports import Column, Document, Kind, Table
from confbridge.reports.schemas import AttendanceReport, OnlineRatioReport, UnitRef
from confbridge.reports.service import KIND_LABELS

# The words of the report page ("Met", "Not met" in its Vietnamese catalogue).
MET, NOT_MET, NO_DATA = "Đạt", "Chưa đạt", "—"


def _met(value: bool | None) -> str:
    return NO_DATA if value is None else MET if value else NOT_MET


def _unit_label(unit: UnitRef | None) -> str:
    return unit.name if unit else "Toàn quốc"


# --- the reports as tables -----------------------------------------------------------------------


def online_ratio_document(report: OnlineRatioReport, *, tz: str) -> Document:
    group_header = {
        "month": "Tháng",
        "quarter": "Quý",
        "unit": "Đơn vị",
        "kind": "Loại cuộc họp",
    }[report.group_by.value]
    columns = [
        Column(group_header, width=24),
        Column("Số cuộc họp đã tổ chức", Kind.integer),
        Column("Trực tuyến (theo lịch)", Kind.integer, 11),
        Column("Kết hợp (theo lịch)", Kind.integer, 10),
        Column("Trực tiếp", Kind.integer, 10),
        Column("Tỷ lệ trực tuyến (theo lịch)", Kind.ratio, 12),
        Column("Trực tuyến (đã xác minh)", Kind.integer, 11),
        Column("Kết hợp (đã xác minh)", Kind.integer, 10),
        Column("Tỷ lệ trực tuyến (đã xác minh)", Kind.ratio, 12),
        Column("Số xã, phường", Kind.integer, 11),
        Column("Số xã, phường đã kết nối", Kind.integer),
    ]
    for target in report.total.targets:
        columns += [
            Column(f"{target.label_vi}: thực tế", Kind.ratio, 18),
            Column(f"{target.label_vi}: chỉ tiêu", Kind.ratio, 18),
            Column(f"{target.label_vi}: đánh giá", width=18),
        ]
    main = Table("Tỷ lệ họp trực tuyến", columns)
    for row in [*report.rows, report.total]:
        cells: list[Any] = [
            row.label,
            row.held,
            row.online,
            row.hybrid,
            row.in_person,
            row.ratio,
            row.online_verified,
            row.hybrid_verified,
            row.ratio_verified,
            row.communes,
            row.communes_connected,
        ]
        for target in row.targets:
            cells += [target.actual, target.target, _met(target.met)]
        main.rows.append(cells)
    targets = _targets_table(report)
    info = [
        ("Báo cáo", "Tỷ lệ cuộc họp trực tuyến"),
        ("Từ ngày", report.from_date),
        ("Đến ngày", report.to_date),
        ("Đơn vị", _unit_label(report.unit)),
        ("Nhóm theo", group_header),
        (
            "Đã xác minh",
            "cuộc họp trực tuyến hoặc kết hợp có điểm cầu chủ trì và ít nhất một điểm cầu "
            "khác có tín hiệu hình, tiếng trong đủ thời gian quy định; chỉ tiêu tính theo "
            "số đã xác minh",
        ),
        ("Lập lúc", report.generated_at),
    ]
    name = f"ty-le-truc-tuyen_{report.from_date}_{report.to_date}"
    return Document(name, [main, targets], info, tz)


def _targets_table(report: OnlineRatioReport) -> Table:
    """The targets of the whole report (its total row): how each is reckoned and whether it
    is met."""
    targets = Table(
        "Chỉ tiêu",
        [
            Column("Chỉ tiêu", width=48),
            Column("Loại cuộc họp", width=24),
            Column("Tử số", Kind.integer, 10),
            Column("Mẫu số", Kind.integer, 10),
            Column("Thực tế", Kind.ratio, 10),
            Column("Chỉ tiêu tối thiểu", Kind.ratio, 12),
            Column("Đánh giá", width=12),
        ],
    )
    for target in report.total.targets:
        targets.rows.append(
            [
                target.label_vi,
                ", ".join(KIND_LABELS.get(kind, kind) for kind in target.kinds)
                or "xã, phường, đặc khu",
                target.numerator,
                target.denominator,
                target.actual,
                target.target,
                _met(target.met),
            ]
        )
    return targets


def attendance_document(report: AttendanceReport, *, tz: str) -> Document:
    table = Table(
        "Tỷ lệ tham dự",
        [
            Column("Điểm cầu", width=40),
            Column("Đơn vị", width=28),
            Column("Số cuộc họp được mời", Kind.integer),
            Column("Có mặt", Kind.integer, 10),
            Column("Tham dự một phần", Kind.integer),
            Column("Vắng mặt", Kind.integer, 10),
            Column("Đã điều chỉnh", Kind.integer, 12),
            Column("Đến muộn", Kind.integer, 10),
            Column("Về sớm", Kind.integer, 10),
            Column("Số phút kết nối", Kind.number),
            Column("Tỷ lệ có mặt", Kind.ratio, 12),
        ],
    )
    for row in report.rows:
        table.rows.append(
            [
                row.site_name,
                row.unit_name,
                row.invited,
                row.present,
                row.partial,
                row.absent,
                row.corrected,
                row.joined_late,
                row.left_early,
                row.connected_min,
                row.rate,
            ]
        )
    info = [
        ("Báo cáo", "Tỷ lệ tham dự theo điểm cầu"),
        ("Từ ngày", report.from_date),
        ("Đến ngày", report.to_date),
        ("Đơn vị", _unit_label(report.unit)),
        ("Số cuộc họp đã tổ chức", report.occurrences),
        ("Tỷ lệ có mặt chung", f"{report.rate:.1%}" if report.rate is not None else NO_DATA),
        ("Lập lúc", report.generated_at),
    ]
    name = f"tham-du_{report.from_date}_{report.to_date}"
    return Document(name, [table], info, tz)
