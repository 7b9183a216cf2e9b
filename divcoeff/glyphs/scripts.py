"""Which characters make up each script's classes.

A class is one letter (Unicode category Lu, Ll or Lo) of a script's main block. Marks,
digits and punctuation are left out: marks do not stand alone, and digits and punctuation
are shared across scripts. The order of SCRIPTS decides which script keeps a cross-script
look-alike (Latin A beats Greek Alpha beats Cyrillic A).
"""
from __future__ import annotations

import unicodedata

# name -> code point ranges (inclusive). Latin is limited to the basic letters: the accented
# letters of Latin-1 would be near-copies of their base letters.
SCRIPTS: dict[str, tuple[tuple[int, int], ...]] = {
    "Latin": ((0x0041, 0x005A), (0x0061, 0x007A)),
    "Greek": ((0x0391, 0x03C9),),
    "Cyrillic": ((0x0410, 0x044F),),
    "Armenian": ((0x0531, 0x0587),),
    "Hebrew": ((0x05D0, 0x05EA),),
    "Arabic": ((0x0621, 0x064A),),
    "Devanagari": ((0x0904, 0x0939),),
    "Bengali": ((0x0985, 0x09B9),),
    "Gurmukhi": ((0x0A05, 0x0A39),),
    "Gujarati": ((0x0A85, 0x0AB9),),
    "Oriya": ((0x0B05, 0x0B39),),
    "Tamil": ((0x0B85, 0x0BB9),),
    "Telugu": ((0x0C05, 0x0C39),),
    "Kannada": ((0x0C85, 0x0CB9),),
    "Malayalam": ((0x0D05, 0x0D3A),),
    "Sinhala": ((0x0D85, 0x0DC6),),
    "Thai": ((0x0E01, 0x0E2E),),
    "Lao": ((0x0E81, 0x0EAE),),
    "Tibetan": ((0x0F40, 0x0F6C),),
    "Myanmar": ((0x1000, 0x102A),),
    "Georgian": ((0x10D0, 0x10FA),),
    "Ethiopic": ((0x1200, 0x135A),),
    "Cherokee": ((0x13A0, 0x13F5),),
    "Khmer": ((0x1780, 0x17B3),),
}
LETTER_CATEGORIES = ("Lu", "Ll", "Lo")


def script_letters(name: str) -> list[int]:
    """The code points of a script's letters, in order."""
    out = []
    for lo, hi in SCRIPTS[name]:
        out.extend(cp for cp in range(lo, hi + 1) if unicodedata.category(chr(cp)) in LETTER_CATEGORIES)
    return out


def char_name(cp: int) -> str:
    return f"U+{cp:04X} {unicodedata.name(chr(cp), '?')}"
