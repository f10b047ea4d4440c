"""What a Vietnamese page or file must not show: English sentences of the catalogue (a message
left untranslated, or a server's English detail passed through), raw codes (meeting kinds,
leave reasons, states) and the second word for "not met"."""

from __future__ import annotations

import re
from functools import lru_cache

from babel.messages.pofile import read_po

from confbridge.web import i18n

RAW_CODES = (
    # meeting kinds and modes as stored
    "giao_ban",
    "so_ket",
    "tong_ket",
    "tap_huan",
    "chuyen_de",
    "in_person",
    # leave reasons and states as the media servers report them
    "connection closed",
    "connection failed",
    "connection_closed",
    "meeting_ended",
    "node_down",
    "node_restarted",
    "not_joined",
    "deleted",
    # the English twin of a Vietnamese column
    "Target (English)",
    # "not met" is "Chưa đạt" on the pages: one word everywhere
    "Không đạt",
)
# Server phrases seen leaking onto pages before they were translated.
ENGLISH_PHRASES = (
    "no media server",
    "rrule:",
    "is not a date",
    "does not exist",
    "sign in first",
    "no such occurrence",
    "acknowledged by",
    "Not Found",
)
MIN_FRAGMENT = 14  # shorter English fragments ("Sites", "Good") may be names or codes


@lru_cache(maxsize=1)
def english_fragments() -> tuple[str, ...]:
    """The literal parts (placeholders cut out) of every catalogue message whose Vietnamese
    differs from it: finding one on a Vietnamese page means it was not translated there."""
    with i18n.po_path("vi").open("rb") as file:
        catalog = read_po(file, locale="vi")
    fragments = set()
    for message in catalog:
        if not message.id:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for source in ids:
            if source in strings:
                continue
            for part in re.split(r"%\(\w+\)s|\{\w+\}", source):
                part = part.strip(" .,:;()“”\"'")
                if len(part) >= MIN_FRAGMENT and " " in part:
                    fragments.add(part)
    return tuple(sorted(fragments))


def untranslated(text: str) -> list[str]:
    """What in `text` (a Vietnamese page's visible text, or a file's cells) is English or raw."""
    found = [
        code for code in RAW_CODES if re.search(rf"(?<![\w/-]){re.escape(code)}(?![\w/-])", text)
    ]
    found += [phrase for phrase in ENGLISH_PHRASES if phrase.lower() in text.lower()]
    found += [fragment for fragment in english_fragments() if fragment in text]
    return found
