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


# Vietnamese collation: the alphabet's own letters (ă, â, đ, ê, ô, ơ, ư) follow their base
# letter, and tones count only when the letters are equal, in the order huyền, hỏi, ngã, sắc,
# nặng (as CLDR's Vietnamese tailoring). Code-point order puts "Đ" after "Z" and "ồ" after "u".
_ALPHABET = "aăâbcdđeêfghijklmnoôơpqrstuưvwxyz"
_LETTER_RANK = {letter: rank for rank, letter in enumerate(_ALPHABET)}
# Marks that make a letter of the alphabet (breve, circumflex, horn) rather than a tone.
_LETTER_MARKS = frozenset("\u0306\u0302\u031b")
_TONE_RANK = {"\u0300": 1, "\u0309": 2, "\u0303": 3, "\u0301": 4, "\u0323": 5}

CollationKey = tuple[tuple[tuple[int, int], ...], tuple[int, ...], tuple[int, ...]]


def vietnamese_key(name: str) -> CollationKey:
    """A sort key putting names in Vietnamese dictionary order: letters first, then tones, then
    case ("Đại Yên" after "Dương", "Hồng" before "Hùng"). Spaces and punctuation sort before
    digits, digits before letters."""
    letters: list[tuple[int, int]] = []
    tones: list[int] = []
    cases: list[int] = []
    for base, marks in _clusters(unicodedata.normalize("NFD", " ".join(name.split()))):
        shape = "".join(mark for mark in marks if mark in _LETTER_MARKS)
        letter = unicodedata.normalize("NFC", base + shape)
        folded = letter.casefold()
        letters.append(_primary(folded))
        tones.append(max((_TONE_RANK.get(m, 0) for m in marks), default=0))
        cases.append(0 if folded == letter else 1)
    return tuple(letters), tuple(tones), tuple(cases)


def _clusters(text: str) -> list[tuple[str, list[str]]]:
    """Each base character with the combining marks that follow it."""
    clusters: list[tuple[str, list[str]]] = []
    for char in text:
        if unicodedata.combining(char) and clusters:
            clusters[-1][1].append(char)
        else:
            clusters.append((char, []))
    return clusters


def _primary(letter: str) -> tuple[int, int]:
    letter = letter[:1]  # casefolding may widen a letter ("ß" to "ss")
    if letter in _LETTER_RANK:
        return 2, _LETTER_RANK[letter]
    if letter.isdigit():
        return 1, ord(letter)
    return (3 if letter.isalpha() else 0), ord(letter)
