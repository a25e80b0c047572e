"""Text for people: plural nouns, display width, safe table cells, clipping at a word."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from agentos.run.summary import text_table
from agentos.text import ELLIPSIS, cell, clip, display_width, ljust, noun_for, plural, rjust


@pytest.mark.parametrize(
    ("n", "noun", "many", "said"),
    [
        (0, "call", None, "0 calls"),
        (1, "call", None, "1 call"),
        (2, "call", None, "2 calls"),
        (12345, "token", None, "12,345 tokens"),
        (1, "entry", "entries", "1 entry"),
        (3, "entry", "entries", "3 entries"),
    ],
)
def test_plural_agrees_with_its_count(n: int, noun: str, many: str | None, said: str) -> None:
    assert plural(n, noun, many) == said
    assert noun_for(n, noun, many) == said.split(" ", 1)[1]


@pytest.mark.parametrize(
    ("text", "width"),
    [
        ("plain", 5),
        ("日本語", 6),  # CJK ideographs: two columns each
        ("ｶﾀｶﾅ", 4),  # halfwidth katakana: one
        ("ＡＢ", 4),  # fullwidth Latin: two
        ("한국어", 6),
        ("café", 4),
        ("cafe\u0301", 4),  # e + combining acute: one column
        ("a\u200bb", 2),  # zero-width space
        ("🎉", 2),
        ("", 0),
    ],
)
def test_display_width_counts_terminal_columns(text: str, width: int) -> None:
    assert display_width(text) == width


@pytest.mark.parametrize(
    ("raw", "shown"),
    [
        ("a\tb\tc", "a b c"),
        ("two\nlines\r\n", "two lines"),
        ("esc \x1b[31mred\x1b[0m", "esc \\x1b[31mred\\x1b[0m"),
        ("bell\x07", "bell\\x07"),
        ("c1 \x9b", "c1 \\x9b"),
        ("caf\udce9", "caf\\xe9"),  # a byte that was not UTF-8, carried by surrogateescape
        ("abc\u202edcba", "abc\\u202edcba"),  # a right-to-left override would reorder the line
        ("日本語 ok", "日本語 ok"),
    ],
)
def test_cell_is_one_safe_line(raw: str, shown: str) -> None:
    assert cell(raw) == shown
    assert cell(shown) == shown  # idempotent: a table may clean a cleaned cell again


def test_clip_keeps_what_fits() -> None:
    assert clip("short", 10) == "short"
    assert clip("exactly10!", 10) == "exactly10!"


def test_clip_cuts_at_a_word_and_leaves_no_dangling_separator() -> None:
    error = "command failed with exit 1; stderr: permission denied while writing the output file"
    clipped = clip(error, 30)
    assert clipped == "command failed with exit 1…"  # not "...exit 1; s" nor "...exit 1;…"
    assert display_width(clipped) <= 30


@pytest.mark.parametrize("separator", [";", ",", ":", " -", " (", " /"])
def test_clip_strips_every_dangling_separator(separator: str) -> None:
    text = f"first part{separator} second part that is long enough to be cut"
    clipped = clip(text, len("first part") + 3)
    assert clipped == "first part…"


def test_clip_cuts_mid_word_when_no_boundary_is_near() -> None:
    assert clip("a" + "b" * 40, 10) == "abbbbbbbb…"


def test_clip_counts_wide_characters() -> None:
    clipped = clip("日本語のテキスト行です", 9)
    assert clipped == "日本語の…" and display_width(clipped) == 9


@given(st.text(), st.integers(min_value=1, max_value=120))
def test_clip_never_exceeds_its_width(text: str, width: int) -> None:
    clipped = clip(cell(text), width)
    assert display_width(clipped) <= width
    assert clipped == cell(text) or clipped.endswith(ELLIPSIS)


def test_padding_uses_display_columns() -> None:
    assert ljust("日本", 6) == "日本  "
    assert rjust("日本", 6) == "  日本"


def test_a_table_lines_up_wide_characters_tabs_and_escapes() -> None:
    rows = [
        ("item-1", "日本語のテキスト行", "items.txt:1"),
        ("item-2", "plain", "items.txt:2"),
        ("item-3", "a\tb\tc", "items.txt:3"),
        ("item-4", "esc \x1b[31mred\x1b[0m", "items.txt:4"),
    ]
    lines = text_table(rows, ("id", "title", "source"))
    # every source column starts at the same terminal column
    starts = {
        display_width(line[: line.index(s)])
        for line, s in zip(lines, ["source"] + [r[2] for r in rows], strict=True)
    }
    assert len(starts) == 1, lines
    assert all("\t" not in line and "\x1b" not in line for line in lines)
