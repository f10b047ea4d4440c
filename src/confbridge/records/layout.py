"""Vietnamese administrative documents as data: what goes where on the page.

The parts and their order follow the layout of Nghị định 30/2020/NĐ-CP (Phụ lục I): the
issuing body with its number on the left and the national motto with place and date on the
right, the kind of document and its summary centred, the recipients, the body, then "Nơi
nhận" on the left and the signature block on the right. `render_pdf` and `render_docx` draw it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date

NATIONAL_NAME = "CỘNG HÒA XÃ HỘI CHỦ NGHĨA VIỆT NAM"
MOTTO = "Độc lập - Tự do - Hạnh phúc"
WEEKDAYS = ("Thứ Hai", "Thứ Ba", "Thứ Tư", "Thứ Năm", "Thứ Sáu", "Thứ Bảy", "Chủ nhật")
BLANK = "….."


@dataclass(frozen=True)
class Paragraph:
    """A paragraph of the body; `label` ("Thời gian:") is set in bold before the text,
    `indent` moves it right (an item of a list), `bullet` also starts it with a dash."""

    text: str
    label: str | None = None
    bullet: bool = False
    indent: bool = False

    @property
    def indented(self) -> bool:
        return self.bullet or self.indent


@dataclass
class AdminDocument:
    """One administrative document, ready to draw."""

    issuing_body: str
    number_line: str  # "Số: 01/GM-UBND"
    place_date: str  # "Hạ Long, ngày 02 tháng 01 năm 2026"
    kind: str  # "GIẤY MỜI", "THÔNG BÁO"
    summary: str | None  # trích yếu, under the kind
    signer_title: list[str]  # "KT. CHỦ TỊCH", "PHÓ CHỦ TỊCH"
    signer_name: str
    parent_body: str | None = None
    recipients: list[str] = field(default_factory=list)  # "Kính gửi: ..."
    body: list[Paragraph] = field(default_factory=list)
    copies_to: list[str] = field(default_factory=list)  # "Nơi nhận:"
    file_title: str = "document"

    def all_text(self) -> str:
        """Every text of the document, in reading order (for checks and search)."""
        parts = [self.parent_body or "", self.issuing_body, self.number_line, NATIONAL_NAME]
        parts += [MOTTO, self.place_date, self.kind, self.summary or "", *self.recipients]
        parts += [f"{p.label or ''} {p.text}" for p in self.body]
        return "\n".join([*parts, *self.copies_to, *self.signer_title, self.signer_name])


def date_line(place: str | None, day: date | None) -> str:
    """ "Hạ Long, ngày 02 tháng 01 năm 2026": days below 10 and months 1 and 2 take a leading
    zero (NĐ 30/2020, Phụ lục I); an undated draft leaves day and month blank."""
    if day is None:
        text = f"ngày {BLANK} tháng {BLANK} năm {BLANK}"
    else:
        month = f"{day.month:02d}" if day.month <= 2 else str(day.month)
        text = f"ngày {day.day:02d} tháng {month} năm {day.year}"
    return f"{place}, {text}" if place else text[0].upper() + text[1:]


def number_line(number: str | None, suffix: str) -> str:
    """ "Số: 01/GM-UBND"; without a number, the blank a draft leaves for it."""
    return f"Số: {number}" if number else f"Số: {BLANK}/{suffix}"


def weekday(day: date) -> str:
    return WEEKDAYS[day.weekday()]


def title_lines(text: str | None) -> list[str]:
    """A signer's title as its lines, upper case ("KT. CHỦ TỊCH" / "PHÓ CHỦ TỊCH")."""
    return [line.strip().upper() for line in (text or "").splitlines() if line.strip()]
