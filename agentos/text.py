"""Text for people: counts with their nouns, and cells of a terminal table.

- `plural(3, "call")` is "3 calls", `plural(1, "call")` "1 call": every count agentos prints goes
  through it, so a noun never disagrees with its number.
- `display_width` is how many terminal columns a string takes: CJK ideographs and most emoji take
  two, combining marks and zero-width characters none (the East Asian Width property and the
  general category, as wcwidth computes them; grapheme clusters joined by ZWJ are counted per
  character, which overstates some emoji sequences).
- `cell` makes any text safe for one table cell on one line: whitespace (tabs, newlines) becomes
  one space, control characters and bidirectional overrides are shown escaped (`\\x1b`), never
  sent to the terminal raw, and bytes that were not UTF-8 (surrogate escapes) show as `\\xe9`.
- `clip` shortens a cell to a display width at a word boundary, with an ellipsis, and never
  leaves a dangling separator (`;`, `,`, `:`) before it.
"""

from __future__ import annotations

import re
from functools import lru_cache

ELLIPSIS = "…"

_WHITESPACE = re.compile(r"\s+")
#: reorder the text around them on a terminal that honours them: shown escaped
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")
#: what a cut may not end on: it would read as if the text went on after it
_DANGLING = " \t;:,/|-–—([{«'\"=&+"


def plural(count: int, noun: str, many: str | None = None) -> str:
    """`1 call`, `2 calls`, `12,345 calls`; `many` for a plural that is not noun + s
    (`plural(n, "entry", "entries")`)."""
    return f"{count:,} {noun_for(count, noun, many)}"


def noun_for(count: int, noun: str, many: str | None = None) -> str:
    """The noun alone, agreeing with `count`: `call` or `calls`."""
    return noun if count == 1 else (many if many is not None else noun + "s")


@lru_cache(maxsize=4096)
def char_width(char: str) -> int:
    """Terminal columns of one character: 0, 1 or 2."""
    code = ord(char)
    if 0x20 <= code < 0x7F:
        return 1
    if code == 0 or code < 0x20 or 0x7F <= code < 0xA0:
        return 0  # control characters: `cell` escapes them before anything is measured
    if code == 0x00AD:
        return 1  # the soft hyphen is drawn by terminals
    if 0x1160 <= code <= 0x11FF or 0x200B <= code <= 0x200F or 0x2060 <= code <= 0x2064:
        return 0  # Hangul medial vowels and final consonants; zero-width spaces and joiners
    import unicodedata  # here: workers import this module for `plural` and never measure

    if unicodedata.combining(char) or unicodedata.category(char) in ("Mn", "Me", "Cf"):
        return 0
    if unicodedata.east_asian_width(char) in ("W", "F"):
        return 2
    return 1


def display_width(text: str) -> int:
    """Terminal columns `text` takes (one line, no control characters: see `cell`)."""
    if text.isascii() and text.isprintable():
        return len(text)
    return sum(char_width(c) for c in text)


def _escaped(char: str) -> str:
    code = ord(char)
    if 0xDC80 <= code <= 0xDCFF:
        return f"\\x{code - 0xDC00:02x}"  # a byte that was not UTF-8 (surrogateescape)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}"


def cell(text: str) -> str:
    """`text` as one line of one table cell: runs of whitespace become one space; control
    characters, bidirectional controls and undecodable bytes are shown escaped."""
    text = _WHITESPACE.sub(" ", text).strip()
    if text.isascii() and text.isprintable():
        return text
    import unicodedata

    return "".join(
        _escaped(c) if c in _BIDI or unicodedata.category(c) in ("Cc", "Cs") else c for c in text
    )


def clip(text: str, width: int) -> str:
    """`text` in at most `width` columns: whole when it fits, else cut at the last word boundary
    that keeps at least half of it (mid-word only when no boundary does), stripped of the
    separators a cut leaves dangling, and ended with an ellipsis."""
    if display_width(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    budget = width - display_width(ELLIPSIS)
    end = used = 0
    while used + char_width(text[end]) <= budget:
        used += char_width(text[end])
        end += 1
    kept = text[:end]
    if not text[end].isspace():
        boundary = kept.rfind(" ")
        if boundary >= len(kept) // 2:
            kept = kept[:boundary]
    kept = kept.rstrip(_DANGLING)
    return (kept or text[:end]) + ELLIPSIS


def ljust(text: str, width: int) -> str:
    """`str.ljust` in display columns."""
    return text + " " * max(0, width - display_width(text))


def rjust(text: str, width: int) -> str:
    """`str.rjust` in display columns."""
    return " " * max(0, width - display_width(text)) + text


def seconds(value: float) -> str:
    """3.2 s, 42 s: a tenth of a second where it matters, whole seconds otherwise."""
    return f"{value:.1f} s" if value < 10 else f"{value:.0f} s"


def countdown(seconds: float) -> str:
    """4m12s, 1h05m, 42s."""
    whole = max(0, int(seconds))
    if whole >= 3600:
        return f"{whole // 3600}h{whole % 3600 // 60:02d}m"
    if whole >= 60:
        return f"{whole // 60}m{whole % 60:02d}s"
    return f"{whole}s"
