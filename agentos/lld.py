"""The low-level design (LLD) format: the template drafters are asked to follow, and the parsers
that read an LLD back (its status, title, sections, requirements, test scenarios and the
files-changed table).

The template agentos asks for:

    # LLD: <title>
    Status: Approved | Draft
    ## 1. Context & goal
    ## 2. Proposed changes          with a files-changed table: | File | Change |
    ## 3. Requirements              - R1: ...
    ## 4. Test scenarios            | ID | Requirement | Scenario | Expected |
    ## 5. Security & safety
    ## 6. Definition of done

The parsers read what people write too, because most LLDs are not ours:

* status in the header (`* **Status:** Approved (model, date)`, `| Status | APPROVED |`, a bare
  `APPROVED` or `Draft ...` line) and/or a footer (`**Final Status:** APPROVED`); a UTF-8
  byte-order mark; header and footer that disagree (`Approval.conflict`);
* numbered, nested sections: `## 2. Proposed Changes` → `### 2.1 Files Changed`. A section runs
  to the next heading of the same or a higher level, so its sub-sections are part of it, and
  `# comments` inside code blocks are not headings;
* requirements as `- R1: ...`, `**REQ-1**: ...`, a table, or a numbered list (`1. The tool ...`);
* tables found by their header (`| ID | Scenario | Type | Input | Expected Output |`,
  `| File | Change Type | Description |`), whatever their column order.

Every function here is total: any text gives an answer, never an exception.

The Markdown underneath (fences, headings, tables) is read by agentos.markdown.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from agentos.markdown import (
    HEADING,
    MARKUP,
    TABLE_ROW,
    cell_at,
    find_column,
    heading_name,
    headings_of,
    lines_outside_fences,
    plain_text,
    tables,
)

BOM = "\ufeff"

TEMPLATE = """\
# LLD: <title>

## 1. Context & goal
<why this change, for whom, and what "better" means; link the brief>

## 2. Proposed changes
<the design in a few paragraphs>

| File | Change |
|---|---|
| `path/to/file.py` | <what changes in it> |

## 3. Requirements
- R1: <one testable requirement per line>

## 4. Test scenarios
| ID | Requirement | Scenario | Expected |
|---|---|---|---|
| T1 | R1 | <given / when> | <then> |

## 5. Security & safety
<inputs that cannot be trusted, secrets, failure modes, data loss>

## 6. Definition of done
- [ ] <checklist>
"""

SECTIONS = (
    "Context & goal",
    "Proposed changes",
    "Requirements",
    "Test scenarios",
    "Security & safety",
    "Definition of done",
)

#: what people call the template's sections (after the template's own name, in order of trust)
_ALIASES: dict[str, tuple[str, ...]] = {
    "context & goal": ("context", "background", "overview", "problem", "summary", "goal"),
    "proposed changes": ("proposed change", "design", "changes", "technical approach"),
    "requirements": ("requirement", "functional requirements", "acceptance criteria"),
    "test scenarios": ("test scenario", "test cases", "scenarios"),
    "test plan": ("testing", "tests", "verification", "test strategy"),
    "files changed": (
        "files to change",
        "file changes",
        "changed files",
        "affected files",
        "files",
    ),
    "security & safety": ("security", "safety", "risks"),
    "definition of done": ("done criteria", "done"),
}

APPROVED = frozenset({"approved", "accepted"})
#: words that stand alone on a header line as its status (`APPROVED`, `Draft - needs review`)
_BARE_STATUS = frozenset(
    {"approved", "accepted", "draft", "pending", "proposed", "rejected", "blocked", "superseded"}
)
_HEADER_LINES = 40

_STATUS = re.compile(r"^[^\w\n]*status\b[*_\s]*[:|]\W*(\w.*)$", re.IGNORECASE)
_FINAL_STATUS = re.compile(r"final\s+status\b[*_\s]*[:|]\W*(\w.*)$", re.IGNORECASE)
_REQ_ID = re.compile(
    r"^\s*(?:[-*+]\s+|\d+[.)]\s+)?[*_]*(?:R|REQ)[-_ ]?0*(\d+)[*_]*\s*[:.)\-–—][*_]*\s*(.+?)\s*$",
    re.IGNORECASE,
)
_REQ_REF = re.compile(r"^(?:R|REQ)[-_ ]?0*(\d+)$", re.IGNORECASE)
_REQ_REFS = re.compile(r"\b(?:R|REQ)[-_ ]?0*(\d+)\b", re.IGNORECASE)
_NUMBERED = re.compile(r"^(\d+)[.)]\s+(.+?)\s*$")
_BULLET = re.compile(r"^[-*+]\s+(?!\[[ xX]\])(.+?)\s*$")
_TITLE_WORD = re.compile(
    r"^(?:LLD|Brief|Idea|Issue|Low[- ]level design)\s*(?:[-#]?\s*\d+)?\s*[:\-–—]\s*", re.IGNORECASE
)
_TITLE_NUMBER = re.compile(r"^#?\d+\s*[:\-–—.)]\s+")


@dataclass(frozen=True)
class Scenario:
    """One row of an LLD's test scenarios."""

    id: str
    requirement: str  # "R1", "R1, R3", or "" when the table names none
    scenario: str
    expected: str


