"""The audit log as a download (CSV or XLSX), through `confbridge.exports`."""

from __future__ import annotations

import json

from confbridge.audit.schemas import AuditRead
from confbridge.audit.service import AuditFilter
from confbridge.exports import Column, Document, Kind, Table


def _changes(item: AuditRead) -> str:
    return "; ".join(f"{k}: {before} → {after}" for k, (before, after) in item.changes.items())


def audit_document(items: list[AuditRead], *, where: AuditFilter, tz: str) -> Document:
    """One table, a row per entry, newest first."""
    table = Table(
        title="Nhật ký",
        columns=[
            Column("Thời điểm", Kind.datetime, 18),
            Column("Người thực hiện", width=24),
            Column("Hành động", width=22),
            Column("Đối tượng", width=12),
            Column("Mã đối tượng", Kind.integer, 10),
            Column("Từ địa chỉ", width=18),
            Column("Trước → sau", width=50),
            Column("Chi tiết", width=60),
        ],
        rows=[
            [
                item.at,
                item.actor,
                item.action,
                item.entity,
                item.entity_id,
                item.address or "",
                _changes(item),
                json.dumps(item.detail, ensure_ascii=False, sort_keys=True),
            ]
            for item in items
        ],
    )
    info = [
        ("Từ", where.from_at),
        ("Đến", where.to_at),
        ("Người thực hiện", where.actor or "tất cả"),
        ("Đối tượng", where.entity or "tất cả"),
        ("Hành động", where.action or "tất cả"),
    ]
    return Document(name="nhat-ky", tables=[table], info=info, tz=tz)
