"""The Markdown structure a document is read through: fenced code blocks, headings, tables, and
the plain text of a cell. What people write, not a grammar: `# comments` inside a fenced block
are not headings, a table is a header row, a separator row and the rows that follow, a cell's
text loses its emphasis, code marks and links. Every function here is total: any text gives an
answer, never an exception.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

HEADING = re.compile(r"^(#{1,6})\s+(.*?)\s*#*\s*$")
_FENCE = re.compile(r"^\s{0,3}(`{3,}|~{3,})")
_SECTION_NUMBER = re.compile(r"^(?:§\s*)?(?:\d+(?:\.\d+)*[.):]?|[A-Z][.):])\s+")
#: emphasis, code and quote marks; not the underscores inside `snake_case`
MARKUP = re.compile(r"\*+|`+|~~|(?<![A-Za-z0-9])_+|_+(?![A-Za-z0-9])|^\s*>+\s*")
TABLE_ROW = re.compile(r"^\s*\|(.*)\|\s*$")
_SEPARATOR_CELL = re.compile(r"^:?-{2,}:?$")
_LINK = re.compile(r"\[([^\]]*)\]\([^)]*\)")


@dataclass(frozen=True)
class Table:
    """A Markdown table: its header cells and its rows' cells."""

    header: list[str]
    rows: list[list[str]]


def lines_outside_fences(text: str) -> Iterator[tuple[int, str, bool]]:
    """(offset, line, inside a fenced block) for every line; fence lines count as inside."""
    offset = 0
    fence: str | None = None
    for line in text.splitlines(keepends=True):
        opened = _FENCE.match(line)
        if fence is None and opened:
            fence = opened.group(1)
            yield offset, line, True
        elif fence is not None:
            if line.strip().startswith(fence[0] * len(fence)) and not line.strip().strip(fence[0]):
                fence = None
            yield offset, line, True
        else:
            yield offset, line, False
        offset += len(line)


def code_flags(lines: list[str]) -> list[bool]:
    """For each of `lines` (a text's `splitlines()`): is it part of a fenced code block?"""
    flags = [fenced for _, _, fenced in lines_outside_fences("\n".join(lines))]
    return flags + [False] * (len(lines) - len(flags))  # trailing '' lines do not survive join


@dataclass(frozen=True)
class Heading:
    """A Markdown heading: its level, its name, and where it and its body begin."""

    level: int
    name: str  # normalised: no number, no markup, lower case, "and" as "&"
    start: int
    body: int  # offset of the line after the heading


def heading_name(title: str) -> str:
    name = MARKUP.sub("", title).strip()
    name = _SECTION_NUMBER.sub("", name).strip().rstrip(":").strip().lower()
    return re.sub(r"\s+and\s+", " & ", re.sub(r"\s+", " ", name))


def headings_of(text: str) -> list[Heading]:
    found = []
    for offset, line, fenced in lines_outside_fences(text):
        if fenced:
            continue
        match = HEADING.match(line.rstrip("\r\n"))
        if match:
            found.append(
                Heading(
                    len(match.group(1)), heading_name(match.group(2)), offset, offset + len(line)
                )
            )
    return found


def _split_cells(row: str) -> list[str]:
    cells = re.split(r"(?<!\\)\|", row)
    return [c.strip().replace("\\|", "|") for c in cells]


def tables(text: str) -> list[Table]:
    """Every markdown table in `text` (outside code blocks): a header row, a separator row, and
    the rows that follow."""
    found: list[Table] = []
    lines = [(line.rstrip("\r\n"), fenced) for _, line, fenced in lines_outside_fences(text)]
    i = 0
    while i < len(lines) - 1:
        head = TABLE_ROW.match(lines[i][0]) if not lines[i][1] else None
        sep = TABLE_ROW.match(lines[i + 1][0]) if head and not lines[i + 1][1] else None
        if not (head and sep) or not all(
            _SEPARATOR_CELL.match(c) for c in _split_cells(sep.group(1)) if c
        ):
            i += 1
            continue
        rows = []
        j = i + 2
        while j < len(lines) and not lines[j][1] and (row := TABLE_ROW.match(lines[j][0])):
            cells = _split_cells(row.group(1))
            if any(cells):
                rows.append(cells)
            j += 1
        found.append(Table(_split_cells(head.group(1)), rows))
        i = j
    return found


def table_rows(text: str) -> list[list[str]]:
    """Rows of the first markdown table in `text`, header and separator excluded."""
    found = tables(text)
    return found[0].rows if found else []


def find_column(
    header: list[str], prefixes: tuple[str, ...], avoid: tuple[str, ...] = ()
) -> int | None:
    """The first column whose name has a word starting with one of `prefixes` (and none
    starting with one of `avoid`)."""
    for n, cell in enumerate(header):
        words = re.findall(r"[a-z]+|#", plain_text(cell).lower())
        if any(w.startswith(prefixes) for w in words) and not any(
            w.startswith(avoid) for w in words
        ):
            return n
    return None


def cell_at(cells: list[str], n: int | None) -> str:
    return cells[n].strip() if n is not None and n < len(cells) else ""


def plain_text(cell: str) -> str:
    return MARKUP.sub("", _LINK.sub(r"\1", cell)).strip()