@dataclass(frozen=True)
class FileChange:
    """One row of an LLD's files to change: the path and what changes in it."""

    path: str
    change: str


@dataclass(frozen=True)
class Approval:
    """What an LLD says about its status: the header's value and the footer's (`Final
    Status:`), as written (`Approved`, `PENDING`, `In Progress`), or None where it says
    nothing."""

    header: str | None
    footer: str | None

    @property
    def conflict(self) -> bool:
        """Header and footer disagree about approval (Approved vs PENDING, Draft vs APPROVED):
        nobody can tell which one is current."""
        if self.header is None or self.footer is None:
            return False
        return _is_approved(self.header) != _is_approved(self.footer)

    @property
    def approved(self) -> bool:
        said = self.header or self.footer
        return said is not None and not self.conflict and _is_approved(said)

    def describe(self) -> str:
        """`Status: Approved, Final Status: PENDING`, `Draft`, `no status`."""
        if self.header is not None and self.footer is not None:
            return f"Status: {self.header}, Final Status: {self.footer}"
        return self.header or self.footer or "no status"


def section(text: str, name: str) -> str | None:
    """The body of the section called `name` (or one of its usual other names), sub-sections
    included: it runs to the next heading of the same or a higher level. None when the LLD has
    no such section. Headings are matched by their name, whatever their level or number."""
    headings = headings_of(text)
    wanted = heading_name(name)
    for candidate in (wanted, *_ALIASES.get(wanted, ())):
        for i, heading in enumerate(headings):
            if heading.name.startswith(candidate):
                end = next(
                    (h.start for h in headings[i + 1 :] if h.level <= heading.level), len(text)
                )
                return text[heading.body : end].strip("\n")
    return None


def sections_found(text: str) -> list[str]:
    """The template's sections that `text` has (by any of their names)."""
    return [name for name in SECTIONS if section(text, name) is not None]


# ---- status and title


def _status_value(rest: str) -> str | None:
    """`** Approved (gemini-3-pro-preview, 2026-02-04)` → `Approved`; `In Progress` stays."""
    value = re.split(r"\(|\||,|;| - | — | – ", MARKUP.sub("", rest), maxsplit=1)[0]
    words = re.sub(r"[^\w\s-]", " ", value).split()
    return " ".join(words[:3]) or None


def _is_approved(value: str) -> bool:
    words = value.lower().split()
    return bool(words) and words[0] in APPROVED


def _opens_body(title: str) -> bool:
    """A heading that starts the LLD's body: a numbered one, or a section of the template."""
    name = heading_name(title)
    if re.match(r"^(?:§\s*)?\d", MARKUP.sub("", title).strip()):
        return True
    return any(
        name.startswith(alias) for key, aliases in _ALIASES.items() for alias in (key, *aliases)
    )


