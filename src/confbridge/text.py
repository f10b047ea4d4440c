"""Names and titles: one line of text, without control characters.

A title or a name is written into calendar feeds (one content line each), CSV and XLSX cells,
log lines and page headings; a CR or LF in it breaks the first and forges lines in the others.
"""

from __future__ import annotations

import unicodedata
from typing import Annotated

from pydantic import AfterValidator

# Line and paragraph separators are not control characters to Unicode, but break lines as well.
_LINE_BREAKERS = frozenset("\u2028\u2029\x85")


def control_character(value: str) -> str | None:
    """The first control character (CR, LF, tab, NUL, ...) or lone surrogate in `value`."""
    return next((char for char in value if _is_control(char)), None)


def _is_control(char: str) -> bool:
    return char in _LINE_BREAKERS or unicodedata.category(char) in ("Cc", "Cs")


def one_line(value: str) -> str:
    """`value` with every control character turned into a space: for text stored before names
    were checked, written where a line break would do harm."""
    if control_character(value) is None:
        return value
    return "".join(" " if _is_control(char) else char for char in value)


def single_line(value: str) -> str:
    """Refuse a value with a control character; pydantic reports the ValueError as 422."""
    found = control_character(value)
    if found is not None:
        raise ValueError(
            f"must be one line of text without control characters (found U+{ord(found):04X})"
        )
    return value


SingleLine = Annotated[str, AfterValidator(single_line)]
"""A name or a title."""