def approval(text: str) -> Approval:
    """The status of the header (the lines before the LLD's first section, at most 40: a
    `Status:` field, or a line that is a status word) and of the footer (the last
    `Final Status:`)."""
    text = text.removeprefix(BOM)
    header: str | None = None
    status_heading = False
    for n, (_, raw, fenced) in enumerate(lines_outside_fences(text)):
        line = raw.strip()
        if n >= _HEADER_LINES or _FINAL_STATUS.search(line):
            break
        if fenced or not line:
            continue
        heading = HEADING.match(line)
        if heading and heading_name(heading.group(2)) == "status":
            status_heading = True  # `## Status`, the word on a line of its own below
            continue
        if heading and len(heading.group(1)) >= 2 and _opens_body(heading.group(2)):
            break
        if heading:
            continue  # the title, or a heading of the header (`## Metadata`)
        field = _STATUS.match(line)
        if field:
            header = _status_value(field.group(1))
        else:
            words = MARKUP.sub("", line).strip().split()
            bare = words[0].strip(":-.!").lower() if words else ""
            if status_heading or bare in _BARE_STATUS:
                header = _status_value(MARKUP.sub("", line))
        if header:
            break
    footers = [
        value
        for _, raw, fenced in lines_outside_fences(text)
        if not fenced
        and (match := _FINAL_STATUS.search(raw))
        and (value := _status_value(match.group(1)))
    ]
    return Approval(header, footers[-1] if footers else None)


def status_of(text: str) -> str | None:
    """The LLD's status word, lower-cased: the header's, else the footer's."""
    found = approval(text)
    value = found.header or found.footer
    return value.split()[0].lower() if value else None


def clean_title(title: str) -> str:
    """A heading as a title: without `LLD:`, `Brief:`, `LLD-137:` or a leading `137 - `."""
    title = title.strip().removeprefix(BOM).strip()
    while True:
        cleaned = _TITLE_NUMBER.sub("", _TITLE_WORD.sub("", title)).strip()
        if cleaned == title or not cleaned:
            return cleaned or title
        title = cleaned


def without_lld_prefix(title: str) -> str:
    return clean_title(title)


def title_of(text: str, fallback: str) -> str:
    """The first `# ` heading, cleaned (see `clean_title`)."""
    for line in text.removeprefix(BOM).splitlines():
        if line.startswith("# "):
            return clean_title(line[2:]) or fallback
    return fallback


# ---- requirements, scenarios, files


def _requirement_refs(cell: str) -> str:
    """`R1`, `REQ-1, REQ-3`, `1; 3` → `R1`, `R1, R3`; a cell that names none → ''."""
    plain = plain_text(cell)
    numbers = _REQ_REFS.findall(plain)
    if not numbers and re.fullmatch(r"[\d\s,;/&]+", plain):
        numbers = re.findall(r"\d+", plain)
    return ", ".join(f"R{int(n)}" for n in numbers)


def requirements(text: str) -> list[tuple[str, str]]:
    """(id, text) of each requirement: `R<n>` ids as written (`R1`, `REQ-1`, a table's first
    column); else the section's numbered list, else its bullets, as R1, R2, ... in order."""
    body = section(text, "Requirements") or ""
    with_ids: list[tuple[str, str]] = []
    numbered: list[str] = []
    bullets: list[str] = []
    for _, line, fenced in lines_outside_fences(body):
        line = line.rstrip("\r\n")
        if fenced or TABLE_ROW.match(line):
            continue
        match = _REQ_ID.match(line)
        if match:
            with_ids.append((f"R{int(match.group(1))}", plain_text(match.group(2))))
        elif number := _NUMBERED.match(line):
            numbered.append(plain_text(number.group(2)))
        elif bullet := _BULLET.match(line):
            bullets.append(plain_text(bullet.group(1)))
    for table in tables(body):
        for cells in table.rows:
            ref = _REQ_REF.match(plain_text(cells[0])) if cells else None
            if ref and len(cells) > 1:
                with_ids.append((f"R{int(ref.group(1))}", plain_text(cells[1])))
    if with_ids:
        return with_ids
    return [(f"R{n}", t) for n, t in enumerate(numbered or bullets, start=1) if t]


def scenarios(text: str) -> list[Scenario]:
    """The rows of the test scenarios table (in `Test scenarios`, else in `Test plan`), its
    columns found by their names: ID, Requirement, Scenario (or Description, Test), Expected
    (or Pass criteria, Result)."""
    body = section(text, "Test scenarios")
    if body is None or not tables(body):
        body = section(text, "Test plan") or ""
    for table in tables(body):
        header = table.header
        ident = next(
            (
                n
                for n, cell in enumerate(header)
                if plain_text(cell).lower().rstrip(".") in ("id", "#", "no", "nr", "test id")
            ),
            None,
        )
        req = find_column(header, ("req", "covers"))
        what = find_column(
            header,
            ("scenario", "description", "test", "case", "name", "given", "title"),
            avoid=("id",),
        )
        expected = find_column(header, ("expected", "pass", "result", "outcome", "then"))
        if ident is None and what is None:
            continue
        ident = 0 if ident is None else ident
        if what is None:
            what = next((n for n in range(len(header)) if n not in (ident, req)), ident)
        found = []
        for cells in table.rows:
            sid = plain_text(cell_at(cells, ident))
            if sid:
                # without a requirement column, a scenario may name its requirement: "(REQ-2)"
                refs = (
                    _requirement_refs(cell_at(cells, req))
                    if req is not None
                    else ", ".join(f"R{int(n)}" for n in _REQ_REFS.findall(cell_at(cells, what)))
                )
                found.append(
                    Scenario(
                        sid,
                        refs,
                        plain_text(cell_at(cells, what)),
                        plain_text(cell_at(cells, expected)),
                    )
                )
        return found
    return []


def _path_in(cell: str) -> str:
    quoted = re.search(r"`([^`]+)`", cell)
    plain = quoted.group(1) if quoted else plain_text(cell)
    words = plain.strip().split()
    return words[0].strip("*") if words else ""


def _merge(changes: list[FileChange]) -> list[FileChange]:
    merged: dict[str, list[str]] = {}
    for change in changes:
        merged.setdefault(change.path, [])
        if change.change and change.change not in merged[change.path]:
            merged[change.path].append(change.change)
    return [FileChange(path, "; ".join(notes)) for path, notes in merged.items()]


def _files_table(body: str, *, any_table: bool) -> list[FileChange] | None:
    for table in tables(body):
        column = find_column(table.header, ("file", "path"))
        if column is None and not any_table:
            continue
        column = column or 0
        changes = []
        for cells in table.rows:
            path = _path_in(cell_at(cells, column))
            if not path or path in ("-", "—", "n/a", "N/A"):
                continue
            notes = [plain_text(c) for n, c in enumerate(cells) if n != column and plain_text(c)]
            changes.append(FileChange(path, " — ".join(notes)))
        return _merge(changes)
    return None


def files_changed(text: str) -> list[FileChange] | None:
    """The files-changed table: in a `Files changed` section (or sub-section), else the table
    with a File or Path column in `Proposed changes`, else anywhere. A `Files changed` section
    may list them as bullets (`` - `path` — change ``). None when the LLD has no such list."""
    own = section(text, "Files changed")
    if own is not None:
        found = _files_table(own, any_table=True)
        if found is not None:
            return found
        bullets = [
            FileChange(quoted.group(1).strip(), plain_text(line[quoted.end() :]).lstrip(":-–— "))
            for _, line, fenced in lines_outside_fences(own)
            if not fenced
            and _BULLET.match(line.strip())
            and (quoted := re.search(r"`([^`\s]+)`", line))
        ]
        if bullets:
            return _merge(bullets)
    proposed = section(text, "Proposed changes")
    if proposed is not None:
        found = _files_table(proposed, any_table=False)
        if found is not None:
            return found
    return _files_table(text, any_table=False)


def uncovered_requirements(text: str) -> list[str]:
    """Requirement ids that no test scenario names: what a reviewer must ask for."""
    covered = {part.strip() for s in scenarios(text) for part in s.requirement.split(",")}
    return [rid for rid, _ in requirements(text) if rid not in covered]
